"""The one place that talks to WebSockets: ``broadcast_*`` helpers, called after commit.

A batch of score changes is one channel-layer message per group (``score.changes``); consumers
unpack it into one ``score.changed`` frame per change. All sends of a batch share one call.

Scoring and imports never call this module: they notify ``score.changes`` / ``import.progress``
through config/transport.py after commit, and :class:`realtime.apps.RealtimeConfig` subscribes the
``on_*`` handlers below, in the process that committed (no extra task message per batch).

From a synchronous process (a Celery worker, gunicorn) with the Redis channel layer, that call runs
on one long-lived event loop in a background thread (:func:`_send`). ``async_to_sync`` would start
a new loop per call, and channels-redis keeps its connection pool per loop, so every broadcast
paid for a new Redis connection: 5-7 ms per call (shared/MEASURED.md), the largest fixed cost of a
small scoring batch. The in-memory layer (embedded server) lives on the server's own loop: a
worker thread schedules the sends there and does not wait for them. Waiting would hang the process
on SIGTERM, which stops that loop while the thread waits on it forever (a broadcast lost with the
stopping server is harmless: the pages reload the rows).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from config import transport
from leads.selectors import leaderboard_top

from . import groups


def leaderboard_payload(limit: int | None = None) -> dict:
    leaders = leaderboard_top(limit=limit or settings.TARGETGRID_LEADERBOARD_SIZE)
    return {
        "type": "leaderboard.updated",
        "leaders": [
            {
                "rank": rank,
                "lead_id": str(lead.id),
                "email": lead.email,
                "name": lead.name,
                "company": lead.company,
                "current_score": lead.current_score,
                "max_score": lead.max_score,
                "fit_score": lead.fit_score,
                "grade": lead.grade,
                "stage": lead.stage,
            }
            for rank, lead in enumerate(leaders, start=1)
        ],
    }


def broadcast_score_changes(changes: list[dict]) -> None:
    if not changes:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    watched = groups.leads_watched({change["lead_id"] for change in changes})
    per_lead: dict[str, list[dict]] = defaultdict(list)
    for change in changes:
        if change["lead_id"] in watched:
            per_lead[change["lead_id"]].append(change)
    leaderboard = leaderboard_payload() if _leaderboard_due() else None

    async def send_all() -> None:
        await layer.group_send(groups.EVENTS, {"type": "score.changes", "changes": changes})
        for lead_id, lead_changes in per_lead.items():
            await layer.group_send(groups.lead_group(lead_id), {"type": "score.changes", "changes": lead_changes})
        if leaderboard is not None:
            await layer.group_send(groups.LEADERBOARD, leaderboard)

    _send(layer, send_all)


class _BackgroundLoop:
    """One event loop per process in a daemon thread; coroutines are submitted from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # After a fork (Celery prefork children) the parent's thread does not exist here.
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="targetgrid-broadcast", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coroutine_function, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coroutine_function(), self.loop())
        return future.result(timeout=timeout)


_background = _BackgroundLoop()
SEND_TIMEOUT_SECONDS = 30


def _send(layer, coroutine_function) -> None:
    """Run ``coroutine_function()`` (channel-layer sends) from synchronous code."""
    in_memory = type(layer).__module__.startswith("channels.layers")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None

    async def run() -> None:
        await coroutine_function()

    server_loop = transport.server_loop() if in_memory else None
    if server_loop is not None:
        # The in-memory layer lives on the web server's loop: schedule the sends there, never wait.
        if running is server_loop:
            server_loop.create_task(run())
            return
        try:
            server_loop.call_soon_threadsafe(lambda: server_loop.create_task(run()))
        except RuntimeError:  # the loop is closed: the server is stopping
            pass
        return
    if in_memory or running is not None:
        async_to_sync(run)()
    else:
        _background.run(run, timeout=SEND_TIMEOUT_SECONDS)


# Leaderboard coalescing: at most one leaderboard.updated per TARGETGRID_LEADERBOARD_INTERVAL
# seconds, and always a trailing one after the last change (so the final board is never stale).
_SENT_KEY = "realtime:leaderboard:sent"
_TRAILING_KEY = "realtime:leaderboard:trailing"


def _leaderboard_due() -> bool:
    """True if the board should go out with this batch; otherwise a trailing send is scheduled."""
    interval = settings.TARGETGRID_LEADERBOARD_INTERVAL
    if interval <= 0 or not transport.can_defer():  # nothing could send a trailing board later
        return True
    if cache.add(_SENT_KEY, 1, interval):
        return True
    if cache.add(_TRAILING_KEY, 1, interval * 3) and not _schedule_trailing(interval):
        cache.delete(_TRAILING_KEY)
        return True
    return False


