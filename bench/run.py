#!/usr/bin/env python
"""TargetGrid end-to-end benchmark: real HTTP in, real WebSocket out, checked against the fold.

    python bench/run.py                                   # embedded default (SQLite + daphne), ~1-2 min
    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        python bench/run.py --stack prod --workers 2      # gunicorn + daphne + 2 Celery workers
    python bench/run.py --target http://127.0.0.1:8000 --ws-url ws://127.0.0.1:8001/ws/scores/ \\
        --api-key tg_... [--database-url ...]           # a stack that is already running

Scenarios (--scenarios, comma-separated): batch, hot, single, steady, soak. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
import rules as rulesets  # noqa: E402
import stack as stacks  # noqa: E402
import workload as workloads  # noqa: E402
from db import Database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NEGATIVE_RULES = {"UNSUBSCRIBE": -30}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", choices=["embedded", "prod"], default="embedded")
    p.add_argument("--target", help="base URL of a running stack (no processes are started)")
    p.add_argument("--ws-url", help="WebSocket URL of the running stack (default: <target>/ws/scores/)")
    p.add_argument("--api-key", default=os.environ.get("TARGETGRID_API_KEY"))
    p.add_argument("--database-url", help="with --target: the stack's DATABASE_URL for row counts + raw floor")
    p.add_argument("--scenarios", default="batch,hot,single,steady")
    p.add_argument("--events", type=int, default=20_000, help="events sent in batch/hot (duplicates included)")
    p.add_argument("--leads", type=int, default=2_000)
    p.add_argument("--batch-size", type=int, default=1_000)
    p.add_argument("--clients", type=int, default=2, help="concurrent batch clients")
    p.add_argument("--mix", default=workloads.DEFAULT_MIX, help="TYPE:weight,... (UNSUBSCRIBE is created at -30)")
    p.add_argument("--dup-share", type=float, default=0.05)
    p.add_argument("--late-share", type=float, default=0.05)
    p.add_argument("--hot-share", type=float, default=0.5)
    p.add_argument("--single-events", type=int, default=2_000)
    p.add_argument("--single-clients", type=int, default=32)
    p.add_argument("--steady-rate", type=float, default=200.0)
    p.add_argument("--steady-seconds", type=float, default=15.0)
    p.add_argument("--soak-rate", type=float, default=500.0, help="events/s, sent as batches of --batch-size")
    p.add_argument("--soak-seconds", type=float, default=600.0)
    p.add_argument("--workers", type=int, default=2, help="prod: Celery worker processes")
    p.add_argument("--concurrency", type=int, default=1, help="prod: celery -c")
    p.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"], help="prod: celery -P")
    p.add_argument("--web-workers", type=int, default=2, help="prod: gunicorn -w")
    p.add_argument("--web-threads", type=int, default=4, help="prod: gunicorn -k gthread --threads")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="max seconds to wait for scoring to finish")
    p.add_argument("--no-raw", action="store_true", help="skip the raw-write floor")
    p.add_argument("--no-floor", action="store_true", help="skip the HTTP floor (/bench/floor) of the single scenario")
    p.add_argument("--allow-any-db", action="store_true", help="prod: allow a DATABASE_URL not named tg_bench*")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir and process logs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rules", choices=sorted(rulesets.PRESETS), default="default",
                   help="rules published before the run (bench/rules.py); conditional10 adds 10 conditional rules "
                        "and metadata to the events")
    p.add_argument("--json", help="result file (default bench/results/<timestamp>.json)")
    return p.parse_args(argv)


# --- one scenario ------------------------------------------------------------------------------


async def drain(listener, log, unique: int, db: Database | None, api, tag: str, timeout: float) -> dict:
    """Wait until every unique event's frame arrived (or scoring is done and frames stopped)."""
    deadline = time.perf_counter() + timeout
    last_check = 0.0
    while True:
        now = time.perf_counter()
        if len(listener.first_seen) >= unique:
            return {"complete": True, "end": listener.last_frame_at, "by": "frames"}
        if now > deadline:
            return {"complete": False, "end": now, "by": "timeout"}
        quiet = now - max(listener.last_frame_at, log.last_done)
        if quiet > 3 and now - last_check > 1:
            last_check = now
            if db is not None:
                pending = await asyncio.to_thread(lambda: db.counts(tag)["pending"])
            else:
                pending = (await api.get("/health"))["checks"]["database"].get("pending_events", 1)
            if pending == 0 and quiet > 5:
                return {"complete": True, "end": max(listener.last_frame_at, log.last_done), "by": "db (frames missing)"}
        await asyncio.sleep(0.05)


