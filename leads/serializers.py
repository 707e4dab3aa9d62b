from rest_framework import serializers

from .models import Lead
from .selectors import LEAD_ORDERINGS


class LeadCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    company = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    max_score = serializers.IntegerField(min_value=0, max_value=1_000_000_000, required=False, default=1000)

    def validate_email(self, value: str) -> str:
        return value.strip().lower()


class LeadOutputSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "name",
            "company",
            "phone",
            "current_score",
            "max_score",
            "last_processed_event_time",
            "created_at",
            "updated_at",
        ]


class LeadListQuerySerializer(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    min_score = serializers.IntegerField(required=False, allow_null=True, default=None)
    max_score = serializers.IntegerField(required=False, allow_null=True, default=None)
    ordering = serializers.ChoiceField(
        required=False,
        default="-current_score",
        choices=sorted(LEAD_ORDERINGS),
    )

    def validate(self, attrs):
        low, high = attrs.get("min_score"), attrs.get("max_score")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"min_score": ["must not be greater than max_score"]})
        return attrs


class LeaderboardQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)
