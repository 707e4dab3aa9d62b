"""The rule-set API: the draft's behaviour and fit rules and settings, the published versions, publishing
and the rescore it starts. Edits change the **draft**; nothing scores differently until it is
published (docs/scoring-model.md). Views translate and delegate: every rule of a valid row is the
model's (``full_clean`` in the services), answered as a 400 per field by ``drf_validation_error``."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_response
from config.pagination import paginate

from . import engine
from .models import FitRule, RescoreJob, ScoringRule, Stage, StageSettings
from .preview import ruleset_preview
from .rescoring import NothingToPublish, ruleset_publish
from .selectors import (
    current_version_number,
    fit_rule_list,
    rescore_job_of_version,
    rescore_jobs,
    rule_list,
    ruleset_draft_pending_changes,
    ruleset_draft_state,
    ruleset_version_get,
    ruleset_versions,
    ruleset_versions_diff,
    scoring_settings_get,
    stage_lead_counts,
    stage_list,
)
from .serializers import (
    FitRuleSerializer,
    PublishSerializer,
    RescoreJobSerializer,
    RuleSetDiffQuerySerializer,
    RuleSetVersionSerializer,
    RuleSetVersionSummarySerializer,
    ScoringRuleSerializer,
    ScoringSettingsSerializer,
    StageSerializer,
    StageSettingsSerializer,
    drf_validation_error,
)
from .stages import stage_delete, stage_save, stage_settings_save
from .services import (
    fit_rule_delete,
    fit_rule_save,
    rule_delete,
    rule_save,
    scoring_settings_save,
)


def _saved(save, **kwargs):
    try:
        return save(**kwargs)
    except DjangoValidationError as exc:
        raise drf_validation_error(exc) from None


def _draft_list(rows, serializer_class) -> dict:
    return {
        "draft": True,
        "current_version": current_version_number(),
        "unpublished_changes": ruleset_draft_pending_changes(),
        "results": serializer_class(rows, many=True).data,
    }


class _DraftRowListCreateApi(APIView):
    serializer_class = None
    save_row = None

    def get(self, request):
        return Response(_draft_list(self.rows(), self.serializer_class))

    def post(self, request):
        data = self.serializer_class(data=request.data)
        data.is_valid(raise_exception=True)
        row = _saved(self.save_row, rule=None, **data.validated_data)
        return Response(self.serializer_class(row).data, status=status.HTTP_201_CREATED)


class _DraftRowDetailApi(APIView):
    model = None
    serializer_class = None
    save_row = None
    delete_row = None

    def get(self, request, rule_id):
        return Response(self.serializer_class(get_object_or_404(self.model, pk=rule_id)).data)

    def put(self, request, rule_id):
        return self._update(request, rule_id, partial=False)

    def patch(self, request, rule_id):
        return self._update(request, rule_id, partial=True)

    def delete(self, request, rule_id):
        self.delete_row(rule=get_object_or_404(self.model, pk=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request, rule_id, *, partial: bool):
        row = get_object_or_404(self.model, pk=rule_id)
        data = self.serializer_class(row, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        row = _saved(self.save_row, rule=row, **data.validated_data)
        return Response(self.serializer_class(row).data)


class ScoringRuleListCreateApi(_DraftRowListCreateApi):
    """The draft's behaviour rules (several per event type)."""

    write_permission = "scoring.add_scoringrule"
    serializer_class = ScoringRuleSerializer
    save_row = staticmethod(rule_save)

    def rows(self):
        return rule_list()


class ScoringRuleDetailApi(_DraftRowDetailApi):
    write_permission = {
        "PUT": "scoring.change_scoringrule",
        "PATCH": "scoring.change_scoringrule",
        "DELETE": "scoring.delete_scoringrule",
    }
    model = ScoringRule
    serializer_class = ScoringRuleSerializer
    save_row = staticmethod(rule_save)
    delete_row = staticmethod(rule_delete)


class FitRuleListCreateApi(_DraftRowListCreateApi):
    """The draft's fit rules (profile fields)."""

    write_permission = "scoring.add_fitrule"
    serializer_class = FitRuleSerializer
    save_row = staticmethod(fit_rule_save)

    def rows(self):
        return fit_rule_list()


class FitRuleDetailApi(_DraftRowDetailApi):
    write_permission = {
        "PUT": "scoring.change_fitrule",
        "PATCH": "scoring.change_fitrule",
        "DELETE": "scoring.delete_fitrule",
    }
    model = FitRule
    serializer_class = FitRuleSerializer
    save_row = staticmethod(fit_rule_save)
    delete_row = staticmethod(fit_rule_delete)


class RuleSetListApi(APIView):
    """Published versions, newest first (paginated)."""

    def get(self, request):
        return paginate(request, self, ruleset_versions(), RuleSetVersionSummarySerializer)


class RuleSetDetailApi(APIView):
    def get(self, request, number):
        version = ruleset_version_get(number=number)
        if version is None:
            return error_response(f"No published version {number}.", status_code=status.HTTP_404_NOT_FOUND,
                                  errors={"number": [f"no version {number}"]})
        return Response({**RuleSetVersionSerializer(version).data, "current": number == current_version_number()})


class RuleSetDraftApi(APIView):
    """The draft snapshot and what publishing it would change (``changes``, against ``based_on``)."""

    def get(self, request):
        return Response({"draft": True, **ruleset_draft_state()})