async def lead_scores(api, tag: str) -> dict[str, int]:
    scores, page = {}, 1
    while page and page < 1000:
        body = await api.get("/api/leads", search=tag + "-", page_size=500, page=page)
        for lead in body["results"]:
            scores[lead["email"]] = lead["current_score"]
        page = page + 1 if body.get("next") else None
    return scores


async def run_scenario(name: str, args, ctx) -> dict:
    api, listener, db, points, peaks = ctx["api"], ctx["listener"], ctx["db"], ctx["points"], ctx["peaks"]
    tag = f"{ctx['run_id']}{name}"
    mix = ctx["mix"]
    extra = {}
    meta = rulesets.metadata_for if args.rules != "default" else None
    if name in ("batch", "hot"):
        wl = workloads.build(tag, events=args.events, leads=args.leads, mix=mix, dup_share=args.dup_share,
                             late_share=args.late_share, hot_share=args.hot_share if name == "hot" else 0.0,
                             seed=args.seed, metadata=meta)
    elif name == "single":
        wl = workloads.build(tag, events=args.single_events, leads=args.leads, mix=mix, dup_share=args.dup_share,
                             late_share=args.late_share, seed=args.seed, metadata=meta)
    elif name == "steady":
        wl = workloads.build(tag, events=int(args.steady_rate * args.steady_seconds), leads=args.leads, mix=mix,
                             dup_share=args.dup_share, late_share=args.late_share, seed=args.seed, metadata=meta)
    elif name == "soak":
        wl = workloads.build(tag, events=int(args.soak_rate * args.soak_seconds), leads=args.leads, mix=mix,
                             dup_share=args.dup_share, late_share=args.late_share, seed=args.seed, metadata=meta)
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    unique = len(wl.unique)
    listener.reset(tag + "-")
    log = client.SendLog()
    samples: list[tuple[float, dict]] = []

    async def sampler() -> None:
        while True:
            if ctx["stack"].procs:
                ctx["stack"].sample_peaks()
                samples.append((time.perf_counter(), ctx["stack"].rss_now_mb()))
            await asyncio.sleep(5 if name == "soak" else 1)

    sampling = asyncio.create_task(sampler())
    cpu_before = ctx["stack"].cpu_seconds() if ctx["stack"].procs else {}
    client_cpu_before = time.process_time()
    print(f"  {name}: {len(wl.sent)} events ({unique} unique, {wl.late} late) over {len(wl.emails)} leads ...",
          flush=True)
    if name in ("batch", "hot"):
        await client.send_batches(api, wl.batches(args.batch_size), args.clients, log)
    elif name == "single":
        await client.send_singles(api, wl.sent, args.single_clients, log)
    elif name == "steady":
        extra = await client.send_steady(api, wl.sent, args.steady_rate, 256, log)
    elif name == "soak":
        extra = await send_paced_batches(api, wl.batches(args.batch_size), args.soak_rate, log)
    done = await drain(listener, log, unique, db, api, tag, args.drain_timeout)
    sampling.cancel()
    cpu_after = ctx["stack"].cpu_seconds() if ctx["stack"].procs else {}
    cpu_ms = {role: round(1000 * (cpu_after[role] - cpu_before.get(role, 0)) / unique, 3) for role in cpu_after}
    cpu_ms["bench client"] = round(1000 * (time.process_time() - client_cpu_before) / unique, 3)
    await asyncio.sleep(0.5)  # late doubles, if any, have a chance to show up

    accepted = log.items.get("accepted", 0)
    ingest_s = max(1e-9, log.last_done - log.first_sent)
    e2e_s = max(1e-9, done["end"] - log.first_sent)
    latencies, negative = [], 0
    for event_id, seen in listener.first_seen.items():
        sent = log.accepted_at.get(event_id)
        if sent is not None:
            delta = (seen - sent) * 1000
            negative += delta < 0
            latencies.append(max(0.0, delta))

    # Correctness: the fold, rows, frames.
    if ctx.get("ruleset") is not None:  # the engine under the version the bench published
        source = "api" if name in ("single", "steady") else "batch"
        expected = workloads.expected_scores_engine(wl, ctx["ruleset"], source=source)
    else:  # a running stack (--target): its rules as the API lists them, points per event type
        expected = workloads.expected_scores(wl, points)
    actual = await lead_scores(api, tag)
    wrong = {email: (actual.get(email), score) for email, score in expected.items() if actual.get(email) != score}
    counts = await asyncio.to_thread(db.counts, tag) if db else None
    frames_lost = unique - len(listener.first_seen)
    frames_doubled = sum(c - 1 for c in listener.counts.values() if c > 1)
    checks = {
        "leads_expected": len(expected),
        "leads_found": len(actual),
        "scores_wrong": len(wrong),
        "wrong_examples": dict(list(wrong.items())[:5]),
        "accepted_items": accepted,
        "duplicate_items": log.items.get("duplicate", 0),
        "rejected_items": log.items.get("rejected", 0),
        "unique_events": unique,
        "frames_lost": frames_lost,
        "frames_doubled": frames_doubled,
        "db": counts,
        "http_errors": log.errors,
    }
    ok = (not wrong and len(actual) == len(expected) and accepted == unique and frames_lost == 0
          and frames_doubled == 0 and done["complete"])
    if counts:
        ok = ok and counts["events"] == unique and counts["pending"] == 0 and counts["score_changes"] == unique \
            and counts["scored_events"] == unique
    checks["ok"] = ok

    result = {
        "scenario": name,
        "sent": len(wl.sent),
        "unique": unique,
        "late": wl.late,
        "leads": len(expected),
        "ingest_events_per_s": round(accepted / ingest_s),
        "requests_per_s": round(sum(log.status.values()) / ingest_s),
        "e2e_events_per_s": round(unique / e2e_s),
        "drain": done["by"],
        "http_ms": client.percentiles(log.http_ms),
        "http_status": dict(log.status),
        "frame_latency_ms": client.percentiles(latencies),
        "frame_before_response": negative,
        "checks": checks,
        "cpu_ms_per_event": cpu_ms,
        **extra,
    }
    if name == "soak" and samples:
        result["rss_samples_mb"] = [(round(t - samples[0][0], 1), s) for t, s in samples]
        result["rss_growth_pct"] = rss_growth(samples)
    peaks.update(ctx["stack"].peak_rss_mb())
    return result


