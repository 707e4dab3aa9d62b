"""Public health endpoints (JSON; 503 when a check is down):

* ``GET /health`` — liveness of the dependencies: database, queue/broker, channel layer, workers.
* ``GET /health/ready`` — the same, plus scoring itself: 503 when the oldest pending event is older
  than ``TARGETGRID_READY_MAX_PENDING_SECONDS`` (scoring stalled: workers up but not draining, a
  partition stuck, the beat sweep not running). For load balancers and alerting; a backlog that
  is being worked off within the threshold is still ready.
"""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from events.models import Event, EventStatus
from scoring.selectors import pending_oldest_received_at

WORKER_PING_CACHE_SECONDS = 5


def _timed(check):
    started = time.perf_counter()
    try:
        result = check() or {}
        result.setdefault("status", "ok")
    except Exception as exc:  # each check reports its own failure; /health itself never 5xxs
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pending = Event.objects.filter(status=EventStatus.PENDING).count()
    return {"engine": connection.vendor, "pending_events": pending}


def _queue():
    mode = settings.TARGETGRID_QUEUE
    if mode == "celery":
        from config.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"backend": "celery", "broker": "redis"}
    return {"backend": mode}


def _channel_layer():
    layer = get_channel_layer()
    if layer is None:
        return {"status": "down", "error": "no channel layer configured"}
    name = type(layer).__name__
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    else:
        async_to_sync(layer.send)("health.check", {"type": "health.check"})
        async_to_sync(layer.receive)("health.check")
    return {"backend": name}


def _workers():
    mode = settings.TARGETGRID_QUEUE
    if mode == "embedded":
        from config.embedded import worker

        if not worker.running:
            return {"status": "down", "backend": "embedded", "error": "the embedded worker is not running here"}
        return {"backend": "embedded", "count": 1, "processed": worker.processed}
    if mode == "inline":
        return {"backend": "inline"}
    replies = cache.get("health:workers")
    if replies is None:
        from config.celery import app

        replies = app.control.ping(timeout=1.0) or []
        cache.set("health:workers", replies, WORKER_PING_CACHE_SECONDS)
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return {"status": "down", "backend": "celery", "count": 0, "error": "no Celery worker answered a ping"}
    return {"backend": "celery", "count": len(names), "workers": names}


def _scoring():
    """Is scoring keeping up? The age of the oldest pending event (one index dive on
    ``event_status_idx``), and how many events failed (they wait for an operator's retry)."""
    oldest = pending_oldest_received_at()
    limit = settings.TARGETGRID_READY_MAX_PENDING_SECONDS
    age = 0.0 if oldest is None else max(0.0, (timezone.now() - oldest).total_seconds())
    result = {
        "oldest_pending_seconds": round(age, 1),
        "max_pending_seconds": limit,
        "failed_events": Event.objects.filter(status=EventStatus.FAILED).count(),
    }
    if age > limit:
        result["status"] = "down"
        result["error"] = f"the oldest pending event is {age:.0f} s old (limit {limit} s): scoring is stalled"
    return result


def _answer(checks: dict) -> JsonResponse:
    ok = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "down", "checks": checks}, status=200 if ok else 503)


def _dependencies() -> dict:
    return {
        "database": _timed(_database),
        "queue": _timed(_queue),
        "channel_layer": _timed(_channel_layer),
        "workers": _timed(_workers),
    }


@require_GET
def health(request):
    return _answer(_dependencies())


@require_GET
def ready(request):
    return _answer({**_dependencies(), "scoring": _timed(_scoring)})
