"""Rate limits on every ingest endpoint: 429 + Retry-After over the limit, nothing stored, per key."""

import base64
import json
from datetime import datetime, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from conftest import event_payload
from events.models import Event, ImportJob, WebhookSource
from events.segment import segment_source_create
from events.services import api_key_create

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000  # a fixed clock: the test can never straddle a rate-limit window


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    import django_ratelimit.core

    monkeypatch.setattr(django_ratelimit.core.time, "time", lambda: NOW)


def assert_429(response):
    assert response.status_code == 429, response.content
    seconds = int(response["Retry-After"])
    assert 1 <= seconds <= 60
    assert "Rate limit exceeded" in response.json()["detail"]
    assert f"{seconds} second" in response.json()["detail"]


def test_api_events_are_limited_per_api_key(settings, api, make_event):
    settings.TARGETGRID_RATE_INGEST = "3/m"
    statuses = [api.post("/api/events", make_event(f"r-{i}"), format="json").status_code for i in range(3)]
    assert statuses == [202, 202, 202]
    # the batch endpoint shares the key's budget
    over = api.post("/api/events/batch", [make_event("r-9")], format="json")
    assert_429(over)
    assert_429(api.post("/api/events", make_event("r-4"), format="json"))
    assert set(Event.objects.values_list("event_id", flat=True)) == {"r-0", "r-1", "r-2"}
    # another key has its own budget
    _, other_key = api_key_create(name="other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert other.post("/api/events", make_event("r-5"), format="json").status_code == 202


def test_uploads_are_limited(settings, api):
    settings.TARGETGRID_RATE_UPLOAD = "1/m"
    content = b"event_id,event_type,timestamp,email\nu-1,PAGE_VIEW,2026-01-01T00:00:00Z,u@example.com\n"
    first = api.post("/api/events/upload", {"file": SimpleUploadedFile("a.csv", content)}, format="multipart")
    assert first.status_code == 202
    second = api.post("/api/events/upload", {"file": SimpleUploadedFile("b.csv", content)}, format="multipart")
    assert_429(second)
    assert ImportJob.objects.count() == 1


def signed(source, body):
    when = datetime.now(tz=timezone.utc)
    return {
        "HTTP_WEBHOOK_ID": "msg",
        "HTTP_WEBHOOK_TIMESTAMP": str(int(when.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(source.secret).sign("msg", when, body),
    }


def test_webhooks_are_limited_per_source_and_unauthenticated_callers_per_ip(settings):
    settings.TARGETGRID_RATE_WEBHOOK = "2/m"
    settings.TARGETGRID_RATE_ANONYMOUS = "2/m"
    source = WebhookSource.objects.create(name="a")
    other = WebhookSource.objects.create(name="b")
    client = Client()
    codes = []
    for i in range(3):
        body = json.dumps(event_payload(f"w-{i}"))
        codes.append(client.post("/webhooks/events", body, content_type="application/json", **signed(source, body)))
    assert [r.status_code for r in codes[:2]] == [202, 202]
    assert_429(codes[2])
    assert not Event.objects.filter(event_id="w-2").exists()
    body = json.dumps(event_payload("w-other"))
    assert client.post("/webhooks/events", body, content_type="application/json",
                       **signed(other, body)).status_code == 202
    # unsigned callers: 401 twice, then 429 (per client IP)
    bad = [client.post("/webhooks/events", body, content_type="application/json").status_code for _ in range(2)]
    assert bad == [401, 401]
    assert_429(client.post("/webhooks/events", body, content_type="application/json"))


def test_segment_is_limited_per_write_key(settings):
    settings.TARGETGRID_RATE_SEGMENT = "2/m"
    _, key = segment_source_create(name="site")
    auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    client = Client()
    responses = [
        client.post("/v1/page", json.dumps({"userId": "s@example.com", "messageId": f"s-{i}"}),
                    content_type="application/json", **auth)
        for i in range(3)
    ]
    assert [r.status_code for r in responses[:2]] == [200, 200]
    assert_429(responses[2])
    assert set(Event.objects.values_list("event_id", flat=True)) == {"s-0", "s-1"}


def test_rate_limits_can_be_switched_off(settings, api, make_event):
    settings.TARGETGRID_RATE_INGEST = "1/m"
    settings.RATELIMIT_ENABLE = False
    assert [api.post("/api/events", make_event(f"off-{i}"), format="json").status_code for i in range(3)] == [202] * 3


def test_cors_preflight_for_browser_senders(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = Client().options("/v1/track", HTTP_ORIGIN="https://app.example.com",
                                HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    denied = Client().options("/v1/track", HTTP_ORIGIN="https://evil.example.com",
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in denied
