"""The Alerts page, its selectors and the read-only APIs /api/alerts and /api/webhook-deliveries,
on the configured database (SQLite, MariaDB, PostgreSQL). Alerts come from real scoring (events
ingested inline); deliveries are rows as the outbound sender writes them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from conftest import event_payload
from events.services import event_ingest
from leads.models import Lead
from realtime.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from realtime.selectors import alert_list, delivery_list
from scoring.models import AlertEvent

from .test_alerts_live import stages_default

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_stages(db):
    stages_default()


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    def ingest(*items):
        # Scoring runs after the ingest commits (inline queue): run the callbacks of this test's transaction.
        with django_capture_on_commit_callbacks(execute=True):
            event_ingest(items=list(items), source="test")

    return ingest


@pytest.fixture
def crossings(ingest):
    """ann: Cold -> Warm (50), then Warm -> MQL (150); bob: Cold -> Warm. Three stage changes."""
    Lead.objects.create(email="ann@example.com", first_name="Ann", last_name="Example")
    ingest(event_payload("a1", event_type="DEMO_REQUEST", email="ann@example.com"))
    ingest(event_payload("b1", event_type="DEMO_REQUEST", minutes=1, email="bob@example.com"))
    ingest(event_payload("a2", event_type="PURCHASE", minutes=2, email="ann@example.com"))
    alerts = list(AlertEvent.objects.order_by("id"))
    assert [(a.lead.email, a.kind, a.stage) for a in alerts] == [
        ("ann@example.com", "lead.stage_changed", "Warm"),
        ("bob@example.com", "lead.stage_changed", "Warm"),
        ("ann@example.com", "lead.stage_changed", "MQL"),
    ]
    return alerts


@pytest.fixture
def deliveries(crossings):
    now = timezone.now()
    crm = WebhookEndpoint.objects.create(name="CRM", url="https://crm.example/hook", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    chat = WebhookEndpoint.objects.create(name="Chat", url="https://chat.example/hook", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    rows = []
    for n, (endpoint, alert, status, attempts, code) in enumerate([
        (crm, crossings[0], DeliveryStatus.SUCCEEDED, 1, 200),
        (chat, crossings[0], DeliveryStatus.FAILED, 5, 500),
        (crm, crossings[2], DeliveryStatus.PENDING, 0, None),
    ]):
        rows.append(WebhookDelivery.objects.create(
            endpoint=endpoint, alert=alert, msg_id=f"msg_{uuid.uuid4().hex}", kind=alert.kind, body="{}", status=status,
            attempts=attempts, last_status_code=code, next_attempt_at=now, created_at=now + timedelta(seconds=n),
        ))
    return rows


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# --- selectors ----------------------------------------------------------------------------------


def test_alert_list_is_newest_first_with_its_lead_in_one_query(crossings, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = [(a.lead.email, a.stage) for a in alert_list()]
    assert rows == [("ann@example.com", "MQL"), ("bob@example.com", "Warm"), ("ann@example.com", "Warm")]


def test_alert_list_filters(crossings):
    ann = Lead.objects.get(email="ann@example.com")
    assert [a.stage for a in alert_list(lead_id=ann.id)] == ["MQL", "Warm"]
    assert [a.lead.email for a in alert_list(stage="MQL")] == ["ann@example.com"]
    # stage names compare without case on every database (the admin refuses two names differing by case)
    assert [a.lead.email for a in alert_list(stage="mql ")] == ["ann@example.com"]
    assert list(alert_list(stage="Mqł")) == []
    assert list(alert_list(kind="lead.score_crossed")) == []
    assert len(alert_list(kind="lead.stage_changed")) == 3
    newest = crossings[2]
    AlertEvent.objects.filter(pk=newest.pk).update(created_at=timezone.now() + timedelta(hours=1))
    assert [a.pk for a in alert_list(since=timezone.now() + timedelta(minutes=30))] == [newest.pk]


def test_delivery_list_filters_in_one_query(deliveries, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = [(d.endpoint.name, d.status, d.alert.uid) for d in delivery_list()]
    assert [(name, status) for name, status, _ in rows] == [("CRM", "pending"), ("Chat", "failed"), ("CRM", "succeeded")]
    assert [d.status for d in delivery_list(status="failed")] == ["failed"]
    crm = WebhookEndpoint.objects.get(name="CRM")
    assert [d.status for d in delivery_list(endpoint_id=crm.id)] == ["pending", "succeeded"]


# --- the page -----------------------------------------------------------------------------------


def test_alerts_page_needs_a_staff_login(client):
    response = client.get("/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(get_user_model().objects.create_user("pat", password="pw-123456"))
    assert client.get("/alerts/").status_code == 403


def test_alerts_page_lists_alerts_and_deliveries(staff_client, deliveries, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = staff_client.get("/alerts/")
    assert response.status_code == 200
    html = response.content.decode()
    ann = Lead.objects.get(email="ann@example.com")
    # the alert rows, newest first, with the lead, stages, score and cause
    rows = response.context["alerts"]
    assert [(r["lead"].email, r["from_stage"], r["to_stage"], r["score"], r["cause"]) for r in rows] == [
        ("ann@example.com", "Warm", "MQL", 150, "event"),
        ("bob@example.com", "Cold", "Warm", 50, "event"),
        ("ann@example.com", "Cold", "Warm", 50, "event"),
    ]
    assert f'href="/leads/{ann.id}/"' in html and "Ann Example" in html
    assert 'data-ws-url="/ws/alerts/"' in html
    # the deliveries, with endpoint, status, attempts and the last status code
    assert [(d.endpoint.name, d.status, d.attempts, d.last_status_code) for d in response.context["deliveries"]] == [
        ("CRM", "pending", 0, None), ("Chat", "failed", 5, 500), ("CRM", "succeeded", 1, 200)]
    assert "Failed (gave up)" in html and "Delivered" in html
    # and the nav link is current
    assert 'href="/alerts/" title="Alerts" aria-current="page"' in html


def test_alerts_page_filters_and_bad_values(staff_client, deliveries):
    response = staff_client.get("/alerts/", {"stage": "MQL", "status": "failed"})
    assert [r["to_stage"] for r in response.context["alerts"]] == ["MQL"]
    assert [d.status for d in response.context["deliveries"]] == ["failed"]
    assert staff_client.get("/alerts/", {"kind": "lead.score_crossed"}).context["alerts"] == []
    # a bad filter value shows every row and says which field is wrong; a bad page is page 1
    response = staff_client.get("/alerts/", {"kind": "nope", "page": "x", "dpage": "-3"})
    assert response.status_code == 200
    assert len(response.context["alerts"]) == 3 and response.context["page_number"] == 1
    assert response.context["form"].errors.keys() == {"kind"}
    assert 'aria-invalid="true"' in response.content.decode()


def test_alerts_page_pages_without_count(staff_client, crossings, monkeypatch):
    from realtime import views

    monkeypatch.setattr(views, "ALERTS_PER_PAGE", 2)
    first = staff_client.get("/alerts/")
    assert first.context["has_older"] and len(first.context["alerts"]) == 2
    second = staff_client.get("/alerts/", {"page": 2})
    assert not second.context["has_older"] and [r["to_stage"] for r in second.context["alerts"]] == ["Warm"]
    assert 'data-live-page="0"' in second.content.decode()


def test_endpoint_paused_alert_row_names_the_endpoint(staff_client):
    AlertEvent.objects.create(kind="endpoint.paused", created_at=timezone.now(), payload={
        "id": str(uuid.uuid4()), "type": "endpoint.paused", "timestamp": "2026-11-29T21:30:00Z",
        "data": {"endpoint": {"id": 1, "name": "CRM", "url": "https://crm.example/hook"}}})
    html = staff_client.get("/alerts/").content.decode()
    assert "Endpoint CRM" in html


def test_every_page_has_the_alerts_nav_link_and_the_toast_script(staff_client):
    html = staff_client.get("/").content.decode()
    assert 'href="/alerts/"' in html and "js/alerts.js" in html


# --- the APIs -----------------------------------------------------------------------------------


def test_api_alerts_newest_first_with_details(api, crossings, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # api key (+ its last use), count, page: no query per row
        response = api.get("/api/alerts")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    first = body["results"][0]
    ann = Lead.objects.get(email="ann@example.com")
    assert first["id"] == str(crossings[2].uid)
    assert (first["kind"], first["lead"], first["from_stage"], first["to_stage"], first["direction"], first["score"],
            first["previous_score"], first["cause"], first["event_id"], first["stage"]) == (
        "lead.stage_changed", {"id": str(ann.id), "email": "ann@example.com", "name": "Ann Example"}, "Warm", "MQL", "up",
        150, 50, "event", "a2", "MQL")
    assert first["payload"]["type"] == "lead.stage_changed" and first["payload"]["id"] == first["id"]


def test_api_alerts_filters(api, crossings):
    ann = Lead.objects.get(email="ann@example.com")
    assert [r["to_stage"] for r in api.get("/api/alerts", {"lead": str(ann.id)}).json()["results"]] == ["MQL", "Warm"]
    assert [r["lead"]["email"] for r in api.get("/api/alerts/", {"stage": "mql"}).json()["results"]] == ["ann@example.com"]
    assert api.get("/api/alerts", {"kind": "lead.score_crossed"}).json()["count"] == 0
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert api.get("/api/alerts", {"since": future}).json()["count"] == 0
    assert api.get("/api/alerts", {"since": "2020-01-01T00:00:00Z"}).json()["count"] == 3
    page = api.get("/api/alerts", {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]


@pytest.mark.parametrize("params, field", [
    ({"kind": "lead.nope"}, "kind"),
    ({"lead": "not-a-uuid"}, "lead"),
    ({"since": "yesterday"}, "since"),
    ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ({"since": "9999-12-31T23:59:59-05:00"}, "since"),
    ({"stage": "x" * 65}, "stage"),
    ({"page": "abc"}, "page"),
    ({"page": "0"}, "page"),
    ({"page_size": "501"}, "page_size"),
])
def test_api_alerts_bad_filters_name_the_field(api, params, field):
    response = api.get("/api/alerts", params)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_api_deliveries_list_and_filters(api, deliveries):
    body = api.get("/api/webhook-deliveries").json()
    assert [(r["endpoint"]["name"], r["status"], r["attempts"], r["last_status_code"]) for r in body["results"]] == [
        ("CRM", "pending", 0, None), ("Chat", "failed", 5, 500), ("CRM", "succeeded", 1, 200)]
    assert body["results"][0]["alert"] == str(deliveries[2].alert.uid)
    assert body["results"][0]["msg_id"] == deliveries[2].msg_id
    crm = WebhookEndpoint.objects.get(name="CRM")
    assert [r["status"] for r in api.get("/api/webhook-deliveries/", {"endpoint": crm.id}).json()["results"]] == [
        "pending", "succeeded"]
    assert [r["status"] for r in api.get("/api/webhook-deliveries", {"status": "succeeded"}).json()["results"]] == [
        "succeeded"]


@pytest.mark.parametrize("params, field", [
    ({"status": "done"}, "status"),
    ({"endpoint": "crm"}, "endpoint"),
    ({"endpoint": "0"}, "endpoint"),
    ({"endpoint": str(2**70)}, "endpoint"),
])
def test_api_deliveries_bad_filters_name_the_field(api, params, field):
    response = api.get("/api/webhook-deliveries", params)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


@pytest.mark.parametrize("path", ["/api/alerts", "/api/webhook-deliveries"])
def test_a_page_past_the_end_is_a_404_naming_page(api, path):
    response = api.get(path, {"page": 99})
    assert response.status_code == 404
    assert list(response.json()["errors"]) == ["page"]


@pytest.mark.parametrize("path", ["/api/alerts", "/api/webhook-deliveries"])
def test_apis_need_a_key_or_staff_and_answer_json(anon, path):
    response = anon.get(path)
    assert response.status_code in (401, 403)
    assert "detail" in response.json()
    assert anon.post(path, {}, format="json").status_code in (401, 403)


@pytest.mark.parametrize("path", ["/api/alerts", "/api/webhook-deliveries"])
def test_apis_are_read_only(api, path):
    response = api.post(path, {}, format="json")
    assert response.status_code == 405
    assert response.json()["errors"] == {"method": [response.json()["detail"]]}
