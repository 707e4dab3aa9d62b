"""Celery against real brokers: tasks are routed to their queue by kind; with the broker really down
ingest still stores and acknowledges, and the sweep scores the rows once it is back; a real worker
process survives a Redis restart (a private redis-server started here, stopped and started again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.test import override_settings

from config import transport
from config.celery import app as celery_app
from conftest import event_payload, free_port, subprocess_database_url
from events.models import Event, EventStatus
from events.services import event_ingest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def queued_task_names(queue: str) -> list[str]:
    names = []
    with celery_app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    names.append(simple.get_nowait().headers["task"])
                except simple.Empty:
                    return names
        finally:
            simple.close()


@override_settings(TARGETGRID_QUEUE="celery")
def test_tasks_are_routed_to_their_queue_by_kind(settings):
    if not settings.CELERY_BROKER_URL.startswith("memory://"):
        pytest.skip("reads the in-process broker back (the Redis broker is covered by the worker test)")
    # when scoring, import and realtime tasks are published by name
    assert transport.publish("scoring.drain_partition", 3)
    assert transport.publish("scoring.process_events", ["id-1"])
    assert transport.publish("events.import_file", 7)
    assert transport.publish("realtime.leaderboard_flush")
    # then each kind waits in its own queue, and nothing in the default one
    assert queued_task_names("scoring") == ["scoring.drain_partition", "scoring.process_events"]
    assert queued_task_names("imports") == ["events.import_file"]
    assert queued_task_names("realtime") == ["realtime.leaderboard_flush"]
    assert queued_task_names("celery") == []


# --- A real worker and a Redis restart ------------------------------------------------------




class PrivateRedis:
    def __init__(self, port: int, log: Path):
        self.port, self.log, self.proc = port, log, None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_until(self.ping, "the private redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def ping(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=1).ping()
        except redis.ConnectionError:
            return False

    def client(self):
        import redis

        return redis.Redis(port=self.port)


def wait_until(condition, message: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.2)


@pytest.mark.redis
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to start a private Redis")
@pytest.mark.django_db(transaction=True)
def test_a_worker_survives_a_redis_restart_and_scores_what_is_published_after_it(tmp_path):
    # Given a private Redis and a real scoring worker on it (the queues of `make worker`),
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_server = PrivateRedis(port, tmp_path / "redis.log")
    redis_server.start()
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": broker,
        "TARGETGRID_QUEUE": "celery",
        "TARGETGRID_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "-l", "info", "-c", "1", "-Q", "scoring,realtime,celery",
         "-n", f"restart-{port}@%h"],
        cwd=ROOT, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
    )
    try:
        log = log_path.read_text
        wait_until(lambda: "ready." in log() or worker.poll() is not None, "the worker did not start")
        assert worker.poll() is None, log()
        # holding a message it has not acknowledged yet (the trailing leaderboard's countdown),
        with celery_app.connection_for_write(broker) as conn:
            celery_app.send_task("realtime.leaderboard_flush", countdown=3600, connection=conn)
        wait_until(lambda: redis_server.client().hlen("unacked") == 1, "the worker did not take the message")

        # when Redis stops (long enough for the worker to notice) and starts again,
        redis_server.stop()
        wait_until(lambda: "Connection to broker lost" in log() or worker.poll() is not None,
                   "the worker did not notice the broker going away")
        time.sleep(3)  # Redis stays down a few seconds (not a threshold: any length would do)
        redis_server.start()

        # then the worker is still running, and scores an event published after the restart.
        with mock.patch("config.transport.publish", return_value=True):  # stored only
            event_ingest(items=[event_payload("after-restart")], source="test")
        event = Event.objects.get(event_id="after-restart")

        def published_and_scored() -> bool:
            assert worker.poll() is None, f"the worker died:\n{log()[-4000:]}"
            try:
                with celery_app.connection_for_write(broker) as conn:
                    celery_app.send_task("scoring.process_events", args=[[str(event.id)]], connection=conn)
            except Exception:  # the broker is still starting: try again
                return False
            return True

        wait_until(published_and_scored, "could not publish to the restarted Redis")
        wait_until(lambda: Event.objects.get(pk=event.pk).status == EventStatus.PROCESSED or worker.poll() is not None,
                   f"the event was not scored after the restart:\n{log()[-4000:]}")
        assert worker.poll() is None, f"the worker died:\n{log()[-4000:]}"
        assert Event.objects.get(pk=event.pk).status == EventStatus.PROCESSED
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if redis_server.proc and redis_server.proc.poll() is None:
            redis_server.stop()


@pytest.fixture
def private_redis(tmp_path, settings, monkeypatch):
    """A private redis-server as this process's broker and scoring-partition store (not the cache)."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server to start a private Redis")
    port = free_port()
    server = PrivateRedis(port, tmp_path / "redis.log")
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    settings.TARGETGRID_QUEUE = "celery"
    settings.REDIS_URL = url  # scoring/partitions.py
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # wins over every other source of conf.broker_url
    # The app caches its connection and producer pools (bound to the suite's broker): new ones for
    # this broker, the suite's back afterwards.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    assert celery_app.connection_for_write().port == port
    yield server
    if server.proc.poll() is None:
        server.stop()


def run_queued_tasks(queue: str) -> list[str]:
    """Act as a worker of ``queue``: run every message waiting there by its task name."""
    names = []
    with celery_app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    message = simple.get(timeout=1)
                except simple.Empty:
                    return names
                args, kwargs, _ = message.decode()
                names.append(message.headers["task"])
                transport.task_spec(message.headers["task"]).func(*args, **kwargs)
        finally:
            simple.close()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_ingest_stores_the_event_and_the_sweep_scores_it_when_it_is_back(private_redis, api):
    from leads.models import Lead
    from scoring.services import events_requeue_pending

    # Given the broker (a real Redis) stopped,
    private_redis.stop()
    # when an event is posted, then it is acknowledged and stored pending (nothing could be published),
    response = api.post("/api/events", event_payload("broker-down"), format="json")
    assert response.status_code == 202, response.content
    assert Event.objects.get(event_id="broker-down").status == EventStatus.PENDING
    # (a task published by name meanwhile is refused, logged, never raised into the caller),
    assert transport.publish("scoring.drain_partition", 0) is False
    # and once the broker is back, the sweep publishes the wake-up that gets it scored.
    private_redis.start()
    assert run_queued_tasks("scoring") == []  # nothing was published while it was down
    assert events_requeue_pending(older_than_seconds=0) == 1  # one stale partition woken
    assert run_queued_tasks("scoring") == ["scoring.drain_partition"]
    assert Event.objects.get(event_id="broker-down").status == EventStatus.PROCESSED
    assert Lead.objects.get(email="ann@example.com").current_score == 5
