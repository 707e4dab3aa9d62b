"""Import a generated CSV through ``manage.py import_events`` and print its peak RSS and rate.

    .venv/bin/python bench/import_memory.py [--rows 1000000] [--bad-every 1000] [--leads 10000]
                                           [--redis redis://127.0.0.1:6379/14]

With --redis the import runs as in production: scoring is enqueued to Celery (the queue is purged
afterwards; no worker needed), so the figures are the import worker's own. Without it, scoring
runs inline in the same process after each chunk (the embedded default's CLI behaviour).

Runs against a fresh SQLite data directory (or DATABASE_URL if you export one) in a child
process; peak RSS is the child's ``ru_maxrss`` (resource.getrusage(RUSAGE_CHILDREN)). It checks
the counters are exact: rows, accepted, rejected (one bad row every --bad-every rows, cycling
through four kinds of error). Not a test: it prints figures; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, rows: int, bad_every: int, leads: int) -> int:
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    types = ["PAGE_VIEW", "EMAIL_OPEN", "FORM_SUBMIT", "DEMO_REQUEST", "PURCHASE"]
    bad = 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["event_id", "event_type", "timestamp", "email", "metadata"])
        for i in range(rows):
            row = [f"bench-{i}", types[i % 5], (t0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                   f"lead{i % leads}@example.com", json.dumps({"i": i, "utm": "mail"})]
            if bad_every and i % bad_every == bad_every - 1:
                bad += 1
                kind = (i // bad_every) % 4
                if kind == 0:
                    row[1] = "NOT_A_TYPE"
                elif kind == 1:
                    row[2] = "not a time"
                elif kind == 2:
                    row[3] = "not-an-email"
                else:
                    row[4] = "{oops"
            writer.writerow(row)
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--redis", help="REDIS_URL: enqueue scoring to Celery instead of scoring inline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tg-bench-import-") as tmp:
        env = dict(os.environ, TARGETGRID_DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")
        env.pop("REDIS_URL", None)
        if args.redis:
            env.update(REDIS_URL=args.redis, TARGETGRID_QUEUE="celery")
        else:
            env.setdefault("TARGETGRID_QUEUE", "inline")
        path = Path(tmp) / "events.csv"
        started = time.monotonic()
        bad = generate(path, args.rows, args.bad_every, args.leads)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({bad:,} bad), {size_mb:,.1f} MB in {time.monotonic() - started:.1f} s")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "manage.py", "import_events", str(path), "--source", "bench"],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if args.redis:
            subprocess.run([sys.executable, "-m", "celery", "-A", "config", "purge", "-f"], cwd=ROOT, env=env,
                           check=False, capture_output=True)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = next((line for line in result.stdout.splitlines() if line.startswith("Import ")), "")
        print(summary or result.stdout[-2000:] + result.stderr[-2000:])
        numbers = re.search(r"([\d,]+) rows in .*: ([\d,]+) accepted, ([\d,]+) duplicates, ([\d,]+) rejected", summary)
        exact = bool(numbers) and [int(n.replace(",", "")) for n in numbers.groups()] == [
            args.rows, args.rows - bad, 0, bad]
        print(f"queue={env['TARGETGRID_QUEUE']} database={'DATABASE_URL' if env.get('DATABASE_URL') else 'sqlite'}")
        scoring = "scoring enqueued to Celery" if args.redis else "incl. inline scoring"
        print(f"rows/s ({scoring}): {args.rows / elapsed:,.0f}   wall: {elapsed:,.1f} s")
        print(f"peak RSS of the import process: {peak_mb:,.0f} MB")
        print(f"exit code: {result.returncode} (1 expected: rows were rejected)   counters exact: {exact}")
        return 0 if exact and result.returncode == (1 if bad else 0) else 1


if __name__ == "__main__":
    sys.exit(main())
