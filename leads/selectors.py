"""Reads for lead APIs and pages."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Lead

LEAD_ORDERINGS = {
    "current_score",
    "-current_score",
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "email",
    "-email",
    "company",
    "-company",
    "last_name",
    "-last_name",
}


def lead_list(
    *, search: str = "", min_score: int | None = None, max_score: int | None = None, ordering: str = "-current_score"
) -> QuerySet[Lead]:
    leads = Lead.objects.all()
    search = search.strip()
    if search:
        leads = leads.filter(
            Q(email__icontains=search)
            | Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
            | Q(company__icontains=search)
        )
    if min_score is not None:
        leads = leads.filter(current_score__gte=min_score)
    if max_score is not None:
        leads = leads.filter(current_score__lte=max_score)
    if ordering not in LEAD_ORDERINGS:
        ordering = "-current_score"
    return leads.order_by(ordering, "id")


def leaderboard_top(*, limit: int = 10) -> list[Lead]:
    return list(
        Lead.objects.order_by("-current_score", "id").only(
            "id", "email", "first_name", "last_name", "company", "current_score", "max_score"
        )[:limit]
    )
