#!/usr/bin/env python
"""Issue #11 acceptance 2 and 4: does alerting slow scoring? 10,000 leads cross MQL through the batch
API, once per mode, on the production-like stack; the scoring rate of each mode against the mode
without subscriptions, and every delivery counted at a real receiver that verifies the Standard
Webhooks signatures (the official ``standardwebhooks`` package) and dedupes on ``webhook-id``.

    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_bench_alerts REDIS_URL=redis://127.0.0.1:6379/15 \\
      BENCH_PORTS=19500-19599 python bench/alerts.py [--crossings 10000] [--modes none,fast,hang] [--rounds 1]

Modes: ``none`` (no endpoint: the baseline), ``fast`` (one endpoint answering 200 at once),
``hang`` (one endpoint whose receiver sleeps ``--hang-seconds``, past the sender's timeout),
``fast+hang`` (both: the healthy receiver must still get everything). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

import client  # noqa: E402
import rules as rulesets  # noqa: E402
import stack as stacks  # noqa: E402
from db import Database  # noqa: E402
from run import drain, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
MODES = {
    "none": [],
    "fast": ["fast"],
    "hang": ["hang"],
    "fast+hang": ["fast", "hang"],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crossings", type=int, default=10_000, help="leads that cross MQL per mode (one each)")
    p.add_argument("--events-per-lead", type=int, choices=[1, 2], default=1,
                   help="1: one PURCHASE (0 -> 100, Cold -> MQL); 2: two DEMO_REQUESTs (Cold -> Warm -> MQL; "
                        "the endpoints filter on MQL, so still one delivery per lead)")
    p.add_argument("--modes", default="none,fast,hang", help=f"comma-separated, of {sorted(MODES)}")
    p.add_argument("--rounds", type=int, default=1, help="repeat the modes (interleaved); medians are printed")
    p.add_argument("--warmup", type=int, default=2000,
                   help="events sent (and scored) before the first mode, not measured: the first requests of a "
                        "fresh stack are slow (connections, imports, caches)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--clients", type=int, default=2, help="concurrent batch clients")
    p.add_argument("--workers", type=int, default=2, help="scoring workers (-Q scoring,realtime,celery)")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--outbound-workers", type=int, default=1, help="workers of the outbound queue (the sender)")
    p.add_argument("--outbound-concurrency", type=int, default=1)
    p.add_argument("--outbound-nice", type=int, default=0,
                   help="run the outbound workers under `nice -n N` (they then yield the CPU to scoring)")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--web-threads", type=int, default=4)
    p.add_argument("--no-beat", action="store_true", help="do not start celery beat (the periodic sweeps)")
    p.add_argument("--hang-seconds", type=float, default=60.0, help="how long the hanging receiver sleeps")
    p.add_argument("--hang-observe", type=float, default=15.0,
                   help="seconds to watch the hanging endpoint after scoring finished")
    p.add_argument("--delivery-timeout", type=float, default=600.0, help="max seconds to wait for deliveries")
    p.add_argument("--stall-seconds", type=float, default=30.0,
                   help="stop waiting for deliveries when none arrived for this long")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--allow-any-db", action="store_true")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--json")
    args = p.parse_args(argv)
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown:
        p.error(f"unknown modes {unknown}")
    return args


# --- the stack's database: endpoints (through Django, once per mode) and counts (plain SQL) -------


def endpoints_configure(env: dict[str, str], endpoints: list[dict]) -> None:
    """Disable every endpoint the stack has, create ``endpoints`` (in a Django process on the stack's
    database and settings)."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "django-endpoints", json.dumps(endpoints)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"configuring endpoints failed:\n{done.stdout}\n{done.stderr}")


def _django_endpoints(spec: str) -> None:
    import django

    django.setup()
    from django.utils import timezone as dj_timezone

    from realtime.models import EndpointStatus, WebhookEndpoint

    WebhookEndpoint.objects.exclude(status=EndpointStatus.DISABLED).update(
        status=EndpointStatus.DISABLED, status_reason="bench: next mode", status_changed_at=dj_timezone.now()
    )
    for item in json.loads(spec):
        endpoint = WebhookEndpoint(name=item["name"], url=item["url"], secret=item["secret"],
                                   event_kinds=item["event_kinds"], stages=item["stages"])
        endpoint.full_clean()
        endpoint.save()


