from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ScoringRule
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
