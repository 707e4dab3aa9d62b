"""End to end against the production stack: real MariaDB/MySQL, real Redis, real `celery worker`
processes and daphne: HTTP POST -> worker -> database -> WebSocket frame.

Runs when TEST_DATABASE_URL and TEST_REDIS_URL are set (`make test` in CI)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import websockets
from conftest import free_port, subprocess_database_url

from events.services import api_key_create
from leads.models import Lead
from scoring import engine
from scoring.models import ScoreChange

ROOT = Path(__file__).resolve().parents[2]
POINTS = {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")),
        reason="needs TEST_DATABASE_URL and TEST_REDIS_URL (a real database shared with worker processes)",
    ),
    pytest.mark.django_db(transaction=True),
]




@pytest.fixture
def stack(tmp_path):
    """daphne (HTTP + WebSocket), two scoring workers and one import worker (the queues of `make worker`
    and `make worker-imports`) on the test database."""
    import redis

    redis.Redis.from_url(os.environ["TEST_REDIS_URL"]).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": os.environ["TEST_REDIS_URL"],
        "TARGETGRID_QUEUE": "celery",
        "TARGETGRID_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    bin_dir = Path(sys.executable).parent
    logs = []
    procs = []

    def start(name, args):
        log = open(tmp_path / f"{name}.log", "w")
        logs.append((name, tmp_path / f"{name}.log"))
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))

    for n in (1, 2):
        start(f"worker{n}", [str(bin_dir / "celery"), "-A", "config", "worker", "-c", "1", "-n", f"w{n}@%h", "-l", "warning",
                             "-Q", "scoring,realtime,celery"])
    start("imports", [str(bin_dir / "celery"), "-A", "config", "worker", "-c", "1", "-n", "imports@%h", "-l", "warning",
                      "-Q", "imports"])
    start("daphne", [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if json.load(response)["checks"]["workers"].get("count") == 3:
                    break
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            dump = "\n".join(f"--- {name}\n{path.read_text()[-3000:]}" for name, path in logs)
            pytest.fail(f"stack did not become healthy:\n{dump}")
        time.sleep(0.5)
    _, key = api_key_create(name="e2e")
    yield {"base": base, "ws": f"ws://127.0.0.1:{port}", "key": key, "log_dir": str(tmp_path)}
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def post(stack, path, body):
    request = urllib.request.Request(
        stack["base"] + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack['key']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"{}")
        except ValueError:
            return error.code, {"raw": raw[:2000].decode(errors="replace")}


class FrameListener(threading.Thread):
    """A real WebSocket client on /ws/scores/ in its own thread and event loop."""

    def __init__(self, stack, frames: list):
        super().__init__(daemon=True)
        self.stack, self.frames = stack, frames
        self.ready, self.done = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            asyncio.run(self._listen())
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.ready.set()

    async def _listen(self):
        headers = {"Authorization": f"Bearer {self.stack['key']}"}
        async with websockets.connect(self.stack["ws"] + "/ws/scores/", additional_headers=headers, max_queue=None) as ws:
            self.ready.set()
            while not self.done.is_set():
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                if frame["type"] == "score.changed":
                    self.frames.append(frame)

    def start(self):
        super().start()
        assert self.ready.wait(15), "WebSocket did not connect"
        assert self.error is None, self.error

    def wait_for(self, count: int, timeout: float):
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline and self.error is None:
            time.sleep(0.2)
        time.sleep(1.0)  # anything extra (a doubled frame) would arrive now

    def stop(self):
        self.done.set()
        self.join(10)
        assert self.error is None, f"WebSocket listener failed: {self.error!r}"


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def test_post_to_websocket_frame(stack):
    async def scenario():
        headers = {"Authorization": f"Bearer {stack['key']}"}
        async with websockets.connect(stack["ws"] + "/ws/scores/", additional_headers=headers) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "leaderboard.updated"
            status, body = await asyncio.to_thread(
                post,
                stack,
                "/api/events",
                {"event_id": "e2e-1", "event_type": "DEMO_REQUEST", "timestamp": iso(datetime.now(timezone.utc)), "email": "e2e@example.com"},
            )
            assert status == 202, body
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if frame["type"] == "score.changed":
                    break
            assert (frame["event_id"], frame["new_score"], frame["delta"]) == ("e2e-1", 50, 50)

    asyncio.run(scenario())
    assert Lead.objects.get(email="e2e@example.com").current_score == 50


def test_shuffled_duplicated_concurrent_stream(stack):
    """2,000 events for 50 leads, shuffled, 20% duplicates, 8 concurrent clients, 2 workers."""
    rng = random.Random(7)
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    events = [
        {
            "event_id": f"s-{i}",
            "event_type": rng.choice(list(POINTS)),
            "timestamp": iso(t0 + timedelta(seconds=rng.randrange(100_000))),
            "email": f"lead{rng.randrange(50)}@example.com",
        }
        for i in range(2000)
    ]
    sends = events + rng.sample(events, 400)
    rng.shuffle(sends)
    frames: list[dict] = []
    listener = FrameListener(stack, frames)
    listener.start()

    codes = []
    # Half as single POSTs from 8 concurrent clients, half as batches of 100.
    singles, batched = sends[: len(sends) // 2], sends[len(sends) // 2 :]
    with ThreadPoolExecutor(8) as pool:
        codes += [c for c, _ in pool.map(lambda e: post(stack, "/api/events", e), singles)]
        batches = [batched[i : i + 100] for i in range(0, len(batched), 100)]
        for code, body in pool.map(lambda b: post(stack, "/api/events/batch", b), batches):
            codes.append(code)
            if code in (200, 202):
                assert all(r["status"] in ("accepted", "duplicate") for r in body["results"]), body
    deadline = time.monotonic() + 90
    while ScoreChange.objects.count() < 2000 and time.monotonic() < deadline:
        time.sleep(0.5)
    listener.wait_for(2000, timeout=20)
    listener.stop()

    if not all(code in (200, 202) for code in codes):
        log = (Path(stack["log_dir"]) / "daphne.log").read_text()[-5000:]
        pytest.fail(f"unexpected status codes {sorted(set(codes))}\n{log}")
    for lead in Lead.objects.all():
        mine = [e for e in events if e["email"] == lead.email]
        expected = engine.fold(
            [
                engine.ScoredEvent(engine.EventKey(datetime.fromisoformat(e["timestamp"]), e["event_id"]), e["event_type"], POINTS[e["event_type"]])
                for e in mine
            ],
            max_score=1000,
        )
        assert lead.current_score == expected.score, lead.email
    assert ScoreChange.objects.count() == 2000
    assert len(frames) == 2000
    assert len({f["event_id"] for f in frames}) == 2000
