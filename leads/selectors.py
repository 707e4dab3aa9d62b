"""Reads for lead APIs and pages."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Avg, Count, Q, QuerySet

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


def leads_resolve(*, lead_ids=(), emails=()) -> tuple[set, dict]:
    """Which of ``lead_ids`` exist, and the lead id of each of ``emails`` that has one: one query."""
    lead_ids, emails = set(lead_ids), set(emails)
    if not lead_ids and not emails:
        return set(), {}
    known, by_email = set(), {}
    if lead_ids and emails:
        matching = Q(pk__in=lead_ids) | Q(email__in=emails)
    else:  # a plain IN: cheaper to build than the OR (most requests name leads one way)
        matching = Q(pk__in=lead_ids) if lead_ids else Q(email__in=emails)
    for pk, email in Lead.objects.filter(matching).values_list("pk", "email"):
        if pk in lead_ids:
            known.add(pk)
        if email in emails:
            by_email[email] = pk
    return known, by_email


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


def lead_kpis() -> dict:
    """Lead count, average score and the count at or over each stage threshold: one scan, one query."""
    stages = settings.TARGETGRID_STAGES
    aggregates = {"total": Count("pk"), "average": Avg("current_score")}
    for index, (_, threshold) in enumerate(stages):
        aggregates[f"stage_{index}"] = Count("pk", filter=Q(current_score__gte=threshold))
    row = Lead.objects.aggregate(**aggregates)
    return {
        "total": row["total"],
        "average": round(row["average"] or 0, 1),
        "stages": [
            {"name": name, "threshold": threshold, "count": row[f"stage_{index}"]}
            for index, (name, threshold) in enumerate(stages)
        ],
    }


def _nice_width(raw: float) -> int:
    """The smallest 1/2/5 x 10^k at or above ``raw`` (bucket widths people read easily)."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= raw:
                return factor * magnitude
        magnitude *= 10


def score_distribution(*, buckets: int = 10) -> list[dict]:
    """Leads per score bucket, counted by the database (one conditional aggregate; no rows in Python).

    Buckets are equal-width from 0 to the top score (read through ``lead_score_idx``); a width of
    1/2/5 x 10^k keeps the labels round. Empty when there are no leads.
    """
    top = Lead.objects.order_by("-current_score").values_list("current_score", flat=True).first()
    if top is None:
        return []
    width = _nice_width(max(top + 1, buckets) / buckets)
    edges = list(range(0, top + 1, width))  # scores are clamped to [0, max_score]
    aggregates = {
        f"b{index}": Count("pk", filter=Q(current_score__gte=start, current_score__lt=start + width))
        for index, start in enumerate(edges)
    }
    row = Lead.objects.aggregate(**aggregates)
    return [
        {"label": f"{start}–{start + width - 1}", "low": start, "high": start + width - 1, "count": row[f"b{index}"]}
        for index, start in enumerate(edges)
    ]


def lead_page_list(*, search: str = "", min_score=None, max_score=None, ordering: str = "-current_score"):
    """The Leads page's rows: only the columns it shows."""
    return lead_list(search=search, min_score=min_score, max_score=max_score, ordering=ordering).only(
        "id", "email", "first_name", "last_name", "company", "current_score", "max_score", "created_at", "updated_at"
    )


def lead_export_rows(*, search: str = "", min_score=None, max_score=None, ordering: str = "-current_score"):
    """Tuples for the CSV export of the current filter, streamed in chunks (``iterator``)."""
    return (
        lead_list(search=search, min_score=min_score, max_score=max_score, ordering=ordering)
        .values_list(*LEAD_EXPORT_COLUMNS)
        .iterator(chunk_size=2000)
    )


LEAD_EXPORT_COLUMNS = [
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "current_score",
    "max_score",
    "created_at",
    "updated_at",
]


def lead_count() -> int:
    return Lead.objects.count()
