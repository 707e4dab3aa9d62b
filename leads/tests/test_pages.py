"""Operator pages rendered by Django: access rules, filters, export, the add form, detail data.
(The same pages in a real browser, live: test_browser.py.)"""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone

from conftest import T0
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring.models import ScoreChange

pytestmark = pytest.mark.django_db

PAGES = ["/", "/leads/", "/leads/new/", "/leaderboard/", "/events/", "/rules/", "/leads/export.csv"]


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def viewer_client(client):
    user = get_user_model().objects.create_user("vic", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name="Viewers"))
    client.force_login(user)
    return client


def ingest(django_capture_on_commit_callbacks, *events):
    """Store events through the real ingest and score them (inline queue) once the 'commit' runs."""
    with django_capture_on_commit_callbacks(execute=True):
        result = event_ingest(items=list(events), source="test")
    assert all(item.status == "accepted" for item in result.items), [i.errors for i in result.items]


def event(event_id, email, event_type="PAGE_VIEW", minutes=0):
    return {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "email": email,
    }


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_redirected_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_signed_in_non_staff_gets_the_403_page(client, path):
    client.force_login(get_user_model().objects.create_user("pat", password="pw-123456"))
    response = client.get(path)
    assert response.status_code == 403
    assert b"is not a staff account" in response.content


@pytest.mark.parametrize("path", [p for p in PAGES if p != "/leads/export.csv"])
def test_every_page_renders_designed_empty_states(staff_client, path):
    response = staff_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="app-shell"' in html and "Sign out" in html
    if path in {"/leads/", "/events/"}:
        assert "empty-state" in html


def test_pages_render_with_data(staff_client, django_capture_on_commit_callbacks):
    ingest(django_capture_on_commit_callbacks, event("e1", "ann@example.com", "DEMO_REQUEST"), event("e2", "bob@example.com"))
    lead = Lead.objects.get(email="ann@example.com")
    for path in ["/", "/leads/", f"/leads/{lead.id}/", "/leaderboard/", "/events/", "/rules/"]:
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert b"ann@example.com" in response.content or path == "/rules/"


