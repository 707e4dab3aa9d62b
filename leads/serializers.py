import re

from rest_framework import serializers

from events.validation import text_problem

from .models import Lead
from scoring.selectors import stage_list

from .selectors import LEAD_ORDERINGS, stage_names_resolve

GRADE_FILTER_RE = re.compile(r"^(?:[A-D][1-4]?|[1-4])$")


def storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


def _text(max_length: int):
    return serializers.CharField(
        max_length=max_length, required=False, allow_blank=True, default="", validators=[storable_text]
    )


class LeadCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    first_name = _text(100)
    last_name = _text(100)
    company = _text(200)
    phone = _text(50)
    job_title = _text(200)
    max_score = serializers.IntegerField(min_value=0, max_value=1_000_000_000, required=False, default=1000)

    def validate_email(self, value: str) -> str:
        return value.strip().lower()


class LeadOutputSerializer(serializers.ModelSerializer):
    """``current_score`` is the behaviour score (``behaviour_score`` says so by name), evaluated at
    ``score_as_of`` under rules ``rule_version``; ``fit_score`` and ``grade`` come from the profile."""

    name = serializers.CharField(read_only=True)
    behaviour_score = serializers.IntegerField(source="current_score", read_only=True)

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
            "job_title",
            "current_score",
            "behaviour_score",
            "fit_score",
            "grade",
            "max_score",
            "score_as_of",
            "rule_version",
            "last_processed_event_time",
            "stage",
            "stage_entered_at",
            "created_at",
            "updated_at",
        ]


class LeadListQuerySerializer(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    min_score = serializers.IntegerField(required=False, allow_null=True, default=None)
    max_score = serializers.IntegerField(required=False, allow_null=True, default=None)
    min_fit = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=100)
    max_fit = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=100)
    grade = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2,
        help_text="A grade (A1), a fit letter (A: any A grade) or an engagement digit (1: A1, B1, C1, D1).",
    )
    stage = serializers.ListField(
        child=serializers.CharField(max_length=64, allow_blank=False), required=False, default=list, max_length=20,
        help_text="Leads in any of these stages (exact names; repeat the parameter or separate by commas).",
    )
    ordering = serializers.ChoiceField(
        required=False,
        default="-current_score",
        choices=sorted(LEAD_ORDERINGS),
    )

    def to_internal_value(self, data):
        # ?stage=MQL&stage=SQL and ?stage=MQL,SQL: one list (QueryDict.getlist; a plain dict in tests)
        if hasattr(data, "getlist"):
            raw = data.getlist("stage")
            data = {key: data.get(key) for key in data}
            if raw:
                data["stage"] = [name.strip() for value in raw for name in value.split(",") if name.strip()]
                if not data["stage"]:
                    data["stage"] = [""]  # ?stage= : refused by the field (blank), not ignored
        return super().to_internal_value(data)

    def validate_stage(self, value: list[str]) -> list[str]:
        if not value:
            return []
        known, unknown = stage_names_resolve(value)
        if unknown:
            raise serializers.ValidationError(
                f"unknown stage {', '.join(repr(name) for name in unknown)} (stages: "
                f"{', '.join(stage_list().values_list('name', flat=True)) or 'none'})"
            )
        return known

    def validate_grade(self, value: str) -> str:
        value = value.strip().upper()
        if value and not GRADE_FILTER_RE.match(value):
            raise serializers.ValidationError("a grade (A1 … D4), a letter A–D or a digit 1–4")
        return value

    def validate(self, attrs):
        for low_name, high_name in (("min_score", "max_score"), ("min_fit", "max_fit")):
            low, high = attrs.get(low_name), attrs.get(high_name)
            if low is not None and high is not None and low > high:
                raise serializers.ValidationError({low_name: [f"must not be greater than {high_name}"]})
        return attrs


class LeaderboardQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)


class StageChangeOutputSerializer(serializers.Serializer):
    """One row of a lead's stage-change audit (scoring.StageChange)."""

    id = serializers.IntegerField()
    from_stage = serializers.CharField()
    to_stage = serializers.CharField()
    direction = serializers.CharField()
    score = serializers.IntegerField()
    fit_score = serializers.IntegerField()
    cause = serializers.CharField()
    event_id = serializers.CharField(source="event_ref")
    rule_version = serializers.IntegerField(allow_null=True)
    stage_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
