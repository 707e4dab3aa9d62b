import json
import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models

from config.fields import BinaryCharField
from events.validation import json_value_problem

from . import engine

EVENT_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def validate_event_type(value: str) -> None:
    if not EVENT_TYPE_RE.match(value or ""):
        raise ValidationError("Event types are UPPER_SNAKE_CASE (A-Z, 0-9, _), at most 64 characters.")


MAX_PRIORITY = 1_000_000_000
MAX_CAP_COUNT = 1_000_000_000
MAX_CAP_WINDOW_SECONDS = 3650 * 86_400
MAX_CONDITIONS_BYTES = 16 * 1024
# A JSON column stores it on every backend (MariaDB's JSON check refuses more than 32 levels).
MAX_CONDITIONS_DEPTH = 8


def conditions_problem(conditions, *, fields=None) -> str | None:
    """Why ``conditions`` is not a valid, storable list of conditions (the message names the place,
    ``conditions[0].op: …``), or None. The engine decides validity (``engine.conditions_parse``);
    this adds what a JSON column refuses (NaN/Infinity, lone surrogates, NUL, depth) and a size."""
    found = json_value_problem(conditions, name="conditions", max_depth=MAX_CONDITIONS_DEPTH)
    if found:
        return f"{found[0]}: {found[1]}"
    try:
        engine.conditions_parse(conditions, fields=fields)
    except engine.RuleError as exc:
        return str(exc)
    if len(json.dumps(conditions, ensure_ascii=False).encode("utf-8")) > MAX_CONDITIONS_BYTES:
        return f"conditions: at most {MAX_CONDITIONS_BYTES // 1024} KB of JSON"
    return None


class MatchMode(models.TextChoices):
    ALL = "all", "All matching rules add up"
    FIRST = "first", "First matching rule by priority wins"


class ScoringRule(models.Model):
    """A behaviour rule of the **draft** rule set; it scores only once a version is published
    (``RuleSetVersion``). The definition of every field: docs/scoring-model.md."""

    name = models.CharField(max_length=100, blank=True, default="", help_text="Shown in explanations.")
    event_type = BinaryCharField(max_length=64, validators=[validate_event_type])
    points = models.IntegerField(help_text="May be negative (UNSUBSCRIBE -50).")
    priority = models.IntegerField(default=100, help_text="Lower first; decides the first match.")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True, default="")
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='All must hold, e.g. [{"field": "metadata.url", "op": "contains", "value": "/pricing"}].',
    )
    cap_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many contributions per lead (empty: no cap)."
    )
    cap_window_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Rolling window of the cap in event time (86400: per day; empty: ever)."
    )
    half_life_days = models.FloatField(null=True, blank=True, help_text="Points halve every this many days.")
    expire_after_days = models.FloatField(null=True, blank=True, help_text="Points count 0 from this age on.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type", "priority", "id"]

    def clean(self) -> None:
        errors = {}
        problem = conditions_problem(self.conditions)
        if problem:
            errors["conditions"] = problem
        if self.cap_window_seconds is not None and self.cap_count is None:
            errors["cap_window_seconds"] = "A cap window needs a cap count."
        if self.cap_count is not None and self.cap_count < 1:
            errors["cap_count"] = "At least 1 (leave empty for no cap)."
        if self.cap_count is not None and self.cap_count > MAX_CAP_COUNT:
            errors["cap_count"] = f"At most {MAX_CAP_COUNT:,}."
        if self.cap_window_seconds is not None and self.cap_window_seconds < 1:
            errors["cap_window_seconds"] = "At least 1 second (leave empty: the cap counts forever)."
        if self.cap_window_seconds is not None and self.cap_window_seconds > MAX_CAP_WINDOW_SECONDS:
            errors["cap_window_seconds"] = f"At most {MAX_CAP_WINDOW_SECONDS:,} seconds (3,650 days)."
        if self.priority is not None and not -MAX_PRIORITY <= self.priority <= MAX_PRIORITY:
            errors["priority"] = f"Between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}."
        for name in ("half_life_days", "expire_after_days"):
            value = getattr(self, name)
            if value is not None and not (0 < value <= 36_500):
                errors[name] = "Between 0 (excluded) and 36,500 days."
        if self.points is not None and not -100_000 <= self.points <= 100_000:
            errors["points"] = "Between -100,000 and 100,000."
        if errors:
            raise ValidationError(errors)

    def __str__(self) -> str:
        label = self.name or self.event_type
        return f"{label} ({self.points:+d})"


