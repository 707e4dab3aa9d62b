"""Rule-set API: the draft and its diff, its settings, publishing (409 when nothing changed), the
published versions and their diff, the rescore jobs publishing starts; permissions."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from conftest import event_payload
from leads.models import Lead
from scoring.models import RescoreJob, RuleSetVersion, ScoreChange, ScoringRule, ScoringSettings

from .test_apis import assert_json_error

pytestmark = pytest.mark.django_db(transaction=True)


def staff_client(username: str, *codenames: str) -> APIClient:
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="scoring", codename__in=codenames))
    client = APIClient()
    client.force_login(user)
    return client


def test_publish_flow(api):
    # given a lead scored under v1 (PAGE_VIEW +5)
    api.post("/api/events", event_payload("a"), format="json")
    assert Lead.objects.get().current_score == 5
    # when the draft's PAGE_VIEW rule is changed
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    assert api.patch(f"/api/scoring-rules/{rule.id}", {"points": 8}, format="json").status_code == 200
    # then the draft's diff against v1 shows it, and nothing is rescored yet
    draft = api.get("/api/rule-sets/draft").json()
    assert (draft["draft"], draft["based_on"]) == (True, 1)
    assert [(c["kind"], c["change"], c["key"], c["fields"]) for c in draft["changes"]] == [
        ("rule", "changed", f"r{rule.id}", {"points": [5, 8]})
    ]
    assert next(r for r in draft["rules"] if r["key"] == f"r{rule.id}")["points"] == 8
    assert Lead.objects.get().current_score == 5
    # when it is published
    response = api.post("/api/rule-sets/publish", {"note": "views matter more"}, format="json")
    # then v2 exists with its change, and its rescore job has run (inline in tests)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"]["number"], body["version"]["note"], body["version"]["change_count"]) == (
        2, "views matter more", 1)
    assert body["version"]["published_by"].startswith("api-key:")
    job = body["rescore_job"]
    assert (job["version"], job["status"], job["done"], job["changed"]) == (2, "completed", 1, 1)
    assert job["id"] == RescoreJob.objects.get(version=2).pk
    lead = Lead.objects.get()
    assert (lead.current_score, lead.rule_version) == (8, 2)
    # and the versions list shows v2 first, with its change count
    listed = api.get("/api/rule-sets").json()
    assert [v["number"] for v in listed["results"]] == [2, 1]
    assert listed["results"][0]["change_count"] == 1
    assert listed["count"] == 2
    detail = api.get("/api/rule-sets/2").json()
    assert detail["current"] is True and detail["changes"] == draft["changes"]
    assert {r["event_type"] for r in detail["rules"]} >= {"PAGE_VIEW", "PURCHASE"}
    assert api.get("/api/rule-sets/1/").json()["current"] is False
    # and the diff between the versions is that change
    diff = api.get("/api/rule-sets/diff", {"from": 1, "to": 2}).json()
    assert (diff["from"], diff["to"], diff["changes"]) == (1, 2, draft["changes"])
    back = api.get("/api/rule-sets/diff", {"from": 2, "to": 1}).json()["changes"]
    assert back[0]["fields"] == {"points": [8, 5]}
    # and the draft now equals v2
    assert api.get("/api/rule-sets/draft").json()["changes"] == []
    # when an event then arrives, it scores under v2
    api.post("/api/events", event_payload("b", minutes=1), format="json")
    latest = ScoreChange.objects.filter(event__event_id="b").get()
    assert (latest.delta, latest.rule_version) == (8, 2)
    assert Lead.objects.get().current_score == 16
    # and the rescore jobs say what ran
    jobs = api.get("/api/rescore-jobs").json()["results"]
    assert [(j["id"], j["version"], j["status"], j["percent"]) for j in jobs] == [(job["id"], 2, "completed", 100.0)]
    one = api.get(f"/api/rescore-jobs/{job['id']}/").json()
    assert (one["total"], one["done"], one["lead_id"]) == (1, 1, None)


def test_publish_twice_without_a_change_is_409(api):
    # given a change, published once
    ScoringRule.objects.filter(event_type="PURCHASE").update(points=150)
    assert api.post("/api/rule-sets/publish", {}, format="json").status_code == 201
    # when it is published again with no change in between
    response = api.post("/api/rule-sets/publish", {"note": "again"}, format="json")
    # then the answer is a JSON 409 and no version is added
    body = assert_json_error(response, 409, "draft")
    assert "v2" in body["detail"]
    assert RuleSetVersion.objects.count() == 2
    assert RescoreJob.objects.count() == 1


def test_publish_validates_the_note(api):
    assert_json_error(api.post("/api/rule-sets/publish", {"note": "x" * 2001}, format="json"), 400, "note")
    assert_json_error(api.post("/api/rule-sets/publish", {"note": ["a"]}, format="json"), 400, "note")
    assert_json_error(api.post("/api/rule-sets/publish", "[1,", content_type="application/json"), 400, "body")
    assert RuleSetVersion.objects.count() == 1


def test_draft_settings(api):
    # given the default settings
    body = api.get("/api/rule-sets/draft/settings").json()
    assert (body["match_mode"], body["grade_fit_a"], body["grade_score_1"]) == ("all", 60, 300)
    # when the match mode and a threshold change
    response = api.patch("/api/rule-sets/draft/settings", {"match_mode": "first", "grade_fit_a": 70}, format="json")
    assert response.status_code == 200, response.content
    # then they are stored in the draft and its diff shows them
    settings_row = ScoringSettings.objects.get(pk=1)
    assert (settings_row.match_mode, settings_row.grade_fit_a) == ("first", 70)
    changes = api.get("/api/rule-sets/draft").json()["changes"]
    assert {(c["kind"], c["key"]) for c in changes} == {("setting", "match_mode"), ("setting", "grade_fit_a")}
    # and publishing records them in v2
    version = api.post("/api/rule-sets/publish", {}, format="json").json()["version"]
    assert (version["match_mode"], version["grades"]["fit_a"]) == ("first", 70)
    full = {"match_mode": "all", "grade_fit_a": 60, "grade_fit_b": 40, "grade_fit_c": 20,
            "grade_score_1": 300, "grade_score_2": 100, "grade_score_3": 40}
    assert api.put("/api/rule-sets/draft/settings/", full, format="json").status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"match_mode": "some"}, "match_mode"),
        ({"grade_fit_a": 1000}, "grade_fit_a"),
        ({"grade_fit_c": -1}, "grade_fit_c"),
        ({"grade_fit_b": 70}, "grade_fit_b"),  # above A (60)
        ({"grade_score_3": 500}, "grade_score_3"),  # above 2 (100)
        ({"grade_score_1": 10**20}, "grade_score_1"),
        ({"grade_score_1": "high"}, "grade_score_1"),
    ],
)
def test_draft_settings_validate(api, body, field):
    assert_json_error(api.patch("/api/rule-sets/draft/settings", body, format="json"), 400, field)
    assert api.get("/api/rule-sets/draft").json()["changes"] == []


def test_put_settings_needs_every_field(api):
    assert_json_error(api.put("/api/rule-sets/draft/settings", {"match_mode": "first"}, format="json"), 400,
                      "grade_fit_a")


@pytest.mark.parametrize(
    "path, status, field",
    [
        ("/api/rule-sets/9", 404, "number"),
        ("/api/rule-sets/99999999999999999999999", 404, "number"),
        ("/api/rule-sets/diff", 400, "from"),
        ("/api/rule-sets/diff?from=1", 400, "to"),
        ("/api/rule-sets/diff?from=x&to=1", 400, "from"),
        ("/api/rule-sets/diff?from=0&to=1", 400, "from"),
        ("/api/rule-sets/diff?from=1&to=7", 404, "to"),
        ("/api/rule-sets/diff?from=99999999999&to=1", 400, "from"),
        ("/api/rescore-jobs/12345", 404, None),
        ("/api/rule-sets/latest", 404, None),
    ],
)
def test_read_errors_are_json(api, path, status, field):
    assert_json_error(api.get(path), status, field)


def test_publish_needs_its_permission():
    # given staff who may edit rules but not publish
    editor = staff_client("editor", "change_scoringrule", "view_scoringrule")
    ScoringRule.objects.filter(event_type="PURCHASE").update(points=120)
    # then they can read the draft and the versions, and not publish or change the settings
    assert editor.get("/api/rule-sets/draft").status_code == 200
    assert editor.get("/api/rule-sets").status_code == 200
    assert editor.get("/api/rescore-jobs").status_code == 200
    response = editor.post("/api/rule-sets/publish", {}, format="json")
    assert response.status_code == 403 and "scoring.add_rulesetversion" in response.json()["detail"]
    assert editor.patch("/api/rule-sets/draft/settings", {"match_mode": "first"}, format="json").status_code == 403
    assert RuleSetVersion.objects.count() == 1
    # given a publisher
    publisher = staff_client("publisher", "add_rulesetversion")
    response = publisher.post("/api/rule-sets/publish", {"note": "ok"}, format="json")
    assert response.status_code == 201
    assert response.json()["version"]["published_by"] == "publisher"


def test_anonymous_reads_nothing(anon):
    for path in ("/api/rule-sets", "/api/rule-sets/draft", "/api/rule-sets/1", "/api/fit-rules", "/api/rescore-jobs"):
        response = anon.get(path)
        assert response.status_code in (401, 403) and response.json()["detail"], path
    assert anon.post("/api/rule-sets/publish", {}, format="json").status_code in (401, 403)