def rows(db: Database, sql: str, params=()) -> list[tuple]:
    conn = db.connect()
    try:
        cur = conn.cursor()
        cur.execute(sql.replace("?", "%s") if db.vendor == "mysql" else sql, params)
        return list(cur.fetchall())
    finally:
        conn.close()


def crossings_recorded(db: Database, tag: str) -> dict:
    """Domain events of this mode's leads: MQL entries (what the endpoints subscribe to), all stage
    changes, and leads at MQL."""
    like = f"{tag}-%"
    mql = db.scalar("SELECT COUNT(*) FROM scoring_alertevent a JOIN leads_lead l ON a.lead_id = l.id "
                    "WHERE l.email LIKE ? AND a.kind = 'lead.stage_changed' AND a.stage = 'MQL'", (like,))
    changes = db.scalar("SELECT COUNT(*) FROM scoring_alertevent a JOIN leads_lead l ON a.lead_id = l.id "
                        "WHERE l.email LIKE ? AND a.kind = 'lead.stage_changed'", (like,))
    undispatched = db.scalar("SELECT COUNT(*) FROM scoring_alertevent a JOIN leads_lead l ON a.lead_id = l.id "
                             "WHERE l.email LIKE ? AND a.dispatched = 0", (like,))
    at_mql = db.scalar("SELECT COUNT(*) FROM leads_lead WHERE email LIKE ? AND stage = 'MQL'", (like,))
    return {"mql_alerts": mql, "stage_changes": changes, "undispatched": undispatched, "leads_at_mql": at_mql}


def deliveries_recorded(db: Database, endpoint_name: str, *, ids: bool = False) -> dict:
    found = rows(db, "SELECT id, status, status_reason, consecutive_failures FROM realtime_webhookendpoint "
                     "WHERE name = ?", (endpoint_name,))
    if not found:
        return {"endpoint": None}
    endpoint_id, status, reason, failures = found[0]
    by_status = dict(rows(db, "SELECT status, COUNT(*) FROM realtime_webhookdelivery WHERE endpoint_id = ? "
                              "GROUP BY status", (endpoint_id,)))
    attempts = dict(rows(db, "SELECT a.outcome, COUNT(*) FROM realtime_deliveryattempt a JOIN realtime_webhookdelivery d "
                             "ON a.delivery_id = d.id WHERE d.endpoint_id = ? GROUP BY a.outcome", (endpoint_id,)))
    out = {"endpoint": {"status": status, "reason": reason[:200], "consecutive_failures": failures},
           "deliveries": by_status, "attempts": attempts}
    if ids:
        out["msg_ids"] = [r[0] for r in rows(db, "SELECT msg_id FROM realtime_webhookdelivery WHERE endpoint_id = ?",
                                             (endpoint_id,))]
    return out


# --- the receiver process ------------------------------------------------------------------------


class ReceiverControl:
    def __init__(self, base: str):
        self.base = base
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self.session.close()

    async def add(self, name: str, secret: str, mode: str, delay: float = 0.0) -> None:
        async with self.session.post(self.base + "/_control/endpoint",
                                     json={"name": name, "secret": secret, "mode": mode, "delay": delay}) as resp:
            assert resp.status == 200, await resp.text()

    async def stats(self, name: str, *, ids: bool = False) -> dict:
        async with self.session.get(self.base + "/_control/stats", params={"name": name, "ids": "1" if ids else "0"}) as resp:
            return await resp.json()

    async def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with self.session.get(self.base + "/_control/stats", params={"name": "-"}) as resp:
                    if resp.status == 404:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            await asyncio.sleep(0.2)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- one mode ------------------------------------------------------------------------------------


def workload(tag: str, crossings: int, per_lead: int) -> list[dict]:
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    events = []
    for i in range(crossings):
        email = f"{tag}-{i}@bench.example"
        stamp = now + timedelta(milliseconds=i % 50_000)
        if per_lead == 1:
            events.append({"event_id": f"{tag}-{i}", "event_type": "PURCHASE", "email": email,
                           "timestamp": stamp.isoformat().replace("+00:00", "Z")})
        else:
            for k in range(2):
                events.append({"event_id": f"{tag}-{i}-{k}", "event_type": "DEMO_REQUEST", "email": email,
                               "timestamp": (stamp + timedelta(seconds=k)).isoformat().replace("+00:00", "Z")})
    return events


