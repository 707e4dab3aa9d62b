"""A webhook receiver for the alerts bench and the outbound kill test: a real HTTP server (aiohttp)
that verifies every request with the official ``standardwebhooks`` package and counts deliveries
per ``webhook-id`` (what a receiver dedupes on: delivery is at least once, with a stable id).

    POST /hook/<name>                     a delivery to the endpoint registered as <name>
    POST /_control/endpoint               {"name", "secret", "mode": fast|slow|hang|status, "delay": s,
                                           "status": code}  (register or change an endpoint)
    GET  /_control/stats?name=<name>      counts, duplicates, latencies, the deduped ids
    GET  /_control/stats?name=<name>&ids=0  the same without the ids

Modes: ``fast`` answers 200 at once; ``slow`` after ``delay`` seconds; ``hang`` sleeps ``delay``
seconds (set it past the sender's timeout) before answering; ``status`` answers ``status`` at once.
A request whose signature does not verify is answered 401 and counted as ``invalid``, never as a
delivery. Latency is from the alert's own ``timestamp`` (in the signed body: when scoring wrote the
domain event) to the first receipt of its ``webhook-id``.

Runs in a thread of the caller (:class:`ReceiverThread`, the tests) or as a process
(``python bench/receiver.py --port N``, the bench: its CPU is then its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    data = sorted(values)

    def rank(q: float) -> float:
        return data[min(len(data) - 1, max(0, int(round(q * len(data) + 0.5)) - 1))]

    return {"p50": round(rank(0.50), 1), "p95": round(rank(0.95), 1), "p99": round(rank(0.99), 1),
            "max": round(data[-1], 1), "n": len(data)}


@dataclass
class Endpoint:
    name: str
    secret: str
    mode: str = "fast"
    delay: float = 0.0
    status: int = 200
    # webhook-id -> wall-clock times of each verified receipt
    receipts: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # first receipt - the alert's timestamp
    invalid: int = 0
    requests: int = 0
    answered: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.webhook = Webhook(self.secret)

    def stats(self, *, ids: bool = True) -> dict:
        duplicates = sum(len(times) - 1 for times in self.receipts.values())
        out = {
            "name": self.name, "mode": self.mode, "requests": self.requests, "answered": self.answered,
            "invalid": self.invalid, "received": sum(len(t) for t in self.receipts.values()),
            "unique": len(self.receipts), "duplicates": duplicates,
            "duplicated_ids": sorted(i for i, t in self.receipts.items() if len(t) > 1)[:20],
            "latency_ms": percentiles(list(self.latency_ms.values())), "types": dict(self.types),
        }
        if ids:
            out["ids"] = {msg_id: times for msg_id, times in self.receipts.items()}
        return out


class Receiver:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.lock = threading.Lock()  # the tests read the counts from another thread

    def add(self, name: str, secret: str, *, mode: str = "fast", delay: float = 0.0, status: int = 200) -> Endpoint:
        if mode not in ("fast", "slow", "hang", "status"):
            raise ValueError(f"unknown mode {mode!r}")
        with self.lock:
            endpoint = self.endpoints.get(name)
            if endpoint is None or endpoint.secret != secret:
                endpoint = self.endpoints[name] = Endpoint(name=name, secret=secret)
            endpoint.mode, endpoint.delay, endpoint.status = mode, delay, status
            return endpoint

    def stats(self, name: str, *, ids: bool = True) -> dict:
        with self.lock:
            return self.endpoints[name].stats(ids=ids)

    # --- HTTP ----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/hook/{name}", self.hook)
        app.router.add_post("/_control/endpoint", self.control_endpoint)
        app.router.add_get("/_control/stats", self.control_stats)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        endpoint = self.endpoints.get(request.match_info["name"])
        if endpoint is None:
            return web.json_response({"error": "no such endpoint"}, status=404)
        body = await request.read()
        with self.lock:
            endpoint.requests += 1
        try:
            payload = endpoint.webhook.verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError) as exc:
            with self.lock:
                endpoint.invalid += 1
            return web.json_response({"error": f"signature: {exc}"}, status=401)
        msg_id = request.headers["webhook-id"]
        with self.lock:
            times = endpoint.receipts.setdefault(msg_id, [])
            times.append(arrived)
            if len(times) == 1:
                kind = str(payload.get("type", "?")) if isinstance(payload, dict) else "?"
                endpoint.types[kind] = endpoint.types.get(kind, 0) + 1
                stamp = payload.get("timestamp") if isinstance(payload, dict) else None
                if stamp:
                    try:
                        alert_at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                        endpoint.latency_ms[msg_id] = max(0.0, (arrived - alert_at) * 1000)
                    except ValueError:
                        pass
        if endpoint.mode in ("slow", "hang"):
            await asyncio.sleep(endpoint.delay)
        with self.lock:
            endpoint.answered += 1
        status = endpoint.status if endpoint.mode == "status" else 200
        return web.json_response({"ok": status < 300}, status=status)

    async def control_endpoint(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.add(spec["name"], spec["secret"], mode=spec.get("mode", "fast"), delay=float(spec.get("delay", 0)),
                 status=int(spec.get("status", 200)))
        return web.json_response({"ok": True})

    async def control_stats(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        if name not in self.endpoints:
            return web.json_response({"error": "no such endpoint"}, status=404)
        return web.json_response(self.stats(name, ids=request.query.get("ids", "1") != "0"))


class ReceiverThread(threading.Thread):
    """The receiver on its own event loop in a daemon thread (for tests): ``start()`` returns once it
    listens; ``stop()`` closes it."""

    def __init__(self, receiver: Receiver, port: int, host: str = "127.0.0.1"):
        super().__init__(daemon=True, name=f"webhook-receiver-{port}")
        self.receiver, self.port, self.host = receiver, port, host
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(self.receiver.app(), access_log=None, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.ready.set()
        await self._stop_event.wait()
        await runner.cleanup()

    def start(self) -> None:
        super().start()
        if not self.ready.wait(15) or self.error is not None:
            raise RuntimeError(f"the webhook receiver did not start: {self.error!r}")

    def stop(self) -> None:
        if self.loop is not None and self._stop_event is not None:
            self.loop.call_soon_threadsafe(self._stop_event.set)
        self.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(Receiver().app(), host=args.host, port=args.port, access_log=None, print=lambda *_: None,
                handle_signals=True, backlog=2048)


if __name__ == "__main__":
    main()
