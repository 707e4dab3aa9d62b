"""Lead API: create, list/search/filter/order, detail, leaderboard, score history."""

import uuid

import pytest

from conftest import event_payload
from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_lead_lowercases_and_409s_on_duplicate(api):
    response = api.post("/api/leads", {"email": "Bob@Example.COM", "first_name": "Bob", "company": "Acme"}, format="json")
    assert response.status_code == 201
    assert response.json()["email"] == "bob@example.com"
    assert response.json()["current_score"] == 0
    again = api.post("/api/leads", {"email": "bob@example.com"}, format="json")
    assert again.status_code == 409
    assert again.json()["lead_id"] == response.json()["id"]
    assert "email" in again.json()["errors"]


@pytest.mark.parametrize(
    "body, field",
    [({}, "email"), ({"email": "nope"}, "email"), ({"email": "a@b.co", "max_score": -1}, "max_score")],
)
def test_create_lead_validates(api, body, field):
    response = api.post("/api/leads", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_list_search_filter_order_paginate(api):
    for i, (email, company) in enumerate([("a@x.com", "Acme"), ("b@x.com", "Globex"), ("c@x.com", "Acme Labs")]):
        Lead.objects.create(email=email, company=company, current_score=i * 10)
    body = api.get("/api/leads", {"search": "acme", "ordering": "current_score"}).json()
    assert [lead["email"] for lead in body["results"]] == ["a@x.com", "c@x.com"]
    body = api.get("/api/leads", {"min_score": 5, "max_score": 15}).json()
    assert [lead["email"] for lead in body["results"]] == ["b@x.com"]
    body = api.get("/api/leads", {"page_size": 1, "page": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 1
    assert api.get("/api/leads", {"min_score": "x"}).status_code == 400
    assert api.get("/api/leads", {"ordering": "password"}).status_code == 400
    assert api.get("/api/leads", {"min_score": 9, "max_score": 1}).status_code == 400
    assert api.get("/api/leads", {"page": 99}).status_code == 404


def test_detail_and_404(api):
    lead = Lead.objects.create(email="a@x.com")
    assert api.get(f"/api/leads/{lead.id}").json()["id"] == str(lead.id)
    assert api.get(f"/api/leads/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/leads/not-a-uuid").status_code == 404
    assert api.get("/api/nothing-here").json()["detail"].startswith("No API endpoint")


def test_leaderboard(api):
    for i in range(5):
        Lead.objects.create(email=f"l{i}@x.com", current_score=i)
    body = api.get("/api/leads/leaderboard", {"limit": 3}).json()
    assert [(row["rank"], row["current_score"]) for row in body["results"]] == [(1, 4), (2, 3), (3, 2)]
    assert api.get("/api/leads/leaderboard", {"limit": 0}).status_code == 400
    assert api.get("/api/leads/leaderboard", {"limit": "many"}).status_code == 400


def test_score_history(api):
    api.post("/api/events", event_payload("a"), format="json")
    api.post("/api/events", event_payload("b", minutes=1, event_type="DEMO_REQUEST"), format="json")
    lead = Lead.objects.get()
    history = api.get(f"/api/leads/{lead.id}/score-history").json()["results"]
    assert [(h["event_id"], h["previous_score"], h["new_score"], h["delta"]) for h in history] == [
        ("b", 5, 55, 50),
        ("a", 0, 5, 5),
    ]
    assert history[0]["reason"] == "DEMO_REQUEST +50"
    assert api.get(f"/api/leads/{uuid.uuid4()}/score-history").status_code == 404


def test_score_history_shows_a_rescore_without_event(api, publish):
    from scoring.models import ScoringRule
    from scoring.services import leads_rescore

    api.post("/api/events", event_payload("a"), format="json")
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=9)
    publish()
    lead = Lead.objects.get()
    leads_rescore(lead_ids=[lead.id])
    latest = api.get(f"/api/leads/{lead.id}/score-history").json()["results"][0]
    assert (latest["event_id"], latest["event_type"], latest["delta"]) == (None, "RESCORE", 4)