class RuleSetDraftSettingsApi(APIView):
    write_permission = "scoring.change_scoringsettings"

    def get(self, request):
        return Response(ScoringSettingsSerializer(scoring_settings_get()).data)

    def put(self, request):
        return self._update(request, partial=False)

    def patch(self, request):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        data = ScoringSettingsSerializer(scoring_settings_get(), data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        row = _saved(scoring_settings_save, **data.validated_data)
        return Response(ScoringSettingsSerializer(row).data)


class RuleSetPublishApi(APIView):
    """Publish the draft as the next version; the rescore of every lead runs in the background."""

    write_permission = "scoring.add_rulesetversion"

    def post(self, request):
        data = PublishSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = ruleset_publish(actor=request.user.get_username(), note=data.validated_data["note"])
        except NothingToPublish as exc:
            return error_response(
                f"Nothing to publish: {exc}.", status_code=status.HTTP_409_CONFLICT,
                errors={"draft": ["no change against the current version"]},
            )
        job = rescore_job_of_version(number=version.number)
        return Response(
            {
                "version": RuleSetVersionSerializer(version).data,
                "rescore_job": RescoreJobSerializer(job).data if job else None,
            },
            status=status.HTTP_201_CREATED,
        )


class RuleSetDiffApi(APIView):
    """``?from=N&to=M``: what changed from version N to version M."""

    def get(self, request):
        query = RuleSetDiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        versions, missing = {}, {}
        for name in ("from", "to"):
            number = query.validated_data[name]
            versions[name] = ruleset_version_get(number=number)
            if versions[name] is None:
                missing[name] = [f"no published version {number}"]
        if missing:
            return error_response("Unknown version.", status_code=status.HTTP_404_NOT_FOUND, errors=missing)
        return Response(
            {
                "from": versions["from"].number,
                "to": versions["to"].number,
                "changes": ruleset_versions_diff(old=versions["from"], new=versions["to"]),
            }
        )


class RescoreJobListApi(APIView):
    def get(self, request):
        return paginate(request, self, rescore_jobs(), RescoreJobSerializer)


class RescoreJobDetailApi(APIView):
    def get(self, request, job_id):
        return Response(RescoreJobSerializer(get_object_or_404(RescoreJob, pk=job_id)).data)


class RuleSetDraftPreviewApi(APIView):
    """``GET /api/rule-sets/draft/preview``: what publishing the draft would change (scoring.preview).
    ``?sample_limit=N`` (1..100000) evaluates a sample of N leads above that many."""

    def get(self, request):
        raw = request.query_params.get("sample_limit", "100000")
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100_000:
            raise ValidationError({"sample_limit": ["An integer from 1 to 100000."]})
        try:
            return Response(ruleset_preview(sample_limit=limit))
        except engine.RuleError as exc:  # a regex condition timed out on a stored event
            raise ValidationError({"conditions": [str(exc)]}) from None


# --- Stages (docs/stages-and-alerts.md) ----------------------------------------------------------


def _stages_changed(changed) -> dict:
    return {
        "stage_version": changed.version,
        "restage_job": RescoreJobSerializer(changed.job).data if changed.job else None,
    }


class StageListCreateApi(APIView):
    """The stages, coldest first, with the number of leads in each (any reader); creating one
    (``scoring.add_stage``) bumps the stage settings and restages every lead in the background."""

    write_permission = "scoring.add_stage"

    def get(self, request):
        counts = stage_lead_counts()
        rows = [{**StageSerializer(stage).data, "lead_count": counts.get(stage.name, 0)} for stage in stage_list()]
        settings_row = StageSettings.objects.filter(pk=1).first()
        return Response({
            "stage_version": settings_row.version if settings_row else 0,
            "score_thresholds": settings_row.score_thresholds if settings_row else [],
            "results": rows,
        })

    def post(self, request):
        data = StageSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        stage, changed = _saved(stage_save, stage=None, actor=request.user.get_username(), **data.validated_data)
        return Response({**StageSerializer(stage).data, **_stages_changed(changed)}, status=status.HTTP_201_CREATED)


class StageDetailApi(APIView):
    write_permission = {
        "PUT": "scoring.change_stage",
        "PATCH": "scoring.change_stage",
        "DELETE": "scoring.delete_stage",
    }

    def get(self, request, stage_id):
        return Response(StageSerializer(get_object_or_404(Stage, pk=stage_id)).data)

    def put(self, request, stage_id):
        return self._update(request, stage_id, partial=False)

    def patch(self, request, stage_id):
        return self._update(request, stage_id, partial=True)

    def delete(self, request, stage_id):
        changed = stage_delete(stage=get_object_or_404(Stage, pk=stage_id), actor=request.user.get_username())
        return Response(_stages_changed(changed))

    def _update(self, request, stage_id, *, partial: bool):
        stage = get_object_or_404(Stage, pk=stage_id)
        data = StageSerializer(stage, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        stage, changed = _saved(stage_save, stage=stage, actor=request.user.get_username(), **data.validated_data)
        return Response({**StageSerializer(stage).data, **_stages_changed(changed)})


class StageSettingsApi(APIView):
    """The score thresholds whose crossing is an alert (``lead.score_crossed``) and the version."""

    write_permission = "scoring.change_stagesettings"

    def get(self, request):
        StageSettings.objects.get_or_create(pk=1)
        return Response(StageSettingsSerializer(StageSettings.objects.get(pk=1)).data)

    def put(self, request):
        return self._update(request)

    def patch(self, request):
        return self._update(request)

    def _update(self, request):
        data = StageSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row, changed = _saved(stage_settings_save, actor=request.user.get_username(), **data.validated_data)
        return Response({**StageSettingsSerializer(row).data, **_stages_changed(changed)})
