import re

from django.core.exceptions import ValidationError
from django.db import models

from config.fields import BinaryCharField

EVENT_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def validate_event_type(value: str) -> None:
    if not EVENT_TYPE_RE.match(value or ""):
        raise ValidationError("Event types are UPPER_SNAKE_CASE (A-Z, 0-9, _), at most 64 characters.")


class ScoringRule(models.Model):
    event_type = BinaryCharField(max_length=64, unique=True, validators=[validate_event_type])
    points = models.IntegerField()
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type"]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.points:+d})"


class ScoreChange(models.Model):
    """Append-only audit log: one row per scored event (the seed's score_history), plus one row
    per lead whose score a rescore changed."""

    RESCORE = "RESCORE"

    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="score_changes")
    # The event that caused the change; empty for a rescore of the whole lead (event_type RESCORE).
    event = models.ForeignKey(
        "events.Event", on_delete=models.CASCADE, related_name="score_changes", null=True, blank=True
    )
    event_type = models.CharField(max_length=64)
    previous_score = models.IntegerField()
    new_score = models.IntegerField()
    delta = models.IntegerField()
    reason = models.CharField(max_length=500)
    late = models.BooleanField(default=False)
    timestamp = models.DateTimeField(help_text="Event time of the event that caused the change.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["lead", "id"], name="scorechange_lead_idx"),
            models.Index(fields=["timestamp"], name="scorechange_ts_idx"),
            models.Index(fields=["created_at"], name="scorechange_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.previous_score} -> {self.new_score} ({self.reason})"
