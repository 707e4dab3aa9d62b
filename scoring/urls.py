from django.urls import path, re_path

from . import apis

urlpatterns = [
    re_path(r"^scoring-rules/?$", apis.ScoringRuleListCreateApi.as_view(), name="api-rules"),
    path("scoring-rules/<int:rule_id>", apis.ScoringRuleDetailApi.as_view(), name="api-rule"),
    path("scoring-rules/<int:rule_id>/", apis.ScoringRuleDetailApi.as_view()),
]
