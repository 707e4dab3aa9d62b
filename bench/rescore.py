#!/usr/bin/env python
"""Acceptance 2 of issue #10: publishing a changed rule set rescores N leads in the background while
events keep arriving over real HTTP; final scores equal a from-scratch fold under the new version;
nothing lost or doubled; progress visible and monotonic.

    python bench/rescore.py --leads 20000                       # embedded stack (daphne + SQLite WAL)
    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        python bench/rescore.py --stack prod                     # gunicorn + daphne + Celery (MariaDB)

Steps (bench/README.md, "Rescoring"):
1. start the stack (bench/stack.py: the same stacks as bench/run.py; prod adds one `-Q imports` worker,
   the one that runs rescores);
2. seed N leads with events straight into its database: events generated here, each lead's fold under
   the current version computed with ``engine.evaluate`` and written with ``config.bulk`` (leads,
   processed events with their points and checkpoints, one audit row per event) -- the rows the
   service itself would have written, at bulk-insert speed;
3. change the draft (page views +2, a conditional +15 for /pricing, e-mail opens capped at 2 a day)
   and publish it; the rescore runs in the background: on the prod stack in the imports worker (the
   job is sent through the broker), on the embedded stack in a process of its own started here (what
   an imports worker or `manage.py rescore` is; the embedded server runs it only when its own admin
   publishes);
4. meanwhile post single events at ``--rate`` (200/s) over HTTP to existing leads (10% late, 10% to
   new leads) and sample the job's progress every ``--sample-ms``;
5. once the job is done and the stream stopped, wait for scoring to finish and verify every lead
   against a from-scratch ``engine.evaluate`` of its events under the new version, count lost and
   doubled events, check the audit sums, and print the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import client  # noqa: E402
import stack as stacks  # noqa: E402

RESULTS = HERE / "results"
TYPES = [("PAGE_VIEW", 50), ("EMAIL_OPEN", 25), ("FORM_SUBMIT", 15), ("DEMO_REQUEST", 7), ("PURCHASE", 3)]
URLS = ["/pricing", "/pricing/enterprise", "/blog/post", "/docs", "/"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", choices=["embedded", "prod"], default=None,
                   help="default: prod when DATABASE_URL is set, else embedded")
    p.add_argument("--leads", type=int, default=100_000)
    p.add_argument("--events-per-lead", type=int, default=5, help="average (1 to 2x-1, uniform)")
    p.add_argument("--rate", type=float, default=200.0, help="events/s posted during the rescore")
    p.add_argument("--clients", type=int, default=32, help="concurrent HTTP connections of the stream")
    p.add_argument("--per-request", type=int, default=1,
                   help="events per request: 1 = POST /api/events, more = POST /api/events/batch (the embedded "
                        "daphne serves ~100 single requests/s: use 5 there to reach 200 events/s)")
    p.add_argument("--tail-seconds", type=float, default=3.0, help="keep posting this long after the job ended")
    p.add_argument("--sample-ms", type=float, default=200.0, help="progress sampling interval")
    p.add_argument("--batch", type=int, default=None, help="TARGETGRID_RESCORE_BATCH for the runner (default 500)")
    p.add_argument("--pause-ms", type=int, default=None,
                   help="TARGETGRID_RESCORE_PAUSE_MS for the runner (default: the setting's default)")
    p.add_argument("--timeout", type=float, default=3600.0, help="max seconds for the rescore and the drain")
    p.add_argument("--workers", type=int, default=2, help="prod: scoring workers")
    p.add_argument("--allow-any-db", action="store_true")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="result file (default bench/results/<timestamp>-rescore.json)")
    return p.parse_args(argv)


# --- Django in this process, on the stack's database -------------------------------------------


def django_setup(stack) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = stack.database_url
    os.environ["TARGETGRID_DATA_DIR"] = str(stack.workdir)
    os.environ["LOG_LEVEL"] = "WARNING"
    if stack.kind == "prod":
        os.environ["TARGETGRID_QUEUE"] = "celery"
    else:
        os.environ.pop("REDIS_URL", None)
        os.environ["TARGETGRID_QUEUE"] = "inline"
    import django

    django.setup()


# --- 2. seeding --------------------------------------------------------------------------------


def seed(*, leads: int, per_lead: int, rng: random.Random, now: datetime) -> dict:
    """Leads, processed events and audit rows, folded under the current version by the engine."""
    from django.db import transaction

    from config.bulk import dicts_insert
    from events.models import Event, EventStatus
    from leads.models import Lead
    from scoring import engine
    from scoring.models import ScoreChange
    from scoring.partitions import partition_of
    from scoring.rulesets import ruleset_current


    ruleset = ruleset_current()
    started = time.perf_counter()
    kinds, weights = zip(*TYPES)
    total_events = 0
    chunk = 2_000
    for start in range(0, leads, chunk):
        lead_rows, event_rows, audit_rows = [], [], []
        for n in range(start, min(leads, start + chunk)):
            lead_id = uuid.uuid4()
            part = partition_of(lead_id)
            events = []
            for k in range(rng.randint(1, 2 * per_lead - 1)):
                kind = rng.choices(kinds, weights)[0]
                metadata = {"url": rng.choice(URLS)} if kind == "PAGE_VIEW" else {}
                ts = now - timedelta(days=30) + timedelta(seconds=rng.randrange(0, 29 * 86400))
                events.append(engine.EngineEvent(engine.EventKey(ts, f"seed-{n}-{k}"), kind, metadata, "api"))
            evaluation = engine.evaluate(ruleset, events, max_score=1000, as_of=now)
            by_id = {e.key.event_id: e for e in events}
            previous = 0
            for evaluated in evaluation.events:  # in fold order
                event = by_id[evaluated.event.key.event_id]
                pk = uuid.uuid4()
                event_rows.append({
                    "id": pk, "event_id": event.key.event_id, "lead_id": lead_id, "event_type": event.event_type,
                    "timestamp": event.key.timestamp, "received_at": now, "processed": True, "processed_at": now,
                    "status": EventStatus.PROCESSED, "points": evaluated.points, "score_after": evaluated.score_after,
                    "late": False, "rule_version": ruleset.version, "metadata": event.metadata, "source": "api",
                    "error": "", "partition": part,
                })
                audit_rows.append({
                    "lead_id": lead_id, "event_id": pk, "event_type": event.event_type, "previous_score": previous,
                    "new_score": evaluated.score_after, "delta": evaluated.score_after - previous,
                    "reason": f"{event.event_type} {evaluated.points:+d} (seeded)", "late": False,
                    "rule_version": ruleset.version, "rules": [], "timestamp": event.key.timestamp, "created_at": now,
                })
                previous = evaluated.score_after
            last = evaluation.last_key
            lead_rows.append({
                "id": lead_id, "email": f"rs{n}@bench.example", "current_score": evaluation.score, "max_score": 1000,
                "last_processed_event_time": last.timestamp, "last_processed_event_id": last.event_id,
                "fit_score": 0, "grade": ruleset.grade(fit_score=0, score=evaluation.score),
                "rule_version": ruleset.version, "score_as_of": now, "decaying": evaluation.decaying,
                "fold_state": {"caps": evaluation.caps.as_dict()} if ruleset.stateful else {},
                "created_at": now, "updated_at": now,
            })
            total_events += len(events)
        with transaction.atomic():
            dicts_insert(Lead, lead_rows)
            dicts_insert(Event, event_rows)
            dicts_insert(ScoreChange, audit_rows)
        print(f"\r  seeded {min(leads, start + chunk):,}/{leads:,} leads", end="", flush=True)
    print()
    return {"leads": leads, "events": total_events, "seconds": round(time.perf_counter() - started, 1)}


# --- 3. the rule change and the runner -------------------------------------------------------------


def change_draft() -> None:
    from scoring.models import ScoringRule
    from scoring.services import rule_save

    rule_save(rule=ScoringRule.objects.get(event_type="PAGE_VIEW"), points=7)
    rule_save(name="Pricing page", event_type="PAGE_VIEW", points=15,
              conditions=[{"field": "metadata.url", "op": "starts_with", "value": "/pricing"}])
    rule_save(rule=ScoringRule.objects.get(event_type="EMAIL_OPEN"), cap_count=2, cap_window_seconds=86400)


def runner_env(args) -> dict[str, str]:
    env = {}
    if args.batch:
        env["TARGETGRID_RESCORE_BATCH"] = str(args.batch)
    if args.pause_ms is not None:
        env["TARGETGRID_RESCORE_PAUSE_MS"] = str(args.pause_ms)
    return env


def start_runner(stack, job_id: int, extra: dict[str, str]) -> subprocess.Popen:
    """Embedded stack: the job in a process of its own (what an imports worker does)."""
    env = stacks._env({"TARGETGRID_DATA_DIR": str(stack.workdir), "DATABASE_URL": stack.database_url,
                       "TARGETGRID_QUEUE": "inline", "LOG_LEVEL": "INFO"})
    env.update(extra)
    code = f"from scoring.rescoring import rescore_job_run; rescore_job_run(job_id={job_id})"
    log = open(stack.workdir / "rescore-runner.log", "wb")
    return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


# --- 4. progress sampling and the stream ---------------------------------------------------------


class Sampler(threading.Thread):
    def __init__(self, job_id: int, interval: float):
        super().__init__(daemon=True)
        self.job_id, self.interval = job_id, interval
        self.samples: list[tuple[float, str, int, int, int]] = []  # (t, status, done, total, changed)
        self.stopped = threading.Event()

    def run(self):
        from django.db import connection

        from scoring.models import RescoreJob

        try:
            while not self.stopped.is_set():
                row = RescoreJob.objects.filter(pk=self.job_id).values_list("status", "done", "total", "changed").first()
                self.samples.append((time.perf_counter(), *row))
                if row[0] not in ("queued", "running"):
                    return
                time.sleep(self.interval)
        finally:
            connection.close()

    @property
    def finished(self) -> bool:
        return bool(self.samples) and self.samples[-1][1] not in ("queued", "running")


async def stream(stack, *, rate: float, clients: int, per_request: int, emails: list[str], rng: random.Random,
                 stop: threading.Event, log: dict) -> None:
    """Events at ``rate`` per second (open loop: the schedule does not wait for answers), ``per_request``
    per POST, until ``stop``."""
    api = client.Api(stack.api_url, stack.api_key, clients)
    queue: asyncio.Queue = asyncio.Queue(maxsize=clients * 4)
    now = datetime.now(timezone.utc)
    kinds, weights = zip(*TYPES)

    async def sender():
        while True:
            bodies = await queue.get()
            if bodies is None:
                return
            sent = time.perf_counter()
            try:
                if len(bodies) == 1:
                    code, answer = await api.post("/api/events", bodies[0])
                    items = [(bodies[0]["event_id"], answer.get("status", "error"))]
                else:
                    code, answer = await api.post("/api/events/batch", {"events": bodies})
                    items = [(r.get("event_id"), r.get("status")) for r in answer.get("results", [])]
            except Exception as exc:  # counted: a lost request is a figure, not a crash of the bench
                code, answer, items = 0, {"status": f"error: {exc}"}, []
            log["http_ms"].append((time.perf_counter() - sent) * 1000)
            log["status"][code] += 1
            for event_id, item in items:
                if item == "accepted":
                    log["accepted"].add(event_id)
                elif item == "duplicate":
                    log["duplicates"] += 1
            if code not in (200, 202) and len(log["errors"]) < 5:
                log["errors"].append(f"{code}: {str(answer)[:300]}")

    tasks = [asyncio.create_task(sender()) for _ in range(clients)]
    started = time.perf_counter()
    n = 0
    try:
        while not stop.is_set():
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            bodies = []
            for _ in range(per_request):
                kind = rng.choices(kinds, weights)[0]
                email = f"rs-new{n}@bench.example" if rng.random() < 0.1 else rng.choice(emails)
                # in order (after every seeded event), or 10%: late, inside the seeded month
                ts = (now - timedelta(days=rng.uniform(1, 29))) if rng.random() < 0.1 else datetime.now(timezone.utc)
                body = {"event_id": f"live-{n}", "event_type": kind, "email": email,
                        "timestamp": ts.isoformat().replace("+00:00", "Z")}
                if kind == "PAGE_VIEW":
                    body["metadata"] = {"url": rng.choice(URLS)}
                bodies.append(body)
                n += 1
            await queue.put(bodies)
    finally:
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)
        await api.close()
        log["sent"] = n
        log["seconds"] = time.perf_counter() - started


# --- 5. verification -----------------------------------------------------------------------------


def wait_scored(timeout: float) -> int:
    from events.models import Event, EventStatus

    deadline = time.monotonic() + timeout
    while True:
        pending = Event.objects.filter(status=EventStatus.PENDING).count()
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(1)


def verify(version: int, accepted: set[str]) -> dict:
    """Every lead against a from-scratch fold of its processed events under ``version``; lost and
    doubled events; audit sums; how many leads were rescored by their scoring before the job."""
    from django.db.models import Count, Sum

    from events.models import Event, EventStatus
    from leads.models import Lead
    from scoring import engine
    from scoring.models import ScoreChange
    from scoring.rulesets import ruleset_of

    started = time.perf_counter()
    ruleset = ruleset_of(version)
    leads = {pk: (score, max_score, as_of, rv) for pk, score, max_score, as_of, rv in Lead.objects.values_list(
        "id", "current_score", "max_score", "score_as_of", "rule_version").iterator(chunk_size=5000)}
    events = defaultdict(list)
    for lead_id, ts, event_id, kind, metadata, source in Event.objects.filter(status=EventStatus.PROCESSED).values_list(
            "lead_id", "timestamp", "event_id", "event_type", "metadata", "source").iterator(chunk_size=10000):
        events[lead_id].append(engine.EngineEvent(engine.EventKey(ts, event_id), kind,
                                                  metadata if isinstance(metadata, dict) else {}, source))
    wrong, old_version, examples = 0, 0, []
    for pk, (score, max_score, as_of, rv) in leads.items():
        expected = engine.evaluate(ruleset, events.get(pk, []), max_score=max_score, as_of=as_of).score
        if rv != version:
            old_version += 1
        if expected != score:
            wrong += 1
            if len(examples) < 5:
                examples.append({"lead": str(pk), "stored": score, "fold": expected, "rule_version": rv})
    audit = dict(ScoreChange.objects.values_list("lead_id").annotate(total=Sum("delta")))
    audit_wrong = sum(1 for pk, (score, *_rest) in leads.items() if audit.get(pk, 0) != score)
    stored_live = dict(Event.objects.filter(event_id__startswith="live-").values_list("event_id", "status"))
    lost = sorted(e for e in accepted if stored_live.get(e) != EventStatus.PROCESSED)
    rows_per_event = Counter(
        ScoreChange.objects.filter(event_id__isnull=False).values("event_id").annotate(n=Count("id"))
        .filter(n__gt=1).values_list("n", flat=True)
    )
    rescore_rows = Counter(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE, rule_version=version)
                           .values_list("lead_id", flat=True))
    job_rows = set(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE, rule_version=version)
                   .values_list("lead_id", "created_at"))
    by_scoring = {lead for lead, created in ScoreChange.objects.filter(
        event_id__isnull=False, rule_version=version).values_list("lead_id", "created_at") if (lead, created) in job_rows}
    return {
        "leads": len(leads),
        "leads_wrong": wrong,
        "wrong_examples": examples,
        "leads_not_on_version": old_version,
        "audit_sum_wrong": audit_wrong,
        "live_accepted": len(accepted),
        "live_lost": len(lost),
        "lost_examples": lost[:5],
        "live_not_accepted_but_stored": len(set(stored_live) - accepted),
        "events_with_several_rows": sum(rows_per_event.values()),
        "leads_with_several_rescore_rows": sum(1 for n in rescore_rows.values() if n > 1),
        "leads_rescored": len(rescore_rows),
        "leads_rescored_by_their_scoring_first": len(by_scoring),
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    kind = args.stack or ("prod" if os.environ.get("DATABASE_URL") else "embedded")
    rng = random.Random(args.seed)
    print(f"== rescore bench: {args.leads:,} leads, stream {args.rate:g}/s, stack {kind}")
    if kind == "prod":
        extra = runner_env(args)
        stack = stacks.start_prod(database_url=os.environ["DATABASE_URL"], redis_url=os.environ["REDIS_URL"],
                                  workers=args.workers, concurrency=1, web_workers=2, web_threads=4,
                                  allow_any_db=args.allow_any_db, extra_env=extra, import_workers=1)
    else:
        stack = stacks.start_embedded(keep=args.keep)
    result: dict = {"stack": kind, "description": stack.description, "args": vars(args)}
    runner = None
    try:
        django_setup(stack)
        from scoring.models import RescoreJob
        from scoring.rescoring import ruleset_publish

        now = datetime.now(timezone.utc) - timedelta(minutes=1)
        print("-- seeding (bulk inserts, folded with engine.evaluate under v1)")
        result["seed"] = seed(leads=args.leads, per_lead=args.events_per_lead, rng=rng, now=now)
        print(f"   {result['seed']['events']:,} events in {result['seed']['seconds']} s")
        emails = [f"rs{n}@bench.example" for n in range(args.leads)]

        stop = threading.Event()
        log = {"http_ms": [], "status": Counter(), "accepted": set(), "duplicates": 0, "errors": []}
        streamer = threading.Thread(target=lambda: asyncio.run(stream(
            stack, rate=args.rate, clients=args.clients, per_request=args.per_request, emails=emails,
            rng=random.Random(args.seed + 1), stop=stop,
            log=log)), daemon=True)
        streamer.start()
        time.sleep(2)  # the stream is flowing before the publish

        change_draft()
        published = time.perf_counter()
        version = ruleset_publish(actor="bench", note="bench/rescore.py", send=(kind == "prod"))
        job = RescoreJob.objects.filter(version=version.number).get()
        print(f"-- published rules v{version.number}; rescore job {job.pk} over {job.total:,} leads")
        if kind == "embedded":
            runner = start_runner(stack, job.pk, runner_env(args))
        sampler = Sampler(job.pk, args.sample_ms / 1000)
        sampler.start()
        deadline = time.monotonic() + args.timeout
        while not sampler.finished:
            time.sleep(1)
            stack.check_alive()
            if runner is not None and runner.poll() not in (None, 0):
                raise RuntimeError(f"the rescore runner exited with {runner.returncode}; "
                                   f"see {stack.workdir / 'rescore-runner.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("the rescore did not finish in time")
            last = sampler.samples[-1] if sampler.samples else None
            if last:
                t, status, done, total, changed = last
                elapsed = t - published
                print(f"\r   {status:9} {done:,}/{total:,} ({100 * done / max(total, 1):5.1f}%)  {changed:,} changed  "
                      f"{done / max(elapsed, 1e-6):,.0f} leads/s  stream {len(log['accepted']):,} accepted   ",
                      end="", flush=True)
        print()
        time.sleep(args.tail_seconds)
        stop.set()
        streamer.join(timeout=120)
        sampler.join(timeout=30)
        pending = wait_scored(args.timeout)
        job.refresh_from_db()
        done_series = [s[2] for s in sampler.samples]
        status_series = [s[1] for s in sampler.samples]
        duration = (job.finished_at - job.started_at).total_seconds() if job.started_at and job.finished_at else None
        result["rescore"] = {
            "job": job.pk, "version": job.version, "status": job.status, "done": job.done, "total": job.total,
            "changed": job.changed, "seconds": round(duration, 1) if duration else None,
            "leads_per_second": round(job.done / duration) if duration else None,
            "publish_to_done_seconds": round(sampler.samples[-1][0] - published, 1),
            "samples": len(done_series), "distinct_progress_values": len(set(done_series)),
            "monotonic": done_series == sorted(done_series),
            "statuses_seen": list(dict.fromkeys(status_series)),
        }
        http = client.percentiles(log["http_ms"])
        result["stream"] = {
            "sent": log["sent"], "seconds": round(log["seconds"], 1), "rate": round(log["sent"] / log["seconds"], 1),
            "accepted": len(log["accepted"]), "duplicates": log["duplicates"], "status": dict(log["status"]),
            "errors": log["errors"], "http_p50_ms": http["p50"], "http_p99_ms": http["p99"],
            "pending_after_drain": pending,
        }
        print("-- verifying every lead against engine.evaluate under the new version")
        result["verify"] = verify(version.number, log["accepted"])
    finally:
        if runner is not None and runner.poll() is None:
            runner.terminate()
        stacks.cleanup(stack, keep=args.keep)
    report(result)
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.json) if args.json else RESULTS / f"{datetime.now():%Y%m%d-%H%M%S}-rescore.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"(written to {path})")
    v, r, s = result["verify"], result["rescore"], result["stream"]
    ok = (r["status"] == "completed" and r["monotonic"] and v["leads_wrong"] == 0 and v["live_lost"] == 0
          and v["events_with_several_rows"] == 0 and v["leads_with_several_rescore_rows"] == 0
          and v["audit_sum_wrong"] == 0 and v["leads_not_on_version"] == 0 and s["pending_after_drain"] == 0)
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def report(result: dict) -> None:
    seed, r, s, v = result["seed"], result["rescore"], result["stream"], result["verify"]
    rows = [
        ("stack", f"{result['stack']}: {result['description'].get('server')} / {result['description'].get('database')}"),
        ("seeded", f"{seed['leads']:,} leads, {seed['events']:,} events in {seed['seconds']} s"),
        ("rescore", f"{r['status']}: {r['done']:,}/{r['total']:,} leads, {r['changed']:,} changed, "
                    f"{r['seconds']} s ({r['leads_per_second']:,} leads/s); publish -> done {r['publish_to_done_seconds']} s"),
        ("progress", f"{r['samples']} samples, {r['distinct_progress_values']} distinct, "
                     f"monotonic: {'yes' if r['monotonic'] else 'NO'}"),
        ("stream", f"{s['sent']:,} events in {s['seconds']} s ({s['rate']}/s), {s['accepted']:,} accepted, "
                   f"http p50 {s['http_p50_ms']} ms p99 {s['http_p99_ms']} ms, statuses {s['status']}"),
        ("final fold", f"{v['leads']:,} leads checked in {v['seconds']} s: {v['leads_wrong']} differ from "
                       f"engine.evaluate under v{r['version']}, {v['leads_not_on_version']} not on v{r['version']}, "
                       f"{v['audit_sum_wrong']} audit sums wrong"),
        ("events", f"lost {v['live_lost']}, doubled (several audit rows) {v['events_with_several_rows']}, "
                   f"pending {s['pending_after_drain']}"),
        ("audit", f"{v['leads_rescored']:,} RESCORE rows, {v['leads_with_several_rescore_rows']} leads with more than one; "
                  f"{v['leads_rescored_by_their_scoring_first']:,} leads rescored by an arriving event before the job"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    if s["errors"]:
        print("stream errors:", *s["errors"], sep="\n  ")
    if v["wrong_examples"]:
        print("wrong leads:", *v["wrong_examples"], sep="\n  ")


if __name__ == "__main__":
    sys.exit(main())