async def run_mode(mode: str, round_no: int, args, ctx) -> dict:
    api, listener, db, stack, receiver = ctx["api"], ctx["listener"], ctx["db"], ctx["stack"], ctx["receiver"]
    tag = f"{ctx['run_id']}{round_no}{mode.replace('+', '')}"
    endpoints = []
    for kind in MODES[mode]:
        name = f"{tag}-{kind}"
        secret = new_secret()
        await receiver.add(name, secret, "hang" if kind == "hang" else "fast",
                           delay=args.hang_seconds if kind == "hang" else 0.0)
        endpoints.append({"name": name, "kind": kind, "url": f"{ctx['receiver_url']}/hook/{name}", "secret": secret,
                          "event_kinds": ["lead.stage_changed"], "stages": ["MQL"]})
    await asyncio.to_thread(endpoints_configure, stack.env, endpoints)
    await asyncio.sleep(1.0)  # what the previous mode left (a sender finishing a timeout) settles

    events = workload(tag, args.crossings, args.events_per_lead)
    batches = [events[i:i + args.batch_size] for i in range(0, len(events), args.batch_size)]
    listener.reset(tag + "-")
    log = client.SendLog()
    cpu_before, client_before = stack.cpu_seconds(), time.process_time()
    print(f"  round {round_no} {mode:<9}: {args.crossings} leads cross MQL ({len(events)} events, "
          f"{len(endpoints)} endpoint(s)) ...", flush=True)
    sent_wall = time.time()
    await client.send_batches(api, batches, args.clients, log)
    done = await drain(listener, log, len(events), db, api, tag, args.drain_timeout)
    cpu_scoring = stack.cpu_seconds()
    scored_at = time.perf_counter()
    e2e_s = max(1e-9, done["end"] - log.first_sent)
    ingest_s = max(1e-9, log.last_done - log.first_sent)
    unique = len(events)
    result = {
        "mode": mode, "round": round_no, "tag": tag, "events": unique, "crossings": args.crossings,
        "accepted": log.items.get("accepted", 0), "http_status": dict(log.status), "http_errors": log.errors,
        "ingest_events_per_s": round(log.items.get("accepted", 0) / ingest_s),
        "e2e_events_per_s": round(unique / e2e_s), "drain": done["by"], "frames": len(listener.first_seen),
        "cpu_ms_per_event_scoring": {r: round(1000 * (cpu_scoring[r] - cpu_before.get(r, 0)) / unique, 3)
                                     for r in cpu_scoring},
    }

    # Deliveries: wait until every healthy endpoint got every MQL crossing (or the timeout).
    expected = 0
    deadline = scored_at + args.delivery_timeout
    progress, progress_at, last_print = -1, time.perf_counter(), time.perf_counter()
    while True:
        recorded = await asyncio.to_thread(crossings_recorded, db, tag)
        expected = recorded["mql_alerts"]
        healthy = [e for e in endpoints if e["kind"] == "fast"]
        got = [(await receiver.stats(e["name"]))["unique"] for e in healthy]
        now = time.perf_counter()
        if sum(got) != progress:
            progress, progress_at = sum(got), now
        if all(g >= expected for g in got) and (not any(e["kind"] == "hang" for e in endpoints)
                                                 or now - scored_at >= args.hang_observe):
            break
        if now > deadline or (healthy and now - progress_at > args.stall_seconds):
            result["delivery_wait_stopped"] = "timeout" if now > deadline else "stalled"
            break
        if healthy and now - last_print > 30:
            last_print = now
            print(f"    deliveries so far: {got} of {expected} each, {now - scored_at:.0f}s after scoring", flush=True)
        await asyncio.sleep(1.0)
    delivered_at = time.perf_counter()
    await asyncio.sleep(2.0)  # a doubled delivery, if any, has a chance to show up
    cpu_end = stack.cpu_seconds()
    result["delivery_wait_s"] = round(delivered_at - scored_at, 1)
    result["alerts"] = await asyncio.to_thread(crossings_recorded, db, tag)
    result["cpu_ms_per_event_total"] = {r: round(1000 * (cpu_end[r] - cpu_before.get(r, 0)) / unique, 3)
                                        for r in cpu_end}
    result["cpu_ms_per_event_total"]["bench client"] = round(1000 * (time.process_time() - client_before) / unique, 3)
    result["endpoints"] = {}
    ok = result["accepted"] == unique and done["complete"] and result["alerts"]["mql_alerts"] == args.crossings \
        and result["alerts"]["leads_at_mql"] == args.crossings
    for e in endpoints:
        stats = await receiver.stats(e["name"], ids=True)
        rec = await asyncio.to_thread(deliveries_recorded, db, e["name"], ids=True)
        receipts = stats.pop("ids")
        receipt_ids = set(receipts)
        if receipts:  # deliveries per second, from the first event sent to the last first receipt
            last = max(min(times) for times in receipts.values())
            stats["deliveries_per_s"] = round(len(receipts) / max(1e-9, last - sent_wall), 1)
        row_ids = set(rec.pop("msg_ids", []))
        entry = {"kind": e["kind"], "receiver": stats, "rows": rec, "expected": expected,
                 "rows_total": len(row_ids), "received_not_in_rows": len(receipt_ids - row_ids),
                 "rows_not_received": len(row_ids - receipt_ids)}
        if e["kind"] == "fast":
            entry["ok"] = (stats["unique"] == expected == len(row_ids) and receipt_ids == row_ids
                           and stats["invalid"] == 0 and rec.get("deliveries", {}).get("succeeded", 0) == expected)
            ok = ok and entry["ok"]
        result["endpoints"][e["name"]] = entry
    if endpoints:  # a hanging endpoint's retries must not run into the next mode
        await asyncio.to_thread(endpoints_configure, stack.env, [])
    result["ok"] = ok
    return result


