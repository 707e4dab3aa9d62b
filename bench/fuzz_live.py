"""Malformed input against a *running* stack over real HTTP (issue #9, acceptance 3, from outside).

The suite's events/tests/test_fuzz.py drives Django's test client; this sends the same seeded
bodies (its generators) through a real server — gunicorn or daphne, the real middleware, the real
database with its own collation and JSON checks — and checks every answer: no 5xx, a JSON body, a
4xx names its field, every rejected batch item names its field. Afterwards, through the same
database (``DATABASE_URL``), every good item of a mixed batch and every good row of an uploaded
file must be stored and scored, and every bad row must be in the job's error report.

    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_live REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/fuzz_live.py --target http://127.0.0.1:8000 --requests 3000

It creates its own API key, Segment source and shared-secret webhook source in that database.
Exit status 1 on any violation. Bounded: ``--requests`` bodies, ``--files`` uploads.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from events.models import Event, ImportJob, ImportRowError  # noqa: E402
from events.segment import segment_source_create  # noqa: E402
from events.services import api_key_create, webhook_source_create  # noqa: E402
from events.tests import test_fuzz as gen  # noqa: E402  (the suite's seeded generators)


def send(url: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def verdict(status: int, headers: dict, body: bytes) -> str | None:
    """None if the answer is acceptable, else what is wrong."""
    if status >= 500 and status != 503:
        return f"{status}"
    if not headers.get("Content-Type", "").startswith("application/json"):
        return f"{status} not JSON: {body[:120]!r}"
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"{status} unparseable JSON"
    results = parsed.get("results") if isinstance(parsed, dict) else None
    for item in results if isinstance(results, list) else []:
        if item.get("status") == "rejected" and not item.get("errors"):
            return f"{status} rejected item without errors: {item}"
    if 400 <= status < 500 and not (isinstance(parsed, dict) and (parsed.get("errors") or results)):
        return f"{status} names no field: {parsed}"
    return None


def multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "9")))
    parser.add_argument("--settle", type=float, default=120, help="max seconds to wait for scoring")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:8]  # ids of this run (several runs may share a database)

    _, api_key = api_key_create(name=f"fuzz-{tag}")
    _, write_key = segment_source_create(name=f"fuzz-{tag}")
    hook = webhook_source_create(name=f"fuzz-{tag}", mode="shared_secret")
    api = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    seg = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
           "Content-Type": "application/json"}
    web = {hook.secret_header: hook.secret, "Content-Type": "application/json"}

    jobs: list[tuple[str, str, bytes, dict, list[str]]] = []  # (kind, path, body, headers, good ids)
    garbage = gen.garbage_bodies(rng, args.requests // 6)
    for body in garbage:
        jobs.append(("garbage", "/api/events", body, api, []))
        jobs.append(("garbage", "/v1/batch", body, seg, []))
        jobs.append(("garbage", f"/webhooks/events?source=fuzz-{tag}", body, web, []))
    i = 0
    while len(jobs) < args.requests:
        i += 1
        roll = rng.random()
        if roll < 0.35:
            event = gen.mutate(rng, gen.good_event(tag, i))
            jobs.append(("single", "/api/events", gen.dumps(event).encode("utf-8", "surrogatepass"), api, []))
        elif roll < 0.6:
            good = [gen.good_event(tag, i * 100 + k) for k in range(rng.randint(1, 5))]
            bad = [gen.surely_bad(rng, gen.good_event(tag, i * 100 + 50 + k), body_safe=True)
                   for k in range(rng.randint(1, 5))]
            items = good + bad
            rng.shuffle(items)
            body = gen.dumps({"events": items}).encode("utf-8", "surrogatepass")
            path = "/api/events/batch" if rng.random() < 0.6 else f"/webhooks/events?source=fuzz-{tag}"
            jobs.append(("batch", path, body, api if path.startswith("/api") else web, [e["event_id"] for e in good]))
        else:
            kind = rng.choice(["page", "track", "identify", "screen", "group", "alias"])
            message = gen.mutate_message(rng, gen.good_message(tag, i, "track" if kind == "track" else "page"))
            path = rng.choice(["/v1/track", "/v1/page", "/v1/identify", "/v1/batch"])
            body = {"batch": [message]} if path == "/v1/batch" else message
            jobs.append(("segment", path, gen.dumps(body).encode("utf-8", "surrogatepass"), seg, []))
    rng.shuffle(jobs)

    answers: Counter = Counter()
    violations: list[str] = []
    good_ids: list[str] = []

    def run(job):
        kind, path, body, headers, good = job
        status, response_headers, content = send(args.target + path, body, headers)
        return kind, path, status, verdict(status, response_headers, content), good

    started = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        for kind, path, status, problem, good in pool.map(run, jobs):
            answers[(path.split("?")[0], status)] += 1
            if problem:
                violations.append(f"{kind} {path}: {problem}")
            if status == 202 and good:
                good_ids += good
    print(f"{len(jobs)} requests in {time.monotonic() - started:.1f}s")

    # Files: CSV, JSON and NDJSON, each with bad rows; every good row must be imported.
    file_good, file_jobs = [], []
    for n in range(args.files):
        fmt = ("csv", "json", "ndjson")[n % 3]
        content, good, bad_rows = gen.make_file(rng, fmt, f"{tag}f{n}", rows=rng.randint(50, 3000), bad=rng.randint(1, 20))
        body, content_type = multipart(f"fuzz.{fmt}", content)
        status, headers, answer = send(args.target + "/api/events/upload", body,
                                       {"Authorization": api["Authorization"], "Content-Type": content_type})
        answers[("/api/events/upload", status)] += 1
        problem = verdict(status, headers, answer)
        if problem or status != 202:
            violations.append(f"upload {fmt}: {problem or status} {answer[:200]!r}")
            continue
        # "poison-" rows are bad only under the suite's poisoned_insert fixture: here they are good rows
        poison = {match.decode() for match in re.findall(rb"poison-[0-9a-f]+f[0-9]+-[0-9]+", content)}
        file_jobs.append((json.loads(answer)["import_id"], fmt, bad_rows, len(poison)))
        file_good += good + sorted(poison)

    deadline = time.monotonic() + args.settle
    wanted = set(good_ids) | set(file_good)
    while time.monotonic() < deadline:
        jobs_done = all(ImportJob.objects.get(pk=job_id).done for job_id, *_ in file_jobs)
        processed = Event.objects.filter(event_id__in=wanted, status="processed").count() if jobs_done else 0
        if jobs_done and processed == len(wanted):
            break
        time.sleep(1)
    stored = dict(Event.objects.filter(event_id__in=wanted).values_list("event_id", "status"))
    missing = wanted - stored.keys()
    unscored = {k: v for k, v in stored.items() if v != "processed"}
    if missing:
        violations.append(f"{len(missing)} good items/rows not stored, e.g. {sorted(missing)[:5]}")
    if unscored:
        violations.append(f"{len(unscored)} good items/rows not scored, e.g. {list(unscored.items())[:5]}")
    for job_id, fmt, bad_rows, poisoned in file_jobs:
        job = ImportJob.objects.get(pk=job_id)
        reported = set(ImportRowError.objects.filter(job_id=job_id).values_list("row", flat=True))
        if job.status != "completed" or len(bad_rows & reported) < len(bad_rows) - poisoned:
            violations.append(f"import {job_id} ({fmt}): {job.status} {job.error!r}; bad rows not reported: "
                              f"{sorted(bad_rows - reported)[:10]}")

    print("answers by path and status:")
    for (path, status), count in sorted(answers.items()):
        print(f"  {path:22s} {status}  {count}")
    print(f"good batch items accepted: {len(good_ids)}; good file rows: {len(file_good)}; files: {len(file_jobs)}")
    if violations:
        print(f"FAIL: {len(violations)} violations")
        for line in violations[:40]:
            print("  " + line)
        return 1
    print("PASS: no 5xx, every answer JSON naming its field, every good item and row stored and scored, "
          "every bad row reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
