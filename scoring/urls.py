from django.urls import path, re_path

from . import apis


def both(route: str, view, name: str | None = None):
    """The route with and without a trailing slash."""
    return [path(route, view, name=name), path(f"{route}/", view)]


urlpatterns = [
    re_path(r"^scoring-rules/?$", apis.ScoringRuleListCreateApi.as_view(), name="api-rules"),
    # Preview of the draft (scoring.preview): before the rule-sets/draft routes.
    re_path(r"^rule-sets/draft/preview/?$", apis.RuleSetDraftPreviewApi.as_view(), name="api-ruleset-draft-preview"),
    *both("scoring-rules/<int:rule_id>", apis.ScoringRuleDetailApi.as_view(), "api-rule"),
    re_path(r"^fit-rules/?$", apis.FitRuleListCreateApi.as_view(), name="api-fit-rules"),
    *both("fit-rules/<int:rule_id>", apis.FitRuleDetailApi.as_view(), "api-fit-rule"),
    re_path(r"^rule-sets/?$", apis.RuleSetListApi.as_view(), name="api-rule-sets"),
    *both("rule-sets/draft", apis.RuleSetDraftApi.as_view(), "api-rule-set-draft"),
    *both("rule-sets/draft/settings", apis.RuleSetDraftSettingsApi.as_view(), "api-rule-set-settings"),
    *both("rule-sets/publish", apis.RuleSetPublishApi.as_view(), "api-rule-set-publish"),
    *both("rule-sets/diff", apis.RuleSetDiffApi.as_view(), "api-rule-set-diff"),
    *both("rule-sets/<int:number>", apis.RuleSetDetailApi.as_view(), "api-rule-set"),
    re_path(r"^rescore-jobs/?$", apis.RescoreJobListApi.as_view(), name="api-rescore-jobs"),
    *both("rescore-jobs/<int:job_id>", apis.RescoreJobDetailApi.as_view(), "api-rescore-job"),
    re_path(r"^stages/?$", apis.StageListCreateApi.as_view(), name="api-stages"),
    *both("stages/settings", apis.StageSettingsApi.as_view(), "api-stage-settings"),
    *both("stages/<int:stage_id>", apis.StageDetailApi.as_view(), "api-stage"),
]
