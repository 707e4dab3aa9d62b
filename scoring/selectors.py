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
