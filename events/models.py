import hashlib
import uuid

from django.db import models

from config.fields import BinaryCharField


class EventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class Event(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = BinaryCharField(max_length=255, unique=True, help_text="The client's idempotency key.")
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
    rule_version = models.PositiveIntegerField(null=True, blank=True, help_text="The rule-set version scored under.")
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=32, default="api")
    error = models.TextField(blank=True, default="")
    # The scoring partition of the lead (scoring.partitions.partition_of): one drain task at a time
    # per partition, so concurrent workers score disjoint sets of leads.
    partition = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["lead", "status", "timestamp", "event_id"], name="event_lead_fold_idx"),
            models.Index(fields=["timestamp"], name="event_timestamp_idx"),
            models.Index(fields=["status", "received_at"], name="event_status_idx"),
            models.Index(fields=["status", "partition", "received_at"], name="event_pending_part_idx"),
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


def webhook_secret_generate() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSource(models.Model):
    """A sender of ``POST /webhooks/events``: how it proves who it is and what it may send."""

    class Mode(models.TextChoices):
        SIGNED = "signed", "Signed (Standard Webhooks HMAC)"
        SHARED_SECRET = "shared_secret", "Static shared-secret header"

    name = models.CharField(max_length=100, unique=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.SIGNED)
    secret = models.CharField(
        max_length=200,
        default=webhook_secret_generate,
        help_text="whsec_<base64>. Signed mode: the HMAC key. Shared-secret mode: the header's exact value.",
    )
    previous_secret = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="During a rotation, deliveries signed with this secret are accepted too. Clear it when done.",
    )
    secret_header = models.CharField(
        max_length=100,
        default="X-Webhook-Secret",
        help_text="Shared-secret mode: the request header that carries the secret.",
    )
    enabled = models.BooleanField(default=True)
    allowed_event_types = models.JSONField(
        default=list, blank=True, help_text='Event types this source may send, e.g. ["FORM_SUBMIT"]; empty = all.'
    )
    source_tag = models.CharField(max_length=32, default="webhook", help_text="Stored as the events' source.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def masked_secret(self) -> str:
        return f"{self.secret[:10]}…{self.secret[-4:]}" if self.secret else ""


class SegmentSource(models.Model):
    """A Segment-compatible source: ``/v1/*`` requests carry its write key (HTTP Basic username).

    A separate model from WebhookSource: a write key is a bearer credential (stored hashed, shown
    once, like an API key) while a webhook secret is an HMAC key the server must keep readable.
    """

    name = models.CharField(max_length=100, unique=True)
    write_key_hash = models.CharField(max_length=64, unique=True, editable=False)
    write_key_prefix = models.CharField(max_length=12, editable=False)
    enabled = models.BooleanField(default=True)
    source_tag = models.CharField(max_length=32, default="segment", help_text="Stored as the events' source.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.write_key_prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()


class SegmentEventMapping(models.Model):
    """A Segment ``track`` event name -> a TargetGrid event type. Unmapped names are stored unscored."""

    event_name = BinaryCharField(max_length=200, unique=True, help_text='As sent, e.g. "Demo Requested".')
    event_type = models.CharField(max_length=64, help_text="UPPER_SNAKE event type with a scoring rule.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event_name"]

    def __str__(self) -> str:
        return f"{self.event_name} -> {self.event_type}"


class SegmentIdentity(models.Model):
    """A Segment ``userId`` or ``anonymousId`` and the lead it resolves to."""

    class Kind(models.TextChoices):
        USER = "user", "userId"
        ANONYMOUS = "anonymous", "anonymousId"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = BinaryCharField(max_length=255)
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="segment_identities")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="segment_identity_unique")]
        verbose_name_plural = "Segment identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.value} -> {self.lead_id}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ImportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON array"
    NDJSON = "ndjson", "NDJSON"


class ImportJob(models.Model):
    """One file import, parsed in chunks; ``resume_offset``/``resume_row`` are committed with each chunk."""

    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    format = models.CharField(max_length=8, choices=ImportFormat.choices)
    source = models.CharField(max_length=32, default="upload", help_text="Stored as the events' source.")
    original_name = models.CharField(max_length=255, blank=True, default="")
    file_path = models.CharField(max_length=1000)
    delete_file_when_done = models.BooleanField(default=True, help_text="False for files imported in place (CLI).")
    file_size = models.BigIntegerField(default=0)
    # Committed progress: the byte just after the last committed row, and the row counter there.
    resume_offset = models.BigIntegerField(default=0)
    resume_row = models.BigIntegerField(default=0)
    csv_header = models.JSONField(default=list, blank=True)
    total_estimate = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="", help_text="Why the job failed (file-level errors).")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "updated_at"], name="importjob_status_idx")]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.format}, {self.status})"

    @property
    def done(self) -> bool:
        return self.status in (ImportStatus.COMPLETED, ImportStatus.FAILED)


class ImportRowError(models.Model):
    """One problem with one row of an import: the error report (errors.csv)."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.BigIntegerField(help_text="CSV/NDJSON: line number in the file; JSON: position in the array.")
    event_id = models.CharField(max_length=255, blank=True, default="")
    field = models.CharField(max_length=100)
    message = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["job", "row"], name="importrowerror_job_idx")]

    def __str__(self) -> str:
        return f"row {self.row} {self.field}: {self.message}"
