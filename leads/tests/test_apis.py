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


# --- fit score, grade, filters, breakdown (issue #10) ------------------------------------------


def test_create_lead_with_job_title_gets_its_fit_and_grade(api, publish):
    # given a published fit rule on the job title
    from scoring.models import FitRule

    FitRule.objects.create(name="VP", points=50, conditions=[{"field": "job_title", "op": "contains", "value": "VP"}])
    publish()
    # when a lead with a matching job title is created
    response = api.post("/api/leads", {"email": "vp@acme.com", "job_title": "VP Sales"}, format="json")
    # then the answer carries the fit score (50: a B) and the grade (engagement 4: no score)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["job_title"], body["fit_score"], body["grade"], body["current_score"], body["behaviour_score"]) == (
        "VP Sales", 50, "B4", 0, 0)
    assert body["rule_version"] == 2
    assert api.get(f"/api/leads/{body['id']}").json()["fit_score"] == 50


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "a@b.co", "job_title": "x" * 201}, "job_title"),
        ({"email": "a@b.co", "job_title": 5 * ["x"]}, "job_title"),
    ],
)
def test_create_lead_validates_job_title(api, body, field):
    response = api.post("/api/leads", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_create_lead_refuses_text_no_database_stores(api):
    response = api.post("/api/leads", '{"email": "a@b.co", "company": "\\ud800"}', content_type="application/json")
    assert response.status_code == 400 and "company" in response.json()["errors"]
    assert not Lead.objects.exists()


GRADED = [("a1@x.com", "A1", 80, 400), ("a3@x.com", "A3", 65, 50), ("b1@x.com", "B1", 45, 350), ("d4@x.com", "D4", 0, 0)]


@pytest.fixture
def graded_leads(db):
    for email, grade, fit, score in GRADED:
        Lead.objects.create(email=email, grade=grade, fit_score=fit, current_score=score)


@pytest.mark.parametrize(
    "params, emails",
    [
        ({"grade": "A1"}, ["a1@x.com"]),
        ({"grade": "a1"}, ["a1@x.com"]),
        ({"grade": "A"}, ["a1@x.com", "a3@x.com"]),
        ({"grade": "1"}, ["a1@x.com", "b1@x.com"]),
        ({"grade": "C"}, []),
        ({"grade": ""}, ["a1@x.com", "b1@x.com", "a3@x.com", "d4@x.com"]),
        ({"min_fit": 50}, ["a1@x.com", "a3@x.com"]),
        ({"max_fit": 10}, ["d4@x.com"]),
        ({"min_fit": 40, "max_fit": 70, "ordering": "-fit_score"}, ["a3@x.com", "b1@x.com"]),
        ({"ordering": "fit_score"}, ["d4@x.com", "b1@x.com", "a3@x.com", "a1@x.com"]),
        ({"ordering": "grade"}, ["a1@x.com", "a3@x.com", "b1@x.com", "d4@x.com"]),
        ({"ordering": "-grade"}, ["d4@x.com", "b1@x.com", "a3@x.com", "a1@x.com"]),
        ({"grade": "1", "min_score": 380}, ["a1@x.com"]),
    ],
)
def test_list_filters_by_grade_and_fit(api, graded_leads, params, emails):
    body = api.get("/api/leads", params).json()
    assert [lead["email"] for lead in body["results"]] == emails


@pytest.mark.parametrize(
    "params, field",
    [
        ({"grade": "E"}, "grade"),
        ({"grade": "A5"}, "grade"),
        ({"grade": "A12"}, "grade"),
        ({"grade": "1A"}, "grade"),
        ({"min_fit": -1}, "min_fit"),
        ({"max_fit": 101}, "max_fit"),
        ({"min_fit": "x"}, "min_fit"),
        ({"min_fit": 60, "max_fit": 50}, "min_fit"),
        ({"ordering": "fold_state"}, "ordering"),
    ],
)
def test_list_filter_errors_name_the_parameter(api, params, field):
    response = api.get("/api/leads", params)
    assert response.status_code == 400 and field in response.json()["errors"]


def test_leaderboard_returns_fit_and_grade_in_a_constant_number_of_queries(api, graded_leads):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api.get("/api/leads/leaderboard")  # the API key is verified (and remembered) once
    with CaptureQueriesContext(connection) as four:
        rows = api.get("/api/leads/leaderboard").json()["results"]
    assert [(r["rank"], r["email"], r["grade"], r["fit_score"]) for r in rows] == [
        (1, "a1@x.com", "A1", 80), (2, "b1@x.com", "B1", 45), (3, "a3@x.com", "A3", 65), (4, "d4@x.com", "D4", 0)]
    assert {"job_title", "behaviour_score", "score_as_of", "rule_version"} <= set(rows[0])
    for i in range(6):
        Lead.objects.create(email=f"more{i}@x.com")
    with CaptureQueriesContext(connection) as ten:
        assert len(api.get("/api/leads/leaderboard").json()["results"]) == 10
    assert len(ten.captured_queries) == len(four.captured_queries)


def test_score_breakdown_sums_to_the_score(api, publish):
    # given a conditional rule (+15 for /pricing page views) and a cap (EMAIL_OPEN counts twice), published
    from scoring.models import ScoringRule

    ScoringRule.objects.create(name="pricing", event_type="PAGE_VIEW", points=15,
                               conditions=[{"field": "metadata.url", "op": "contains", "value": "/pricing"}])
    ScoringRule.objects.filter(event_type="EMAIL_OPEN").update(cap_count=2)
    publish()
    # when a lead views /pricing and /blog and opens three e-mails
    events = [
        event_payload("p1", metadata={"url": "https://x.com/pricing"}),
        event_payload("p2", minutes=1, metadata={"url": "https://x.com/blog"}),
        *(event_payload(f"e{i}", event_type="EMAIL_OPEN", minutes=2 + i) for i in range(3)),
    ]
    assert api.post("/api/events/batch", events, format="json").status_code in (200, 202, 207)
    lead = Lead.objects.get()
    assert lead.current_score == 5 + 15 + 5 + 10 + 10
    # then the breakdown lists each rule and sums to the stored score
    body = api.get(f"/api/leads/{lead.id}/score-breakdown").json()
    items = {item["name"]: item for item in body["rules"]}
    assert (items["pricing"]["events_matched"], items["pricing"]["points"]) == (1, 15)
    assert (items["PAGE_VIEW"]["events_counted"], items["PAGE_VIEW"]["points"]) == (2, 10)
    opens = items["EMAIL_OPEN"]
    assert (opens["events_matched"], opens["events_counted"], opens["events_capped"], opens["points"]) == (3, 2, 1, 20)
    total = sum(item["points"] for item in body["rules"]) + body["clamp_adjustment"] + body["rounding_adjustment"]
    assert total == body["score"] == body["stored_score"] == lead.current_score == 45
    assert body["consistent"] is True and body["rule_version"] == 2


def test_score_breakdown_of_a_clamped_lead(api):
    # given a lead whose events exceed its max score
    lead = api.post("/api/leads", {"email": "ann@example.com", "max_score": 60}, format="json").json()
    api.post("/api/events/batch", [event_payload(f"d{i}", event_type="DEMO_REQUEST", minutes=i) for i in range(2)],
             format="json")
    # then the clamp shows as an adjustment and the items still sum to the score
    body = api.get(f"/api/leads/{lead['id']}/score-breakdown/").json()
    assert (body["score"], body["clamp_adjustment"]) == (60, -40)
    assert sum(item["points"] for item in body["rules"]) + body["clamp_adjustment"] + body["rounding_adjustment"] == 60


def test_score_breakdown_of_an_unknown_lead_is_a_json_404(api):
    response = api.get(f"/api/leads/{uuid.uuid4()}/score-breakdown")
    assert response.status_code == 404 and "lead_id" in response.json()["errors"]
    response = api.get("/api/leads/not-a-uuid/score-breakdown")
    assert response.status_code == 404 and response.json()["detail"]
