import hashlib
import uuid

from django.db import models


class EventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class Event(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.CharField(max_length=255, unique=True, help_text="The client's idempotency key.")
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=64)
    timestamp = models.DateTimeField(help_text="When the event happened (event time).")
    received_at = models.DateTimeField(auto_now_add=True)
    processed = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=EventStatus.choices, default=EventStatus.PENDING)
    # Points the rule awarded when the event was first scored (frozen: a re-fold reuses them).
    points = models.IntegerField(null=True, blank=True)
    # The lead's score right after this event in the event-time fold (a re-fold checkpoint).
    score_after = models.IntegerField(null=True, blank=True)
    late = models.BooleanField(default=False, help_text="Arrived after a newer event of its lead was scored.")
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=32, default="api")
    error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["lead", "status", "timestamp", "event_id"], name="event_lead_fold_idx"),
            models.Index(fields=["timestamp"], name="event_timestamp_idx"),
            models.Index(fields=["status", "received_at"], name="event_status_idx"),
            models.Index(fields=["processed"], name="event_processed_idx"),
            models.Index(fields=["-received_at"], name="event_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class ApiKey(models.Model):
    """An API key: only its SHA-256 is stored; the key itself is shown once at creation."""

    PREFIX = "tg_"

    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise a key.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()
