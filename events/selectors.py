"""Reads for event APIs and pages."""

import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from .models import Event, EventStatus


def events_for_lead(*, lead_id) -> QuerySet[Event]:
    return Event.objects.filter(lead_id=lead_id).order_by("-timestamp", "-event_id")


def event_by_reference(*, reference: str) -> Event | None:
    """The event with this id (the UUID the API shows) or, failing that, this client ``event_id``."""
    try:
        pk = uuid.UUID(reference)
    except ValueError:
        pk = None
    event = Event.objects.filter(pk=pk).first() if pk is not None else None
    return event or Event.objects.filter(event_id=reference).first()


def event_kpis(*, now: datetime) -> dict:
    """Events received today (since midnight in TIME_ZONE) and per minute over the last 5 minutes;
    both are range counts on ``event_received_idx``."""
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    today = Event.objects.filter(received_at__gte=midnight).count()
    last_5_min = Event.objects.filter(received_at__gte=now - timedelta(minutes=5)).count()
    return {"today": today, "per_minute": round(last_5_min / 5, 1), "since": midnight}


def events_per_hour(*, now: datetime, hours: int = 24) -> list[dict]:
    """Events received per hour over the last ``hours`` hours (the current one included), grouped by
    the database with TruncHour (SQLite, MariaDB/MySQL and PostgreSQL); missing hours count 0."""
    current = now.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=hours - 1)
    rows = (
        Event.objects.filter(received_at__gte=start)
        .annotate(hour=TruncHour("received_at", tzinfo=dt_timezone.utc))
        .values("hour")
        .annotate(count=Count("pk"))
        .order_by("hour")
    )
    counts = {row["hour"].astimezone(dt_timezone.utc): row["count"] for row in rows}
    return [
        {"hour": start + timedelta(hours=offset), "count": counts.get(start + timedelta(hours=offset), 0)}
        for offset in range(hours)
    ]


EVENT_RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def event_list(*, event_type: str = "", status: str = "", since: datetime | None = None) -> QuerySet[Event]:
    """Latest events first (``event_received_idx``), with the lead's e-mail for the Events page."""
    events = Event.objects.select_related("lead").only(
        "id",
        "event_id",
        "event_type",
        "timestamp",
        "received_at",
        "status",
        "points",
        "late",
        "source",
        "error",
        "lead__id",
        "lead__email",
    )
    if event_type:
        events = events.filter(event_type=event_type)
    if status:
        events = events.filter(status=status)
    if since is not None:
        events = events.filter(received_at__gte=since)
    return events.order_by("-received_at", "-id")


def lead_score_timeline(*, lead_id, limit: int = 1000) -> list[dict]:
    """The lead's score in event time: each processed event's ``score_after`` checkpoint at its
    timestamp (kept right by late-event re-folds and rescores), newest ``limit`` points, oldest first."""
    rows = (
        Event.objects.filter(lead_id=lead_id, status=EventStatus.PROCESSED)
        .order_by("-timestamp", "-event_id")
        .values_list("timestamp", "score_after")[:limit]
    )
    return [{"x": ts, "y": score or 0} for ts, score in reversed(list(rows))]
