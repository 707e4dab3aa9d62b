"""Scoring rules API: list, create, update; session users need the model permission to write."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from conftest import event_payload
from leads.models import Lead
from scoring.models import ScoringRule

pytestmark = pytest.mark.django_db(transaction=True)


def test_list_has_the_defaults(api):
    rules = {r["event_type"]: r["points"] for r in api.get("/api/scoring-rules").json()["results"]}
    assert rules == {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}


def test_create_rule_and_use_it(api):
    response = api.post("/api/scoring-rules", {"event_type": "webinar_join", "points": 15}, format="json")
    assert response.status_code == 201
    assert response.json()["event_type"] == "WEBINAR_JOIN"
    assert api.post("/api/events", event_payload("a", event_type="WEBINAR_JOIN"), format="json").status_code == 202
    assert Lead.objects.get().current_score == 15


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "PAGE_VIEW", "points": 1}, "event_type"),
        ({"event_type": "bad type!", "points": 1}, "event_type"),
        ({"event_type": "OK"}, "points"),
        ({"event_type": "OK", "points": "many"}, "points"),
    ],
)
def test_create_rule_validates(api, body, field):
    response = api.post("/api/scoring-rules", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_put_and_patch(api):
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    response = api.patch(f"/api/scoring-rules/{rule.id}", {"points": 8}, format="json")
    assert response.status_code == 200 and response.json()["points"] == 8
    response = api.put(
        f"/api/scoring-rules/{rule.id}", {"event_type": "PAGE_VIEW", "points": 9, "enabled": False}, format="json"
    )
    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.points, rule.enabled) == (9, False)
    assert api.put(f"/api/scoring-rules/{rule.id}", {"points": 1}, format="json").status_code == 400
    assert api.patch("/api/scoring-rules/99999", {"points": 1}, format="json").status_code == 404


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
    rule.refresh_from_db()
    assert rule.points == 5
