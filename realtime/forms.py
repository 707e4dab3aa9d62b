from django import forms

from scoring.models import AlertKind

from .models import DeliveryStatus


class AlertFilterForm(forms.Form):
    """The Alerts page's filters: alert kind and stage, delivery status. A bad value is ignored
    (the page shows every row for that filter and the field's error)."""

    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *AlertKind.choices])
    stage = forms.ChoiceField(label="Stage", required=False)
    status = forms.ChoiceField(
        label="Delivery status", required=False, choices=[("", "Any status"), *DeliveryStatus.choices]
    )

    def __init__(self, *args, stages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [("", "Any stage"), *((name, name) for name in stages)]

    def filters(self) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {"kind": data.get("kind") or "", "stage": data.get("stage") or "", "status": data.get("status") or ""}
