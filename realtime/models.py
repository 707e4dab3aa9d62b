"""What leaves TargetGrid when something happens to a lead: outbound webhook endpoints and their
deliveries (one row per message, one per attempt), and e-mail alert recipients.

The rows are the source of truth, as the event row is for ingest: a delivery is pending until an
attempt succeeds or it gives up; the queue message that sends it is only a wake-up
(realtime/outbound.py, docs/stages-and-alerts.md)."""

from __future__ import annotations

import uuid

from django.db import models


class EndpointStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused (too many consecutive failures)"
    DISABLED = "disabled", "Disabled (the receiver answered 410 Gone, or an operator)"


class WebhookEndpoint(models.Model):
    """An admin-managed receiver of signed domain events (Standard Webhooks)."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    # Standard Webhooks secret (whsec_<base64>); during a rotation the previous secret also signs
    # until previous_secret_expires_at, so receivers can switch without losing a message.
    secret = models.CharField(max_length=200)
    previous_secret = models.CharField(max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    event_kinds = models.JSONField(
        default=list, blank=True,
        help_text='Kinds wanted, e.g. ["lead.stage_changed"] (empty: lead.stage_changed and lead.score_crossed).',
    )
    stages = models.JSONField(
        default=list, blank=True,
        help_text='Only changes into (or out of) these stages, e.g. ["MQL", "SQL"] (empty: every stage).',
    )
    status = models.CharField(max_length=8, choices=EndpointStatus.choices, default=EndpointStatus.ACTIVE)
    status_reason = models.CharField(max_length=500, blank=True, default="")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed (gave up)"
    CANCELLED = "cancelled", "Cancelled (endpoint disabled)"


class WebhookDelivery(models.Model):
    """One message to one endpoint. ``msg_id`` is the stable ``webhook-id`` of every attempt, so a
    receiver dedupes on it (delivery is at least once). ``body`` is frozen at fan-out: every
    attempt sends, and signs, the same bytes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(
        "scoring.AlertEvent", on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries",
        help_text="Empty for a test event.",
    )
    msg_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=32)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A sender claims the row until then (a SIGKILLed sender's claim runs out; the row is sent again
    # with the same msg_id).
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "alert"], name="delivery_endpoint_alert_uniq"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["endpoint", "status", "next_attempt_at"], name="delivery_endpoint_idx"),
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.endpoint_id} ({self.status})"


class AttemptOutcome(models.TextChoices):
    SUCCESS = "success", "2xx"
    HTTP_ERROR = "http_error", "Error status"
    TIMEOUT = "timeout", "Timed out"
    CONNECTION = "connection", "Connection failed"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=1000, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    retry_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no further attempt.")
    started_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_delivery_idx"),
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.outcome} {self.status_code or ''}"


class AlertRecipient(models.Model):
    """An e-mail address that receives alert digests (Django's mail framework, SMTP from the
    environment). Alerts are gathered: at most one e-mail per recipient per digest window."""

    email = models.EmailField(max_length=254, unique=True)
    enabled = models.BooleanField(default=True)
    event_kinds = models.JSONField(
        default=list, blank=True,
        help_text='Kinds wanted (empty: lead.stage_changed, lead.score_crossed and endpoint.paused).',
    )
    stages = models.JSONField(default=list, blank=True, help_text="Only these stages (empty: every stage).")
    only_up = models.BooleanField(default=True, help_text="Stage changes upwards only (a lead getting hotter).")
    # The id of the last AlertEvent considered for this recipient (the digest's cursor).
    cursor = models.BigIntegerField(default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email
