"""Operator pages rendered by Django: access rules, filters, export, the add form, detail data.
(The same pages in a real browser, live: test_browser.py.)"""

import csv
import io
import json
import re
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F
from django.utils import timezone

from conftest import T0
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring.models import ScoreChange, Stage, StageSettings

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
    # session, user, the stages (filter menu and badge colours), COUNT, the page of rows
    with django_assert_num_queries(5):
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
    # Given the operators' stages WARM >= 10 and HOT >= 50 (nothing below 10),
    Stage.objects.all().delete()
    Stage.objects.create(name="WARM", position=1, min_score=10)
    Stage.objects.create(name="HOT", position=2, min_score=50)
    StageSettings.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
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
    # (the leads per stored stage: a is HOT, b WARM, c in no stage)
    assert re.search(r'data-kpi="stage-warm">1<', html) and re.search(r'data-kpi="stage-hot">1<', html)
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


# ---- fit score, grade and "Why this score" (issue #10) ------------------------------------------


def make_graded_leads():
    Lead.objects.bulk_create(
        [
            Lead(email="a1@x.com", current_score=400, fit_score=80, grade="A1"),
            Lead(email="a3@x.com", current_score=50, fit_score=65, grade="A3"),
            Lead(email="b2@x.com", current_score=150, fit_score=45, grade="B2"),
            Lead(email="b4@x.com", current_score=5, fit_score=40, grade="B4"),
            Lead(email="d2@x.com", current_score=120, fit_score=0, grade="D2"),
        ]
    )


def grades(response):
    return re.findall(r'<span class="grade grade--[a-d]" data-grade [^>]*><span class="visually-hidden">Grade </span>([A-D][1-4])</span>',
                      response.content.decode())


def test_lead_list_shows_grade_and_fit_beside_the_score(staff_client):
    make_graded_leads()
    response = staff_client.get("/leads/")
    assert emails(response) == ["a1@x.com", "b2@x.com", "d2@x.com", "a3@x.com", "b4@x.com"]
    assert grades(response) == ["A1", "B2", "D2", "A3", "B4"]
    assert re.findall(r'data-fit>(\d+)<', response.content.decode()) == ["80", "45", "0", "65", "40"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"grade": "B"}, ["b2@x.com", "b4@x.com"]),  # a fit letter: B1-B4
        ({"grade": "b2"}, ["b2@x.com"]),  # an exact grade, any case
        ({"grade": "A", "min_score": 100}, ["a1@x.com"]),
        ({"min_fit": 40, "max_fit": 65}, ["b2@x.com", "a3@x.com", "b4@x.com"]),
        ({"o": "-fit_score"}, ["a1@x.com", "a3@x.com", "b2@x.com", "b4@x.com", "d2@x.com"]),
        ({"o": "fit_score"}, ["d2@x.com", "b4@x.com", "b2@x.com", "a3@x.com", "a1@x.com"]),
        ({"o": "grade"}, ["a1@x.com", "a3@x.com", "b2@x.com", "b4@x.com", "d2@x.com"]),
    ],
)
def test_lead_list_filters_by_grade_and_fit_and_sorts_by_fit(staff_client, params, expected):
    make_graded_leads()
    response = staff_client.get("/leads/", params)
    assert response.status_code == 200
    assert emails(response) == expected
    assert b"Some filters are not valid" not in response.content


@pytest.mark.parametrize(
    "params, field",
    [({"grade": "E9"}, "grade"), ({"min_fit": 101}, "min_fit"), ({"min_fit": 50, "max_fit": 10}, "max_fit"),
     ({"max_fit": "x"}, "max_fit")],
)
def test_bad_grade_or_fit_filters_are_shown_inline_and_ignored(staff_client, params, field):
    make_graded_leads()
    response = staff_client.get("/leads/", params)
    assert response.status_code == 200
    assert b"Some filters are not valid" in response.content
    assert f'id="id_{field}_error"'.encode() in response.content
    expected = 2 if params.get("min_fit") == 50 else 5  # a valid min still applies (fit 80 and 65)
    assert len(emails(response)) == expected


def test_fit_sort_header_toggles_and_marks_the_column(staff_client):
    make_graded_leads()
    html = staff_client.get("/leads/").content.decode()
    assert 'href="?o=-fit_score"' in html  # highest fit first on the first click
    html = staff_client.get("/leads/", {"o": "-fit_score"}).content.decode()
    assert re.search(r'aria-sort="descending"><a class="sort-link" href="\?o=fit_score"[^>]*>Fit<', html)


