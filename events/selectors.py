"""Reads for event APIs and pages."""

from django.db.models import QuerySet

from .models import Event


def events_for_lead(*, lead_id) -> QuerySet[Event]:
    return Event.objects.filter(lead_id=lead_id).order_by("-timestamp", "-event_id")