class FitField(models.TextChoices):
    EMAIL = "email", "E-mail"
    EMAIL_DOMAIN = "email_domain", "E-mail domain"
    FREE_MAIL = "free_mail", "Free-mail domain (true/false)"
    FIRST_NAME = "first_name", "First name"
    LAST_NAME = "last_name", "Last name"
    COMPANY = "company", "Company"
    JOB_TITLE = "job_title", "Job title"
    PHONE = "phone", "Phone"


class FitRule(models.Model):
    """A fit rule of the draft: points when the lead's profile matches (docs/scoring-model.md)."""

    name = models.CharField(max_length=100, blank=True, default="")
    points = models.IntegerField()
    priority = models.IntegerField(default=100)
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(
        default=list,
        help_text='All must hold, e.g. [{"field": "company", "op": "exists", "value": true}].',
    )
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]

    def clean(self) -> None:
        errors = {}
        problem = conditions_problem(self.conditions, fields=engine.FIT_FIELDS)
        if problem:
            errors["conditions"] = problem
        if self.points is not None and not -100 <= self.points <= 100:
            errors["points"] = "Between -100 and 100 (the fit score is clamped to 0-100)."
        if self.priority is not None and not -MAX_PRIORITY <= self.priority <= MAX_PRIORITY:
            errors["priority"] = f"Between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}."
        if errors:
            raise ValidationError(errors)

    def __str__(self) -> str:
        return f"{self.name or 'fit rule'} ({self.points:+d})"


class ScoringSettings(models.Model):
    """The draft rule set's own settings (one row, pk 1)."""

    match_mode = models.CharField(max_length=8, choices=MatchMode.choices, default=MatchMode.ALL)
    grade_fit_a = models.IntegerField(default=60)
    grade_fit_b = models.IntegerField(default=40)
    grade_fit_c = models.IntegerField(default=20)
    grade_score_1 = models.IntegerField(default=300)
    grade_score_2 = models.IntegerField(default=100)
    grade_score_3 = models.IntegerField(default=40)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "rule-set settings (draft)"

    def clean(self) -> None:
        """Thresholds within the scores' ranges and in grade order (A ≥ B ≥ C, 1 ≥ 2 ≥ 3)."""
        errors = {}
        for names, low, high in (
            (("grade_fit_a", "grade_fit_b", "grade_fit_c"), 0, 100),
            (("grade_score_1", "grade_score_2", "grade_score_3"), 0, 1_000_000_000),
        ):
            values = [getattr(self, name) for name in names]
            for name, value in zip(names, values):
                if value is not None and not low <= value <= high:
                    errors[name] = f"Between {low:,} and {high:,}."
            for (higher, upper), (name, value) in zip(zip(names, values), zip(names[1:], values[1:])):
                if name not in errors and None not in (upper, value) and value > upper:
                    errors[name] = f"At most {higher} ({upper})."
        if errors:
            raise ValidationError(errors)

    def __str__(self) -> str:
        return "Rule-set settings (draft)"


class RuleSetVersion(models.Model):
    """A published, immutable rule set: the snapshot every score under it is a fold of."""

    number = models.PositiveIntegerField(unique=True)
    match_mode = models.CharField(max_length=8, choices=MatchMode.choices, default=MatchMode.ALL)
    rules = models.JSONField(default=list, help_text="Snapshot of the behaviour rules (scoring.rulesets).")
    fit_rules = models.JSONField(default=list)
    grades = models.JSONField(default=dict)
    changes = models.JSONField(default=list, help_text="What changed against the previous version.")
    note = models.TextField(blank=True, default="")
    published_by = models.CharField(max_length=150, blank=True, default="")
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"rules v{self.number}"


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    SUPERSEDED = "superseded", "Superseded by a newer version"
    FAILED = "failed", "Failed"


