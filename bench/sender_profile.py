"""Where the outbound sender's CPU goes: ``deliveries_send`` in this process against a fast local
receiver in another process (its CPU is not counted), on a database of your own.

    DATABASE_URL=mysql://root@127.0.0.1:3306/tg_bench_sender_profile \\
      .venv/bin/python bench/sender_profile.py --deliveries 2000 [--profile] [--port 19650]

Prints deliveries/s, CPU ms per delivery of this process (``time.process_time``: the sender's
threads included), SQL statements per delivery, and with ``--profile`` the top of a cProfile of the
run (cProfile sees the sending thread only: the HTTP threads' share shows as ``wait``).
The database is migrated and its webhook tables emptied; the name must start with ``tg_bench`` or
``tg_sender`` (it is overwritten).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deliveries", type=int, default=2000)
    p.add_argument("--endpoints", type=int, default=1)
    p.add_argument("--port", type=int, default=19650)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=35)
    args = p.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    name = url.rsplit("/", 1)[-1]
    if not (name.startswith("tg_bench") or name.startswith("tg_sender")):
        raise SystemExit("needs DATABASE_URL naming a database tg_bench* or tg_sender* (it is overwritten)")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.conf import settings
    from django.utils import timezone

    from config.bulk import dicts_insert
    from realtime import outbound
    from realtime.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint

    call_command("migrate", verbosity=0)
    DeliveryAttempt.objects.all().delete()
    WebhookDelivery.objects.all().delete()
    WebhookEndpoint.objects.all().delete()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(args.port)])
    try:
        time.sleep(0.5)
        endpoints = []
        for i in range(args.endpoints):
            endpoint = WebhookEndpoint(name=f"profile-{i}", url=f"http://127.0.0.1:{args.port}/hook/{i}")
            outbound.endpoint_save(endpoint=endpoint)
            endpoints.append(endpoint)
        now = timezone.now()
        body = '{"id":"x","type":"lead.stage_changed","timestamp":"2026-11-29T21:30:00Z","data":{"lead":{"id":"' \
               + "a" * 36 + '","stage":"MQL"},"from_stage":"Warm","to_stage":"MQL","direction":"up"}}'
        rows = [{
            "id": uuid.uuid4(), "endpoint_id": endpoints[i % len(endpoints)].pk, "alert_id": None,
            "msg_id": "msg_" + uuid.uuid4().hex, "kind": "lead.stage_changed", "body": body,
            "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now, "locked_until": None,
            "last_status_code": None, "last_error": "", "created_at": now, "delivered_at": None,
        } for i in range(args.deliveries)]
        for start in range(0, len(rows), 1000):
            dicts_insert(WebhookDelivery, rows[start:start + 1000])
        counted = [0]

        def count(execute, sql, params, many, context):
            counted[0] += 1
            return execute(sql, params, many, context)

        wrapper = connection.execute_wrapper(count)
        wrapper.__enter__()
        cpu, wall = time.process_time(), time.monotonic()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            sent = profiler.runcall(outbound.deliveries_send, max_seconds=600)
        else:
            sent = outbound.deliveries_send(max_seconds=600)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        wrapper.__exit__(None, None, None)
        queries = counted[0]
        done = WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()
        print(f"threads={settings.TARGETGRID_WEBHOOK_SENDER_THREADS} cap={settings.TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY}"
              f" endpoints={args.endpoints} db={connection.vendor}")
        print(f"sent {sent}, succeeded {done}/{args.deliveries} in {wall:.1f}s = {sent / wall:.0f}/s;"
              f" CPU {cpu * 1000 / max(sent, 1):.2f} ms per delivery; {queries / max(sent, 1):.2f} statements per delivery")
        if args.profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
