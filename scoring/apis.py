from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ScoringRule
from .preview import ruleset_preview
from .selectors import rule_list
from .serializers import ScoringRuleSerializer
from .services import rule_save


class ScoringRuleListCreateApi(APIView):
    write_permission = "scoring.add_scoringrule"

    def get(self, request):
        return Response({"results": ScoringRuleSerializer(rule_list(), many=True).data})

    def post(self, request):
        data = ScoringRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_save(rule=None, **data.validated_data)
        return Response(ScoringRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class ScoringRuleDetailApi(APIView):
    write_permission = "scoring.change_scoringrule"

    def get(self, request, rule_id):
        return Response(ScoringRuleSerializer(get_object_or_404(ScoringRule, pk=rule_id)).data)

    def put(self, request, rule_id):
        return self._update(request, rule_id, partial=False)

    def patch(self, request, rule_id):
        return self._update(request, rule_id, partial=True)

    def _update(self, request, rule_id, *, partial: bool):
        rule = get_object_or_404(ScoringRule, pk=rule_id)
        data = ScoringRuleSerializer(rule, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        rule = rule_save(rule=rule, **data.validated_data)
        return Response(ScoringRuleSerializer(rule).data)


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
        return Response(ruleset_preview(sample_limit=limit))