def _schedule_trailing(delay: int) -> bool:
    """False when nothing can send it later (inline, broker down): the caller sends the board now."""
    return transport.publish("realtime.leaderboard_flush", countdown=delay)


def broadcast_leaderboard() -> None:
    """Send the current leaderboard now (the trailing send of the coalescing above)."""
    cache.delete(_TRAILING_KEY)
    cache.set(_SENT_KEY, 1, max(1, settings.TARGETGRID_LEADERBOARD_INTERVAL))
    layer = get_channel_layer()
    if layer is not None:
        payload = leaderboard_payload()
        _send(layer, lambda: layer.group_send(groups.LEADERBOARD, payload))


def broadcast_import_progress(import_id, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        message = {"type": "import.progress", **payload}
        _send(layer, lambda: layer.group_send(groups.import_group(import_id), message))


# --- Subscribed to the transport's after-commit notifications (realtime.apps) ------------------


def on_score_changes(changes: list[dict]) -> None:
    broadcast_score_changes(changes)


def on_import_progress(payload: dict) -> None:
    broadcast_import_progress(payload["import_id"], payload)


def broadcast_rescore_progress(payload: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        message = {"type": "rescore.progress", **payload}
        _send(layer, lambda: layer.group_send(groups.RESCORE, message))


def on_rescore_progress(payload: dict) -> None:
    broadcast_rescore_progress(payload)


# An alerts / deliveries frame carries at most this many items and the ``total``: a rescore that moves
# 10,000 leads in one transaction is one small message per page, not megabytes per open socket (the
# toast says "+N more", the Alerts page re-reads its table when ``total`` exceeds what came).
FRAME_ITEMS_LIMIT = 50


def _endpoint_of(data: dict) -> dict | None:
    endpoint = data.get("endpoint")
    if isinstance(endpoint, dict):
        return {key: endpoint.get(key) for key in ("id", "name") if endpoint.get(key) is not None} or None
    if data.get("endpoint_id") is not None or endpoint:
        return {"id": data.get("endpoint_id"), "name": data.get("endpoint_name") or (endpoint and str(endpoint)) or ""}
    return None


def alert_item(payload: dict) -> dict:
    """What a page needs of one alert (the webhook body, docs/stages-and-alerts.md), without Nones."""
    data = payload.get("data") or {}
    lead = data.get("lead") or {}
    item = {
        "kind": payload.get("type"),
        "uid": payload.get("id"),
        "timestamp": payload.get("timestamp"),
        "lead_id": lead.get("id"),
        "email": lead.get("email"),
        "name": lead.get("name"),
        "stage": lead.get("stage"),
        "score": lead.get("score"),
        "from_stage": data.get("from_stage"),
        "to_stage": data.get("to_stage"),
        "direction": data.get("direction"),
        "threshold": data.get("threshold"),
        "previous_score": data.get("previous_score"),
        "cause": data.get("cause"),
        "endpoint": _endpoint_of(data),
    }
    return {key: value for key, value in item.items() if value is not None}


def broadcast_alerts(payloads: list[dict]) -> None:
    """Toasts: the alerts of one transaction to every open page -- one ``alerts.created`` message to
    the group ``alerts`` per call, whatever the number of alerts (at most FRAME_ITEMS_LIMIT items,
    plus ``total``). Called after commit by realtime.alerts.on_alerts_created."""
    if not payloads:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "alerts.created",
        "total": len(payloads),
        "alerts": [alert_item(payload) for payload in payloads[:FRAME_ITEMS_LIMIT]],
    }
    _send(layer, lambda: layer.group_send(groups.ALERTS, message))


def broadcast_delivery_updates(deliveries: list[dict]) -> None:
    """Webhook deliveries created or changed (status, attempts) -> the Alerts page, one
    ``deliveries.updated`` message per call (group ``deliveries``). Each item: ``id``, ``endpoint_id``,
    ``endpoint`` (name), ``kind``, ``status``, ``attempts``, ``last_status_code``, ``alert_uid``
    (docs/stages-and-alerts.md, Pages). The page re-reads its deliveries table on it."""
    if not deliveries:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    keys = ("id", "endpoint_id", "endpoint", "kind", "status", "attempts", "last_status_code", "alert_uid")
    message = {
        "type": "deliveries.updated",
        "total": len(deliveries),
        "deliveries": [
            {key: (str(item[key]) if key in ("id", "alert_uid") else item[key]) for key in keys if item.get(key) is not None}
            for item in deliveries[:FRAME_ITEMS_LIMIT]
        ],
    }
    _send(layer, lambda: layer.group_send(groups.DELIVERIES, message))


def on_deliveries_updated(deliveries: list[dict]) -> None:
    broadcast_delivery_updates(deliveries)
