from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_response
from config.pagination import paginate
from scoring.selectors import lead_score_breakdown, score_history, stage_changes
from scoring.serializers import ScoreChangeOutputSerializer

from .models import Lead
from .selectors import lead_get, leaderboard_top, lead_list
from .serializers import (
    LeaderboardQuerySerializer,
    LeadCreateSerializer,
    LeadListQuerySerializer,
    LeadOutputSerializer,
    StageChangeOutputSerializer,
)
from .services import LeadAlreadyExists, lead_create


class LeadListCreateApi(APIView):
    write_permission = "leads.add_lead"

    def get(self, request):
        query = LeadListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        filters["stages"] = filters.pop("stage", [])
        return paginate(request, self, lead_list(**filters), LeadOutputSerializer)

    def post(self, request):
        data = LeadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            lead = lead_create(**data.validated_data)
        except LeadAlreadyExists as exc:
            return error_response(
                f"A lead with e-mail {exc.lead.email} already exists.",
                status_code=status.HTTP_409_CONFLICT,
                errors={"email": ["a lead with this e-mail already exists"]},
                lead_id=str(exc.lead.id),
            )
        # The fit score and grade were computed when the lead's row committed (lead.profile_changed).
        return Response(LeadOutputSerializer(lead_get(lead_id=lead.pk) or lead).data, status=status.HTTP_201_CREATED)


STAGE_CHANGES_IN_DETAIL = 5


class LeadDetailApi(APIView):
    """The lead, with its latest stage changes (``stage_changes``, newest first; all of them at
    ``/api/leads/{id}/stage-changes``)."""

    def get(self, request, lead_id):
        lead = get_object_or_404(Lead, pk=lead_id)
        recent = stage_changes(lead_id=lead.pk)[:STAGE_CHANGES_IN_DETAIL]
        return Response({
            **LeadOutputSerializer(lead).data,
            "stage_changes": StageChangeOutputSerializer(recent, many=True).data,
        })


class LeadStageChangesApi(APIView):
    """The lead's stage-change audit, newest first (paginated): each change with its cause (event,
    rescore, decay, fit, stages, max_score, merge) and, for an event, its id."""

    def get(self, request, lead_id):
        get_object_or_404(Lead.objects.only("id"), pk=lead_id)
        return paginate(request, self, stage_changes(lead_id=lead_id), StageChangeOutputSerializer)


class LeaderboardApi(APIView):
    def get(self, request):
        query = LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        leaders = leaderboard_top(limit=query.validated_data["limit"])
        rows = LeadOutputSerializer(leaders, many=True).data
        return Response({"results": [{"rank": rank, **row} for rank, row in enumerate(rows, start=1)]})


class LeadScoreHistoryApi(APIView):
    def get(self, request, lead_id):
        get_object_or_404(Lead.objects.only("id"), pk=lead_id)
        return paginate(request, self, score_history(lead_id=lead_id), ScoreChangeOutputSerializer)


class LeadScoreBreakdownApi(APIView):
    """Why the lead has its score: per rule, the events counted, capped and decayed and the points,
    plus the clamp and rounding adjustments, summing to ``current_score`` (docs/scoring-model.md)."""

    def get(self, request, lead_id):
        lead = lead_get(lead_id=lead_id)
        if lead is None:
            return error_response(f"No lead {lead_id}.", status_code=status.HTTP_404_NOT_FOUND,
                                  errors={"lead_id": ["no such lead"]})
        return Response(lead_score_breakdown(lead=lead))