def test_unknown_lead_is_a_designed_404(staff_client):
    response = staff_client.get("/leads/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert b"Nothing here" in response.content


def make_leads(count):
    Lead.objects.bulk_create(
        [
            Lead(email=f"lead{i:03d}@{'acme' if i % 3 == 0 else 'globex'}.com", company="Acme" if i % 3 == 0 else "Globex",
                 first_name=f"N{i}", current_score=i * 10)
            for i in range(count)
        ]
    )


def emails(response):
    return re.findall(r'class="cell-primary" href="/leads/[0-9a-f-]+/">([^<]+)</a>', response.content.decode())


def test_leads_search_filter_sort_and_paginate(staff_client):
    make_leads(70)
    first = staff_client.get("/leads/")
    assert len(emails(first)) == 50 and emails(first)[0] == "lead069@acme.com"  # score, highest first
    assert b"1\xe2\x80\x9350 of 70 leads" in first.content
    second = staff_client.get("/leads/", {"page": 2})
    assert len(emails(second)) == 20
    found = staff_client.get("/leads/", {"q": "ACME", "min_score": 100, "max_score": 400, "o": "current_score"})
    rows = emails(found)
    assert rows and all("acme" in e for e in rows)
    scores = [Lead.objects.get(email=e).current_score for e in rows]
    assert scores == sorted(scores) and all(100 <= s <= 400 for s in scores)
    assert b'aria-sort="ascending"' in found.content
    by_email = staff_client.get("/leads/", {"o": "-email"})
    assert emails(by_email)[:2] == ["lead069@acme.com", "lead068@globex.com"]


def test_leads_htmx_request_gets_only_the_table(staff_client):
    make_leads(3)
    response = staff_client.get("/leads/", {"q": "acme"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section data-region="lead-table"') and "app-shell" not in html


@pytest.mark.parametrize(
    "params, field, shown",
    [({"min_score": "abc"}, "min_score", 3), ({"max_score": "-3"}, "max_score", 3),
     ({"min_score": 15, "max_score": 10}, "max_score", 1),  # the min still applies
     ({"o": "password"}, "o", 3)],
)
def test_bad_filters_are_shown_inline_and_ignored(staff_client, params, field, shown):
    make_leads(3)
    response = staff_client.get("/leads/", params)
    assert response.status_code == 200
    assert len(emails(response)) == shown
    assert b"Some filters are not valid" in response.content
    if field in {"min_score", "max_score"}:
        assert f'id="id_{field}_error"'.encode() in response.content


def test_leads_page_query_count_is_fixed(staff_client, django_assert_num_queries):
    make_leads(120)
    staff_client.get("/leads/")  # warm the session
    # session, user, COUNT, the page of rows
    with django_assert_num_queries(4):
        staff_client.get("/leads/", {"q": "acme", "min_score": 10, "page": 2})


def read_csv(response):
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_streams_the_current_filter_and_defuses_formulas(staff_client):
    make_leads(6)
    Lead.objects.create(email="evil@acme.com", company="=HYPERLINK(\"http://x\")", first_name="+cmd", last_name="@SUM(1)",
                        phone="-1+2", current_score=999)
    response = staff_client.get("/leads/export.csv", {"q": "acme", "o": "-current_score"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    header, body = rows[0], rows[1:]
    assert header[:3] == ["id", "email", "first_name"]
    assert [r[1] for r in body] == ["evil@acme.com", "lead003@acme.com", "lead000@acme.com"]
    evil = dict(zip(header, body[0]))
    assert evil["company"] == "'=HYPERLINK(\"http://x\")"
    assert evil["first_name"] == "'+cmd" and evil["last_name"] == "'@SUM(1)" and evil["phone"] == "'-1+2"
    assert evil["current_score"] == "999"


def test_viewer_may_export_but_not_add(viewer_client):
    make_leads(2)
    assert len(read_csv(viewer_client.get("/leads/export.csv"))) == 3
    assert viewer_client.get("/leads/new/").status_code == 403
    assert viewer_client.post("/leads/new/", {"email": "x@y.com", "max_score": 10}).status_code == 403
    assert not Lead.objects.filter(email="x@y.com").exists()
    assert b"Add lead" not in viewer_client.get("/leads/").content


def test_add_lead_creates_through_the_service_and_redirects(staff_client):
    response = staff_client.post("/leads/new/", {"email": " New@Example.com ", "first_name": "New", "max_score": 500})
    lead = Lead.objects.get(email="new@example.com")
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.id}/"
    assert lead.max_score == 500 and lead.current_score == 0


@pytest.mark.parametrize(
    "data, field",
    [({"email": "nope", "max_score": 10}, "email"), ({"email": "a@b.co", "max_score": -1}, "max_score"),
     ({"email": "", "max_score": 10}, "email"), ({"email": "a@b.co", "max_score": "lots"}, "max_score"),
     ({"email": "a@b.co", "max_score": 10, "company": "x" * 201}, "company")],
)
def test_add_lead_errors_are_inline(staff_client, data, field):
    response = staff_client.post("/leads/new/", data)
    assert response.status_code == 400
    assert f'id="id_{field}_error"'.encode() in response.content
    assert not Lead.objects.exists()


def test_add_lead_duplicate_links_the_existing_lead(staff_client):
    existing = Lead.objects.create(email="dup@example.com")
    response = staff_client.post("/leads/new/", {"email": "DUP@example.com", "max_score": 10})
    assert response.status_code == 400
    assert b"already exists" in response.content and f"/leads/{existing.id}/".encode() in response.content


def timeline(response):
    match = re.search(r'<script id="timeline-data" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    return json.loads(match.group(1))


def test_lead_detail_shows_events_audit_and_the_event_time_chart(staff_client, django_capture_on_commit_callbacks):
    ingest(django_capture_on_commit_callbacks, event("a", "ann@example.com", minutes=0), event("c", "ann@example.com", "FORM_SUBMIT", minutes=20))
    # Late: happened between a and c, arrives after c was scored.
    ingest(django_capture_on_commit_callbacks, event("b", "ann@example.com", "EMAIL_OPEN", minutes=10))
    lead = Lead.objects.get(email="ann@example.com")
    assert lead.current_score == 35
    response = staff_client.get(f"/leads/{lead.id}/")
    html = response.content.decode()
    assert 'data-ws-url="/ws/leads/%s/"' % lead.id in html
    assert html.count('data-event-id="') == 3 and "badge--late" in html
    assert "late EMAIL_OPEN +10: re-folded from its event time (1 later event)" in html
    # Chart points in event time, with the late event in its place and c's checkpoint re-folded.
    assert [p["y"] for p in timeline(response)] == [5, 15, 35]
    assert timeline(response)[1]["x"] == "2026-01-01T12:10:00Z"


def test_dashboard_figures(staff_client, django_capture_on_commit_callbacks):
    with override_settings(TARGETGRID_STAGES=[("WARM", 10), ("HOT", 50)]):
        ingest(
            django_capture_on_commit_callbacks,
            event("1", "a@x.com", "DEMO_REQUEST"),
            event("2", "b@x.com", "EMAIL_OPEN"),
            event("3", "c@x.com"),
        )
        Event.objects.update(received_at=timezone.now())
        response = staff_client.get("/")
    html = response.content.decode()
    assert re.search(r'data-kpi="leads">3<', html)
    assert re.search(r'data-kpi="events-today">3<', html)
    assert re.search(r'data-kpi="events-per-minute">0.6<', html)
    assert re.search(r'data-kpi="average-score">21.7<', html)
    assert re.search(r'data-kpi="stage-warm">2<', html) and re.search(r'data-kpi="stage-hot">1<', html)
    charts = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert sum(charts["distribution"]["values"]) == 3 and len(charts["per_hour"]) == 24
    assert charts["per_hour"][-1]["y"] == 3
    assert html.count('class="feed__item"') == 3


def test_events_page_filters(staff_client, django_capture_on_commit_callbacks):
    ingest(django_capture_on_commit_callbacks, event("p1", "a@x.com"), event("e1", "a@x.com", "EMAIL_OPEN", minutes=1))
    Event.objects.filter(event_id="p1").update(received_at=timezone.now() - timedelta(hours=3))
    Event.objects.create(event_id="pend", lead=Lead.objects.get(), event_type="PAGE_VIEW", timestamp=T0)

    def ids(params):
        return re.findall(r'data-event-id="([^"]+)"', staff_client.get("/events/", params).content.decode())

    assert ids({}) == ["pend", "e1", "p1"]
    assert ids({"type": "PAGE_VIEW"}) == ["pend", "p1"]
    assert ids({"status": "pending"}) == ["pend"]
    assert ids({"range": "1h"}) == ["pend", "e1"]
    response = staff_client.get("/events/", {"type": "NOPE", "status": "weird"})
    assert response.status_code == 200 and b'aria-invalid="true"' in response.content


def test_events_page_includes_the_upload_form_only_when_it_exists(staff_client, monkeypatch):
    from events import views

    monkeypatch.setattr(views, "UPLOAD_TEMPLATE", "events/_no_such_template.html")
    response = staff_client.get("/events/")
    assert response.status_code == 200 and b'aria-label="Import events from a file"' not in response.content
    monkeypatch.setattr(views, "UPLOAD_TEMPLATE", "partials/score.html")  # stands in for events/_upload.html
    response = staff_client.get("/events/")
    assert b'aria-label="Import events from a file"' in response.content and b"data-score-bar" in response.content


def test_rules_page_for_viewers_and_operators(viewer_client, client):
    html = viewer_client.get("/rules/").content.decode()
    assert "can view the rules but not change them" in html and "PAGE_VIEW" in html
    assert "/admin/scoring/scoringrule/1/change/" not in html
    operator = get_user_model().objects.create_user("olga", password="pw-123456", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operators"))
    client.force_login(operator)
    html = client.get("/rules/").content.decode()
    assert "Edit rules in the admin" in html and "/change/" in html
