"""Template helpers for the operator pages."""

from __future__ import annotations

from datetime import datetime, timezone

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def isoz(value: datetime | None) -> str:
    """An aware datetime as ISO 8601 in UTC with a Z (for <time datetime> and JavaScript)."""
    if not value:
        return ""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@register.filter
def utc(value: datetime | None) -> str:
    """The server-side text of a time (shown until live.js localises it, and as its tooltip)."""
    if not value:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.simple_tag
def stage_for(score: int) -> str:
    """The highest stage (TARGETGRID_STAGES) a score has reached, or ''."""
    reached = ""
    for name, threshold in settings.TARGETGRID_STAGES:
        if score >= threshold:
            reached = name
    return reached


@register.filter
def percent_of(value: int, total: int) -> int:
    try:
        return max(0, min(100, round(100 * value / total))) if total else 0
    except (TypeError, ValueError):
        return 0


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (None/'' removes one); for sort and
    pagination links that keep the filters."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def stages_json() -> str:
    """TARGETGRID_STAGES as JSON for a data- attribute (pages.js labels live scores with it)."""
    import json

    return json.dumps([[name, threshold] for name, threshold in settings.TARGETGRID_STAGES])
