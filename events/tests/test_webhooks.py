"""POST /webhooks/events: signatures made by the official ``standardwebhooks`` package."""

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client
from standardwebhooks.webhooks import Webhook

from conftest import event_payload
from events.models import Event, WebhookSource, webhook_secret_generate

pytestmark = pytest.mark.django_db
URL = "/webhooks/events"


@pytest.fixture
def source():
    return WebhookSource.objects.create(name="crm", source_tag="crm")


def signed_headers(secret, body: str, *, msg_id="msg_1", when=None, extra_signatures=()):
    when = when or datetime.now(tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body)
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(when.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": " ".join([*extra_signatures, signature]),
    }


def deliver(body: str, headers, *, query=""):
    return Client().post(URL + query, data=body, content_type="application/json", **headers)


def test_signed_delivery_is_accepted_once_and_a_replay_is_a_duplicate(source, django_capture_on_commit_callbacks):
    # given a delivery signed by the standardwebhooks package
    body = json.dumps(event_payload("wh-1", event_type="FORM_SUBMIT"))
    headers = signed_headers(source.secret, body)
    # when it is delivered twice (a replay inside the window)
    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(body, headers)
    second = deliver(body, headers)
    # then it is stored once, tagged with the source, and scored; the replay is a duplicate
    assert first.status_code == 202, first.json()
    assert first.json()["results"][0]["status"] == "accepted"
    assert second.status_code == 200
    assert second.json()["results"][0]["status"] == "duplicate"
    event = Event.objects.get(event_id="wh-1")
    assert event.source == "crm"
    assert event.status == "processed" and event.points == 20


def test_an_array_of_events_gets_one_result_each(source):
    body = json.dumps([event_payload("wh-a"), event_payload("wh-b", event_type="NOPE"), event_payload("wh-c")])
    response = deliver(body, signed_headers(source.secret, body))
    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected", "accepted"]
    assert "event_type" in response.json()["results"][1]["errors"]


@pytest.mark.parametrize(
    "tamper",
    ["body", "wrong_secret", "old_timestamp", "future_timestamp", "no_signature", "garbage_signature"],
)
def test_bad_deliveries_are_401_and_store_nothing(source, tamper, caplog):
    body = json.dumps(event_payload("wh-bad"))
    secret, when, sent = source.secret, None, body
    if tamper == "wrong_secret":
        secret = webhook_secret_generate()
    if tamper == "old_timestamp":
        when = datetime.now(tz=timezone.utc) - timedelta(minutes=10)
    if tamper == "future_timestamp":
        when = datetime.now(tz=timezone.utc) + timedelta(minutes=10)
    headers = signed_headers(secret, body, when=when)
    if tamper == "body":
        sent = body.replace("wh-bad", "wh-bad2")
    if tamper == "no_signature":
        headers = {}
    if tamper == "garbage_signature":
        headers["HTTP_WEBHOOK_SIGNATURE"] = "v1,!!!notbase64"
    with caplog.at_level(logging.WARNING, logger="events.webhook_apis"):
        response = deliver(sent, headers)
    assert response.status_code == 401, response.json()
    assert response.json()["detail"].startswith("Webhook rejected:")
    assert Event.objects.count() == 0
    assert any("webhook rejected (401)" in record.getMessage() for record in caplog.records)


def test_a_timestamp_just_inside_the_window_is_accepted(source):
    body = json.dumps(event_payload("wh-edge"))
    when = datetime.now(tz=timezone.utc) - timedelta(minutes=4, seconds=50)
    assert deliver(body, signed_headers(source.secret, body, when=when)).status_code == 202


