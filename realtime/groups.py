"""Channels group names (one place), and which lead groups anybody is watching.

A ``lead.<uuid>`` group is joined only by a ``/ws/leads/<uuid>/`` page, yet a batch of 1,000 score
changes touches ~1,000 leads: with channels-redis every ``group_send`` to an empty group still costs
two Redis round trips (~80 ms of CPU per 1,000-change batch, measured in bench/). A lead socket
marks its lead as watched in the cache (a key with a TTL, refreshed while it is open), and the
broadcast sends only to watched lead groups. A mark outlives its socket by at most the TTL: a
few spare sends, never a missed one.
"""

from django.core.cache import cache

LEAD_WATCH_SECONDS = 300
LEAD_WATCH_REFRESH_SECONDS = 60

EVENTS = "events"
LEADERBOARD = "leaderboard"
RESCORE = "rescore"  # progress of every rescore job (the admin's progress page)
ALERTS = "alerts"  # domain events (toasts): joined by every operator page's socket
DELIVERIES = "deliveries"  # webhook delivery status changes: joined by the Alerts page only


def lead_group(lead_id) -> str:
    return f"lead.{lead_id}"


def import_group(import_id) -> str:
    return f"import.{import_id}"


def _watch_key(lead_id) -> str:
    return f"realtime:watched-lead:{lead_id}"


async def lead_watch(lead_id) -> None:
    await cache.aset(_watch_key(lead_id), 1, LEAD_WATCH_SECONDS)


def leads_watched(lead_ids) -> set[str]:
    """The subset of ``lead_ids`` (strings) with an open lead socket somewhere; one cache round trip."""
    keys = {_watch_key(lead_id): lead_id for lead_id in lead_ids}
    return {keys[key] for key in cache.get_many(list(keys))} if keys else set()
