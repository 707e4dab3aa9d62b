"""Reads for scoring."""

from __future__ import annotations

from time import monotonic

from django.conf import settings
from django.db.models import Count, Min, QuerySet
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from events.models import Event, EventStatus
from leads.models import Lead

from . import engine
from .models import FitRule, RescoreJob, RescoreKind, RuleSetVersion, ScoreChange, ScoringRule, Stage, StageChange
from .rulesets import (
    current_version_number,
    draft_snapshot,
    ruleset_current,
    ruleset_of,
    settings_draft,
    snapshot_diff,
    version_snapshot,
)

_known_types: tuple[float, frozenset[str]] = (0.0, frozenset())


@receiver([post_save, post_delete], sender=ScoringRule, dispatch_uid="targetgrid.known_types_clear")
def known_event_types_clear(**_kwargs) -> None:
    global _known_types
    _known_types = (0.0, frozenset())


def known_event_types() -> set[str]:
    """The event types that have a rule (ingest accepts only these).

    Remembered per process for ``TARGETGRID_RULES_CACHE_SECONDS`` (2 s): every ingest request asks,
    rules change rarely. A rule saved or deleted in this process is seen at once; in the other
    processes within that time. Scoring reads the current version per transaction (``rulesets.ruleset_current``).
    """
    global _known_types
    expires, types = _known_types
    if expires > monotonic():
        return set(types)
    # The draft's types and the current version's: an event of a type just added to the draft is
    # stored (0 points until published), one just removed from the draft still scores under it.
    types = frozenset(ScoringRule.objects.values_list("event_type", flat=True)) | ruleset_current().event_types
    ttl = settings.TARGETGRID_RULES_CACHE_SECONDS
    if ttl > 0:
        _known_types = (monotonic() + ttl, types)
    return set(types)


def rule_list() -> QuerySet[ScoringRule]:
    """The draft's behaviour rules, in the order the engine tries them per event type."""
    return ScoringRule.objects.order_by("event_type", "priority", "id")


def fit_rule_list() -> QuerySet[FitRule]:
    return FitRule.objects.order_by("priority", "id")


def ruleset_versions() -> QuerySet[RuleSetVersion]:
    """Published versions, newest first, without their (large) rule snapshots."""
    return RuleSetVersion.objects.defer("rules", "fit_rules", "grades").order_by("-number")


def ruleset_version_get(*, number: int) -> RuleSetVersion | None:
    return RuleSetVersion.objects.filter(number=number).first()


def ruleset_draft_state() -> dict:
    """The draft as a version's content plus what publishing it would change against the current
    version: ``{based_on, match_mode, rules, fit_rules, grades, changes}``."""
    current = RuleSetVersion.objects.order_by("-number").first()
    snapshot = draft_snapshot()
    return {
        "based_on": current.number if current else 0,
        **snapshot,
        "changes": snapshot_diff(version_snapshot(current), snapshot),
    }


def ruleset_draft_pending_changes() -> int:
    """How many changes the draft holds against the current version."""
    return len(ruleset_draft_state()["changes"])


def ruleset_versions_diff(*, old: RuleSetVersion, new: RuleSetVersion) -> list[dict]:
    return snapshot_diff(version_snapshot(old), version_snapshot(new))


def scoring_settings_get():
    return settings_draft()


def rescore_jobs() -> QuerySet[RescoreJob]:
    return RescoreJob.objects.order_by("-id")


def rescore_job_of_version(*, number: int) -> RescoreJob | None:
    """The background rescore that publishing ``number`` started (not a single lead's)."""
    return (RescoreJob.objects.filter(kind=RescoreKind.RESCORE, version=number, lead_id__isnull=True)
            .order_by("-id").first())


def score_history(*, lead_id) -> QuerySet[ScoreChange]:
    return ScoreChange.objects.filter(lead_id=lead_id).select_related("event").order_by("-id")


