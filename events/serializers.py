from rest_framework import serializers

from .models import Event


class EventOutputSerializer(serializers.ModelSerializer):
    lead_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "event_id",
            "lead_id",
            "event_type",
            "timestamp",
            "received_at",
            "status",
            "processed",
            "processed_at",
            "points",
            "score_after",
            "late",
            "metadata",
            "source",
        ]
