"""The load generator: real HTTP (aiohttp) and a real WebSocket (websockets), on one asyncio loop."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import aiohttp
from websockets.asyncio.client import connect


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    data = sorted(values)

    def rank(q: float) -> float:
        return data[min(len(data) - 1, max(0, int(round(q * len(data) + 0.5)) - 1))]

    return {"p50": round(rank(0.50), 1), "p95": round(rank(0.95), 1), "p99": round(rank(0.99), 1),
            "max": round(data[-1], 1), "n": len(data)}


class FrameListener:
    """Subscribes to /ws/scores/ and notes when each ``score.changed`` frame of a workload arrives."""

    def __init__(self, url: str, api_key: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.prefix = ""
        self.first_seen: dict[str, float] = {}
        self.counts: Counter = Counter()
        self.frames = 0
        self.leaderboard_frames = 0
        self.last_frame_at = 0.0
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None

    def reset(self, prefix: str) -> None:
        self.prefix = prefix
        self.first_seen, self.counts = {}, Counter()
        self.frames = self.leaderboard_frames = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), timeout=20)

    async def _run(self) -> None:
        async with connect(self.url, additional_headers=self.headers, max_size=None, ping_interval=None,
                           compression=None, open_timeout=15) as ws:
            self.connected.set()
            async for message in ws:
                now = time.perf_counter()
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "score.changed":
                    event_id = frame.get("event_id", "")
                    if not event_id.startswith(self.prefix):
                        continue
                    self.frames += 1
                    self.last_frame_at = now
                    self.counts[event_id] += 1
                    self.first_seen.setdefault(event_id, now)
                elif kind == "leaderboard.updated":
                    self.leaderboard_frames += 1

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass


class Api:
    def __init__(self, base_url: str, api_key: str, connections: int):
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=300),
        )

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **params):
        async with self.session.get(self.base + path, headers=self.headers, params=params) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"GET {path} -> {resp.status}: {body}")
            return body

    async def post(self, path: str, payload) -> tuple[int, dict]:
        data = json.dumps(payload)
        async with self.session.post(self.base + path, data=data, headers=self.headers) as resp:
            body = await resp.read()
            try:
                return resp.status, (json.loads(body) if body else {})
            except ValueError:  # an error page: keep it for the report
                return resp.status, {"status": "error", "body": body[:300].decode(errors="replace")}


class SendLog:
    """When each event was accepted (the POST's response arrived), and HTTP figures."""

    def __init__(self) -> None:
        self.accepted_at: dict[str, float] = {}
        self.http_ms: list[float] = []
        self.status: Counter = Counter()
        self.items: Counter = Counter()  # accepted / duplicate / rejected per item
        self.errors: list[str] = []
        self.first_sent = 0.0
        self.last_done = 0.0

    def record_single(self, event_id: str, code: int, body: dict, sent: float, done: float) -> None:
        self.http_ms.append((done - sent) * 1000)
        self.status[code] += 1
        item = body.get("status", "error")
        self.items[item] += 1
        if item == "accepted":
            self.accepted_at.setdefault(event_id, done)
        elif item not in ("duplicate",) and len(self.errors) < 5:
            self.errors.append(f"{code}: {str(body)[:300]}")

    def record_batch(self, code: int, body: dict, sent: float, done: float) -> None:
        self.http_ms.append((done - sent) * 1000)
        self.status[code] += 1
        for item in body.get("results", []):
            self.items[item["status"]] += 1
            if item["status"] == "accepted":
                self.accepted_at.setdefault(item["event_id"], done)
            elif item["status"] == "rejected" and len(self.errors) < 5:
                self.errors.append(str(item)[:300])
        if code >= 500 or not body.get("results"):
            if len(self.errors) < 5:
                self.errors.append(f"{code}: {str(body)[:300]}")


async def send_batches(api: Api, batches: list[list[dict]], clients: int, log: SendLog) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def client() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            sent = time.perf_counter()
            code, body = await api.post("/api/events/batch", batch)
            log.record_batch(code, body, sent, time.perf_counter())

    log.first_sent = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    log.last_done = time.perf_counter()


async def send_singles(api: Api, events: list[dict], clients: int, log: SendLog) -> None:
    """Closed loop: ``clients`` connections, each posting one event after the other."""
    queue: asyncio.Queue = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def client() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            sent = time.perf_counter()
            code, body = await api.post("/api/events", event)
            log.record_single(event["event_id"], code, body, sent, time.perf_counter())

    log.first_sent = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    log.last_done = time.perf_counter()


async def send_steady(api: Api, events: list[dict], rate: float, max_in_flight: int, log: SendLog) -> dict:
    """Open loop: event i is due at start + i / rate, whatever the server's speed (bounded in flight)."""
    semaphore = asyncio.Semaphore(max_in_flight)
    tasks = []
    lag_ms: list[float] = []

    async def one(event: dict) -> None:
        try:
            sent = time.perf_counter()
            code, body = await api.post("/api/events", event)
            log.record_single(event["event_id"], code, body, sent, time.perf_counter())
        finally:
            semaphore.release()

    start = log.first_sent = time.perf_counter()
    for i, event in enumerate(events):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await semaphore.acquire()
        lag_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
        tasks.append(asyncio.create_task(one(event)))
    await asyncio.gather(*tasks)
    log.last_done = time.perf_counter()
    return {"send_lag_ms": percentiles(lag_ms)}
