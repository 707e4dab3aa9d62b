"""The digest task through a real broker: a wake-up published with its gather delay goes to the
``outbound`` queue (not the scoring one), and a real ``celery worker`` consuming only that queue
sends the digest to a real SMTP server (aiosmtpd in this process).

Runs when TEST_REDIS_URL is set (a real Redis; the worker shares the test database)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from django.test import override_settings

from conftest import subprocess_database_url
from realtime import mail
from realtime.models import AlertRecipient
from realtime.tests.test_mail import Inbox, ingest, purchase, stages  # noqa: F401  (stages: autouse fixture)
from scoring.models import AlertEvent

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMTP_PORT = 19250

pytestmark = [
    pytest.mark.redis,
    pytest.mark.localhost,
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL (a real Redis)"),
    pytest.mark.django_db(transaction=True),
]


def wait_until(condition, message: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.2)


def test_a_worker_on_the_outbound_queue_sends_the_digest_a_wake_up_scheduled(tmp_path):
    broker = os.environ["TEST_REDIS_URL"]
    redis.Redis.from_url(broker).flushdb()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": broker,
        "TARGETGRID_QUEUE": "celery",
        "TARGETGRID_DATA_DIR": str(tmp_path),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(SMTP_PORT),
        "TARGETGRID_ALERT_GATHER_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # Given a worker that consumes only the outbound queue (no scoring worker at all),
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "-l", "info", "-c", "1", "-Q", "outbound",
         "-n", f"mail-{SMTP_PORT}@%h"],
        cwd=ROOT, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
    )
    try:
        log = log_path.read_text
        wait_until(lambda: "ready." in log() or worker.poll() is not None, "the worker did not start")
        assert worker.poll() is None, log()
        AlertRecipient.objects.create(email="sales@example.com")
        # and a lead crossing MQL, scored here (inline: the wake-up after scoring sent nothing yet),
        ingest(purchase(1, "ann@example.com"))
        assert AlertEvent.objects.get().dispatched and inbox.messages == []
        # when the digests are woken through the broker,
        with override_settings(TARGETGRID_QUEUE="celery", TARGETGRID_ALERT_GATHER_SECONDS=1):
            mail.digests_wake()
        # then the worker sends exactly one e-mail, once the gather delay has passed.
        wait_until(lambda: inbox.messages or worker.poll() is not None,
                   f"no e-mail arrived:\n{log()[-4000:]}")
        assert inbox.messages[0]["Subject"] == "[TargetGrid] ann@example.com entered MQL"
        with override_settings(TARGETGRID_QUEUE="celery", TARGETGRID_ALERT_GATHER_SECONDS=0):
            mail.digests_wake()  # a second wake-up: nothing new to send
        wait_until(lambda: log().count("realtime.mail_digests") >= 4 or worker.poll() is not None,
                   f"the second wake-up did not run:\n{log()[-4000:]}")
        assert len(inbox.messages) == 1
        assert AlertRecipient.objects.get().cursor == AlertEvent.objects.get().id
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        controller.stop()
