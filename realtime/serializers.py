from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from scoring.models import AlertKind

from .models import DeliveryStatus


class BoundedDateTimeField(serializers.DateTimeField):
    """A datetime whose conversion to the server's zone cannot overflow (year 1 with an offset)."""

    def to_internal_value(self, value):
        try:
            return super().to_internal_value(value)
        except (OverflowError, ValueError):
            raise serializers.ValidationError(_("a date and time between years 2 and 9998, e.g. 2026-11-29T21:00:00Z"))


class PageQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(required=False, min_value=1, max_value=10**9)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


class AlertListQuerySerializer(PageQuerySerializer):
    kind = serializers.ChoiceField(required=False, allow_blank=True, default="", choices=AlertKind.values)
    lead = serializers.UUIDField(required=False, allow_null=True, default=None)
    stage = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    since = BoundedDateTimeField(required=False, allow_null=True, default=None)


class DeliveryListQuerySerializer(PageQuerySerializer):
    status = serializers.ChoiceField(required=False, allow_blank=True, default="", choices=DeliveryStatus.values)
    endpoint = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1)
    kind = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)


def _data(alert) -> dict:
    return (alert.payload or {}).get("data") or {}


class AlertOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="uid")
    kind = serializers.CharField()
    created_at = serializers.DateTimeField()
    stage = serializers.CharField()
    lead = serializers.SerializerMethodField()
    from_stage = serializers.SerializerMethodField()
    to_stage = serializers.SerializerMethodField()
    direction = serializers.SerializerMethodField()
    threshold = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()
    previous_score = serializers.SerializerMethodField()
    cause = serializers.SerializerMethodField()
    event_id = serializers.SerializerMethodField()
    dispatched = serializers.BooleanField()
    payload = serializers.JSONField(help_text="The webhook body (docs/stages-and-alerts.md).")

    def get_lead(self, alert):
        if alert.lead_id is None:
            return None
        return {"id": str(alert.lead.id), "email": alert.lead.email, "name": alert.lead.name}

    def get_from_stage(self, alert):
        return _data(alert).get("from_stage")

    def get_to_stage(self, alert):
        return _data(alert).get("to_stage")

    def get_direction(self, alert):
        return _data(alert).get("direction")

    def get_threshold(self, alert):
        return _data(alert).get("threshold")

    def get_score(self, alert):
        return (_data(alert).get("lead") or {}).get("score")

    def get_previous_score(self, alert):
        return _data(alert).get("previous_score")

    def get_cause(self, alert):
        return _data(alert).get("cause")

    def get_event_id(self, alert):
        return _data(alert).get("event_id")


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    msg_id = serializers.CharField(help_text="The webhook-id header of every attempt.")
    endpoint = serializers.SerializerMethodField()
    alert = serializers.SerializerMethodField()
    kind = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)

    def get_endpoint(self, delivery):
        endpoint = delivery.endpoint
        return {"id": endpoint.id, "name": endpoint.name, "url": endpoint.url, "status": endpoint.status}

    def get_alert(self, delivery):
        return str(delivery.alert.uid) if delivery.alert_id is not None else None
