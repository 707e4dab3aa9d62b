"""Issue #11 acceptance 3: a sender SIGKILLed while deliveries are pending loses nothing.

A real Celery worker process consumes the ``outbound`` queue and sends to a real HTTP receiver
(bench/receiver.py: verifies the Standard Webhooks signature with the official package, counts
receipts per ``webhook-id``) that answers slowly, so deliveries are in flight; the worker's whole
process group is SIGKILLed mid-run and a new worker started. Delivery is **at least once with a
stable id**: a request the killed worker sent but never recorded is sent again with the same
``webhook-id``, and the receiver's deduped set is exactly the set of deliveries, each arriving once
after dedupe. The delivery row is the source of truth: every row ends ``succeeded`` with a
consistent attempt history.

While waiting, the test calls ``realtime.alerts.alerts_sweep()`` every two seconds, as beat does in
production (``alerts-sweep`` in CELERY_BEAT_SCHEDULE): the killed worker's wake-up message stays
unacknowledged in Redis for the broker's visibility timeout, so the sweep's wake-up is what a new
worker starts from.

Runs when TEST_DATABASE_URL and TEST_REDIS_URL are set (a database and a broker shared with the
worker process)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.test import override_settings

from bench.receiver import Receiver, ReceiverThread
from conftest import event_payload, free_port, subprocess_database_url
from events.services import event_ingest
from realtime import alerts, outbound
from realtime.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from scoring.models import AlertEvent

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DELIVERIES = 220

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")),
        reason="needs TEST_DATABASE_URL and TEST_REDIS_URL (a real database and broker shared with a worker process)",
    ),
    pytest.mark.django_db(transaction=True),
]


def wait_until(condition, message, timeout: float = 60.0, every: float = 0.1, tick=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        if tick is not None:
            tick()
        time.sleep(every)


class OutboundWorker:
    """``celery worker -Q outbound`` in its own session, so SIGKILL reaches its pool children too."""

    def __init__(self, tmp_path: Path, name: str):
        self.log_path = tmp_path / f"{name}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": subprocess_database_url(),
            "REDIS_URL": os.environ["TEST_REDIS_URL"],
            "TARGETGRID_QUEUE": "celery",
            "TARGETGRID_DATA_DIR": str(tmp_path),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", "worker", "-l", "info", "-c", "2", "-Q", "outbound",
             "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        wait_until(lambda: "ready." in self.log() or self.proc.poll() is not None,
                   lambda: f"the outbound worker did not start:\n{self.log()[-3000:]}")
        assert self.proc.poll() is None, self.log()[-3000:]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def sweep() -> None:
    """What beat's ``alerts-sweep`` does, published through the real broker."""
    with override_settings(TARGETGRID_QUEUE="celery"):
        alerts.alerts_sweep()


