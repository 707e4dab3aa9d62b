"""Reads for lead APIs and pages."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from scoring.rulesets import current_version_number, ruleset_of
from scoring.selectors import lead_score_breakdown, stage_list

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
    "fit_score",
    "-fit_score",
    "grade",
    "-grade",
    "stage_entered_at",
    "-stage_entered_at",
}
# The columns LeadOutputSerializer shows (lists read only these).
LEAD_OUTPUT_COLUMNS = (
    "id", "email", "first_name", "last_name", "company", "phone", "job_title", "current_score", "fit_score",
    "grade", "max_score", "score_as_of", "rule_version", "last_processed_event_time", "created_at", "updated_at",
    "stage", "stage_entered_at",
)

GRADE_LETTERS = ("A", "B", "C", "D")
GRADES = tuple(letter + digit for letter in GRADE_LETTERS for digit in "1234")


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
    *,
    search: str = "",
    min_score: int | None = None,
    max_score: int | None = None,
    grade: str = "",
    min_fit: int | None = None,
    max_fit: int | None = None,
    stages: list[str] | tuple[str, ...] = (),
    ordering: str = "-current_score",
) -> QuerySet[Lead]:
    """Leads matching the filters. ``grade``: an exact grade (``"B2"``), a fit letter (``"B"``: B1-B4)
    or an engagement digit (``"1"``: A1-D1); anything else is ignored. ``min_fit``/``max_fit`` bound
    the fit score. ``stages``: leads in any of these stages (exact names, ``lead_stage_idx``; callers
    check them against the stage list, ``stage_names_resolve``)."""
    leads = Lead.objects.all()
    if stages:
        leads = leads.filter(stage__in=sorted(set(stages)))
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
    grade = (grade or "").strip().upper()
    if grade in GRADES:
        leads = leads.filter(grade=grade)
    elif grade in GRADE_LETTERS:
        leads = leads.filter(grade__in=[grade + digit for digit in "1234"])  # an IN on lead_grade_idx
    elif grade in ("1", "2", "3", "4"):
        leads = leads.filter(grade__in=[letter + grade for letter in GRADE_LETTERS])
    if min_fit is not None:
        leads = leads.filter(fit_score__gte=min_fit)
    if max_fit is not None:
        leads = leads.filter(fit_score__lte=max_fit)
    if ordering not in LEAD_ORDERINGS:
        ordering = "-current_score"
    return leads.order_by(ordering, "id")


def lead_get(*, lead_id) -> Lead | None:
    return Lead.objects.filter(pk=lead_id).first()


def leaderboard_top(*, limit: int = 10) -> list[Lead]:
    return list(Lead.objects.order_by("-current_score", "id").only(*LEAD_OUTPUT_COLUMNS)[:limit])


def lead_kpis() -> dict:
    """Lead count, average score and the count per stored stage (the operators' stages, coldest
    first; leads in no stage or a stage that no longer exists last): one GROUP BY on
    ``lead_stage_idx``, plus the stage list."""
    rows = {stage: (count, total) for stage, count, total in
            Lead.objects.order_by().values("stage").annotate(n=Count("pk"), s=Sum("current_score"))
            .values_list("stage", "n", "s")}
    count = sum(n for n, _ in rows.values())
    score_sum = sum(total or 0 for _, total in rows.values())
    stages = [
        {"name": stage.name, "threshold": stage.min_score, "min_score": stage.min_score, "min_fit": stage.min_fit,
         "color": stage.color, "count": rows.pop(stage.name, (0, 0))[0]}
        for stage in stage_list()
    ]
    other = sum(n for n, _ in rows.values())
    return {
        "total": count,
        "average": round(score_sum / count, 1) if count else 0,
        "stages": stages,
        "unstaged": other,  # no stage yet, or a stage removed and not restaged yet
    }


def stage_names_resolve(names) -> tuple[list[str], list[str]]:
    """``(known, unknown)``: the requested stage names that are current stages (compared exactly,
    in Python: a case- or accent-insensitive database collation must not widen the filter)."""
    current = set(stage_list().values_list("name", flat=True))
    known, unknown = [], []
    for name in names:
        (known if name in current else unknown).append(name)
    return known, unknown


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


def lead_page_list(**filters):
    """The Leads page's rows (``lead_list`` filters): only the columns it shows."""
    return lead_list(**filters).only(
        "id", "email", "first_name", "last_name", "company", "current_score", "max_score", "fit_score", "grade",
        "created_at", "updated_at", "stage", "stage_entered_at",
    )


def lead_export_rows(**filters):
    """Tuples for the CSV export of the current filter (``lead_list`` filters), streamed in chunks
    (``iterator``)."""
    return lead_list(**filters).values_list(*LEAD_EXPORT_COLUMNS).iterator(chunk_size=2000)


LEAD_EXPORT_COLUMNS = [
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "phone",
    "current_score",
    "fit_score",
    "grade",
    "max_score",
    "stage",
    "stage_entered_at",
    "created_at",
    "updated_at",
]


def _grade_parts(grade: str, grades) -> dict:
    """What the two halves of a grade mean under the version's thresholds (for the lead page)."""
    letter, digit = (grade + "  ")[:2]
    fit_floor = {"A": grades.fit_a, "B": grades.fit_b, "C": grades.fit_c}
    score_floor = {"1": grades.score_1, "2": grades.score_2, "3": grades.score_3}
    return {
        "letter": letter,
        "digit": digit,
        "fit_rule": f"fit ≥ {fit_floor[letter]}" if letter in fit_floor else f"fit < {grades.fit_c}",
        "score_rule": f"score ≥ {score_floor[digit]}" if digit in score_floor else f"score < {grades.score_3}",
    }


def lead_score_explanation(*, lead: Lead) -> dict:
    """The lead page's "Why this score": ``scoring.selectors.lead_score_breakdown`` (the lead's
    events re-evaluated under its version at its ``score_as_of``) plus what the page says around
    it: the sum of the rule rows, the fit rules' sum and clamp, what the grade means, and whether
    the lead is due for a rescore (a newer version is published, or the breakdown does not match
    the stored score yet)."""
    breakdown = lead_score_breakdown(lead=lead)
    current = current_version_number()
    fit_sum = sum(rule["points"] for rule in breakdown["fit_rules"])
    rules_sum = sum(rule["points"] for rule in breakdown["rules"])
    return {
        **breakdown,
        "rules_sum": rules_sum,
        "adjustments_sum": breakdown["clamp_adjustment"] + breakdown["rounding_adjustment"],
        "decayed_total": sum(rule["decayed"] for rule in breakdown["rules"]),
        "fit_sum": fit_sum,
        "fit_clamp": lead.fit_score - fit_sum,
        "grade_parts": _grade_parts(lead.grade, ruleset_of(lead.rule_version).grades),
        "current_version": current,
        "outdated": 0 < lead.rule_version < current,
        "rescoring": not breakdown["consistent"] or 0 < lead.rule_version < current,
        "decay_refresh_minutes": round(settings.TARGETGRID_DECAY_REFRESH_SECONDS / 60),
    }


def lead_count() -> int:
    return Lead.objects.count()
