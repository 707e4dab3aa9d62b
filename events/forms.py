from django import forms

from .models import EventStatus
from .selectors import EVENT_RANGES

RANGE_LABELS = {"15m": "Last 15 minutes", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"}


class EventFilterForm(forms.Form):
    type = forms.ChoiceField(label="Type", required=False)
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *EventStatus.choices]
    )
    range = forms.ChoiceField(
        label="Received",
        required=False,
        choices=[("", "Any time"), *((key, RANGE_LABELS[key]) for key in EVENT_RANGES)],
    )

    def __init__(self, *args, event_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "Any type"), *((t, t) for t in sorted(event_types))]

    def filters(self, *, now) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        window = EVENT_RANGES.get(data.get("range") or "")
        return {
            "event_type": data.get("type") or "",
            "status": data.get("status") or "",
            "since": now - window if window else None,
        }
