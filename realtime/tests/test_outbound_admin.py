"""The webhook endpoint and delivery admin through the Django test client: create (secret generated
and shown once), validation, and the actions (send test event, resume, rotate secret, disable,
resend), each calling a realtime.outbound service."""

from __future__ import annotations

import pytest
from datetime import timedelta

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from realtime import outbound
from realtime.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from realtime.tests.receiver import Answer, Receiver
from realtime.tests.test_outbound import alert_make, endpoint_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def add(admin, **data):
    form = {"name": "crm", "url": "https://crm.example.com/hooks", "description": "", "secret": "",
            "event_kinds": "[]", "stages": "[]"}
    form.update(data)
    return admin.post(reverse("admin:realtime_webhookendpoint_add"), form, follow=True)


def test_creating_an_endpoint_generates_a_secret_and_shows_it_once(admin):
    response = add(admin, event_kinds='["lead.stage_changed"]', stages='["MQL", "SQL"]')
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and len(outbound.secret_key_bytes(endpoint.secret)) == 32
    assert (endpoint.event_kinds, endpoint.stages) == (["lead.stage_changed"], ["MQL", "SQL"])
    assert any(endpoint.secret in text for text in texts(response))
    # then the change page shows it masked only
    page = admin.get(reverse("admin:realtime_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in page and outbound.secret_mask(endpoint.secret) in page
    # and saving the page with the secret left blank keeps it
    secret = endpoint.secret
    admin.post(reverse("admin:realtime_webhookendpoint_change", args=[endpoint.pk]),
               {"name": "crm 2", "url": endpoint.url, "description": "", "secret": "",
                "event_kinds": "[]", "stages": "[]"}, follow=True)
    endpoint.refresh_from_db()
    assert endpoint.name == "crm 2" and endpoint.secret == secret


@pytest.mark.parametrize(("field", "value", "message"), [
    ("url", "ftp://crm.example.com/x", "http"),
    ("url", "javascript:alert(1)", ""),
    ("event_kinds", '["lead.exploded"]', "unknown kind"),
    ("event_kinds", '"lead.stage_changed"', "list of event kinds"),
    ("stages", '[1, 2]', "list of stage names"),
    ("stages", '{"MQL": 1}', "list of stage names"),
    ("secret", "whsec_short", "whsec_"),
])
def test_bad_endpoint_settings_are_refused_naming_the_field(admin, field, value, message):
    response = add(admin, **{field: value})
    assert not WebhookEndpoint.objects.exists()
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field])


def action(admin, model: str, name: str, pks):
    return admin.post(reverse(f"admin:realtime_{model}_changelist"),
                      {"action": name, "_selected_action": [str(pk) for pk in pks]}, follow=True)


def test_send_test_event_delivers_a_signed_webhook_test_now(admin, receiver):
    endpoint = endpoint_make(receiver.url, status=EndpointStatus.PAUSED)
    response = action(admin, "webhookendpoint", "send_test_event", [endpoint.pk])
    assert len(receiver.received) == 1
    body = Webhook(endpoint.secret).verify(receiver.received[0].body, receiver.received[0].headers)
    assert body["type"] == "webhook.test" and body["data"]["endpoint"]["id"] == endpoint.pk
    delivery = WebhookDelivery.objects.get()
    assert delivery.alert is None and delivery.status == DeliveryStatus.SUCCEEDED
    assert any("Delivered" in text for text in texts(response))


def test_a_failing_test_event_is_reported_as_such(admin):
    failing = Receiver(Answer(500, body=b"nope"))
    try:
        endpoint = endpoint_make(failing.url)
        response = action(admin, "webhookendpoint", "send_test_event", [endpoint.pk])
    finally:
        failing.stop()
    assert any("HTTP 500" in text for text in texts(response))
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING  # retried on the usual schedule


def test_resume_rotate_and_disable_actions(admin, receiver):
    endpoint = endpoint_make(receiver.url, status=EndpointStatus.PAUSED, consecutive_failures=10)
    outbound.deliveries_create(alerts=[alert_make()])
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() + timedelta(hours=3))
    # resume: active, failures forgotten, pending due now
    action(admin, "webhookendpoint", "resume", [endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.ACTIVE and endpoint.consecutive_failures == 0
    assert WebhookDelivery.objects.get(status=DeliveryStatus.PENDING).next_attempt_at <= timezone.now()
    assert outbound.deliveries_send() == 1 and len(receiver.received) == 1
    # rotate: the old secret becomes the previous one for the overlap, the new one shown once
    old = endpoint.secret
    response = action(admin, "webhookendpoint", "rotate_secret", [endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == old and endpoint.secret != old
    hours = (endpoint.previous_secret_expires_at - timezone.now()).total_seconds() / 3600
    assert 23.9 < hours <= 24
    assert any(endpoint.secret in text for text in texts(response))
    # disable: pending deliveries cancelled
    outbound.deliveries_create(alerts=[alert_make()])
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now() + timedelta(hours=1))
    action(admin, "webhookendpoint", "disable", [endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DISABLED
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.CANCELLED).count() == 1


def test_deliveries_are_read_only_with_their_attempts_and_can_be_resent(admin, receiver):
    endpoint = endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    # the list filters and the page with its inline attempts render
    listing = admin.get(reverse("admin:realtime_webhookdelivery_changelist"), {"status__exact": "succeeded",
                                                                                "endpoint__id__exact": endpoint.pk})
    assert listing.status_code == 200 and delivery.msg_id in listing.content.decode()
    page = admin.get(reverse("admin:realtime_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and "attempt" in page.content.decode().lower()
    assert admin.get(reverse("admin:realtime_webhookdelivery_add")).status_code == 403
    # when resent: the same webhook-id again, attempts kept
    action(admin, "webhookdelivery", "resend", [delivery.pk])
    outbound.deliveries_send()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 2
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.msg_id, delivery.msg_id]