def score_changes_latest(*, limit: int = 20) -> list[ScoreChange]:
    """The newest score changes across leads (the dashboard's feed), newest first."""
    return list(
        ScoreChange.objects.select_related("lead", "event")
        .only(
            "id",
            "lead__id",
            "lead__email",
            "event__event_id",
            "event_type",
            "previous_score",
            "new_score",
            "delta",
            "reason",
            "late",
            "timestamp",
            "created_at",
        )
        .order_by("-id")[:limit]
    )


def pending_oldest_received_at():
    """When the oldest pending event arrived (None if nothing is pending): one index dive on
    ``event_status_idx`` (status, received_at)."""
    return Event.objects.filter(status=EventStatus.PENDING).aggregate(oldest=Min("received_at"))["oldest"]


def pending_oldest_by_partition() -> dict[int, object]:
    """``{partition: received_at of its oldest pending event}`` for the partitions with pending events.

    ``GROUP BY status, partition`` with ``MIN(received_at)`` on ``event_pending_part_idx`` (status,
    partition, received_at): MariaDB reads one index entry per partition (a loose index scan,
    "Using index for group-by"), whatever the backlog — 0.13 ms with 40,000 pending events, where
    ``GROUP BY partition`` alone scanned them all (15 ms; measured on MariaDB 10.11).
    """
    rows = (
        Event.objects.filter(status=EventStatus.PENDING)
        .order_by()
        .values_list("status", "partition")
        .annotate(oldest=Min("received_at"))
    )
    return {partition: oldest for _, partition, oldest in rows}


def lead_score_breakdown(*, lead) -> dict:
    """Why the lead has its score: its processed events re-evaluated under the version and at the
    time (``score_as_of``) its stored score was computed, per rule (docs/scoring-model.md). The
    rules' ``points`` plus ``clamp_adjustment`` and ``rounding_adjustment`` sum to ``score``, which
    equals the stored score (``consistent``; False only while a rescore or decay refresh of the
    lead is due)."""
    ruleset = ruleset_of(lead.rule_version)
    rows = Event.objects.filter(lead_id=lead.id, status=EventStatus.PROCESSED).values_list(
        "event_id", "event_type", "timestamp", "metadata", "source"
    )
    events = [
        engine.EngineEvent.of(event_id=event_id, event_type=event_type, timestamp=timestamp, metadata=metadata,
                              source=source)
        for event_id, event_type, timestamp, metadata, source in rows
    ]
    evaluation = engine.evaluate(ruleset, events, max_score=lead.max_score, as_of=lead.score_as_of)
    fit, matched = ruleset.fit(engine.profile_of(lead))
    out = evaluation.explain()
    out.update(
        lead_id=str(lead.id),
        stored_score=lead.current_score,
        consistent=evaluation.score == lead.current_score,
        rule_version=lead.rule_version,
        score_as_of=lead.score_as_of,
        max_score=lead.max_score,
        events=len(events),
        fit_score=lead.fit_score,
        fit_rules=[{"rule": rule.key, "name": rule.label, "points": rule.points} for rule in matched],
        grade=lead.grade,
    )
    return out


def rescore_job_get(*, job_id: int) -> RescoreJob | None:
    """A rescore job as committed now (a command following one that another process runs)."""
    return RescoreJob.objects.filter(pk=job_id).first()


# --- Stages ------------------------------------------------------------------------------------


def stage_list() -> QuerySet[Stage]:
    """The stages, coldest first (as ``engine.StageSet`` orders them)."""
    return Stage.objects.order_by("position", "id")


def stage_palette() -> dict[str, str]:
    """Stage name -> colour, coldest first (one query; the pages call it once per render)."""
    return dict(stage_list().values_list("name", "color"))


def stage_changes(*, lead_id) -> QuerySet[StageChange]:
    """A lead's stage-change audit, newest first (``stagechange_lead_idx``)."""
    return StageChange.objects.filter(lead_id=lead_id).order_by("-id")


def stage_lead_counts() -> dict[str, int]:
    """Leads per stored stage name: one GROUP BY on ``lead_stage_idx``."""
    return dict(Lead.objects.order_by().values("stage").annotate(n=Count("pk")).values_list("stage", "n"))