def rss_growth(samples: list[tuple[float, dict]]) -> dict[str, float]:
    """Growth of each role's RSS from the end of warm-up (20% of the run) to the max of the last 20%."""
    n = len(samples)
    if n < 5:
        return {}
    warm = samples[n // 5][1]
    tail = samples[-max(1, n // 5):]
    growth = {}
    for role, base in warm.items():
        late = max(s[1].get(role, 0) for s in tail)
        growth[role] = round(100 * (late - base) / base, 1) if base else 0.0
    return growth


async def send_paced_batches(api, batches, rate: float, log) -> dict:
    log.first_sent = start = time.perf_counter()
    sent = 0
    tasks = []

    async def one(batch):
        t = time.perf_counter()
        code, body = await api.post("/api/events/batch", batch)
        log.record_batch(code, body, t, time.perf_counter())

    for batch in batches:
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(batch)))
        tasks = [t for t in tasks if not t.done()]
        sent += len(batch)
        if len(tasks) > 8:  # bounded in flight
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*tasks)
    log.last_done = time.perf_counter()
    return {"target_rate": rate}


async def http_floor(args, ctx) -> dict:
    """The single scenario's load against /bench/floor (bench/floor_urls.py): same server, auth and
    JSON, nothing stored. Its rate is what single POSTs could reach if TargetGrid's work were free."""
    api, stack = ctx["api"], ctx["stack"]
    events = [{"event_id": f"floor-{i}", "event_type": "PAGE_VIEW", "email": "floor@example.com",
               "timestamp": "2026-01-01T00:00:00Z"} for i in range(args.single_events)]
    queue: asyncio.Queue = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    http_ms, codes = [], {}

    async def one_client() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            sent = time.perf_counter()
            code, _ = await api.post("/bench/floor", event)
            http_ms.append((time.perf_counter() - sent) * 1000)
            codes[code] = codes.get(code, 0) + 1

    print(f"  http floor: {len(events)} single POSTs to /bench/floor (nothing stored) ...", flush=True)
    cpu_before, client_before = stack.cpu_seconds(), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(args.single_clients)))
    elapsed = time.perf_counter() - start
    cpu_after = stack.cpu_seconds()
    n = len(events)
    cpu_ms = {role: round(1000 * (cpu_after[role] - cpu_before.get(role, 0)) / n, 3) for role in cpu_after}
    cpu_ms["bench client"] = round(1000 * (time.process_time() - client_before) / n, 3)
    return {"requests": n, "requests_per_s": round(n / elapsed), "http_ms": client.percentiles(http_ms),
            "http_status": codes, "cpu_ms_per_request": cpu_ms}