# --- the run -------------------------------------------------------------------------------------


async def main_async(args, stack: stacks.Stack) -> dict:
    db = Database(stack.database_url)
    ctx = {"stack": stack, "db": db, "run_id": "al" + secrets.token_hex(2)}
    report = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "stack": {"kind": stack.kind, **stack.description}, "args": vars(args), "modes": []}
    snapshot = await asyncio.to_thread(rulesets.publish, stack.env, "default")
    report["rules_version"] = snapshot["number"]
    api = client.Api(stack.api_url, stack.api_key, connections=64)
    listener = client.FrameListener(stack.ws_url, stack.api_key)
    receiver = ReceiverControl(stack.description["receiver"])
    ctx.update(api=api, listener=listener, receiver=receiver, receiver_url=stack.description["receiver"])
    try:
        await receiver.wait_ready()
        await listener.start()
        if args.warmup:
            tag = f"{ctx['run_id']}w"
            events = workload(tag, args.warmup, 1)
            listener.reset(tag + "-")
            log = client.SendLog()
            print(f"  warm-up: {len(events)} events (not measured) ...", flush=True)
            await client.send_batches(api, [events[i:i + args.batch_size] for i in range(0, len(events), args.batch_size)],
                                      args.clients, log)
            await drain(listener, log, len(events), db, api, tag, args.drain_timeout)
        for round_no in range(1, args.rounds + 1):
            for mode in args.modes.split(","):
                stack.check_alive()
                report["modes"].append(await run_mode(mode, round_no, args, ctx))
    finally:
        await listener.stop()
        await api.close()
        await receiver.close()
    by_mode: dict[str, list[int]] = {}
    for m in report["modes"]:
        by_mode.setdefault(m["mode"], []).append(m["e2e_events_per_s"])
    report["median_e2e"] = {mode: statistics.median(v) for mode, v in by_mode.items()}
    base = report["median_e2e"].get("none")
    report["ratio_to_none"] = {mode: round(v / base, 3) for mode, v in report["median_e2e"].items()} if base else {}
    report["ok"] = all(m["ok"] for m in report["modes"])
    return report


