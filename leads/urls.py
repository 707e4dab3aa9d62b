from django.urls import path, re_path

from . import apis

urlpatterns = [
    re_path(r"^leads/?$", apis.LeadListCreateApi.as_view(), name="api-leads"),
    re_path(r"^leads/leaderboard/?$", apis.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("leads/<uuid:lead_id>", apis.LeadDetailApi.as_view(), name="api-lead"),
    path("leads/<uuid:lead_id>/", apis.LeadDetailApi.as_view()),
    path("leads/<uuid:lead_id>/score-history", apis.LeadScoreHistoryApi.as_view(), name="api-lead-history"),
    path("leads/<uuid:lead_id>/score-history/", apis.LeadScoreHistoryApi.as_view()),
    path("leads/<uuid:lead_id>/score-breakdown", apis.LeadScoreBreakdownApi.as_view(), name="api-lead-breakdown"),
    path("leads/<uuid:lead_id>/score-breakdown/", apis.LeadScoreBreakdownApi.as_view()),
    path("leads/<uuid:lead_id>/stage-changes", apis.LeadStageChangesApi.as_view(), name="api-lead-stage-changes"),
    path("leads/<uuid:lead_id>/stage-changes/", apis.LeadStageChangesApi.as_view()),
]