def test_csv_export_has_fit_grade_and_job_title_and_defuses_formulas(staff_client):
    make_graded_leads()
    Lead.objects.create(email="evil@x.com", job_title="=cmd|' /C calc'!A0", current_score=1, fit_score=20, grade="C4")
    rows = read_csv(staff_client.get("/leads/export.csv", {"grade": "C"}))
    header, body = rows[0], rows[1:]
    assert {"fit_score", "grade", "job_title"} <= set(header)
    assert len(body) == 1
    evil = dict(zip(header, body[0]))
    assert (evil["email"], evil["fit_score"], evil["grade"]) == ("evil@x.com", "20", "C4")
    assert evil["job_title"] == "'=cmd|' /C calc'!A0"
    # The export follows the fit filter and the fit sort like the page.
    rows = read_csv(staff_client.get("/leads/export.csv", {"min_fit": 40, "o": "fit_score"}))
    assert [r[1] for r in rows[1:]] == ["b4@x.com", "b2@x.com", "a3@x.com", "a1@x.com"]


def test_leaderboard_and_dashboard_show_grade_and_fit(staff_client):
    make_graded_leads()
    for path in ["/leaderboard/", "/"]:
        response = staff_client.get(path)
        table = response.content.decode().split("data-leaders", 1)[1].split("</table>", 1)[0]
        assert re.findall(r"Grade </span>([A-D][1-4])<", table) == ["A1", "B2", "D2", "A3", "B4"], path
        assert re.findall(r"data-fit>(\d+)<", table) == ["80", "45", "0", "65", "40"], path


def test_add_lead_takes_a_job_title(staff_client):
    response = staff_client.post("/leads/new/", {"email": "cto@acme.com", "job_title": "CTO", "max_score": 1000})
    assert response.status_code == 302
    lead = Lead.objects.get(email="cto@acme.com")
    assert lead.job_title == "CTO"
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    assert re.search(r"<dt>Job title</dt><dd>CTO</dd>", html)


@pytest.fixture
def scored_lead(django_capture_on_commit_callbacks, publish):
    """A lead scored by a conditional capped rule, a decaying rule and a negative rule, with fit rules."""
    from scoring.models import FitRule, ScoringRule

    ScoringRule.objects.create(event_type="PAGE_VIEW", name="Pricing page", points=15, priority=10, cap_count=2,
                               conditions=[{"field": "metadata.url", "op": "contains", "value": "/pricing"}])
    ScoringRule.objects.filter(event_type="EMAIL_OPEN").update(name="E-mail open", half_life_days=30)
    ScoringRule.objects.create(event_type="UNSUBSCRIBE", name="Unsubscribed", points=-50)
    FitRule.objects.create(name="Has a company", points=30, conditions=[{"field": "company", "op": "exists", "value": True}])
    FitRule.objects.create(name="Work e-mail", points=20, conditions=[{"field": "free_mail", "op": "equals", "value": False}])
    FitRule.objects.create(name="Gmail", points=-5, conditions=[{"field": "email_domain", "op": "equals", "value": "gmail.com"}])
    version = publish()
    Lead.objects.create(email="dana@initech.example", company="Initech", job_title="Head of Ops")
    now = timezone.now()

    def at(event_id, event_type, days, **metadata):
        return {"event_id": event_id, "event_type": event_type, "email": "dana@initech.example", "metadata": metadata,
                "timestamp": (now - timedelta(days=days)).isoformat()}

    ingest(
        django_capture_on_commit_callbacks,
        at("p1", "PAGE_VIEW", 3, url="/pricing"), at("p2", "PAGE_VIEW", 3, url="/pricing?a"),
        at("p3", "PAGE_VIEW", 2, url="/pricing"), at("o1", "EMAIL_OPEN", 30), at("o2", "EMAIL_OPEN", 10),
        at("d1", "DEMO_REQUEST", 1),
    )
    lead = Lead.objects.get(email="dana@initech.example")
    return lead, version


def breakdown_points(html):
    table = html.split("data-breakdown>", 1)[1].split("</table>", 1)[0]
    return [int(value) for value in re.findall(r'data-points="(-?\d+)"', table)], int(
        re.search(r"data-breakdown-total>(-?\d+)<", table).group(1)
    )


