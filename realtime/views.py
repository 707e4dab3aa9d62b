"""The Alerts page: recent alerts (domain events) and webhook deliveries, filtered, paged without a
COUNT over the tables (one row more than a page says whether older ones exist). Live: the page's
socket (/ws/alerts/) gets ``alerts.created`` and ``deliveries.updated``; static/js/pages.js re-reads
the two tables (data-region) and flashes the new rows."""

from __future__ import annotations

from django.shortcuts import render

from config.pages import staff_required

from .forms import AlertFilterForm
from .selectors import alert_list, delivery_list, stage_names

ALERTS_PER_PAGE = 50
DELIVERIES_PER_PAGE = 25
MAX_PAGE = 200


def _page_number(value) -> int:
    try:
        return max(1, min(MAX_PAGE, int(value or 1)))
    except (TypeError, ValueError):
        return 1


def _window(queryset, number: int, size: int) -> tuple[list, bool]:
    offset = (number - 1) * size
    rows = list(queryset[offset : offset + size + 1])
    return rows[:size], len(rows) > size and number < MAX_PAGE


def alert_row(alert) -> dict:
    """What a row shows of an alert; the details live in its payload (the webhook body)."""
    data = (alert.payload or {}).get("data") or {}
    lead = data.get("lead") or {}
    endpoint = data.get("endpoint")
    return {
        "alert": alert,
        "lead": alert.lead,
        "from_stage": data.get("from_stage"),
        "to_stage": data.get("to_stage"),
        "direction": data.get("direction") or "",
        "threshold": data.get("threshold"),
        "score": lead.get("score"),
        "previous_score": data.get("previous_score"),
        "cause": data.get("cause") or "",
        "event_id": data.get("event_id") or "",
        "endpoint": endpoint.get("name") if isinstance(endpoint, dict) else (endpoint or data.get("endpoint_name") or ""),
    }


@staff_required
def alerts_page(request):
    form = AlertFilterForm(request.GET, stages=stage_names())
    filters = form.filters()
    number = _page_number(request.GET.get("page"))
    alerts, has_older = _window(alert_list(kind=filters["kind"], stage=filters["stage"]), number, ALERTS_PER_PAGE)
    delivery_number = _page_number(request.GET.get("dpage"))
    deliveries, deliveries_older = _window(delivery_list(status=filters["status"]), delivery_number, DELIVERIES_PER_PAGE)
    context = {
        "nav": "alerts",
        "form": form,
        "alerts": [alert_row(alert) for alert in alerts],
        "page_number": number,
        "has_older": has_older,
        "filtered": bool(filters["kind"] or filters["stage"]),
        "deliveries": deliveries,
        "delivery_page": delivery_number,
        "deliveries_older": deliveries_older,
        "deliveries_filtered": bool(filters["status"]),
    }
    return render(request, "realtime/alerts.html", context)
