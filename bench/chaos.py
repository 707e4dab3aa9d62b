#!/usr/bin/env python
"""Fault injection on the production stack (issue #9, acceptance 2), reproducible and bounded.

    make chaos                                      # = .venv/bin/python bench/chaos.py $(CHAOS_ARGS)
    .venv/bin/python bench/chaos.py --events 20000 --faults kill,redis,mysql,term
    .venv/bin/python bench/chaos.py --plain-ids     # no case/accent/width twins: the faults alone

It starts its own MariaDB (utf8mb4_unicode_ci, like docker-compose.yml) and Redis on private ports
(never the shared 3306/6379), runs the stack under supervisord with deploy/supervisord.conf
(gunicorn API, daphne, N Celery workers, beat), drives an event workload over HTTP at a steady rate
and, one after another with recovery time between, SIGKILLs a worker, stops Redis for 15 s,
restarts MariaDB and SIGTERMs a worker. Nothing is restarted by the harness but the two services it
stops on purpose: the supervisor restarts the killed processes. At the end it waits (bounded) until
nothing is pending and checks the database against what the client sent and was told
(bench/chaos_verify.py). Exit status 0 only if every condition holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from chaos_verify import Outcome, Snapshot, verify  # noqa: E402
from services import PrivateMariaDB, PrivateRedis, Supervisor, cpu_ticks, port_open, process_tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"
DB_NAME = "tg_chaos"
MIX = {"PAGE_VIEW": 45, "EMAIL_OPEN": 20, "FORM_SUBMIT": 10, "DEMO_REQUEST": 4, "PURCHASE": 3, "UNSUBSCRIBE": 18}
EXTRA_RULES = {"UNSUBSCRIBE": -30}  # created by the harness: scores hit the floor as well as the cap
FAULTS = ("kill", "redis", "mysql", "term", "kill-outbound")
FAULT_TITLES = {"kill": "SIGKILL a worker", "redis": "stop Redis", "mysql": "restart MariaDB",
                "term": "SIGTERM a worker", "kill-outbound": "SIGKILL the outbound worker"}
# Twins: ids that MariaDB's utf8mb4_unicode_ci compares equal and Python does not.
TWINS = [("A", "a"), ("straße", "strasse"), ("Ａ", "A"), ("é", "e"), ("Ö", "o")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000, help="events sent (duplicates included)")
    p.add_argument("--leads", type=int, default=300)
    p.add_argument("--faults", default=",".join(FAULTS), help=f"order and subset of {','.join(FAULTS)}")
    p.add_argument("--rate", type=float, default=0, help="events/s (0: spread the events over the fault schedule)")
    p.add_argument("--baseline", type=float, default=15, help="seconds of load before the first fault")
    p.add_argument("--recovery", type=float, default=40, help="seconds after each fault before the next one")
    p.add_argument("--recovery-max", type=float, default=150,
                   help="while a fault's backlog is not cleared, wait up to this long (load at a quarter rate) "
                        "before the next fault, so one fault's stall is not cut short by the next")
    p.add_argument("--redis-outage", type=float, default=15, help="seconds Redis stays stopped")
    p.add_argument("--mysql-outage", type=float, default=0, help="seconds MariaDB stays stopped (0: a plain restart)")
    p.add_argument("--resume-limit", type=float, default=30, help="scoring must resume within this after a fault")
    p.add_argument("--settle-timeout", type=float, default=180, help="max seconds to wait for pending events at the end")
    p.add_argument("--retry-for", type=float, default=90, help="seconds after the last send to keep retrying")
    p.add_argument("--dup-share", type=float, default=0.12)
    p.add_argument("--late-share", type=float, default=0.15)
    p.add_argument("--tie-share", type=float, default=0.03, help="events on an earlier event's timestamp, id ordered differently by collation")
    p.add_argument("--twin-share", type=float, default=0.02, help="pairs of ids equal under utf8mb4_unicode_ci")
    p.add_argument("--plain-ids", action="store_true", help="no ties or twins: lower-case ASCII ids, distinct timestamps")
    p.add_argument("--batch-share", type=float, default=0.5, help="share of requests that are batches (5-60 events)")
    p.add_argument("--max-in-flight", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes (supervised)")
    p.add_argument("--concurrency", type=int, default=2, help="celery -c (2, as make worker)")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--web-threads", type=int, default=4)
    p.add_argument("--worker-queues", default=os.environ.get("QUEUES", "scoring,realtime,celery"))
    p.add_argument("--http-ports", default=os.environ.get("CHAOS_PORTS", "8300-8399"))
    p.add_argument("--redis-port", type=int, default=int(os.environ.get("CHAOS_REDIS_PORT", 6391)))
    p.add_argument("--mysql-port", type=int, default=int(os.environ.get("CHAOS_MYSQL_PORT", 3307)))
    p.add_argument("--kill-target", choices=["tree", "main", "child"], default="tree",
                   help="SIGKILL the worker's whole process tree (default), its main process, or a pool child")
    p.add_argument("--webhooks", action="store_true",
                   help="also a webhook endpoint (every stage change and score crossing) on a real receiver "
                        "(bench/receiver.py: signatures verified, deduped on webhook-id); checked at the end: "
                        "every delivery row succeeded and received, nothing else received (fault kill-outbound "
                        "SIGKILLs the supervised outbound worker's process tree)")
    p.add_argument("--webhook-delay", type=float, default=0.2,
                   help="--webhooks: the receiver answers after this many seconds (requests are in flight when "
                        "kill-outbound strikes)")
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (service data, process logs)")
    p.add_argument("--json", help="result file (default bench/results/chaos-<timestamp>.json)")
    args = p.parse_args(argv)
    args.fault_list = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(args.fault_list) - set(FAULTS)
    if unknown:
        p.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    if "kill-outbound" in args.fault_list and not args.webhooks:
        p.error("the fault kill-outbound needs --webhooks")
    return args


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- workload ----------------------------------------------------------------------------------


def build_workload(tag: str, args) -> tuple[list[dict], dict[str, dict]]:
    """(payloads in sending order with duplicates, distinct id -> payload)."""
    rng = random.Random(args.seed)
    n_unique = max(1, round(args.events * (1 - args.dup_share)))
    lead_weights = [1 / (i + 1) ** 0.7 for i in range(args.leads)]  # a few hot leads hit the 1,000 cap
    cum = []
    total = 0.0
    for w in lead_weights:
        total += w
        cum.append(total)
    types, type_weights = list(MIX), list(MIX.values())
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    used: set[datetime] = set()
    last_of_lead: dict[int, dict] = {}
    keyed: list[tuple[float, dict]] = []
    unique: dict[str, dict] = {}

    def add(position: float, payload: dict) -> None:
        unique[payload["event_id"]] = payload
        keyed.append((position, payload))

    def fresh_ts(ts: datetime) -> datetime:
        while ts in used:
            ts += timedelta(microseconds=1)
        used.add(ts)
        return ts

    i = twin = 0
    while len(unique) < n_unique:
        lead = rng.choices(range(args.leads), cum_weights=cum)[0]
        email = f"{tag}-{lead}@chaos.example"
        ts = base + timedelta(milliseconds=50 * i, microseconds=rng.randrange(1000))
        if rng.random() < args.late_share:
            ts -= timedelta(seconds=rng.uniform(1, 300))
        event_type = rng.choices(types, weights=type_weights)[0]
        roll = rng.random()
        previous = last_of_lead.get(lead)
        if not args.plain_ids and roll < args.twin_share:
            # Two ids equal under the database's collation, same lead, same timestamp; the second one
            # arrives a few hundred requests later, after the first was scored.
            left, right = TWINS[twin % len(TWINS)]
            twin += 1
            ts = fresh_ts(ts)
            first = {"event_id": f"{tag}-x{twin:05d}-{left}", "event_type": event_type,
                     "timestamp": _iso(ts), "email": email}
            second = dict(first, event_id=f"{tag}-x{twin:05d}-{right}",
                          event_type=rng.choices(types, weights=type_weights)[0])
            add(i, first)
            add(i + rng.randint(50, 600) + 0.5, second)
            last_of_lead[lead] = first
        elif not args.plain_ids and previous is not None and roll < args.twin_share + args.tie_share:
            # Same timestamp as an earlier event of the lead; "F…" sorts before "e…" by code point but
            # after it under utf8mb4_unicode_ci, so the two orders disagree on which comes first.
            payload = {"event_id": f"{tag}-F{i:06d}", "event_type": event_type,
                       "timestamp": previous["timestamp"], "email": email}
            add(i, payload)
        else:
            payload = {"event_id": f"{tag}-e{i:06d}", "event_type": event_type,
                       "timestamp": _iso(fresh_ts(ts)), "email": email}
            add(i, payload)
            last_of_lead[lead] = payload
        i += 1
    uniques = list(unique.values())
    for _ in range(args.events - len(uniques)):
        j = rng.randrange(len(keyed))
        position, payload = keyed[j]
        keyed.append((position + rng.randint(1, 2000) + 0.25, payload))
    keyed.sort(key=lambda kv: kv[0])
    return [payload for _, payload in keyed], unique


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def plan_requests(sent: list[dict], rng: random.Random, batch_share: float) -> list[list[dict]]:
    """Cut the sending order into requests: a single (a list of one) or a batch of 5-60 events."""
    requests, i = [], 0
    while i < len(sent):
        size = rng.randint(5, 60) if rng.random() < batch_share else 1
        requests.append(sent[i : i + size])
        i += size
    return requests


# --- the HTTP driver ---------------------------------------------------------------------------


@dataclass
class Answer:
    t: float  # wall clock when the answer (or the error) arrived
    code: str  # "202", "500", "conn-error", "timeout"
    events: int
    json_body: bool = True


class Driver:
    """Open loop at ``rate`` events/s (bounded in flight). 429/503 are retried after Retry-After,
    any other 5xx or connection error after a back-off; 4xx item errors are final."""

    def __init__(self, base: str, api_key: str, args):
        self.base = base
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.args = args
        self.outcomes: dict[str, Outcome] = defaultdict(Outcome)
        self.answers: list[Answer] = []
        self.samples_5xx: list[str] = []
        self.retry_tasks: set[asyncio.Task] = set()
        self.retry_deadline = float("inf")
        self.session: aiohttp.ClientSession | None = None
        self.sem = asyncio.Semaphore(args.max_in_flight)
        self.sent_requests = 0
        self.pace = 1.0  # the fault schedule slows the load down while it waits for a stalled backlog

    async def post(self, items: list[dict]) -> tuple[str, dict | None, dict, bool]:
        single = len(items) == 1
        url = self.base + ("/api/events" if single else "/api/events/batch")
        data = json.dumps(items[0] if single else items)
        try:
            async with self.session.post(url, data=data, headers=self.headers) as resp:
                raw = await resp.read()
                try:
                    body = json.loads(raw) if raw else {}
                    is_json = True
                except ValueError:
                    body, is_json = {"raw": raw[:300].decode(errors="replace")}, False
                return str(resp.status), body, dict(resp.headers), is_json
        except asyncio.TimeoutError:
            return "timeout", None, {}, True
        except aiohttp.ClientError as exc:
            return "conn-error", {"error": type(exc).__name__}, {}, True

    async def send(self, items: list[dict], attempt: int = 1) -> None:
        async with self.sem:
            self.sent_requests += 1
            for p in items:
                self.outcomes[p["event_id"]].attempts += 1
            code, body, headers, is_json = await self.post(items)
        now = time.time()
        self.answers.append(Answer(now, code, len(items), is_json))
        retry_after = None
        if code in ("429", "503"):
            try:
                retry_after = max(0.5, float(headers.get("Retry-After", "1")))
            except ValueError:
                retry_after = 1.0
        elif code.startswith("5") or code in ("conn-error", "timeout"):
            if len(self.samples_5xx) < 8:
                self.samples_5xx.append(f"{time.strftime('%H:%M:%S', time.localtime(now))} {code}: "
                                        f"{json.dumps(body)[:200] if body is not None else ''}")
            retry_after = min(8.0, 0.5 * 2 ** min(attempt, 4)) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            if now + retry_after < self.retry_deadline:
                task = asyncio.create_task(self._retry(items, attempt + 1, retry_after))
                self.retry_tasks.add(task)
                task.add_done_callback(self.retry_tasks.discard)
            return
        self.record(items, code, body or {})

    async def _retry(self, items, attempt, delay):
        await asyncio.sleep(delay)
        await self.send(items, attempt)

    def record(self, items: list[dict], code: str, body: dict) -> None:
        if len(items) == 1 and "results" not in body:
            outcome = self.outcomes[items[0]["event_id"]]
            status = body.get("status")
            if code in ("200", "202") and status == "accepted":
                outcome.accepted += 1
            elif code in ("200", "202") and status == "duplicate":
                outcome.duplicate += 1
            else:
                outcome.rejected.append(f"{code} {json.dumps(body)[:200]}")
            return
        results = body.get("results") or []
        if len(results) != len(items):
            for p in items:
                self.outcomes[p["event_id"]].rejected.append(f"{code} batch answer without per-item results")
            return
        for p, item in zip(items, results):
            outcome = self.outcomes[p["event_id"]]
            if item.get("event_id") not in (None, p["event_id"]):
                outcome.rejected.append(f"{code} answered for another id {item.get('event_id')!r}")
            elif item.get("status") == "accepted":
                outcome.accepted += 1
            elif item.get("status") == "duplicate":
                outcome.duplicate += 1
            else:
                outcome.rejected.append(f"{code} {json.dumps(item)[:200]}")

    async def run(self, requests: list[list[dict]], rate: float) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.args.max_in_flight + 8),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        tasks = []
        virtual, last = 0.0, time.perf_counter()  # seconds of schedule elapsed, at ``pace``
        done_events = 0
        for items in requests:
            target = done_events / rate
            while True:
                now = time.perf_counter()
                virtual, last = virtual + (now - last) * self.pace, now
                if virtual >= target:
                    break
                await asyncio.sleep(min(0.05, (target - virtual) / max(self.pace, 0.01)))
            tasks.append(asyncio.create_task(self.send(items)))
            done_events += len(items)
        await asyncio.gather(*tasks)
        self.retry_deadline = time.time() + self.args.retry_for
        while self.retry_tasks:
            await asyncio.gather(*list(self.retry_tasks), return_exceptions=True)

    async def close(self) -> None:
        if self.session:
            await self.session.close()


# --- monitoring: scoring progress from the database, supervised pids ----------------------------


@dataclass
class Sample:
    t: float
    counts: dict | None  # status -> events of this run; None if the database did not answer
    backlog: dict = field(default_factory=dict)  # fault index -> events received before its end still pending
    workers: dict = field(default_factory=dict)


class Monitor(threading.Thread):
    def __init__(self, mysql: PrivateMariaDB, tag: str, sup: Supervisor, faults: list[dict], interval=0.5):
        super().__init__(daemon=True, name="chaos-monitor")
        self.mysql, self.tag, self.sup, self.faults, self.interval = mysql, tag, sup, faults, interval
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.conn = None

    def query(self, sql, params=()):
        if self.conn is None:
            self.conn = self.mysql.connect(DB_NAME, timeout=2)
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall()

    def run(self) -> None:
        like = self.tag + "-%"
        while not self.stop_event.wait(self.interval):
            now = time.time()
            sample = Sample(now, None, workers=self.sup.workers())
            try:
                rows = self.query("SELECT status, COUNT(*) FROM events_event WHERE event_id LIKE %s GROUP BY status",
                                  (like,))
                sample.counts = {status: n for status, n in rows}
                for index, fault in enumerate(self.faults):
                    if fault.get("end") and fault.get("caught_up_at") is None:
                        end = datetime.fromtimestamp(fault["end"], timezone.utc).replace(tzinfo=None)
                        (n,), = self.query(
                            "SELECT COUNT(*) FROM events_event WHERE event_id LIKE %s AND status = 'pending' "
                            "AND received_at <= %s", (like, end))
                        sample.backlog[index] = n
                        if n == 0:
                            fault["caught_up_at"] = now
            except Exception as exc:  # the database is down (a fault): a gap in the samples
                sample.counts = None
                sample.backlog = {"error": f"{type(exc).__name__}: {exc}"[:120]}
                try:
                    if self.conn is not None:
                        self.conn.close()
                except Exception:
                    pass
                self.conn = None
            self.samples.append(sample)

    def last_counts(self) -> dict | None:
        for sample in reversed(self.samples):
            if sample.counts is not None:
                return sample.counts
        return None

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass


def resumed_after(samples: list[Sample], end: float) -> float | str | None:
    """Seconds from ``end`` to the first sample whose processed count grew past the count at ``end``;
    "idle" if nothing was pending at any sample after ``end`` (no work to resume); None: never."""
    base = None
    work = False
    for sample in samples:
        if sample.t < end or sample.counts is None:
            continue
        processed = sample.counts.get("processed", 0)
        work = work or sample.counts.get("pending", 0) > 0
        if base is None:
            base = processed
        elif processed > base:
            return round(sample.t - end, 1)
    return None if work or base is None else "idle"


# --- faults ------------------------------------------------------------------------------------


def lease_count(redis: PrivateRedis) -> int | None:
    """Keys that look like drain leases in the private Redis (best effort: the names are the app's)."""
    try:
        import redis as redis_py

        client = redis_py.Redis(host="127.0.0.1", port=redis.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return sum(1 for _ in client.scan_iter(match="*:lock:*", count=1000))
        finally:
            client.close()
    except Exception:
        return None


def busy_worker(sup: Supervisor, redis: PrivateRedis, wait: float = 15.0) -> tuple[str, int, int | None]:
    """A supervised worker caught in the middle of a task: one of its pool children used CPU in the
    last 50 ms, preferably while drain leases are held. Falls back to any worker after ``wait``."""
    deadline = time.monotonic() + wait
    previous: dict[int, int] = {}
    while True:
        workers = sup.workers()
        if not workers:
            raise RuntimeError("no supervised Celery worker is running")
        ticks = {pid: cpu_ticks(process_tree(pid)[1:]) for pid in workers.values()}
        busy = [name for name, pid in workers.items() if pid in previous and ticks[pid] > previous[pid]]
        if busy:
            leases = lease_count(redis)
            if leases or time.monotonic() > deadline:
                return busy[0], workers[busy[0]], leases
        elif time.monotonic() > deadline + 5:
            name = sorted(workers)[0]
            return name, workers[name], lease_count(redis)
        previous = ticks
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def inject(fault: str, rec: dict, *, sup: Supervisor, redis: PrivateRedis, mysql: PrivateMariaDB, args) -> None:
    if fault == "kill-outbound":
        pid = sup.programs().get("outbound")
        if pid is None:
            raise RuntimeError("no supervised outbound worker (deploy/supervisord.conf [program:outbound])")
        hook = WEBHOOKS["receiver"].endpoints["chaos"]
        deadline = time.monotonic() + 15  # strike while a request is in flight, if one comes
        while time.monotonic() < deadline:
            with WEBHOOKS["receiver"].lock:
                in_flight, received = hook.requests - hook.answered, len(hook.receipts)
            if in_flight:
                break
            await asyncio.sleep(0.01)
        tree = process_tree(pid)
        rec["start"] = time.time()
        for target in tree:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rec["end"] = time.time()
        rec["detail"] = (f"SIGKILL the outbound worker (pids {tree}; the receiver had {received} webhook-ids, "
                         f"{in_flight} requests unanswered)")
    elif fault == "kill":
        name, pid, leases = await asyncio.to_thread(busy_worker, sup, redis)
        tree = process_tree(pid)
        targets = {"tree": tree, "main": [pid], "child": tree[1:2] or [pid]}[args.kill_target]
        rec["start"] = time.time()
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rec["end"] = time.time()
        rec["detail"] = f"SIGKILL {name} mid-task ({args.kill_target}: pids {targets}; {leases} drain leases held)"
    elif fault == "redis":
        rec["start"] = time.time()
        await asyncio.to_thread(redis.stop)
        rec["stopped"] = time.time()
        await asyncio.sleep(max(0.0, args.redis_outage - (time.time() - rec["start"])))
        await asyncio.to_thread(redis.start)
        rec["end"] = time.time()
        rec["detail"] = f"redis-server stopped (SIGTERM, no persistence) for {rec['end'] - rec['start']:.1f}s"
    elif fault == "mysql":
        rec["start"] = time.time()
        await asyncio.to_thread(mysql.stop)
        rec["stopped"] = time.time()
        await asyncio.sleep(args.mysql_outage)
        await asyncio.to_thread(mysql.start)
        rec["end"] = time.time()
        rec["detail"] = (f"mariadbd SIGTERM (clean shutdown {rec['stopped'] - rec['start']:.1f}s), down "
                         f"{args.mysql_outage:.0f}s, start ({rec['end'] - rec['stopped'] - args.mysql_outage:.1f}s)")
    elif fault == "term":
        name, pid, leases = await asyncio.to_thread(busy_worker, sup, redis)
        rec["start"] = time.time()
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 90
        while _alive(pid) and time.time() < deadline:
            await asyncio.sleep(0.1)
        rec["end"] = time.time()
        rec["detail"] = (f"SIGTERM {name} mid-task (pid {pid}; {leases} drain leases held); it exited after "
                         f"{rec['end'] - rec['start']:.1f}s"
                         if not _alive(pid) else f"SIGTERM {name} (pid {pid}); still running after 90s")


async def fault_schedule(faults: list[dict], *, driver, sup, redis, mysql, args) -> None:
    await asyncio.sleep(args.baseline)
    for rec in faults:
        log(f"fault: {FAULT_TITLES[rec['fault']]}")
        await inject(rec["fault"], rec, sup=sup, redis=redis, mysql=mysql, args=args)
        log(f"  {rec['detail']}; recovery {args.recovery:.0f}s")
        await asyncio.sleep(args.recovery)
        if rec.get("caught_up_at") is None:
            deadline = rec["end"] + args.recovery_max
            log(f"  its backlog is not cleared yet: waiting up to {deadline - time.time():.0f}s more at a quarter rate")
            driver.pace = 0.25
            while rec.get("caught_up_at") is None and time.time() < deadline:
                await asyncio.sleep(0.5)
            driver.pace = 1.0


# --- supervisord log ---------------------------------------------------------------------------

SUP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) (.*)$")


def supervisor_events(path: Path) -> list[tuple[float, str]]:
    """(wall time, message) of every exit, spawn and give-up that supervisord logged."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        match = SUP_LINE.match(line)
        if not match or not re.search(r"exited:|gave up:|spawned:|entered FATAL", match.group(4)):
            continue
        t = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
        out.append((t, match.group(4)))
    return out


def log_findings(run_dir: Path) -> dict[str, dict[str, int]]:
    """Per process log: how often a few telling lines occur."""
    patterns = {
        "Unrecoverable error": r"Unrecoverable error",
        "Traceback": r"^Traceback",
        "Connection to broker lost": r"Connection to broker lost",
        "OperationalError": r"OperationalError",
        "Worker exited prematurely": r"WorkerLostError|exited prematurely",
    }
    out = {}
    for path in sorted(run_dir.glob("*.log")):
        if path.name == "supervisord.log":
            continue
        text = path.read_text(errors="replace")
        found = {name: len(re.findall(rx, text, re.M)) for name, rx in patterns.items()}
        found = {k: v for k, v in found.items() if v}
        if found:
            out[path.name] = found
    return out


# --- the run -----------------------------------------------------------------------------------


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def free_ports(spec: str, n: int) -> list[int]:
    low, _, high = spec.partition("-")
    out = []
    for port in range(int(low), int(high or low) + 1):
        if not port_open(port):
            out.append(port)
            if len(out) == n:
                return out
    raise RuntimeError(f"not {n} free ports in {spec}")


def stack_env(args, workdir: Path, redis: PrivateRedis, mysql: PrivateMariaDB, api_port: int, ws_port: int) -> dict:
    drop = {"DATABASE_URL", "REDIS_URL", "TARGETGRID_QUEUE", "TEST_DATABASE_URL", "TEST_REDIS_URL",
            "DJANGO_SETTINGS_MODULE", "TARGETGRID_DATA_DIR", "DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    run_dir = workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TARGETGRID_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "DATABASE_URL": f"mysql://root@127.0.0.1:{mysql.port}/{DB_NAME}",
        "REDIS_URL": redis.url,
        "TARGETGRID_DATA_DIR": str(workdir / "data"),
        "TARGETGRID_RUN_DIR": str(run_dir),
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "WS_PORT": str(ws_port),
        "WEB_WORKERS": str(args.web_workers),
        "WEB_THREADS": str(args.web_threads),
        "WORKERS": str(args.workers),
        "CONCURRENCY": str(args.concurrency),
        "QUEUES": args.worker_queues,
        "IMPORT_QUEUES": "imports",
        "IMPORT_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def wait_healthy(url: str, workers: int, sup: Supervisor, timeout: float = 180) -> dict:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not sup.alive():
            raise RuntimeError("supervisord exited; see its log in the run dir")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                body = json.loads(resp.read())
                if body["checks"]["workers"].get("count", 0) >= workers:
                    return body
                last = json.dumps(body["checks"]["workers"])
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")[:300]
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    raise RuntimeError(f"the stack did not become healthy with {workers} workers in {timeout}s: {last}")


def snapshot(mysql: PrivateMariaDB, tag: str) -> tuple[Snapshot, dict[str, int], dict[int, int]]:
    conn = mysql.connect(DB_NAME, timeout=10)
    try:
        cur = conn.cursor()
        like = f"{tag}-%@chaos.example"
        cur.execute("SELECT id, email, current_score, max_score FROM leads_lead WHERE email LIKE %s", (like,))
        leads = list(cur.fetchall())
        cur.execute(
            "SELECT e.id, e.event_id, e.lead_id, e.event_type, e.timestamp, e.status, e.points, e.error "
            "FROM events_event e JOIN leads_lead l ON l.id = e.lead_id WHERE l.email LIKE %s", (like,))
        events = list(cur.fetchall())
        cur.execute(
            "SELECT sc.lead_id, sc.event_id, sc.delta, sc.new_score FROM scoring_scorechange sc "
            "JOIN leads_lead l ON l.id = sc.lead_id WHERE l.email LIKE %s ORDER BY sc.id", (like,))
        changes = list(cur.fetchall())
        # The points of the current published version (the draft scores nothing); the chaos
        # workload's rules are plain (one per type, no conditions, caps or decay).
        cur.execute("SELECT rules FROM scoring_rulesetversion ORDER BY number DESC LIMIT 1")
        row = cur.fetchone()
        rules = json.loads(row[0]) if row else []
        points = {r["event_type"]: (r["points"] if r.get("enabled", True) else 0) for r in rules}
        cur.execute(
            "SELECT e.`partition`, COUNT(*) FROM events_event e JOIN leads_lead l ON l.id = e.lead_id "
            "WHERE l.email LIKE %s AND e.status = 'pending' GROUP BY e.`partition` ORDER BY 1", (like,))
        pending_by_partition = {p: n for p, n in cur.fetchall()}
    finally:
        conn.close()
    return Snapshot(leads=leads, events=events, changes=changes), points, pending_by_partition


def window_counts(answers: list[Answer], start: float, end: float) -> Counter:
    counts = Counter()
    for a in answers:
        if start <= a.t <= end:
            counts[a.code] += 1
    return counts


def fmt_counts(counts: Counter) -> str:
    return " ".join(f"{code}:{n}" for code, n in sorted(counts.items())) or "-"


async def drive(args, *, tag, api_url, api_key, sup, redis, mysql, faults, monitor) -> Driver:
    sent, unique = build_workload(tag, args)
    requests = plan_requests(sent, random.Random(args.seed + 1), args.batch_share)
    planned = args.baseline + args.recovery * len(faults) + sum(
        {"redis": args.redis_outage, "mysql": 2 + args.mysql_outage, "term": 5}.get(f["fault"], 0) for f in faults)
    rate = args.rate or max(20.0, len(sent) / (planned * 1.15))  # slack: a warm shutdown may take 30 s
    log(f"workload: {len(sent)} events ({len(unique)} distinct ids, {len(requests)} requests) over "
        f"{args.leads} leads at {rate:.0f} events/s (~{len(sent) / rate:.0f}s)")
    driver = Driver(api_url, api_key, args)
    driver.unique = unique
    schedule = asyncio.create_task(fault_schedule(faults, driver=driver, sup=sup, redis=redis, mysql=mysql, args=args))
    try:
        await driver.run(requests, rate)
        log(f"sending done ({driver.sent_requests} requests incl. retries)")
        await schedule
    finally:
        schedule.cancel()
        await driver.close()
    # Settle: bounded wait until nothing of this run is pending.
    deadline = time.monotonic() + args.settle_timeout
    log(f"waiting up to {args.settle_timeout:.0f}s for scoring to finish")
    last_report = 0.0
    while time.monotonic() < deadline:
        counts = monitor.last_counts() or {}
        if counts and counts.get("pending", 0) == 0:
            break
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            log(f"  {counts}")
        await asyncio.sleep(1)
    return driver


def report(args, *, tag, stack_info, faults, driver, monitor, verdict, sup_events, findings, started) -> tuple[list, dict]:
    failures: list[str] = []
    warnings: list[str] = []
    print()
    print("=" * 100)
    print(f"TargetGrid chaos run {tag}: {stack_info}")
    print("=" * 100)
    print(f"{'fault':<18} {'at':>6} {'lasted':>7} {'resumed':>8} {'backlog':>8}  HTTP during fault / 30s after"
          f"{'':4} supervisor")
    for index, rec in enumerate(faults):
        start, end = rec.get("start"), rec.get("end")
        if start is None or end is None:
            print(f"{rec['fault']:<18} not injected")
            failures.append(f"{rec['fault']}: not injected")
            continue
        resumed = resumed_after(monitor.samples, end)
        caught = rec.get("caught_up_at")
        rec["resumed_s"] = resumed
        rec["caught_up_s"] = round(caught - end, 1) if caught else None
        during = window_counts(driver.answers, start, end + 0.5)
        after = window_counts(driver.answers, end + 0.5, end + 30)
        rec["http_during"], rec["http_after"] = dict(during), dict(after)
        next_start = faults[index + 1].get("start") if index + 1 < len(faults) else None
        window_end = next_start or float("inf")
        exits = [m for t, m in sup_events if start - 1 <= t < window_end and ("exited" in m or "gave up" in m)]
        rec["supervisor"] = exits
        title = FAULT_TITLES[rec["fault"]]
        r_txt = f"{resumed:.1f}s" if isinstance(resumed, float) else (resumed or "never")
        c_txt = f"{rec['caught_up_s']:.1f}s" if rec["caught_up_s"] is not None else "never"
        print(f"{title:<18} {start - started:>5.0f}s {end - start:>6.1f}s {r_txt:>8} {c_txt:>8}  "
              f"{fmt_counts(during)} / {fmt_counts(after)}")
        for message in exits:
            print(f"{'':20}supervisor: {message}")
        limit = args.resume_limit
        if resumed is None or (isinstance(resumed, float) and resumed > limit):
            failures.append(f"{title}: scoring did not resume within {limit:.0f}s of the fault's end ({r_txt})")
        if rec["caught_up_s"] is None or rec["caught_up_s"] > limit:
            failures.append(f"{title}: events received before the fault's end still pending {limit:.0f}s after "
                            f"it ({c_txt})")
        bad = {c: n for c, n in during.items() if c.startswith("5") and c != "503" or c in ("conn-error", "timeout")}
        if rec["fault"] == "redis" and bad:
            failures.append(f"{title}: ingest answered {fmt_counts(Counter(bad))} during the outage")
        elif bad:
            warnings.append(f"{title}: ingest answered {fmt_counts(Counter(bad))} during the fault")
        expected_exit = rec["fault"] in ("kill", "term")
        unexpected = [m for m in exits if "not expected" in m or "gave up" in m]
        if "gave up" in " ".join(exits):
            failures.append(f"{title}: supervisord gave up on a program (FATAL): {exits}")
        if unexpected and not expected_exit:
            warnings.append(f"{title}: processes died and were restarted by supervisord: {unexpected}")
        if expected_exit and len(unexpected) > 1:
            warnings.append(f"{title}: more exits than the injected one: {unexpected}")
    print("   resumed = first newly processed event after the fault ended; backlog = until no event received "
          "before the fault's end is pending")

    print()
    total = Counter(a.code for a in driver.answers)
    print(f"HTTP answers, whole run: {fmt_counts(total)}")
    non_json = sum(1 for a in driver.answers if not a.json_body)
    if non_json:
        warnings.append(f"{non_json} answers had a non-JSON body")
    other_5xx = {c: n for c, n in total.items() if (c.startswith("5") and c != "503") or c in ("conn-error", "timeout")}
    if other_5xx:
        print(f"  5xx (not 503) / connection errors: {fmt_counts(Counter(other_5xx))}; first ones:")
        for line in driver.samples_5xx:
            print(f"    {line}")

    print()
    print("Check against the database (every id the client sent, every lead of the run):")
    for name, n in verdict.counts.items():
        print(f"  {name:<28} {n}")
    if verdict.ok:
        print("  no violation: nothing lost, doubled, left pending or failed; every score equals the fold")
    for kind, n in verdict.violation_counts.most_common():
        print(f"  VIOLATION {kind}: {n}")
        for example in verdict.violations[kind]:
            print(f"      e.g. {example}")
        failures.append(f"{kind}: {n}")
    if findings:
        print()
        print("Process logs (occurrences):")
        for name, found in findings.items():
            print(f"  {name:<18} " + ", ".join(f"{k}: {v}" for k, v in found.items()))

    print()
    for line in warnings:
        print(f"WARNING: {line}")
    if failures:
        print(f"FAIL ({len(failures)}):")
        for line in failures:
            print(f"  - {line}")
    else:
        print("PASS: every fault recovered by itself within the limit; nothing lost, doubled or wrong")
    return failures, {"warnings": warnings}


# --- webhooks (--webhooks) -----------------------------------------------------------------------

WEBHOOKS: dict = {}


def webhooks_start(args, env: dict) -> None:
    """A real receiver in a thread of the harness, and one endpoint for every stage change and score
    crossing (created before the stack starts)."""
    import base64

    from receiver import Receiver, ReceiverThread

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver()
    receiver.add("chaos", secret, mode="slow" if args.webhook_delay else "fast", delay=args.webhook_delay)
    # the first two free ports are the API's and daphne's (not bound yet: supervisord starts later)
    thread = ReceiverThread(receiver, free_ports(args.http_ports, 3)[2])
    thread.start()
    WEBHOOKS.update(receiver=receiver, thread=thread)
    manage(env, "shell", "-c",
           "from realtime.models import WebhookEndpoint; "
           f"WebhookEndpoint.objects.create(name='chaos', url={thread.url + '/hook/chaos'!r}, secret={secret!r})")
    log(f"webhook receiver {thread.url}/hook/chaos (every stage change and score crossing)")


def webhooks_check(args, mysql: PrivateMariaDB) -> dict:
    """Once nothing is pending (bounded by --settle-timeout): the receiver's deduped webhook-ids are
    exactly the delivery rows' msg_ids, every row succeeded, no bad signature. Doubles (at least once,
    same id) are counted, not failed."""
    conn = mysql.connect(DB_NAME, timeout=5)
    conn.autocommit(True)

    def query(sql):
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()

    deadline = time.monotonic() + args.settle_timeout
    log(f"waiting up to {args.settle_timeout:.0f}s for the webhook deliveries")
    while True:
        undispatched = query("SELECT COUNT(*) FROM scoring_alertevent WHERE dispatched = 0")[0][0]
        pending = query("SELECT COUNT(*) FROM realtime_webhookdelivery WHERE status = 'pending'")[0][0]
        if (undispatched == 0 and pending == 0) or time.monotonic() > deadline:
            break
        time.sleep(1)
    time.sleep(2)  # a stray resend, if any, arrives now
    rows = dict(query("SELECT msg_id, status FROM realtime_webhookdelivery"))
    alerts = query("SELECT COUNT(*) FROM scoring_alertevent WHERE kind IN ('lead.stage_changed', 'lead.score_crossed')")[0][0]
    attempts = dict(query("SELECT outcome, COUNT(*) FROM realtime_deliveryattempt GROUP BY outcome"))
    conn.close()
    hook = WEBHOOKS["receiver"].endpoints["chaos"]
    with WEBHOOKS["receiver"].lock:
        receipts = {msg_id: len(times) for msg_id, times in hook.receipts.items()}
        invalid = hook.invalid
    by_status = Counter(rows.values())
    failures = []
    if len(rows) != alerts:
        failures.append(f"{alerts} lead alerts but {len(rows)} delivery rows")
    if set(receipts) != set(rows):
        failures.append(f"received ids != delivery rows: {len(set(rows) - set(receipts))} never received, "
                        f"{len(set(receipts) - set(rows))} received without a row")
    if by_status.get("succeeded", 0) != len(rows):
        failures.append(f"delivery rows not succeeded: {dict(by_status)}")
    if invalid:
        failures.append(f"{invalid} requests with a bad signature")
    out = {"alerts": alerts, "rows": len(rows), "rows_by_status": dict(by_status), "attempts": attempts,
           "received_unique": len(receipts), "received": sum(receipts.values()),
           "doubled": sum(1 for n in receipts.values() if n > 1), "invalid": invalid, "failures": failures}
    print(f"webhooks: {alerts} lead alerts, {len(rows)} delivery rows {dict(by_status)}, attempts {attempts}; "
          f"receiver: {out['received']} receipts, {len(receipts)} unique webhook-ids, {out['doubled']} received "
          f"more than once (same id), {invalid} bad signatures -> {'OK' if not failures else 'FAIL'}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    tag = "c" + secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="tg-chaos-"))
    redis = PrivateRedis(args.redis_port, workdir)
    mysql = PrivateMariaDB(args.mysql_port, workdir)
    sup: Supervisor | None = None
    monitor: Monitor | None = None

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (&)
    failures: list[str] = ["interrupted"]
    try:
        log(f"workdir {workdir}; private MariaDB :{args.mysql_port}, Redis :{args.redis_port}")
        mysql.install()
        mysql.start()
        mysql.create_database(DB_NAME)
        redis.start()
        api_port, ws_port = free_ports(args.http_ports, 2)
        env = stack_env(args, workdir, redis, mysql, api_port, ws_port)
        log("migrate")
        manage(env, "migrate", "--noinput")
        api_key = manage(env, "create_api_key", "--name", "chaos").splitlines()[-1]
        for event_type, points in EXTRA_RULES.items():
            manage(env, "shell", "-c",
                   f"from scoring.services import rule_save; rule_save(event_type={event_type!r}, points={points})")
        # Draft edits score nothing until published (docs/scoring-model.md).
        manage(env, "shell", "-c", "from scoring.rescoring import ruleset_publish; ruleset_publish(actor='chaos')")
        if args.webhooks:
            webhooks_start(args, env)
        sup = Supervisor(ROOT / "deploy" / "supervisord.conf", env, workdir / "run", ROOT)
        sup.start(str(BIN / "supervisord"))
        api_url = f"http://127.0.0.1:{api_port}"
        wait_healthy(api_url, args.workers, sup)
        stack_info = (f"supervisord: gunicorn -w {args.web_workers} --threads {args.web_threads}, daphne, "
                      f"{args.workers} x celery worker -c {args.concurrency} -Q {args.worker_queues}, 1 import worker, beat; "
                      f"MariaDB utf8mb4_unicode_ci; Redis")
        log(f"stack up: API {api_url}, WebSocket :{ws_port}; {sup.programs()}")
        faults = [{"fault": name} for name in args.fault_list]
        monitor = Monitor(mysql, tag, sup, faults)
        monitor.start()
        started = time.time()
        driver = asyncio.run(drive(args, tag=tag, api_url=api_url, api_key=api_key, sup=sup, redis=redis,
                                   mysql=mysql, faults=faults, monitor=monitor))
        monitor.stop()
        snap, points, pending_by_partition = snapshot(mysql, tag)
        verdict = verify(driver.unique, dict(driver.outcomes), snap, points)
        if pending_by_partition:
            verdict.counts["pending by partition"] = pending_by_partition
        sup_events = supervisor_events(workdir / "run" / "supervisord.log")
        findings = log_findings(workdir / "run")
        failures, extra = report(args, tag=tag, stack_info=stack_info, faults=faults, driver=driver, monitor=monitor,
                                 verdict=verdict, sup_events=sup_events, findings=findings, started=started)
        if args.webhooks:
            extra["webhooks"] = webhooks_check(args, mysql)
            failures += extra["webhooks"]["failures"]
            if extra["webhooks"]["failures"]:
                print("FAIL (webhooks): " + "; ".join(extra["webhooks"]["failures"]))
        RESULTS.mkdir(exist_ok=True)
        out = Path(args.json) if args.json else RESULTS / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps({
            "tag": tag, "args": {k: v for k, v in vars(args).items()}, "stack": stack_info, "faults": faults,
            "http": dict(Counter(a.code for a in driver.answers)), "samples_5xx": driver.samples_5xx,
            "counts": verdict.counts, "violations": {k: {"count": verdict.violation_counts[k], "examples": v}
                                                     for k, v in verdict.violations.items()},
            "timeline": [asdict(s) for s in monitor.samples[::4]], "supervisor": sup_events,
            "process_logs": findings, "failures": failures, **extra,
        }, indent=1, default=str))
        log(f"results: {out}")
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc}); stopping everything")
    finally:
        if failures and (workdir / "run").exists():  # the process logs are the evidence: keep them
            logs = RESULTS / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}-logs"
            logs.mkdir(parents=True, exist_ok=True)
            for path in (workdir / "run").glob("*.log"):
                shutil.copy2(path, logs / path.name)
            log(f"process logs copied to {logs}")
        if monitor is not None and monitor.is_alive():
            monitor.stop()
        if sup is not None:
            log("stopping supervisord (and its programs)")
            sup.stop()
        if WEBHOOKS.get("thread") is not None:
            WEBHOOKS["thread"].stop()
        redis.stop()
        mysql.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
