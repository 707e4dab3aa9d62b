"""A sender process SIGKILLed mid-request: its claim runs out and another sender sends the row again
with the same webhook-id (at least once, stable id), against the real test database and a real HTTP
receiver. The sender runs as a separate ``python`` process on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import subprocess_database_url
from realtime import outbound
from realtime.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery
from realtime.tests.receiver import Answer, Receiver
from realtime.tests.test_outbound import alert_make, endpoint_make, verified

SENDER = "import django; django.setup(); from realtime import outbound; outbound.deliveries_send()"


def wait_until(condition, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_sender_killed_mid_request_leaves_the_row_to_be_sent_again_with_the_same_id(tmp_path, settings):
    # given a receiver that hangs on the first request and answers 200 afterwards
    receiver = Receiver(Answer(200, hang=60))
    try:
        endpoint = endpoint_make(receiver.url)
        outbound.deliveries_create(alerts=[alert_make()])
        delivery = WebhookDelivery.objects.get()
        # when a sender process claims it, sends it, and is SIGKILLed while waiting for the answer
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": subprocess_database_url(),
            "TARGETGRID_QUEUE": "inline", "TARGETGRID_DATA_DIR": str(tmp_path),
            "TARGETGRID_WEBHOOK_TIMEOUT_SECONDS": "5", "TARGETGRID_WEBHOOK_CLAIM_MARGIN_SECONDS": "5",
        }
        env.pop("REDIS_URL", None)
        sender = subprocess.Popen([sys.executable, "-c", SENDER], env=env, cwd=settings.BASE_DIR,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sender.log", "w"))
        try:
            wait_until(lambda: receiver.received, "the first request")
        finally:
            sender.send_signal(signal.SIGKILL)
            sender.wait(10)
        delivery.refresh_from_db()
        # then the row is still pending, claimed by the dead sender, with no attempt recorded
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
        assert delivery.locked_until is not None and not DeliveryAttempt.objects.exists()
        # and while the dead sender's claim lasts, another sender leaves it alone
        if delivery.locked_until > timezone.now() + timedelta(seconds=1):
            assert outbound.deliveries_send() == 0 and len(receiver.received) == 1
        # when the claim has run out, the next sender sends it again
        wait_until(lambda: WebhookDelivery.objects.get().locked_until < timezone.now(), "the claim to run out")
        assert outbound.deliveries_send() == 1
    finally:
        receiver.stop()
    # then the receiver saw the same webhook-id twice (it dedupes on it), both signed
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.msg_id, delivery.msg_id]
    assert verified(endpoint.secret, receiver.received[0]) == verified(endpoint.secret, receiver.received[1])
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1 and delivery.locked_until is None