# --- the run -------------------------------------------------------------------------------------


async def ensure_rules(api, mix: dict[str, float], may_create: bool) -> dict[str, int]:
    rules = (await api.get("/api/scoring-rules"))["results"]
    points = {r["event_type"]: (r["points"] if r["enabled"] else 0) for r in rules}
    for event_type in mix:
        if event_type not in points:
            if not may_create or event_type not in NEGATIVE_RULES:
                raise SystemExit(f"no scoring rule for {event_type}; known: {sorted(points)}")
            code, body = await api.post(
                "/api/scoring-rules",
                {"event_type": event_type, "points": NEGATIVE_RULES[event_type], "description": "bench"},
            )
            if code != 201:
                raise SystemExit(f"could not create rule {event_type}: {code} {body}")
            points[event_type] = NEGATIVE_RULES[event_type]
    return points


async def main_async(args, stack: stacks.Stack) -> dict:
    db = Database(stack.database_url) if stack.database_url else None
    mix = workloads.parse_mix(args.mix)
    ctx = {"stack": stack, "db": db, "mix": mix, "peaks": {}, "run_id": "b" + secrets.token_hex(3)}
    report: dict = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "stack": {"kind": stack.kind, "api": stack.api_url, "ws": stack.ws_url, **stack.description},
        "args": vars(args),
        "scenarios": [],
    }
    api = client.Api(stack.api_url, stack.api_key, connections=max(args.single_clients, args.clients, 256))
    listener = client.FrameListener(stack.ws_url, stack.api_key)
    try:
        if stack.env is not None:
            # Rules edited through the API only change the draft: publish them in the stack's database.
            snapshot = await asyncio.to_thread(rulesets.publish, stack.env, args.rules)
            ctx["ruleset"] = rulesets.ruleset(snapshot)
            missing = set(mix) - ctx["ruleset"].event_types
            if missing:
                raise SystemExit(f"no published rule for {sorted(missing)}")
            ctx["points"] = {}
            report["rules"] = {"preset": args.rules, "version": snapshot["number"], "match_mode": snapshot["match_mode"],
                               "rules": len(snapshot["rules"])}
            print(f"  rules v{snapshot['number']} published ({args.rules}, {len(snapshot['rules'])} rules)", flush=True)
        else:
            if args.rules != "default":
                raise SystemExit("--rules needs a stack the bench starts (publishing runs on its database)")
            ctx["points"] = await ensure_rules(api, mix, may_create=bool(args.database_url))
        ctx["api"], ctx["listener"] = api, listener
        await listener.start()
        if db is not None and not args.no_raw:
            unique = max(1, round(args.events * (1 - args.dup_share)))
            print(f"  raw-write floor: {unique} events into a scratch copy of the tables ...", flush=True)
            report["raw_write"] = await asyncio.to_thread(
                db.raw_write_rate, events=unique, leads=args.leads, batch=args.batch_size
            )
        names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        if stack.procs and not args.no_floor and {"single", "steady"} & set(names):
            report["http_floor"] = await http_floor(args, ctx)
        for name in names:
            stack.check_alive() if stack.procs else None
            report["scenarios"].append(await run_scenario(name, args, ctx))
    finally:
        await listener.stop()
        await api.close()
    report["peak_rss_mb"] = ctx["peaks"] or stack.peak_rss_mb()
    raw = report.get("raw_write", {}).get("events_per_s")
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    if raw and "batch" in by_name:
        report["raw_ratio"] = round(by_name["batch"]["e2e_events_per_s"] / raw, 3)
    if report.get("http_floor") and "single" in by_name:
        report["single_vs_floor"] = round(by_name["single"]["ingest_events_per_s"] / report["http_floor"]["requests_per_s"], 3)
    if "hot" in by_name and "batch" in by_name:
        report["hot_vs_uniform"] = round(by_name["hot"]["e2e_events_per_s"] / by_name["batch"]["e2e_events_per_s"], 3)
    report["ok"] = all(s["checks"]["ok"] for s in report["scenarios"])
    return report


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) // 1024} MiB"
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg": os.getloadavg()}


def fmt(value, unit="") -> str:
    return "-" if value is None else f"{value}{unit}"


