"""The admin side of versioned rule sets: the draft banner, the rule form's validation, Review &
publish (diff + preview + note), the read-only version history with its diff and compare view,
fit rules and the settings singleton, and the rescore job's progress page."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from conftest import T0
from events.services import event_ingest
from leads.models import Lead
from scoring.models import FitRule, RescoreJob, RuleSetVersion, ScoringRule, ScoringSettings

pytestmark = pytest.mark.django_db

PUBLISH = "/admin/scoring/rulesetversion/publish/"


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def user_in(group_name, username):
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def score(capture, *items):
    with capture(execute=True):
        event_ingest(items=list(items), source="test")


def ev(event_id, email="ann@example.com", event_type="PAGE_VIEW", minutes=0, **metadata):
    return {"event_id": event_id, "event_type": event_type, "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
            "email": email, "metadata": metadata}


def rule_form(**overrides):
    data = {"name": "", "event_type": "PAGE_VIEW", "points": 5, "priority": 100, "enabled": "on", "description": "",
            "conditions": "[]", "cap_count": "", "cap_window_seconds": "", "half_life_days": "", "expire_after_days": ""}
    data.update(overrides)
    return data


def test_rule_changelist_shows_the_draft_banner_and_the_new_columns(admin_client):
    # Given the draft equal to v1,
    page = admin_client.get("/admin/scoring/scoringrule/").content.decode()
    assert "it equals the published version" in page and "Review &amp; publish" not in page
    # when a conditional, capped, decaying rule is added and a rule changed,
    ScoringRule.objects.create(name="Pricing", event_type="PAGE_VIEW", points=15, cap_count=10, cap_window_seconds=86400,
                               half_life_days=30, conditions=[{"field": "metadata.url", "op": "contains", "value": "/pricing"}])
    ScoringRule.objects.filter(event_type="EMAIL_OPEN").update(points=12)
    page = admin_client.get("/admin/scoring/scoringrule/").content.decode()
    # then the banner counts 2 unpublished changes with the Review & publish link, and the list
    # shows the conditions, the cap and the decay.
    assert "You are editing the draft; <strong data-draft-changes>2</strong> changes not published" in page
    assert f'href="{PUBLISH}"' in page and "Review &amp; publish" in page
    assert "metadata.url contains &quot;/pricing&quot;" in page
    assert "10 per day" in page and "half-life 30 d" in page


def test_rule_form_shows_condition_errors_on_the_field(admin_client):
    bad = admin_client.post("/admin/scoring/scoringrule/add/", rule_form(conditions='[{"field": "metadata.url", "op": "resembles", "value": 1}]'))
    assert bad.status_code == 200
    errors = bad.context["adminform"].form.errors
    assert "conditions" in errors and "resembles" in str(errors["conditions"])
    not_json = admin_client.post("/admin/scoring/scoringrule/add/", rule_form(conditions="[{"))
    assert "conditions" in not_json.context["adminform"].form.errors
    regex = admin_client.post("/admin/scoring/scoringrule/add/", rule_form(conditions='[{"field": "source", "op": "regex", "value": "("}]'))
    assert "conditions" in regex.context["adminform"].form.errors
    window = admin_client.post("/admin/scoring/scoringrule/add/", rule_form(cap_window_seconds=60))
    assert "cap_window_seconds" in window.context["adminform"].form.errors
    assert ScoringRule.objects.count() == 5
    good = admin_client.post("/admin/scoring/scoringrule/add/", rule_form(
        name="Pricing", points=15, conditions='[{"field": "metadata.url", "op": "contains", "value": "/pricing"}]'))
    assert good.status_code == 302
    rule = ScoringRule.objects.get(name="Pricing")
    assert rule.conditions == [{"field": "metadata.url", "op": "contains", "value": "/pricing"}]
    form = admin_client.get(f"/admin/scoring/scoringrule/{rule.pk}/change/").content.decode()
    assert '&quot;op&quot;: &quot;contains&quot;' in form and "Example:" in form  # indented JSON, help


def test_review_and_publish_shows_the_diff_and_preview_then_publishes(admin_client, django_capture_on_commit_callbacks):
    # Given two leads scored under v1 and a draft where page views are worth 7,
    score(django_capture_on_commit_callbacks, ev("a"), ev("b", "bob@example.com", "EMAIL_OPEN"))
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    assert admin_client.post(f"/admin/scoring/scoringrule/{rule.pk}/change/", rule_form(points=7)).status_code == 302
    # when the operator opens Review & publish,
    review = admin_client.get(PUBLISH)
    page = review.content.decode()
    # then it shows the change (points 5 -> 7) and the preview (one lead changes), with a form.
    assert review.status_code == 200
    assert [(r["field"], r["old"], r["new"]) for r in review.context["change_rows"]] == [("points", "5", "7")]
    assert review.context["preview"]["changed"] == 1 and review.context["preview"]["affected_event_types"] == ["PAGE_VIEW"]
    assert "data-diff-table" in page and "<strong data-preview-changed>1</strong>" in page
    assert 'name="csrfmiddlewaretoken"' in page and 'value="Publish as v2"' in page
    # when they publish with a note,
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(PUBLISH, {"note": "Page views matter more"})
    # then v2 is recorded (who, note, the diff), the rescore ran, and they land on its progress page.
    version = RuleSetVersion.objects.get(number=2)
    assert (version.published_by, version.note) == ("boss", "Page views matter more")
    assert version.changes == [{"kind": "rule", "change": "changed", "key": f"r{rule.pk}", "label": "PAGE_VIEW",
                                "fields": {"points": [5, 7]}}]
    job = RescoreJob.objects.get(version=2)
    assert response.status_code == 302 and response["Location"] == f"/admin/scoring/rescorejob/{job.pk}/change/"
    progress = admin_client.get(response["Location"], follow=True)
    text = progress.content.decode()
    assert "Published rules v2" in text and 'data-rescore-job="%d"' % job.pk in text and "js/rescore_progress.js" in text
    assert job.status == "completed" or RescoreJob.objects.get(pk=job.pk).status == "completed"
    payload = admin_client.get(f"/admin/scoring/rescorejob/{job.pk}/progress.json").json()
    assert (payload["status"], payload["done"], payload["total"], payload["changed"], payload["percent"]) == ("completed", 2, 2, 1, 100.0)
    assert payload["finished_at"]
    assert Lead.objects.get(email="ann@example.com").current_score == 7
    # and the banner says the draft is published; publishing again is refused.
    assert "it equals the published version" in admin_client.get("/admin/scoring/scoringrule/").content.decode()
    again = admin_client.post(PUBLISH, {"note": ""}, follow=True)
    assert "Nothing to publish" in again.content.decode() and RuleSetVersion.objects.count() == 2


def test_a_viewer_cannot_publish(client):
    client.force_login(user_in("Viewers", "vic"))
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=9)
    assert client.get(PUBLISH).status_code == 403
    assert client.post(PUBLISH, {"note": "x"}).status_code == 403
    assert RuleSetVersion.objects.count() == 1
    page = client.get("/admin/scoring/scoringrule/").content.decode()
    assert "1</strong> change not published" in page and PUBLISH not in page


def test_versions_are_read_only_history_with_a_readable_diff(admin_client, publish):
    # Given v2 (a rule changed) and v3 (a rule added),
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=6)
    publish(note="six")
    ScoringRule.objects.create(name="Unsubscribe", event_type="UNSUBSCRIBE", points=-50)
    publish(note="negative")
    v3 = RuleSetVersion.objects.get(number=3)
    # the history lists number, who, when, note and the number of changes, without an add button,
    listing = admin_client.get("/admin/scoring/rulesetversion/").content.decode()
    assert "v3" in listing and "negative" in listing and "/admin/scoring/rulesetversion/add/" not in listing
    assert "Compare versions" in listing
    # the detail page shows the snapshot and the changes as field: old -> new,
    detail = admin_client.get(f"/admin/scoring/rulesetversion/{v3.pk}/change/")
    text = detail.content.decode()
    assert detail.status_code == 200 and "Changes against v2" in text and "data-snapshot-rules" in text
    assert [(r["change"], r["label"], r["field"], r["new"]) for r in detail.context["change_rows"]][:2] == [
        ("added", "Unsubscribe", "name", "Unsubscribe"), ("added", "Unsubscribe", "event_type", "UNSUBSCRIBE"),
    ]
    assert 'name="_save"' not in text and "deletelink" not in text
    # and nobody (not even a superuser) can add, change or delete a version.
    assert admin_client.get("/admin/scoring/rulesetversion/add/").status_code == 403
    assert admin_client.post(f"/admin/scoring/rulesetversion/{v3.pk}/change/", {"note": "edited"}).status_code == 403
    assert admin_client.post(f"/admin/scoring/rulesetversion/{v3.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post("/admin/scoring/rulesetversion/", {
        "action": "delete_selected", "_selected_action": [str(v3.pk)], "post": "yes"}).status_code in (200, 302, 403)
    v3.refresh_from_db()
    assert v3.note == "negative" and RuleSetVersion.objects.count() == 3


def test_compare_any_two_versions(admin_client, publish):
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=6)
    publish()
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=8, cap_count=10)
    publish()
    url = "/admin/scoring/rulesetversion/compare/"
    both = admin_client.get(url, {"from": 1, "to": 3})
    assert both.status_code == 200
    assert [(r["field"], r["old"], r["new"]) for r in both.context["change_rows"]] == [("points", "5", "8"), ("cap_count", "—", "10")]
    backwards = admin_client.get(url, {"from": 3, "to": 2})
    assert [(r["field"], r["old"], r["new"]) for r in backwards.context["change_rows"]] == [("points", "8", "6"), ("cap_count", "10", "—")]
    same = admin_client.get(url, {"from": 2, "to": 2})
    assert same.context["change_rows"] == [] and "No differences." in same.content.decode()
    default = admin_client.get(url)
    assert (default.context["number_from"], default.context["number_to"]) == (2, 3)
    assert 'option value="1"' in default.content.decode()
    assert admin_client.get(url, {"from": 9, "to": 1}).status_code == 400
    assert admin_client.get(url, {"from": "x", "to": 1}).status_code == 400


def test_fit_rules_and_the_settings_singleton(admin_client):
    bad = admin_client.post("/admin/scoring/fitrule/add/", {
        "name": "x", "points": 20, "priority": 100, "enabled": "on", "conditions": '[{"field": "metadata.x", "op": "exists", "value": true}]'})
    assert bad.status_code == 200 and "conditions" in bad.context["adminform"].form.errors
    good = admin_client.post("/admin/scoring/fitrule/add/", {
        "name": "Company", "points": 20, "priority": 100, "enabled": "on", "conditions": '[{"field": "company", "op": "exists", "value": true}]'})
    assert good.status_code == 302 and FitRule.objects.get().points == 20
    assert "1</strong> change not published" in admin_client.get("/admin/scoring/fitrule/").content.decode()

    listing = admin_client.get("/admin/scoring/scoringsettings/")
    assert listing.status_code == 302 and listing["Location"] == "/admin/scoring/scoringsettings/1/change/"
    assert admin_client.get("/admin/scoring/scoringsettings/add/").status_code == 403
    assert admin_client.post("/admin/scoring/scoringsettings/1/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/scoring/scoringsettings/2/change/").status_code == 404
    saved = admin_client.post("/admin/scoring/scoringsettings/1/change/", {
        "match_mode": "first", "grade_fit_a": 70, "grade_fit_b": 40, "grade_fit_c": 20,
        "grade_score_1": 300, "grade_score_2": 100, "grade_score_3": 40, "_save": "Save"})
    assert saved.status_code == 302
    draft = ScoringSettings.objects.get()
    assert (draft.pk, draft.match_mode, draft.grade_fit_a) == (1, "first", 70)


def test_rescore_jobs_are_read_only(admin_client, django_capture_on_commit_callbacks):
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=6)
    from scoring.rescoring import ruleset_publish

    with django_capture_on_commit_callbacks(execute=True):
        ruleset_publish(actor="boss")
    job = RescoreJob.objects.get()
    listing = admin_client.get("/admin/scoring/rescorejob/").content.decode()
    assert "v2" in listing and "/admin/scoring/rescorejob/add/" not in listing
    assert admin_client.get("/admin/scoring/rescorejob/add/").status_code == 403
    assert admin_client.post(f"/admin/scoring/rescorejob/{job.pk}/change/", {"status": "queued"}).status_code == 403
    assert admin_client.post(f"/admin/scoring/rescorejob/{job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/scoring/rescorejob/999/progress.json").status_code == 404


def test_a_draft_regex_that_times_out_on_a_stored_event_stops_the_preview_with_its_reason(
    admin_client, api, django_capture_on_commit_callbacks
):
    # Given a stored event whose value makes a draft regex backtrack catastrophically
    score(django_capture_on_commit_callbacks, ev("evil", q="a" * 40 + "!"))
    ScoringRule.objects.create(event_type="PAGE_VIEW", points=15, conditions=[
        {"field": "metadata.q", "op": "regex", "value": "(a|aa)+$"}])
    # when an operator opens the review page and an integrator asks for the preview,
    page = admin_client.get("/admin/scoring/rulesetversion/publish/")
    response = api.get("/api/rule-sets/draft/preview")
    # then both say why instead of failing
    assert page.status_code == 200 and b"data-preview-error" in page.content and b"(a|aa)+$" in page.content
    assert response.status_code == 400 and "(a|aa)+$" in response.json()["errors"]["conditions"][0]
