"""Template helpers for the operator pages."""

from __future__ import annotations

from datetime import datetime, timezone

import json

from django import template

from scoring.selectors import stage_palette

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


def _palette(context) -> dict[str, str]:
    """Stage name -> colour, read once per render (the first badge asks; the rest reuse it), or
    the view's ``stage_palette`` when it has read it already."""
    if context.get("stage_palette") is not None:
        return context["stage_palette"]
    cache = context.render_context
    if "targetgrid_stage_palette" not in cache:
        cache["targetgrid_stage_palette"] = stage_palette()
    return cache["targetgrid_stage_palette"]


@register.simple_tag(takes_context=True)
def stage_color(context, name: str) -> str:
    """The colour of stage ``name`` (``grey`` for a stage that no longer exists)."""
    return _palette(context).get(name, "grey")


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


@register.simple_tag(takes_context=True)
def stages_json(context) -> str:
    """The stages as JSON ``[[name, colour], …]`` (coldest first) for a data- attribute: pages.js
    colours the stage badge of a live frame (``score.changed`` carries the lead's stage)."""
    return json.dumps([[name, color] for name, color in _palette(context).items()])