def test_rotation_several_signatures_and_the_previous_secret_are_accepted(source):
    old_secret = source.secret
    new_secret = webhook_secret_generate()
    body = json.dumps(event_payload("wh-rot-1"))
    # given a sender that signs with an unknown key and the current key (several signatures)
    stray = Webhook(webhook_secret_generate()).sign("msg_1", datetime.now(tz=timezone.utc), body)
    assert deliver(body, signed_headers(old_secret, body, extra_signatures=[stray])).status_code == 202
    # when the source rotates to a new secret and keeps the old one as previous_secret
    source.secret, source.previous_secret = new_secret, old_secret
    source.save()
    for event_id, secret in (("wh-rot-2", old_secret), ("wh-rot-3", new_secret)):
        body = json.dumps(event_payload(event_id))
        assert deliver(body, signed_headers(secret, body, msg_id=event_id)).status_code == 202
    # then once the rotation is finished the old secret no longer works
    source.previous_secret = ""
    source.save()
    body = json.dumps(event_payload("wh-rot-4"))
    assert deliver(body, signed_headers(old_secret, body)).status_code == 401


def test_our_verifier_agrees_with_the_package(source):
    # the package verifies what it signed; so does our endpoint (same wire format, both directions)
    body = json.dumps(event_payload("wh-agree"))
    headers = signed_headers(source.secret, body)
    plain = {k[5:].replace("_", "-").lower(): v for k, v in headers.items()}
    assert Webhook(source.secret).verify(body, plain)["event_id"] == "wh-agree"
    assert deliver(body, headers).status_code == 202


def test_disabled_source_is_403(source):
    source.enabled = False
    source.save()
    body = json.dumps(event_payload("wh-off"))
    response = deliver(body, signed_headers(source.secret, body))
    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]
    assert Event.objects.count() == 0


def test_named_source_must_match(source):
    other = WebhookSource.objects.create(name="other")
    body = json.dumps(event_payload("wh-named"))
    # signed by "crm" but claims to be "other"
    assert deliver(body, signed_headers(source.secret, body), query="?source=other").status_code == 401
    assert deliver(body, signed_headers(source.secret, body), query="?source=ghost").status_code == 401
    assert deliver(body, signed_headers(other.secret, body), query="?source=other").status_code == 202


def test_shared_secret_mode(db):
    source = WebhookSource.objects.create(name="cdp", mode=WebhookSource.Mode.SHARED_SECRET,
                                          secret_header="X-CDP-Token", source_tag="cdp")
    body = json.dumps(event_payload("wh-shared"))
    assert deliver(body, {"HTTP_X_CDP_TOKEN": "nope"}).status_code == 401
    assert deliver(body, {}).status_code == 401
    response = deliver(body, {"HTTP_X_CDP_TOKEN": source.secret})
    assert response.status_code == 202
    assert Event.objects.get(event_id="wh-shared").source == "cdp"


def test_allowed_event_types_reject_others(source):
    source.allowed_event_types = ["FORM_SUBMIT"]
    source.save()
    body = json.dumps([event_payload("wh-ok", event_type="form_submit"), event_payload("wh-no", event_type="PURCHASE")])
    response = deliver(body, signed_headers(source.secret, body))
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert "not allowed" in results[1]["errors"]["event_type"][0]
    assert not Event.objects.filter(event_id="wh-no").exists()


@pytest.mark.parametrize(
    "body, field",
    [("not json", "body"), ("", "body"), ("[]", "body"), ('"a string"', "body"), ('{"event_id": 1}', None)],
)
def test_bad_bodies_are_400_naming_the_problem(source, body, field):
    response = deliver(body, signed_headers(source.secret, body))
    assert response.status_code == 400
    data = response.json()
    if field:
        assert field in data["errors"]
    else:
        assert "event_type" in data["results"][0]["errors"]


def test_oversized_body_is_413(source, settings):
    settings.TARGETGRID_MAX_BODY_BYTES = 1000
    body = json.dumps([event_payload(f"wh-big-{i}") for i in range(20)])
    response = deliver(body, signed_headers(source.secret, body))
    assert response.status_code == 413
    assert Event.objects.count() == 0
