import uuid

from django.core.validators import MinValueValidator
from django.db import models

from config.fields import BinaryCharField, BinaryEmailField


class Lead(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = BinaryEmailField(max_length=254, unique=True, help_text="Stored lower-cased.")
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    company = models.CharField(max_length=200, blank=True, default="")
    phone = models.CharField(max_length=50, blank=True, default="")
    current_score = models.IntegerField(default=0)
    max_score = models.IntegerField(default=1000, validators=[MinValueValidator(0)])
    # The (timestamp, event_id) of the newest processed event: the end of the lead's fold.
    last_processed_event_time = models.DateTimeField(null=True, blank=True)
    last_processed_event_id = BinaryCharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["-current_score", "id"], name="lead_score_idx"),
            models.Index(fields=["created_at"], name="lead_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_score__gte=0), name="lead_max_score_gte_0"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)
