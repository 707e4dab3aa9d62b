import uuid

from django.core.validators import MinValueValidator
from django.db import models

from config.fields import BinaryCharField, BinaryEmailField


class Lead(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = BinaryEmailField(max_length=254, unique=True, help_text="Stored lower-cased.")
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    company = models.CharField(max_length=200, blank=True, default="")
    phone = models.CharField(max_length=50, blank=True, default="")
    job_title = models.CharField(max_length=200, blank=True, default="")
    current_score = models.IntegerField(default=0)
    max_score = models.IntegerField(default=1000, validators=[MinValueValidator(0)])
    # The (timestamp, event_id) of the newest processed event: the end of the lead's fold.
    last_processed_event_time = models.DateTimeField(null=True, blank=True)
    last_processed_event_id = BinaryCharField(max_length=255, blank=True, default="")
    # The fit score (profile rules) and the grade (fit letter + engagement digit, "A1" … "D4").
    fit_score = models.IntegerField(default=0)
    grade = models.CharField(max_length=2, default="D4")
    # The rule-set version the score was computed under (0: none yet) and the time it was
    # evaluated at (decay is relative to it; docs/scoring-model.md).
    rule_version = models.PositiveIntegerField(default=0)
    score_as_of = models.DateTimeField(null=True, blank=True)
    decaying = models.BooleanField(default=False, help_text="Holds a decaying contribution (refreshed periodically).")
    # Frequency-cap state at the end of the fold (engine.FoldState.caps), for in-order events.
    fold_state = models.JSONField(default=dict, blank=True)
    # The stage the lead is in (scoring.Stage name; "" none yet), since when, and the version of
    # the stage settings it was decided under (a background restage brings older ones up to date).
    stage = models.CharField(max_length=64, blank=True, default="")
    stage_entered_at = models.DateTimeField(null=True, blank=True)
    stage_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["-current_score", "id"], name="lead_score_idx"),
            models.Index(fields=["-fit_score", "id"], name="lead_fit_idx"),
            models.Index(fields=["grade"], name="lead_grade_idx"),
            models.Index(fields=["rule_version", "id"], name="lead_rule_version_idx"),
            models.Index(fields=["decaying", "id"], name="lead_decaying_idx"),
            models.Index(fields=["created_at"], name="lead_created_idx"),
            models.Index(fields=["stage", "-current_score", "id"], name="lead_stage_idx"),
            models.Index(fields=["stage_entered_at"], name="lead_stage_entered_idx"),
            models.Index(fields=["stage_version", "id"], name="lead_stage_version_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_score__gte=0), name="lead_max_score_gte_0"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)