def print_table(report: dict) -> None:
    st, m = report["stack"], report["machine"]
    print()
    print(f"TargetGrid alerts bench  {report['started_at']}  {st.get('server', '')}  workers={st.get('workers')}"
          f"  outbound={st.get('outbound')}  db={st.get('database')}")
    print(f"machine: {m['cpus']} cpu ({m['cpu']}), Python {m['python']}, load {m['loadavg'][0]:.2f}")
    base = report["median_e2e"].get("none")
    header = (f"{'round':>5} {'mode':<9} {'events':>6} {'e2e/s':>6} {'/none':>6}  {'MQL alerts':>10}  "
              f"{'delivered/expected':>18} {'dup':>4} {'bad sig':>7}  {'alert->receipt p50/p99 ms':>26}  "
              "rows / attempts / endpoint / rate")
    print(header)
    print("-" * len(header))
    for r in report["modes"]:
        ratio = f"{r['e2e_events_per_s'] / base:.3f}" if base else "-"
        first = True
        lines = list(r["endpoints"].items()) or [(None, None)]
        for name, e in lines:
            lead = (f"{r['round']:>5} {r['mode']:<9} {r['events']:>6} {r['e2e_events_per_s']:>6} {ratio:>6}  "
                    f"{r['alerts']['mql_alerts']:>10}  ") if first else " " * 41 + "  "
            first = False
            if e is None:
                print(lead + f"{'(no endpoint)':>18}" + ("" if r["ok"] else "   FAIL"))
                continue
            rec = e["receiver"]
            lat = rec["latency_ms"]
            rows_ = e["rows"]
            print(lead + f"{e['kind'] + ' ' + str(rec['unique']) + '/' + str(e['expected']):>18} {rec['duplicates']:>4} "
                  f"{rec['invalid']:>7}  {str(lat['p50']) + '/' + str(lat['p99']):>26}  "
                  f"{rows_.get('deliveries')} / {rows_.get('attempts')} / {(rows_.get('endpoint') or {}).get('status')}"
                  f" / {rec.get('deliveries_per_s', '-')} deliveries/s"
                  + ("" if e.get("ok", True) else "   FAIL"))
    print("median e2e events/s per mode: " + ", ".join(f"{k} {v}" for k, v in report["median_e2e"].items())
          + ("; ratio to none: " + ", ".join(f"{k} {v}" for k, v in report["ratio_to_none"].items())
             if report["ratio_to_none"] else ""))
    print("CPU ms per event (scoring window -> until deliveries done):")
    for r in report["modes"]:
        s, t = r["cpu_ms_per_event_scoring"], r["cpu_ms_per_event_total"]
        print(f"  {r['round']} {r['mode']:<9} " + "  ".join(f"{k} {s.get(k, 0)}->{v}" for k, v in t.items()))
    print(f"result: {'OK' if report['ok'] else 'FAILED'}  ->  {report.get('json_path', '')}")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "django-endpoints":
        _django_endpoints(sys.argv[2])
        return 0
    args = parse_args(argv)
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (database_url or "").startswith("mysql") or not redis_url:
        raise SystemExit("needs DATABASE_URL=mysql://.../tg_bench* and REDIS_URL in the environment")
    print(f"starting the prod stack ({args.workers} scoring workers, {args.outbound_workers} outbound, "
          f"{'no beat' if args.no_beat else 'beat'}) on a fresh database ...", flush=True)
    stack = stacks.start_prod(database_url=database_url, redis_url=redis_url, workers=args.workers,
                              concurrency=args.concurrency, web_workers=args.web_workers, web_threads=args.web_threads,
                              allow_any_db=args.allow_any_db, outbound_workers=args.outbound_workers,
                              outbound_concurrency=args.outbound_concurrency, outbound_nice=args.outbound_nice,
                              beat=not args.no_beat)
    try:
        port = stacks.free_port(set())
        stack.procs.append(stacks._spawn("receiver", "receiver",
                                         [sys.executable, str(Path(__file__).with_name("receiver.py")), "--port", str(port)],
                                         stack.env, stack.workdir))
        stack.description["receiver"] = f"http://127.0.0.1:{port}"
        stack.description["outbound"] = (f"{args.outbound_workers} x {'nice -n ' + str(args.outbound_nice) + ' ' if args.outbound_nice else ''}"
                                         f"celery -Q outbound -c {args.outbound_concurrency}")
        report = asyncio.run(main_async(args, stack))
    finally:
        stacks.cleanup(stack, keep=args.keep)
        if args.keep:
            print(f"logs and data kept in {stack.workdir}")
    path = Path(args.json) if args.json else RESULTS / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-alerts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report["json_path"] = str(path)
    path.write_text(json.dumps(report, indent=2, default=str))
    print_table(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
