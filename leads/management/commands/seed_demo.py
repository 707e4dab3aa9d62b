"""Demo data: leads (bulk insert) and events that go through the real ingest and scoring services."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from django.utils import timezone

from events.models import Event
from events.services import event_ingest
from leads.models import Lead
from scoring.models import ScoringRule

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Tim", "Katherine", "John", "Hedy", "Donald", "Sophie", "Niklaus", "Anita", "Guido",
]
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
    "Dijkstra", "Perlman", "Berners-Lee", "Johnson", "McCarthy", "Lamarr", "Knuth", "Wilson", "Wirth",
    "Borg", "van Rossum",
]
COMPANIES = [
    "Acme Corp", "Globex", "Initech", "Umbrella Analytics", "Stark Industries", "Wayne Enterprises",
    "Hooli", "Pied Piper", "Vandelay Imports", "Soylent", "Tyrell Systems", "Cyberdyne", "Wonka Labs",
    "Aperture Science", "Massive Dynamic", "Oscorp", "Dunder Mifflin", "Prestige Worldwide",
]
# How often each default event type happens (other enabled types get weight 1).
TYPE_WEIGHTS = {"PAGE_VIEW": 60, "EMAIL_OPEN": 25, "FORM_SUBMIT": 10, "DEMO_REQUEST": 4, "PURCHASE": 1}
CHUNK = 1000


class Command(BaseCommand):
    help = (
        "Create demo leads (bulk insert) and events spread over the last hours; the events go through "
        "event_ingest and are scored by the configured queue (inline when no worker runs)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=200, help="Leads to create (default 200).")
        parser.add_argument("--events", type=int, default=2000, help="Events to ingest (default 2000).")
        parser.add_argument("--hours", type=int, default=24, help="Spread event times over this many hours.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed (repeatable data).")
        parser.add_argument(
            "--keep-received-time",
            action="store_true",
            help="Keep received_at = now; by default it is set to the event time so the charts have history.",
        )

    def handle(self, *args, leads: int, events: int, hours: int, seed, keep_received_time: bool, **options):
        if leads < 0 or events < 0 or hours < 1:
            raise CommandError("--leads and --events must be >= 0, --hours >= 1")
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:6]
        started = time.monotonic()
        lead_ids = self._create_leads(leads, rng, run)
        if events:
            if not lead_ids:
                lead_ids = list(Lead.objects.values_list("id", flat=True)[:10_000])
            if not lead_ids:
                raise CommandError("no leads to attach events to: pass --leads N")
            self._ingest_events(events, lead_ids, rng, run, hours, backdate=not keep_received_time)
        self.stdout.write(
            self.style.SUCCESS(f"seeded {len(lead_ids) if leads else 0} leads and {events} events "
                               f"in {time.monotonic() - started:.1f}s")
        )

    def _create_leads(self, count: int, rng: random.Random, run: str) -> list:
        ids = []
        for start in range(0, count, 5000):
            batch = []
            for index in range(start, min(count, start + 5000)):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                company = rng.choice(COMPANIES)
                domain = company.lower().replace(" ", "") + ".example"
                local = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
                batch.append(
                    Lead(
                        id=uuid.uuid4(),
                        email=f"{local}.{run}{index}@{domain}",
                        first_name=first,
                        last_name=last,
                        company=company,
                        phone=f"+1 555 {rng.randint(1000000, 9999999)}",
                    )
                )
            Lead.objects.bulk_create(batch, batch_size=1000)
            ids.extend(lead.id for lead in batch)
            self.stderr.write(f"  leads: {len(ids)}/{count}", ending="\r")
        if count:
            self.stderr.write("")
        return ids

    def _ingest_events(self, count, lead_ids, rng, run, hours, *, backdate: bool) -> None:
        types = list(ScoringRule.objects.filter(enabled=True).values_list("event_type", flat=True))
        if not types:
            raise CommandError("no enabled scoring rules: add one in the admin first")
        weights = [TYPE_WEIGHTS.get(t, 1) for t in types]
        now = timezone.now()
        span = hours * 3600
        # Event times in order (the fast path of the fold); a few leads get most of the activity.
        offsets = sorted(rng.uniform(0, span) for _ in range(count))
        done = 0
        for start in range(0, count, CHUNK):
            items = []
            for index in range(start, min(count, start + CHUNK)):
                lead_id = lead_ids[int(len(lead_ids) * rng.random() ** 3)]
                timestamp = now - timedelta(seconds=span - offsets[index])
                items.append(
                    {
                        "event_id": f"demo-{run}-{index}",
                        "event_type": rng.choices(types, weights)[0],
                        "timestamp": timestamp.isoformat(),
                        "lead_id": str(lead_id),
                        "metadata": {"seed": "demo"},
                    }
                )
            result = event_ingest(items=items, source="demo")
            rejected = [item for item in result.items if item.status == "rejected"]
            if rejected:
                raise CommandError(f"event {rejected[0].event_id} was rejected: {rejected[0].errors}")
            if backdate:
                Event.objects.filter(event_id__in=[item["event_id"] for item in items]).update(
                    received_at=F("timestamp")
                )
            done += len(items)
            self.stderr.write(f"  events: {done}/{count}", ending="\r")
        self.stderr.write("")