def print_table(report: dict) -> None:
    st = report["stack"]
    print()
    print(f"TargetGrid bench  {report['started_at']}  stack={st['kind']}  {st.get('server', '')}"
          f"{'  workers=' + st['workers'] if st.get('workers') else ''}  db={st.get('database', '?')}")
    m = report["machine"]
    print(f"machine: {m['cpus']} cpu ({m['cpu']}), {m['memory']}, Python {m['python']}, load {m['loadavg'][0]:.2f}")
    header = (f"{'scenario':<8} {'sent':>7} {'unique':>7} {'ingest/s':>9} {'e2e/s':>7} "
              f"{'http p50/p99 ms':>16} {'frame p50/p95/p99/max ms':>26}  correct")
    print(header)
    print("-" * len(header))
    for s in report["scenarios"]:
        h, f, c = s["http_ms"], s["frame_latency_ms"], s["checks"]
        http = f"{fmt(h['p50'])}/{fmt(h['p99'])}"
        frame = f"{fmt(f['p50'])}/{fmt(f['p95'])}/{fmt(f['p99'])}/{fmt(f['max'])}"
        verdict = "OK" if c["ok"] else "FAIL"
        detail = (f" (wrong {c['scores_wrong']}, frames lost {c['frames_lost']} doubled {c['frames_doubled']}"
                  f", rows {c['db']['score_changes'] if c['db'] else '-'}/{c['unique_events']})")
        print(f"{s['scenario']:<8} {s['sent']:>7} {s['unique']:>7} {s['ingest_events_per_s']:>9} "
              f"{s['e2e_events_per_s']:>7} {http:>16} {frame:>26}  {verdict}{detail}")
    print("CPU ms per unique event (user+sys of each process tree; robust to a busy machine):")
    for s in report["scenarios"]:
        print(f"  {s['scenario']:<8} " + "  ".join(f"{k} {v}" for k, v in s["cpu_ms_per_event"].items()))
    floor = report.get("http_floor")
    if floor:
        h = floor["http_ms"]
        print(f"HTTP floor (/bench/floor: same server, auth and JSON, nothing stored; {floor['requests']} POSTs, "
              f"status {floor['http_status']}): {floor['requests_per_s']} req/s, http p50/p99 {h['p50']}/{h['p99']} ms"
              f"{'; single / floor = ' + str(report['single_vs_floor']) if 'single_vs_floor' in report else ''}")
        print("  CPU ms per request: " + "  ".join(f"{k} {v}" for k, v in floor["cpu_ms_per_request"].items()))
    raw = report.get("raw_write")
    if raw:
        print(f"raw-write floor (same engine, {raw['events']} events, batches of {raw['batch']}, 1 writer): "
              f"{raw['events_per_s']} events/s; batch e2e / raw = {fmt(report.get('raw_ratio'))}")
    if "hot_vs_uniform" in report:
        print(f"hot lead (e2e) / uniform (e2e) = {report['hot_vs_uniform']}")
    for s in report["scenarios"]:
        if "rss_growth_pct" in s:
            print(f"soak RSS growth after warm-up (%): {s['rss_growth_pct']}")
    print(f"peak RSS (MiB, VmHWM summed over process trees): {report['peak_rss_mb']}")
    print(f"correctness: {'OK' if report['ok'] else 'FAILED'}  ->  {report.get('json_path', '')}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.target:
        if not args.api_key:
            raise SystemExit("--target needs --api-key (or TARGETGRID_API_KEY)")
        ws = args.ws_url or args.target.replace("http", "ws", 1).rstrip("/") + "/ws/scores/"
        stack = stacks.Stack(kind="target", api_url=args.target.rstrip("/"), ws_url=ws, api_key=args.api_key,
                             database_url=args.database_url, description={"server": "running stack"})
    elif args.stack == "embedded":
        print("starting the embedded stack (daphne, SQLite, embedded worker) ...", flush=True)
        stack = stacks.start_embedded()
    else:
        database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
        if not database_url or not redis_url:
            raise SystemExit("--stack prod needs DATABASE_URL (mysql://...) and REDIS_URL in the environment")
        print(f"starting the prod stack ({args.workers} Celery workers) on a fresh database ...", flush=True)
        stack = stacks.start_prod(database_url=database_url, redis_url=redis_url, workers=args.workers,
                                  concurrency=args.concurrency, web_workers=args.web_workers,
                                  web_threads=args.web_threads, allow_any_db=args.allow_any_db, pool=args.pool)
    try:
        report = asyncio.run(main_async(args, stack))
    finally:
        if stack.procs:
            stacks.cleanup(stack, keep=args.keep)
            if args.keep:
                print(f"logs and data kept in {stack.workdir}")
    path = Path(args.json) if args.json else RESULTS / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{stack.kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report["json_path"] = str(path)
    path.write_text(json.dumps(report, indent=2, default=str))
    print_table(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
