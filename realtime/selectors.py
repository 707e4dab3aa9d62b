"""Reads for the Alerts page and the alerts / webhook-deliveries APIs (no writes)."""

from __future__ import annotations

from django.db.models import QuerySet

from scoring.models import AlertEvent, Stage

from .models import WebhookDelivery, WebhookEndpoint

ALERT_FIELDS = ("id", "uid", "kind", "stage", "payload", "dispatched", "created_at", "lead__id", "lead__email", "lead__first_name", "lead__last_name")
DELIVERY_FIELDS = (
    "id", "msg_id", "kind", "status", "attempts", "next_attempt_at", "last_status_code", "last_error", "created_at",
    "delivered_at", "endpoint__id", "endpoint__name", "endpoint__url", "endpoint__status", "alert__id", "alert__uid",
)


def stage_names() -> list[str]:
    """The current stages, coldest first (the filters' choices)."""
    return list(Stage.objects.order_by("position", "id").values_list("name", flat=True))


def stage_canonical(name: str) -> str:
    """A stage filter as typed -> the stage's own spelling: stage names compare without case (as the
    admin enforces), on every database alike (MariaDB's _ci collation would, SQLite would not). A
    name no current stage has is kept as typed (alerts keep the names of deleted stages)."""
    name = (name or "").strip()
    folded = name.casefold()
    return next((stage for stage in stage_names() if stage.casefold() == folded), name)


def alert_list(*, kind: str = "", lead_id=None, stage: str = "", since=None) -> QuerySet[AlertEvent]:
    """Alerts newest first (insertion order: the primary key), with their lead's id, e-mail and name.
    ``stage``: the stage the alert is about (entered, or the lead's stage at a score crossing)."""
    alerts = AlertEvent.objects.select_related("lead").only(*ALERT_FIELDS).order_by("-id")
    if kind:
        alerts = alerts.filter(kind=kind)
    if lead_id is not None:
        alerts = alerts.filter(lead_id=lead_id)
    if stage:
        alerts = alerts.filter(stage=stage_canonical(stage))
    if since is not None:
        alerts = alerts.filter(created_at__gte=since)
    return alerts


def delivery_list(*, status: str = "", endpoint_id=None, kind: str = "") -> QuerySet[WebhookDelivery]:
    """Webhook deliveries newest first, with their endpoint's name and their alert's uid."""
    deliveries = (
        WebhookDelivery.objects.select_related("endpoint", "alert").only(*DELIVERY_FIELDS).order_by("-created_at", "-id")
    )
    if status:
        deliveries = deliveries.filter(status=status)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if kind:
        deliveries = deliveries.filter(kind=kind)
    return deliveries


def endpoint_choices() -> list[tuple[int, str]]:
    return list(WebhookEndpoint.objects.order_by("name", "id").values_list("id", "name"))
