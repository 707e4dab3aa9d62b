"""The embedded server as `make run` starts it (daphne, SQLite, the embedded worker): SIGTERM stops it
while it scores, and what it acknowledged is scored after the restart."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POINTS = {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}
MAX_SCORE = 1000  # leads.Lead.max_score default

pytestmark = pytest.mark.localhost



class EmbeddedServer:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.env = {
            key: value for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL"}
        }
        self.env.update(DJANGO_SETTINGS_MODULE="config.settings", TARGETGRID_QUEUE="embedded",
                        TARGETGRID_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.starts = 0

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self) -> None:
        """What `make run` does after migrate/bootstrap: daphne config.asgi:application."""
        port = free_port()
        self.starts += 1
        log = open(self.data_dir / f"daphne-{self.starts}.log", "w")
        self.proc = subprocess.Popen([str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
                                     cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # /health answers 200 once the embedded worker runs (the first request starts it)
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"the embedded server did not start:\n{self.log()}")
            time.sleep(0.3)

    def log(self) -> str:
        return (self.data_dir / f"daphne-{self.starts}.log").read_text()[-4000:]

    def post(self, path: str, body, key: str):
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.load(response)

    def query(self, sql: str, *params):
        with sqlite3.connect(self.data_dir / "targetgrid.sqlite3", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def listen(server: EmbeddedServer, key: str, frames: list) -> threading.Event:
    """An operator page's WebSocket on /ws/scores/ (score frames flow while the server scores)."""
    from websockets.sync.client import connect

    connected = threading.Event()

    def run():
        url = server.base.replace("http://", "ws://") + "/ws/scores/"
        try:
            with connect(url, additional_headers={"Authorization": f"Bearer {key}"}, max_size=None) as ws:
                connected.set()
                for frame in ws:
                    frames.append(frame)
        except Exception:  # the server went away: that is the point of the test
            connected.set()

    threading.Thread(target=run, daemon=True).start()
    return connected


@pytest.fixture
def server(tmp_path):
    server = EmbeddedServer(tmp_path)
    server.manage("migrate", "--noinput")
    server.manage("bootstrap")
    yield server
    server.stop()


def test_sigterm_stops_the_embedded_server_while_it_scores_and_nothing_acknowledged_is_lost(server):
    # Given the embedded server and a batch of 10,000 events for 1,000 leads, acknowledged (202),
    key = server.manage("create_api_key", "--name", "sigterm")
    server.start()
    frames: list = []
    assert listen(server, key, frames).wait(30)
    rng = random.Random(9)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = [
        {
            "event_id": f"sigterm-{i}",
            "event_type": rng.choice(list(POINTS)),
            "timestamp": (t0 + timedelta(seconds=rng.randint(0, 86_400))).isoformat(),
            "email": f"lead{i % 1000}@example.com",
        }
        for i in range(10_000)
    ]
    status, body = server.post("/api/events/batch", events, key)
    assert status == 202, body
    acknowledged = [item["event_id"] for item in body["results"] if item["status"] == "accepted"]
    assert len(acknowledged) == 10_000

    # when SIGTERM arrives while the embedded worker is scoring them (and a page watches),
    deadline = time.monotonic() + 120
    while not server.query("SELECT COUNT(*) FROM events_event WHERE status != 'pending'")[0][0]:
        assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
        time.sleep(0.01)
    scored_before = server.query("SELECT COUNT(*) FROM events_event WHERE status != 'pending'")[0][0]
    server.proc.send_signal(signal.SIGTERM)

    # then the server exits within 10 s (it used to hang until SIGKILL),
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the embedded server did not stop within 10 s of SIGTERM "
                    f"({scored_before} of 10,000 events scored when it was sent):\n{server.log()}")

    # and after a restart every acknowledged event is scored, each lead to the sum of its events.
    server.start()
    deadline = time.monotonic() + 180
    while server.query("SELECT COUNT(*) FROM events_event WHERE status = 'pending'")[0][0]:
        assert time.monotonic() < deadline, f"events still pending after the restart:\n{server.log()}"
        time.sleep(0.2)
    stored = dict(server.query("SELECT event_id, status FROM events_event"))
    assert {event_id: stored.get(event_id) for event_id in acknowledged} == {event_id: "processed" for event_id in acknowledged}
    expected: dict[str, int] = {}
    for event in events:
        expected[event["email"]] = min(MAX_SCORE, expected.get(event["email"], 0) + POINTS[event["event_type"]])
    assert dict(server.query("SELECT email, current_score FROM leads_lead WHERE email LIKE 'lead%@example.com'")) == expected
    sums = dict(server.query("SELECT l.email, COALESCE(SUM(c.delta), 0) FROM leads_lead l "
                             "LEFT JOIN scoring_scorechange c ON c.lead_id = l.id GROUP BY l.email"))
    assert {email: sums[email] for email in expected} == expected  # the audit trail: no change doubled
