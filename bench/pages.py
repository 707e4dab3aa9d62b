"""Server render time of the operator pages (Django test client, in process: middleware, queries,
templates; no network, no browser). Prints median and p95 milliseconds per page.

    # 100,000 leads on the embedded SQLite database in var/bench-pages (created if missing):
    python bench/pages.py --leads 100000 --events 20000
    # the same against MariaDB/MySQL:
    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_bench python bench/pages.py --leads 100000

It seeds with ``manage.py seed_demo`` until the database holds --leads leads. Timings are for
reading, not for asserting (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000, help="events seeded with the leads (first run only)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-pages"))
    args = parser.parse_args()

    os.environ.setdefault("TARGETGRID_DATA_DIR", args.data_dir)
    os.environ.setdefault("TARGETGRID_QUEUE", "inline")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from leads.models import Lead

    call_command("migrate", verbosity=0)
    have = Lead.objects.count()
    if have < args.leads:
        print(f"seeding {args.leads - have} leads and {args.events if not have else 0} events ...", flush=True)
        call_command("seed_demo", leads=args.leads - have, events=0 if have else args.events, seed=1)
    settings.ALLOWED_HOSTS = ["*"]
    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-pw-123456"
    )
    client = Client()
    client.force_login(user)
    lead = Lead.objects.order_by("-current_score").first()
    total = Lead.objects.count()
    pages = [
        ("leads (default: score desc)", "/leads/"),
        ("leads search 'acme'", "/leads/?q=acme"),
        ("leads search + range + sort company", "/leads/?q=initech&min_score=5&max_score=800&o=company"),
        ("leads sort email desc", "/leads/?o=-email"),
        ("leads deep page (1000)", "/leads/?page=1000"),
        ("dashboard", "/"),
        ("leaderboard top 100", "/leaderboard/?n=100"),
        ("events", "/events/"),
        ("events filtered", "/events/?type=PAGE_VIEW&status=processed&range=24h"),
        ("lead detail (top lead)", f"/leads/{lead.id}/"),
        ("rules", "/rules/"),
    ]
    print(f"{connection.vendor}, {total} leads; {args.repeat} renders per page (after one warm-up)\n")
    print(f"{'page':40} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    for name, url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        timings = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))]
        print(f"{name:40} {statistics.median(timings):10.1f} {p95:8.1f} {len(queries):8d}")
    started = time.perf_counter()
    response = client.get("/leads/export.csv")
    size = sum(len(chunk) for chunk in response.streaming_content)
    print(f"\nCSV export of all {total} leads (streamed): {(time.perf_counter() - started) * 1000:.0f} ms, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
