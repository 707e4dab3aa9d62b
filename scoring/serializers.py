from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from .models import ScoreChange, ScoringRule, validate_event_type


class ScoringRuleSerializer(serializers.ModelSerializer):
    event_type = serializers.CharField(max_length=64)
    points = serializers.IntegerField(min_value=-100_000, max_value=100_000)

    class Meta:
        model = ScoringRule
        fields = ["id", "event_type", "points", "enabled", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_event_type(self, value: str) -> str:
        value = value.strip().upper()
        try:
            validate_event_type(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        others = ScoringRule.objects.filter(event_type=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"a rule for {value} already exists")
        return value


class ScoreChangeOutputSerializer(serializers.ModelSerializer):
    lead_id = serializers.UUIDField(read_only=True)
    event_id = serializers.SerializerMethodField()

    class Meta:
        model = ScoreChange
        fields = [
            "id",
            "lead_id",
            "event_id",
            "event_type",
            "previous_score",
            "new_score",
            "delta",
            "reason",
            "late",
            "timestamp",
            "created_at",
        ]

    def get_event_id(self, change: ScoreChange) -> str | None:
        return change.event.event_id if change.event_id else None