def test_a_sigkilled_sender_delivers_every_message_after_restart_exactly_once_after_dedupe(tmp_path):
    import redis

    redis.Redis.from_url(os.environ["TEST_REDIS_URL"]).flushdb()

    # Given a receiver that answers each delivery after 0.25 s (so deliveries are in flight),
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver()
    hook = receiver.add("kill", secret, mode="slow", delay=0.25)
    server = ReceiverThread(receiver, free_port())
    server.start()
    workers: list[OutboundWorker] = []
    try:
        endpoint = WebhookEndpoint.objects.create(name="kill", url=f"{server.url}/hook/kill", secret=secret,
                                                  event_kinds=["lead.stage_changed"], stages=["MQL"])
        # and 220 leads that crossed MQL through real scoring, fanned out into pending deliveries
        # (the wake-up held back: nothing is sent before a worker runs),
        with mock.patch.object(outbound, "sender_wake"):
            result = event_ingest(items=[event_payload(f"kill-{i}", event_type="PURCHASE", email=f"kill{i}@example.com")
                                         for i in range(DELIVERIES)], source="test")
            assert result.count("accepted") == DELIVERIES
            alerts.alerts_dispatch()
        assert AlertEvent.objects.filter(kind="lead.stage_changed", stage="MQL").count() == DELIVERIES
        expected = set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("msg_id", flat=True))
        assert len(expected) == DELIVERIES
        assert WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).count() == DELIVERIES

        # when a real worker sends them and is SIGKILLed (its whole process group) mid-run, with a
        # request in flight,
        first = OutboundWorker(tmp_path, "outbound-1")
        workers.append(first)
        first.wait_ready()
        sweep()

        def mid_run() -> bool:
            assert first.proc.poll() is None, f"the worker died by itself:\n{first.log()[-3000:]}"
            with receiver.lock:
                return len(hook.receipts) >= 30 and hook.requests > hook.answered

        wait_until(mid_run, lambda: f"no deliveries in flight:\n{first.log()[-3000:]}", timeout=120, every=0.02)
        first.kill()
        killed_at = time.time()
        succeeded_at_kill = set(WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.SUCCEEDED)
                                .values_list("msg_id", flat=True))
        with receiver.lock:
            received_at_kill = set(hook.receipts)
        assert 0 < len(received_at_kill) < DELIVERIES, "the kill must come while deliveries are pending"
        assert succeeded_at_kill <= received_at_kill  # a row is only marked after its receipt

        # and a new worker is started (the receiver now answers at once),
        receiver.add("kill", secret, mode="fast")
        second = OutboundWorker(tmp_path, "outbound-2")
        workers.append(second)
        second.wait_ready()

        def all_succeeded() -> bool:
            assert second.proc.poll() is None, f"the new worker died:\n{second.log()[-3000:]}"
            return not WebhookDelivery.objects.filter(endpoint=endpoint).exclude(status=DeliveryStatus.SUCCEEDED).exists()

        last_sweep = [0.0]

        def tick() -> None:  # beat's sweep, every 2 s
            if time.monotonic() - last_sweep[0] >= 2:
                last_sweep[0] = time.monotonic()
                sweep()

        wait_until(all_succeeded, lambda: (
            f"deliveries left: {dict(WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).values_list('status', 'msg_id')[:5])}\n"
            f"{second.log()[-3000:]}"), timeout=240, every=0.25, tick=tick)
        time.sleep(2.0)  # a stray resend, if any, would arrive now

        # then every webhook-id arrived at least once, and the deduped set is exactly the deliveries;
        with receiver.lock:
            receipts = {msg_id: list(times) for msg_id, times in hook.receipts.items()}
            invalid = hook.invalid
        doubled = {msg_id for msg_id, times in receipts.items() if len(times) > 1}
        print(f"deliveries {DELIVERIES}; at the kill: received {len(received_at_kill)}, recorded succeeded "
              f"{len(succeeded_at_kill)}; receipts {sum(len(t) for t in receipts.values())}, unique {len(receipts)}, "
              f"doubled {len(doubled)}; killed -> all succeeded {time.time() - killed_at:.1f}s")
        assert invalid == 0
        assert set(receipts) == expected
        # a message arrived more than once only when the killed worker had sent it (at least once,
        # same id), and nothing recorded as delivered before the kill was sent again;
        assert doubled <= received_at_kill - succeeded_at_kill, doubled - (received_at_kill - succeeded_at_kill)
        resent_after_success = {m for m in succeeded_at_kill if any(t > killed_at for t in receipts[m])}
        assert resent_after_success == set()
        assert all(len([t for t in times if t > killed_at]) <= 1 for times in receipts.values())
        # and every row succeeded, with a consistent attempt history (numbered 1..n, one success, the
        # last one, n counted on the row; an attempt cut short by the kill left no row).
        rows = {d.pk: d for d in WebhookDelivery.objects.filter(endpoint=endpoint)}
        attempts: dict = {}
        for attempt in DeliveryAttempt.objects.filter(delivery__endpoint=endpoint).order_by("number"):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
        problems = []
        for pk, delivery in rows.items():
            mine = attempts.get(pk, [])
            numbers = [a.number for a in mine]
            successes = [a for a in mine if a.outcome == "success"]
            if (delivery.status != DeliveryStatus.SUCCEEDED or delivery.delivered_at is None
                    or len(successes) != 1 or numbers != list(range(1, len(numbers) + 1))
                    or successes[0].number != max(numbers) or delivery.attempts != max(numbers)
                    or successes[0].status_code != 200 or delivery.last_status_code != 200):
                problems.append((delivery.msg_id, delivery.status, delivery.attempts, numbers,
                                 [(a.number, a.outcome, a.status_code) for a in mine]))
        assert problems == [], problems[:5]
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
