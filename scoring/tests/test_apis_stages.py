"""The stages API (/api/stages, /api/stages/settings) and the lead API's stage fields, filter,
ordering and stage-change audit: readers read, rule editors edit, every error is JSON naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from leads.models import Lead
from scoring.models import RescoreJob, Stage, StageChange, StageSettings

from .test_apis import assert_json_error
from .test_stages import default_stages, seed_scores  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_stages")]


def client_in(group: str | None, username: str) -> APIClient:
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = APIClient()
    client.force_login(user)
    return client


def test_any_reader_lists_the_stages_coldest_first_with_their_lead_counts(api):
    seed_scores(10, 50, 150, 160)
    for client in (api, client_in("Viewers", "vic")):
        body = client.get("/api/stages").json()
        assert [(row["name"], row["min_score"], row["lead_count"]) for row in body["results"]] == [
            ("Cold", None, 1), ("Warm", 40, 1), ("MQL", 100, 2), ("SQL", 300, 0),
        ]
        assert body["stage_version"] == StageSettings.objects.get(pk=1).version
    assert_json_error(APIClient().get("/api/stages"), 401)


def test_an_operator_creates_and_changes_a_stage_and_gets_the_restage_job():
    ops = client_in("Operators", "olga")
    version = StageSettings.objects.get(pk=1).version
    # when an operator adds a hot stage,
    response = ops.post("/api/stages", {"name": "Hot", "position": 50, "min_score": 600, "color": "red"}, format="json")
    # then it is created, the settings version grows and a restage job (to that version) is returned.
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["min_score"], body["stage_version"]) == ("Hot", 600, version + 1)
    job = RescoreJob.objects.get(pk=body["restage_job"]["id"])
    assert (job.kind, job.version, body["restage_job"]["kind"]) == ("restage", version + 1, "restage")
    # and a change (PATCH) is one more version.
    response = ops.patch(f"/api/stages/{body['id']}", {"min_score": 700}, format="json")
    assert response.status_code == 200 and response.json()["stage_version"] == version + 2
    assert Stage.objects.get(name="Hot").min_score == 700


def test_viewers_cannot_edit_stages_and_operators_cannot_delete_them():
    viewer, ops = client_in("Viewers", "vic"), client_in("Operators", "olga")
    mql = Stage.objects.get(name="MQL")
    assert_json_error(viewer.post("/api/stages", {"name": "Hot", "min_score": 600}, format="json"), 403)
    assert_json_error(viewer.patch(f"/api/stages/{mql.pk}", {"min_score": 1}, format="json"), 403)
    assert_json_error(viewer.put("/api/stages/settings", {"score_thresholds": [5]}, format="json"), 403)
    assert_json_error(ops.delete(f"/api/stages/{mql.pk}"), 403)  # as deleting a rule: superusers only
    assert Stage.objects.get(pk=mql.pk).min_score == 100


def test_an_api_key_and_a_superuser_may_delete_a_stage(api):
    response = api.delete(f"/api/stages/{Stage.objects.get(name='SQL').pk}")
    assert response.status_code == 200 and response.json()["restage_job"]["kind"] == "restage"
    assert not Stage.objects.filter(name="SQL").exists()
    assert_json_error(api.delete("/api/stages/999999"), 404)


@pytest.mark.parametrize("payload, field", [
    ({"name": "mql", "min_score": 5}, "name"),  # differs only in case
    ({"name": "ＭＱＬ", "min_score": 5}, "name"),  # full-width
    ({"name": "", "min_score": 5}, "name"),
    ({"name": "Hot", "min_fit": 101}, "min_fit"),
    ({"name": "Hot", "min_score": "many"}, "min_score"),
    ({"name": "Hot", "color": "pink"}, "color"),
    ({"name": "x" * 65}, "name"),
    ({"name": "Hot", "position": 10**12}, "position"),
])
def test_bad_stages_are_a_400_naming_the_field(api, payload, field):
    assert_json_error(api.post("/api/stages", payload, format="json"), 400, field)
    assert Stage.objects.count() == 4


def test_the_score_thresholds_are_read_and_set(api):
    assert api.get("/api/stages/settings").json()["score_thresholds"] == []
    response = api.put("/api/stages/settings", {"score_thresholds": [150, 50]}, format="json")
    assert response.status_code == 200 and response.json()["score_thresholds"] == [50, 150]
    assert response.json()["restage_job"]["kind"] == "restage"
    assert_json_error(api.put("/api/stages/settings", {"score_thresholds": ["x"]}, format="json"), 400,
                      "score_thresholds")
    assert_json_error(api.put("/api/stages/settings", {}, format="json"), 400, "score_thresholds")
    assert_json_error(api.put("/api/stages/settings", {"score_thresholds": list(range(21))}, format="json"), 400,
                      "score_thresholds")


# --- the lead API ------------------------------------------------------------------------------------


def emails(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["email"] for row in response.json()["results"]]


def test_leads_filter_by_stage_exactly_several_at_once(api):
    seed_scores(10, 50, 150, 400)
    assert emails(api.get("/api/leads", {"stage": "MQL"})) == ["s2@example.com"]
    assert emails(api.get("/api/leads", {"stage": "MQL,SQL"})) == ["s3@example.com", "s2@example.com"]
    assert emails(api.get("/api/leads?stage=Cold&stage=SQL")) == ["s3@example.com", "s0@example.com"]
    # names are exact: another case (which MariaDB's collation would match) is an unknown stage
    body = assert_json_error(api.get("/api/leads", {"stage": "mql"}), 400, "stage")
    assert "mql" in str(body["errors"]["stage"])
    assert_json_error(api.get("/api/leads", {"stage": ""}), 400, "stage")
    assert_json_error(api.get("/api/leads", {"stage": ","}), 400, "stage")


def test_leads_carry_their_stage_and_order_by_when_they_entered_it(api):
    a, b, c = seed_scores(10, 50, 150)
    now = timezone.now()
    for lead, minutes in ((a, 5), (b, 30), (c, 1)):
        Lead.objects.filter(pk=lead.pk).update(stage_entered_at=now - timedelta(minutes=minutes))
    rows = api.get("/api/leads", {"ordering": "-stage_entered_at"}).json()["results"]
    assert [row["email"] for row in rows] == [c.email, a.email, b.email]
    assert [row["stage"] for row in rows] == ["MQL", "Cold", "Warm"]
    assert all(row["stage_entered_at"] for row in rows)
    assert emails(api.get("/api/leads", {"ordering": "stage_entered_at"})) == [b.email, a.email, c.email]
    assert_json_error(api.get("/api/leads", {"ordering": "stage"}), 400, "ordering")


def test_a_leads_stage_changes_newest_first_paginated_and_in_its_detail(api):
    [lead] = seed_scores(150)
    now = timezone.now()
    for n, (before, after) in enumerate([("Cold", "Warm"), ("Warm", "MQL"), ("MQL", "Warm"), ("Warm", "MQL")] * 2):
        StageChange.objects.create(lead=lead, from_stage=before, to_stage=after, direction="up", score=n,
                                   cause="event", event_ref=f"e-{n}", stage_version=1, created_at=now)
    page = api.get(f"/api/leads/{lead.id}/stage-changes", {"page_size": 3}).json()
    assert page["count"] == 8 and [row["event_id"] for row in page["results"]] == ["e-7", "e-6", "e-5"]
    assert set(page["results"][0]) >= {"from_stage", "to_stage", "direction", "cause", "score", "created_at"}
    detail = api.get(f"/api/leads/{lead.id}").json()
    assert (detail["stage"], len(detail["stage_changes"]), detail["stage_changes"][0]["event_id"]) == ("MQL", 5, "e-7")
    assert_json_error(api.get("/api/leads/00000000-0000-0000-0000-000000000000/stage-changes"), 404)
