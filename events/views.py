"""The Events page: latest events across leads, filtered by type, status and received time."""

from __future__ import annotations

from django.shortcuts import render
from django.utils import timezone

from config.pages import optional_template, staff_required
from scoring.selectors import known_event_types

from .forms import EventFilterForm
from .selectors import event_list

EVENTS_PER_PAGE = 50
MAX_PAGE = 200  # newest 10,000 events; older ones are a filter away
# The upload form ships with the ingest work (templates/events/_upload.html + static/js/upload.js);
# the page includes it when that template exists and works without it.
UPLOAD_TEMPLATE = "events/_upload.html"


@staff_required
def event_list_page(request):
    form = EventFilterForm(request.GET, event_types=known_event_types())
    filters = form.filters(now=timezone.now())
    try:
        number = max(1, min(MAX_PAGE, int(request.GET.get("page", 1))))
    except ValueError:
        number = 1
    # No COUNT over the whole table: fetch one row more than a page to know whether older ones exist.
    offset = (number - 1) * EVENTS_PER_PAGE
    rows = list(event_list(**filters)[offset : offset + EVENTS_PER_PAGE + 1])
    context = {
        "nav": "events",
        "form": form,
        "events": rows[:EVENTS_PER_PAGE],
        "page_number": number,
        "has_older": len(rows) > EVENTS_PER_PAGE and number < MAX_PAGE,
        "filtered": any(filters.values()),
        "upload_template": optional_template(UPLOAD_TEMPLATE) if request.user.has_perm("events.add_event") else None,
    }
    return render(request, "events/event_list.html", context)