class RescoreKind(models.TextChoices):
    RESCORE = "rescore", "Rescore (rule-set version)"
    RESTAGE = "restage", "Restage (stage settings version)"


class RescoreJob(models.Model):
    """A background rescore of every lead to ``version``; ``cursor`` (the last lead pk done) and the
    counters are committed with each batch, so a crashed job resumes where it stopped.

    ``kind`` restage: the same machinery re-deciding every lead's stage under stage-settings
    ``version`` (no score changes)."""

    kind = models.CharField(max_length=8, choices=RescoreKind.choices, default=RescoreKind.RESCORE)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RescoreStatus.choices, default=RescoreStatus.QUEUED)
    total = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    changed = models.BigIntegerField(default=0)
    cursor = models.CharField(max_length=64, blank=True, default="")
    lead_id = models.UUIDField(null=True, blank=True, help_text="Only this lead (manage.py rescore --lead).")
    error = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "updated_at"], name="rescorejob_status_idx")]

    def __str__(self) -> str:
        return f"rescore to v{self.version} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (RescoreStatus.COMPLETED, RescoreStatus.SUPERSEDED, RescoreStatus.FAILED)


class ScoreChange(models.Model):
    """Append-only audit log: one row per scored event (the seed's score_history), plus one row
    per lead whose score a rescore changed."""

    RESCORE = "RESCORE"
    DECAY = "DECAY"

    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="score_changes")
    # The event that caused the change; empty for a rescore of the whole lead (event_type RESCORE).
    event = models.ForeignKey(
        "events.Event", on_delete=models.CASCADE, related_name="score_changes", null=True, blank=True
    )
    event_type = models.CharField(max_length=64)
    previous_score = models.IntegerField()
    new_score = models.IntegerField()
    delta = models.IntegerField()
    reason = models.CharField(max_length=500)
    late = models.BooleanField(default=False)
    rule_version = models.PositiveIntegerField(null=True, blank=True, help_text="The rule-set version scored under.")
    # The rules that produced the change: [{"rule": key, "name": …, "points": n}, …].
    rules = models.JSONField(default=list, blank=True)
    timestamp = models.DateTimeField(help_text="Event time of the event that caused the change.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["lead", "id"], name="scorechange_lead_idx"),
            models.Index(fields=["timestamp"], name="scorechange_ts_idx"),
            models.Index(fields=["created_at"], name="scorechange_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.previous_score} -> {self.new_score} ({self.reason})"


STAGE_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
MAX_STAGES = 20
MAX_SCORE_THRESHOLDS = 20


class Stage(models.Model):
    """An admin-managed lead stage (Cold, Warm, MQL, SQL …): a lead is in the hottest stage (highest
    ``position``) whose thresholds it meets. Changing stages bumps ``StageSettings.version`` and
    restages every lead in the background (scoring.stages)."""

    name = models.CharField(max_length=64, unique=True)
    position = models.IntegerField(default=0, help_text="Order from coldest (lowest) to hottest.")
    min_score = models.IntegerField(null=True, blank=True, help_text="Score at least this (empty: any score).")
    min_fit = models.IntegerField(null=True, blank=True, help_text="Fit score at least this (empty: any fit).")
    color = models.CharField(
        max_length=16, default="grey",
        choices=[(c, c.title()) for c in ("grey", "blue", "teal", "green", "amber", "orange", "red", "purple")],
    )
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def clean(self) -> None:
        errors = {}
        if not STAGE_NAME_RE.match(self.name or ""):
            errors["name"] = "1-64 characters, no control characters."
        elif Stage.objects.filter(name__iexact=self.name.strip()).exclude(pk=self.pk).exists():
            errors["name"] = "Another stage has this name (names compare without case)."
        if self.min_score is not None and not -1_000_000_000 <= self.min_score <= 1_000_000_000:
            errors["min_score"] = "Between -1,000,000,000 and 1,000,000,000."
        if self.min_fit is not None and not 0 <= self.min_fit <= 100:
            errors["min_fit"] = "Between 0 and 100 (the fit score's range)."
        if not -1_000_000 <= (self.position or 0) <= 1_000_000:
            errors["position"] = "Between -1,000,000 and 1,000,000."
        if errors:
            raise ValidationError(errors)

    def __str__(self) -> str:
        return self.name


class StageSettings(models.Model):
    """One row (pk 1): the version of the stage settings and the score thresholds whose crossing is
    an alert (``lead.score_crossed``)."""

    version = models.PositiveIntegerField(default=1)
    score_thresholds = models.JSONField(
        default=list, blank=True, help_text="e.g. [50, 150]: a lead crossing one (up or down) is an alert."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "stage settings"

    def clean(self) -> None:
        values = self.score_thresholds
        if not isinstance(values, list) or len(values) > MAX_SCORE_THRESHOLDS or any(
            isinstance(v, bool) or not isinstance(v, int) or not -1_000_000_000 <= v <= 1_000_000_000 for v in values
        ):
            raise ValidationError(
                {"score_thresholds": f"A list of at most {MAX_SCORE_THRESHOLDS} whole numbers, e.g. [50, 150]."}
            )

    def __str__(self) -> str:
        return f"Stage settings (v{self.version})"


class StageCause(models.TextChoices):
    EVENT = "event", "Event"
    RESCORE = "rescore", "Rule change (rescore)"
    DECAY = "decay", "Decay"
    FIT = "fit", "Profile (fit) change"
    STAGES = "stages", "Stage settings change"
    MAX_SCORE = "max_score", "Max score change"
    MERGE = "merge", "Events re-attributed"


class StageChange(models.Model):
    """Append-only audit of a lead's stage: one row per actual change, with its cause."""

    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=64, blank=True, default="")
    to_stage = models.CharField(max_length=64, blank=True, default="")
    direction = models.CharField(max_length=4, choices=[("up", "Up"), ("down", "Down")])
    score = models.IntegerField()
    fit_score = models.IntegerField(default=0)
    cause = models.CharField(max_length=16, choices=StageCause.choices)
    # The event whose scoring moved the lead (cause event), kept as text too: events can be deleted.
    event = models.ForeignKey("events.Event", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    event_ref = models.CharField(max_length=255, blank=True, default="")
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    stage_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(help_text="When the lead entered to_stage.")

    class Meta:
        indexes = [
            models.Index(fields=["lead", "id"], name="stagechange_lead_idx"),
            models.Index(fields=["created_at"], name="stagechange_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.from_stage or '-'} -> {self.to_stage or '-'} ({self.cause})"


class AlertKind(models.TextChoices):
    STAGE_CHANGED = "lead.stage_changed", "lead.stage_changed"
    SCORE_CROSSED = "lead.score_crossed", "lead.score_crossed"
    ENDPOINT_PAUSED = "endpoint.paused", "endpoint.paused (operator notice)"


class AlertEvent(models.Model):
    """A domain event, written in the transaction that made the change (so exactly once per actual
    change) and fanned out after commit to webhooks, e-mail and pages (realtime.alerts). It is the
    source of truth: ``dispatched`` stays False until the fan-out committed; a sweep finds the rest."""

    uid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    stage = models.CharField(max_length=64, blank=True, default="", help_text="The stage entered (stage_changed).")
    payload = models.JSONField(default=dict)
    dispatched = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["dispatched", "id"], name="alertevent_pending_idx"),
            models.Index(fields=["created_at"], name="alertevent_created_idx"),
            models.Index(fields=["lead", "id"], name="alertevent_lead_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.uid}"
