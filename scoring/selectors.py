"""Reads for scoring."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ScoreChange, ScoringRule


def known_event_types() -> set[str]:
    return set(ScoringRule.objects.values_list("event_type", flat=True))


def rule_points_by_type() -> dict[str, int | None]:
    """Points per event type; ``None`` for a disabled rule (the event is scored with 0 points)."""
    return {
        event_type: (points if enabled else None)
        for event_type, points, enabled in ScoringRule.objects.values_list("event_type", "points", "enabled")
    }


def rule_list() -> QuerySet[ScoringRule]:
    return ScoringRule.objects.order_by("event_type")


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
