"""Draft rules API: behaviour rules and fit rules (list, create, update, delete), validated by the
models' own rules with errors naming the field; session users need the model permission to write."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from conftest import event_payload
from leads.models import Lead
from scoring.models import FitRule, ScoringRule

pytestmark = pytest.mark.django_db(transaction=True)

PRICING = {"field": "metadata.url", "op": "contains", "value": "/pricing"}


def assert_json_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["detail"]
    if field is not None:
        assert field in body["errors"], body
    return body


def test_list_is_the_draft_with_the_current_version(api):
    # given the default rules, published as v1
    # when the rules are listed
    body = api.get("/api/scoring-rules").json()
    # then they are the draft's, and the list says which version is current
    assert {r["event_type"]: r["points"] for r in body["results"]} == {
        "PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100,
    }
    assert (body["draft"], body["current_version"], body["unpublished_changes"]) == (True, 1, 0)
    assert set(body["results"][0]) >= {
        "name", "priority", "conditions", "cap_count", "cap_window_seconds", "half_life_days", "expire_after_days",
    }


def test_a_new_rule_scores_once_published(api):
    # given a rule created in the draft
    response = api.post("/api/scoring-rules", {"event_type": "webinar_join", "points": 15}, format="json")
    assert response.status_code == 201
    assert response.json()["event_type"] == "WEBINAR_JOIN"
    assert api.get("/api/scoring-rules").json()["unpublished_changes"] == 1
    # when an event of its type arrives before publishing
    assert api.post("/api/events", event_payload("a", event_type="WEBINAR_JOIN"), format="json").status_code == 202
    # then it scores nothing yet
    assert Lead.objects.get().current_score == 0
    # when the draft is published
    assert api.post("/api/rule-sets/publish", {"note": "webinars"}, format="json").status_code == 201
    # then the stored event is rescored under v2, and the next event scores too
    assert Lead.objects.get().current_score == 15
    api.post("/api/events", event_payload("b", event_type="WEBINAR_JOIN", minutes=1), format="json")
    lead = Lead.objects.get()
    assert (lead.current_score, lead.rule_version) == (30, 2)


def test_several_rules_per_event_type_with_conditions_cap_and_decay(api):
    body = {
        "name": "pricing page", "event_type": "PAGE_VIEW", "points": 15, "priority": 10,
        "conditions": [PRICING], "cap_count": 10, "cap_window_seconds": 86400,
        "half_life_days": 30, "expire_after_days": 365,
    }
    response = api.post("/api/scoring-rules", body, format="json")
    assert response.status_code == 201, response.content
    rule = ScoringRule.objects.get(pk=response.json()["id"])
    assert (rule.name, rule.conditions, rule.cap_count, rule.half_life_days) == ("pricing page", [PRICING], 10, 30.0)
    assert ScoringRule.objects.filter(event_type="PAGE_VIEW").count() == 2
    negative = api.post("/api/scoring-rules", {"event_type": "UNSUBSCRIBE", "points": -50}, format="json")
    assert negative.status_code == 201 and negative.json()["points"] == -50


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "bad type!", "points": 1}, "event_type"),
        ({"event_type": "OK"}, "points"),
        ({"event_type": "OK", "points": "many"}, "points"),
        ({"event_type": "OK", "points": 10**12}, "points"),
        ({"event_type": "OK", "points": 10**30}, "points"),
        ({"event_type": "OK", "points": 1, "priority": 10**15}, "priority"),
        ({"event_type": "OK", "points": 1, "conditions": "metadata.url"}, "conditions"),
        ({"event_type": "OK", "points": 1, "conditions": {"field": "source"}}, "conditions"),
        ({"event_type": "OK", "points": 1, "conditions": [3]}, "conditions[0]"),
        ({"event_type": "OK", "points": 1, "conditions": [{**PRICING, "op": "bogus"}]}, "conditions[0].op"),
        ({"event_type": "OK", "points": 1, "conditions": [{**PRICING, "op": "regex", "value": "(unclosed"}]},
         "conditions[0].value"),
        ({"event_type": "OK", "points": 1, "conditions": [{**PRICING, "colour": "red"}]}, "conditions[0]"),
        ({"event_type": "OK", "points": 1, "conditions": [{**PRICING, "field": "url"}]}, "conditions[0].field"),
        ({"event_type": "OK", "points": 1, "conditions": [PRICING, {"field": "metadata.n", "op": "greater", "value": "x"}]},
         "conditions[1].value"),
        ({"event_type": "OK", "points": 1, "conditions": [{**PRICING, "ignore_case": "yes"}]}, "conditions[0].ignore_case"),
        ({"event_type": "OK", "points": 1, "cap_window_seconds": 86400}, "cap_window_seconds"),
        ({"event_type": "OK", "points": 1, "cap_count": 0}, "cap_count"),
        ({"event_type": "OK", "points": 1, "cap_count": -1}, "cap_count"),
        ({"event_type": "OK", "points": 1, "cap_count": 10**15}, "cap_count"),
        ({"event_type": "OK", "points": 1, "cap_count": 1, "cap_window_seconds": 10**12}, "cap_window_seconds"),
        ({"event_type": "OK", "points": 1, "half_life_days": -1}, "half_life_days"),
        ({"event_type": "OK", "points": 1, "half_life_days": 0}, "half_life_days"),
        ({"event_type": "OK", "points": 1, "expire_after_days": 1e308}, "expire_after_days"),
        ({"event_type": "OK", "points": 1, "name": "x" * 101}, "name"),
    ],
)
def test_create_rule_validates_naming_the_field(api, body, field):
    before = ScoringRule.objects.count()
    response = api.post("/api/scoring-rules", body, format="json")
    assert_json_error(response, 400, field)
    assert ScoringRule.objects.count() == before


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"event_type": "OK", "points": 1, "conditions": [{"field": "metadata.n", "op": "greater", "value": NaN}]}',
         "conditions"),
        ('{"event_type": "OK", "points": 1, "name": "\\ud800"}', "name"),
        ('{"event_type": "OK", "points": 1, "conditions": [{"field": "source", "op": "equals", "value": "\\ud800"}]}',
         "conditions[0].value"),
        ('{"event_type": "OK", "points": 1, "half_life_days": Infinity}', "half_life_days"),
        ('{"event_type": "OK", "points": 1, "conditions": [{"field": "metadata.n", "op": "in", "value": '
         + "[" * 12 + "1" + "]" * 12 + "}]}", "conditions[0].value[0][0][0][0][0][0]"),
    ],
)
def test_values_no_json_column_stores_are_400s(api, raw, field):
    response = api.post("/api/scoring-rules", raw, content_type="application/json")
    assert_json_error(response, 400, field)
    assert not ScoringRule.objects.filter(event_type="OK").exists()


def test_put_patch_and_the_models_rules_on_a_partial_update(api):
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    response = api.patch(f"/api/scoring-rules/{rule.id}", {"points": 8, "conditions": [PRICING]}, format="json")
    assert response.status_code == 200 and response.json()["points"] == 8
    response = api.put(
        f"/api/scoring-rules/{rule.id}", {"event_type": "PAGE_VIEW", "points": 9, "enabled": False}, format="json"
    )
    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.points, rule.enabled) == (9, False)
    assert_json_error(api.put(f"/api/scoring-rules/{rule.id}", {"points": 1}, format="json"), 400, "event_type")
    # a cap window alone is refused on a rule without a cap count: the whole row is validated
    assert_json_error(
        api.patch(f"/api/scoring-rules/{rule.id}", {"cap_window_seconds": 60}, format="json"), 400, "cap_window_seconds"
    )
    rule.refresh_from_db()
    assert rule.cap_window_seconds is None
    assert_json_error(api.patch("/api/scoring-rules/99999", {"points": 1}, format="json"), 404)
    assert_json_error(api.get("/api/scoring-rules/99999999999999999999999"), 404)


def test_delete_rule(api):
    rule = ScoringRule.objects.get(event_type="PURCHASE")
    assert api.delete(f"/api/scoring-rules/{rule.id}").status_code == 204
    assert not ScoringRule.objects.filter(pk=rule.pk).exists()
    assert_json_error(api.delete(f"/api/scoring-rules/{rule.id}"), 404)
    changes = api.get("/api/rule-sets/draft").json()["changes"]
    assert [(c["kind"], c["change"], c["label"]) for c in changes] == [("rule", "removed", "PURCHASE")]


def test_staff_without_change_permission_cannot_edit_rules():
    viewer = get_user_model().objects.create_user("viewer", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_scoringrule"))
    client = APIClient()
    client.force_login(viewer)
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    assert client.get("/api/scoring-rules").status_code == 200
    response = client.patch(f"/api/scoring-rules/{rule.id}", {"points": 1}, format="json")
    assert response.status_code == 403
    assert "permission" in response.json()["detail"]
    assert client.post("/api/scoring-rules", {"event_type": "X", "points": 1}, format="json").status_code == 403
    assert client.delete(f"/api/scoring-rules/{rule.id}").status_code == 403
    assert client.post("/api/fit-rules", {"points": 1, "conditions": []}, format="json").status_code == 403
    rule.refresh_from_db()
    assert rule.points == 5


def test_delete_needs_the_delete_permission():
    # given a staff user who may change rules but not delete them
    editor = get_user_model().objects.create_user("editor", password="pw-123456", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_scoringrule"))
    client = APIClient()
    client.force_login(editor)
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    # then a change is allowed and a delete is not
    assert client.patch(f"/api/scoring-rules/{rule.id}", {"points": 6}, format="json").status_code == 200
    response = client.delete(f"/api/scoring-rules/{rule.id}")
    assert response.status_code == 403 and "scoring.delete_scoringrule" in response.json()["detail"]
    assert ScoringRule.objects.filter(pk=rule.pk).exists()


# --- fit rules ---------------------------------------------------------------------------------

HAS_COMPANY = {"field": "company", "op": "exists", "value": True}


def test_fit_rule_crud(api):
    response = api.post("/api/fit-rules", {"name": "has company", "points": 20, "conditions": [HAS_COMPANY]},
                        format="json")
    assert response.status_code == 201, response.content
    rule_id = response.json()["id"]
    body = api.get("/api/fit-rules").json()
    assert (body["draft"], body["current_version"]) == (True, 1)
    assert [(r["id"], r["name"], r["points"]) for r in body["results"]] == [(rule_id, "has company", 20)]
    assert api.get(f"/api/fit-rules/{rule_id}").json()["conditions"] == [HAS_COMPANY]
    assert api.patch(f"/api/fit-rules/{rule_id}", {"points": 30}, format="json").json()["points"] == 30
    response = api.put(f"/api/fit-rules/{rule_id}", {"points": 10, "conditions": [
        {"field": "free_mail", "op": "equals", "value": False}]}, format="json")
    assert response.status_code == 200 and FitRule.objects.get().points == 10
    assert api.delete(f"/api/fit-rules/{rule_id}").status_code == 204
    assert not FitRule.objects.exists()
    assert_json_error(api.get(f"/api/fit-rules/{rule_id}"), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"points": 10}, "conditions"),
        ({"points": 10, "conditions": []}, "conditions"),
        ({"points": 500, "conditions": [HAS_COMPANY]}, "points"),
        ({"points": -101, "conditions": [HAS_COMPANY]}, "points"),
        ({"conditions": [HAS_COMPANY]}, "points"),
        ({"points": 10, "conditions": [{**HAS_COMPANY, "field": "metadata.company"}]}, "conditions[0].field"),
        ({"points": 10, "conditions": [{**HAS_COMPANY, "op": "near"}]}, "conditions[0].op"),
        ({"points": 10, "conditions": [HAS_COMPANY], "priority": -(10**12)}, "priority"),
    ],
)
def test_fit_rule_validates_naming_the_field(api, body, field):
    assert_json_error(api.post("/api/fit-rules", body, format="json"), 400, field)
    assert not FitRule.objects.exists()
