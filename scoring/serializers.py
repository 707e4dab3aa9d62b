import re

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from events.validation import text_problem

from .models import (
    FitRule,
    MatchMode,
    RescoreJob,
    RuleSetVersion,
    ScoreChange,
    ScoringRule,
    ScoringSettings,
    Stage,
    StageSettings,
)
from .models import validate_event_type
from .rescoring import rescore_job_payload
from .rulesets import RULE_FIELDS

# "conditions[0].op: 'x' is not one of …" -> ("conditions[0].op", "'x' is not one of …"): the model's
# message names the place; the API's errors are keyed by it.
_CONDITION_PLACE = re.compile(
    r"^(conditions(?:\[\d+\](?:\.(?:field|op|value|ignore_case)(?:\[\d+\]|\.[^\s:]+)*)?)?)(?::\s*|\.)(.+)$", re.S
)


def drf_validation_error(exc: DjangoValidationError) -> serializers.ValidationError:
    """A model's ValidationError (``full_clean``) as the API's 400: one entry per field, a condition's
    error keyed by its place (``conditions[0].op``)."""
    if not hasattr(exc, "error_dict"):
        return serializers.ValidationError({"non_field_errors": exc.messages})
    errors: dict[str, list[str]] = {}
    for name, messages in exc.message_dict.items():
        name = "non_field_errors" if name == NON_FIELD_ERRORS else name
        for message in messages:
            key, text = name, message
            match = _CONDITION_PLACE.match(message) if name == "conditions" else None
            if match:
                key, text = match.groups()
            errors.setdefault(key, []).append(text)
    return serializers.ValidationError(errors)


def storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


class DraftRowSerializer(serializers.ModelSerializer):
    """Types and shapes only; the rules of a valid row are the model's (``full_clean`` in the
    service), answered through :func:`drf_validation_error`."""

    conditions = serializers.JSONField(required=False)

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.CharField):
            kwargs["validators"] = [*kwargs.get("validators", []), storable_text]
        return field_class, kwargs


class ScoringRuleSerializer(DraftRowSerializer):
    event_type = serializers.CharField(max_length=64)

    class Meta:
        model = ScoringRule
        fields = [
            "id",
            *RULE_FIELDS,
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_event_type(self, value: str) -> str:
        value = value.strip().upper()
        try:
            validate_event_type(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value


class FitRuleSerializer(DraftRowSerializer):
    conditions = serializers.JSONField()

    class Meta:
        model = FitRule
        fields = ["id", "name", "points", "priority", "enabled", "description", "conditions", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class ScoringSettingsSerializer(serializers.ModelSerializer):
    match_mode = serializers.ChoiceField(choices=MatchMode.choices)

    class Meta:
        model = ScoringSettings
        fields = [
            "match_mode",
            "grade_fit_a",
            "grade_fit_b",
            "grade_fit_c",
            "grade_score_1",
            "grade_score_2",
            "grade_score_3",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        # PUT replaces the settings: every one is named (PATCH changes some).
        extra_kwargs = {name: {"required": True} for name in fields if name.startswith("grade_")}


class RuleSetVersionSummarySerializer(serializers.ModelSerializer):
    change_count = serializers.SerializerMethodField()

    class Meta:
        model = RuleSetVersion
        fields = ["number", "match_mode", "published_by", "published_at", "note", "change_count"]

    def get_change_count(self, version: RuleSetVersion) -> int:
        return len(version.changes or [])


class RuleSetVersionSerializer(RuleSetVersionSummarySerializer):
    class Meta:
        model = RuleSetVersion
        fields = [*RuleSetVersionSummarySerializer.Meta.fields, "grades", "rules", "fit_rules", "changes"]


class PublishSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000,
                                 validators=[storable_text])


class RuleSetDiffQuerySerializer(serializers.Serializer):
    def get_fields(self):  # "from" is a Python keyword
        return {
            "from": serializers.IntegerField(min_value=1, max_value=2_147_483_647),
            "to": serializers.IntegerField(min_value=1, max_value=2_147_483_647),
        }


class RescoreJobSerializer(serializers.ModelSerializer):
    """``rescoring.rescore_job_payload`` (what the progress notifications carry) and the job's times."""

    class Meta:
        model = RescoreJob
        fields = ["lead_id", "error", "created_by", "created_at", "started_at", "finished_at", "updated_at"]

    def to_representation(self, job):
        return {**rescore_job_payload(job), **super().to_representation(job)}


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


class StageSerializer(serializers.ModelSerializer):
    """Types and shapes; the rules (unique name without case, ranges) are the service's and the
    model's (``full_clean``), answered per field through :func:`drf_validation_error`."""

    name = serializers.CharField(max_length=64, validators=[storable_text])
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, validators=[storable_text])
    min_score = serializers.IntegerField(required=False, allow_null=True, min_value=-1_000_000_000,
                                         max_value=1_000_000_000)
    min_fit = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=100)
    position = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)

    class Meta:
        model = Stage
        fields = ["id", "name", "position", "min_score", "min_fit", "color", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class StageSettingsSerializer(serializers.ModelSerializer):
    score_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=-1_000_000_000, max_value=1_000_000_000), max_length=20,
        allow_empty=True,
    )

    class Meta:
        model = StageSettings
        fields = ["version", "score_thresholds", "updated_at"]
        read_only_fields = ["version", "updated_at"]