def test_lead_page_explains_the_score_per_rule_summing_to_it(staff_client, scored_lead):
    lead, version = scored_lead
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    # One row per rule that matched, then the clamp and rounding adjustments, then the total.
    rows = re.findall(r'data-breakdown-rule="([^"]+)"', html)
    assert len(rows) == 4  # pricing page, page view, e-mail open, demo request
    points, total = breakdown_points(html)
    assert len(points) == len(rows) + 2
    assert sum(points) == total == lead.current_score
    assert re.search(rf'data-lead-score>{lead.current_score}<', html)
    # The capped pricing view and the decayed e-mail opens are shown as such.
    pricing_row = next(r for r in html.split("<tr data-breakdown-rule=")[1:] if "Pricing page" in r).split("</tr>", 1)[0]
    assert re.search(r'data-label="Counted"[^>]*>2<', pricing_row) and re.search(r'data-label="Capped">1<', pricing_row)
    assert 'data-points="30"' in pricing_row
    opens = next(r for r in html.split("<tr data-breakdown-rule=")[1:] if "E-mail open" in r).split("</tr>", 1)[0]
    assert "EMAIL_OPEN" in opens and re.search(r'data-label="Raw">\+20<', opens)
    assert re.search(r'data-label="Decayed">−\d+<', opens)  # 30 and 10 days old under a 30-day half-life
    # The version and the time the decay is evaluated at.
    as_of = lead.score_as_of.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
    assert re.search(rf'Rules v{version}, evaluated as of <time datetime="{re.escape(as_of)}"', html)
    assert "being rescored" not in html


def test_lead_page_shows_fit_rules_grade_and_job_title(staff_client, scored_lead):
    lead, _ = scored_lead
    assert (lead.fit_score, lead.grade) == (50, "B2")
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    fit = html.split("data-fit-rules>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td></tr>", fit) == [
        ("Has a company", "+30"), ("Work e-mail", "+20")
    ]
    assert re.search(r"data-fit-total>50<", fit)
    assert html.count("Grade </span>B2<") == 2  # the score card and the fit card
    assert "fit <strong>B</strong> (fit ≥ 40) and engagement <strong>2</strong> (score ≥ 100)" in html
    assert "<dt>Job title</dt><dd>Head of Ops</dd>" in html


def test_lead_page_says_the_lead_is_being_rescored(staff_client, scored_lead, publish):
    lead, version = scored_lead
    # A stored score the breakdown does not reproduce (a rescore or decay refresh is due):
    Lead.objects.filter(pk=lead.pk).update(current_score=lead.current_score + 7)
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    assert "data-rescoring" in html and "This lead is being rescored" in html
    points, total = breakdown_points(html)
    assert sum(points) == total == lead.current_score  # the breakdown's own total, stated beside the stored one
    # A newer version published and not yet applied to this lead:
    Lead.objects.filter(pk=lead.pk).update(current_score=lead.current_score)
    from scoring.models import ScoringRule

    ScoringRule.objects.filter(event_type="DEMO_REQUEST").update(points=60)
    newer = publish()
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    assert f"Rules v{newer} are published and this lead is being rescored under them" in html
    assert f"Rules v{version}, evaluated as of" in html


def test_lead_page_score_history_shows_version_and_rules(staff_client, scored_lead):
    lead, version = scored_lead
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    history = html.split("data-history-table>", 1)[1].split("</table>", 1)[0]
    rows = history.split("<tr data-change-id=")[1:]
    assert len(rows) == 6 and all(f">v{version}</span>" in row for row in rows)

    def chips(row):
        return re.findall(r'<span class="rule-chip__name">([^<]+)</span> <span class="rule-chip__points">([^<]+)</span>', row)

    # Newest first: the demo request, the capped third pricing view (its page-view rule still counts), ...
    assert chips(rows[0]) == [("DEMO_REQUEST", "+50")]
    assert chips(rows[1]) == [("Pricing page", "capped"), ("PAGE_VIEW", "+5")]
    assert 'rule-chip rule-chip--capped' in rows[1]
    assert chips(rows[2]) == [("Pricing page", "+15"), ("PAGE_VIEW", "+5")]
    # The reason is no longer repeated as text (it stays as the cell's tooltip).
    assert all('<span class="cell-secondary">' not in row.split("stack-end", 1)[0] for row in rows)


def test_history_of_a_rescore_shows_its_reason(staff_client, scored_lead, publish):
    from scoring.models import ScoringRule
    from scoring.services import leads_rescore

    lead, _ = scored_lead
    ScoringRule.objects.filter(event_type="DEMO_REQUEST").update(points=60)
    newer = publish()
    leads_rescore(lead_ids=[lead.id])
    html = staff_client.get(f"/leads/{lead.id}/").content.decode()
    first = html.split("data-history-table>", 1)[1].split("<tr data-change-id=")[1].split("</tr>", 1)[0]
    assert '<span class="badge badge--info">Rescore</span>' in first and f">v{newer}</span>" in first
    assert f"rescored under rules v{newer}" in first
    points, total = breakdown_points(html)
    assert sum(points) == total == Lead.objects.get(pk=lead.pk).current_score
