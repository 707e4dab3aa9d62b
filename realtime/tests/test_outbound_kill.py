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
from pathlib import Path

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


# --- A real Celery worker on the outbound queue, SIGKILLed while deliveries are pending -----------

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def outbound_worker(tmp_path, name: str) -> subprocess.Popen:
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": os.environ["TEST_REDIS_URL"], "TARGETGRID_QUEUE": "celery", "TARGETGRID_DATA_DIR": str(tmp_path),
        "TARGETGRID_WEBHOOK_TIMEOUT_SECONDS": "4", "TARGETGRID_WEBHOOK_CLAIM_MARGIN_SECONDS": "4",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / f"{name}.log"
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "-l", "info", "-c", "1", "-Q", "outbound", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_until(lambda: "ready." in log.read_text() or worker.poll() is not None, "the outbound worker to start", 60)
    assert worker.poll() is None, log.read_text()
    return worker


@pytest.mark.redis
@pytest.mark.skipif(not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")),
                    reason="needs TEST_DATABASE_URL and TEST_REDIS_URL (a database shared with a worker process)")
@pytest.mark.django_db(transaction=True)
def test_an_outbound_worker_sigkilled_with_deliveries_pending_delivers_each_once_by_id_after_restart(tmp_path):
    import redis

    from config.celery import app as celery_app

    redis.Redis.from_url(os.environ["TEST_REDIS_URL"]).flushdb()
    # given a receiver that hangs on the first request it gets and answers the rest at once
    receiver = Receiver(Answer(200, hang=60))
    workers = []
    try:
        endpoint = endpoint_make(receiver.url)
        outbound.deliveries_create(alerts=[alert_make() for _ in range(3)])
        workers.append(outbound_worker(tmp_path, "outbound-a"))
        # when the worker is woken (the wake-up goes to the outbound queue), starts sending, and is
        # SIGKILLed (its whole process group) while one request hangs
        celery_app.send_task("realtime.deliveries_send")
        wait_until(lambda: len(receiver.received) == 3, "three requests, one of them hanging")
        wait_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2,
                   "the two answered deliveries to be recorded")
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1
        # and a new worker starts, woken once (as the periodic sweep does)
        workers.append(outbound_worker(tmp_path, "outbound-b"))
        celery_app.send_task("realtime.deliveries_send")
        # then, once the dead sender's claim runs out, the new one sends the last delivery again
        wait_until(lambda: not WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists(),
                   "every delivery to succeed", 60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
        receiver.stop()
    # then each delivery arrived, the interrupted one twice with the same id: once per id after dedupe
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 4 and len(set(ids)) == 3
    assert set(ids) == set(WebhookDelivery.objects.values_list("msg_id", flat=True))
    for received in receiver.received:
        verified(endpoint.secret, received)
    assert list(WebhookDelivery.objects.values_list("attempts", flat=True)) == [1, 1, 1]
