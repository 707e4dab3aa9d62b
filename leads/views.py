"""Operator pages: dashboard, leads (list, CSV export, add), lead detail, leaderboard.

Views translate: they read through selectors, write through services and render templates.
Live updates come from the WebSocket (static/js/pages.js); every page can also be re-fetched
whole, which is how the scripts refresh a region after a reconnect.
"""

from __future__ import annotations

import csv
from datetime import timezone as dt_timezone

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from config.pages import permission_required, staff_required
from events.selectors import event_kpis, events_for_lead, events_per_hour, lead_score_timeline
from scoring.selectors import score_changes_latest, score_history, stage_changes, stage_list, stage_palette

from .forms import LeadCreateForm, LeadFilterForm
from .models import Lead
from .selectors import (
    LEAD_EXPORT_COLUMNS,
    lead_export_rows,
    lead_kpis,
    lead_page_list,
    lead_score_explanation,
    leaderboard_top,
    score_distribution,
)
from .services import LeadAlreadyExists, lead_create

LEADS_PER_PAGE = 50
DETAIL_ROWS_PER_PAGE = 25
LEADERBOARD_SIZES = (10, 25, 50, 100)


def _iso(value) -> str:
    return value.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z") if value else ""


@staff_required
def dashboard(request):
    now = timezone.now()
    leads = lead_kpis()
    distribution = score_distribution()
    per_hour = events_per_hour(now=now)
    context = {
        "nav": "dashboard",
        "leads": leads,
        "events": event_kpis(now=now),
        "distribution": distribution,
        "per_hour": per_hour,
        "charts": {
            "distribution": {"labels": [b["label"] for b in distribution], "values": [b["count"] for b in distribution]},
            "per_hour": [{"x": _iso(row["hour"]), "y": row["count"]} for row in per_hour],
        },
        "events_last_24h": sum(row["count"] for row in per_hour),
        "feed": score_changes_latest(limit=20),
        "leaders": leaderboard_top(limit=settings.TARGETGRID_LEADERBOARD_SIZE),
        "leaderboard_size": settings.TARGETGRID_LEADERBOARD_SIZE,
    }
    return render(request, "leads/dashboard.html", context)


SORTABLE_COLUMNS = [
    ("email", "Lead"),
    ("company", "Company"),
    ("grade", "Grade"),
    ("current_score", "Score"),
    ("fit_score", "Fit"),
    ("created_at", "Created"),
]
# (the Stage column sorts by when the lead entered its stage: ?o=-stage_entered_at)
# Best first on the first click: highest score/fit, newest date, grade A1 before D4.
_DESCENDING_FIRST = {"current_score", "fit_score", "created_at"}


def _sort_headers(ordering: str) -> list[dict]:
    """Column headers with the link that sorts by them (toggling direction) and their aria-sort."""
    headers = []
    for field, label in SORTABLE_COLUMNS:
        active = ordering.lstrip("-") == field
        descending = ordering.startswith("-")
        if active:
            next_order = field if descending else f"-{field}"
            aria = "descending" if descending else "ascending"
        else:
            # Scores and dates read best newest/highest first; text A-Z.
            next_order = f"-{field}" if field in _DESCENDING_FIRST else field
            aria = "none"
        headers.append({"field": field, "label": label, "order": next_order, "aria_sort": aria})
    return headers


@staff_required
def lead_list_page(request):
    palette = stage_palette()  # the stage menu and the badges (one query)
    form = LeadFilterForm(request.GET, stages=palette)
    filters = form.filters()
    page = Paginator(lead_page_list(**filters), LEADS_PER_PAGE).get_page(request.GET.get("page"))
    filtered = form.is_filtered(filters)
    context = {
        "nav": "leads",
        "form": form,
        "page": page,
        "filtered": filtered,
        "headers": _sort_headers(filters["ordering"]),
        "ordering": filters["ordering"],
        "can_add": request.user.has_perm("leads.add_lead"),
        "export_query": request.GET.urlencode(),
        "stage_palette": palette,
    }
    if request.headers.get("HX-Request"):
        return render(request, "leads/_lead_table.html", context)
    return render(request, "leads/lead_list.html", context)


class _Echo:
    """A file-like object whose write returns the line (csv.writer into a streaming response)."""

    def write(self, value):
        return value


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """Spreadsheet formula injection: a text cell starting with = + - @ (or tab/CR) gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    if hasattr(value, "isoformat"):
        return _iso(value)
    return value


@staff_required
@permission_required("leads.view_lead")
def lead_export_csv(request):
    filters = LeadFilterForm(request.GET).filters()
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(LEAD_EXPORT_COLUMNS)
        for row in lead_export_rows(**filters):
            yield writer.writerow([csv_safe(value) for value in row])

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
    return response


@staff_required
@permission_required("leads.add_lead")
def lead_create_page(request):
    form = LeadCreateForm(request.POST or None)
    existing = None
    if request.method == "POST" and form.is_valid():
        try:
            lead = lead_create(**form.cleaned_data)
        except LeadAlreadyExists as exc:
            existing = exc.lead
            form.add_error("email", "A lead with this e-mail already exists.")
        else:
            messages.success(request, f"Lead {lead.email} added.")
            return redirect(reverse("lead-detail", args=[lead.id]))
    status = 400 if request.method == "POST" else 200
    return render(request, "leads/lead_form.html", {"nav": "leads", "form": form, "existing": existing}, status=status)


@staff_required
def lead_detail(request, lead_id):
    lead = get_object_or_404(Lead, pk=lead_id)
    events = Paginator(events_for_lead(lead_id=lead.id), DETAIL_ROWS_PER_PAGE).get_page(request.GET.get("events_page"))
    history = Paginator(score_history(lead_id=lead.id), DETAIL_ROWS_PER_PAGE).get_page(request.GET.get("history_page"))
    timeline = lead_score_timeline(lead_id=lead.id)
    changes = Paginator(stage_changes(lead_id=lead.id), DETAIL_ROWS_PER_PAGE).get_page(request.GET.get("stages_page"))
    context = {
        "nav": "leads",
        "lead": lead,
        "why": lead_score_explanation(lead=lead),
        "events": events,
        "history": history,
        "timeline": [{"x": _iso(point["x"]), "y": point["y"]} for point in timeline],
        "stages": list(stage_list()),
        "stage_changes": changes,
    }
    return render(request, "leads/lead_detail.html", context)


@staff_required
def leaderboard(request):
    try:
        size = int(request.GET.get("n", 25))
    except ValueError:
        size = 25
    if size not in LEADERBOARD_SIZES:
        size = 25
    context = {"nav": "leaderboard", "leaders": leaderboard_top(limit=size), "size": size, "sizes": LEADERBOARD_SIZES}
    return render(request, "leads/leaderboard.html", context)
