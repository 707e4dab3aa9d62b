from django.urls import path, re_path

from . import apis

urlpatterns = [
    re_path(r"^scoring-rules/?$", apis.ScoringRuleListCreateApi.as_view(), name="api-rules"),
    path("scoring-rules/<int:rule_id>", apis.ScoringRuleDetailApi.as_view(), name="api-rule"),
    path("scoring-rules/<int:rule_id>/", apis.ScoringRuleDetailApi.as_view()),
    # Preview of the draft (scoring.preview), kept apart from the rules/versions endpoints.
    re_path(r"^rule-sets/draft/preview/?$", apis.RuleSetDraftPreviewApi.as_view(), name="api-ruleset-draft-preview"),
]
