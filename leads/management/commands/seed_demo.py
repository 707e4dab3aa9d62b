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
from scoring.models import FitRule, ScoringRule
from scoring.rescoring import NothingToPublish, ruleset_publish
from scoring.services import leads_fit_refresh

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
TITLES = ["VP Marketing", "Head of Growth", "Marketing Manager", "Software Engineer", "Director of Sales",
          "Student", "CTO", "Sales Development Rep", "Founder", ""]
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com"]
PAGES = ["/", "/blog/lead-scoring", "/pricing", "/docs/api", "/pricing/enterprise", "/careers"]
CAMPAIGNS = ["spring-launch", "webinar-q3", "newsletter", ""]
# Demo rules (--with-rules): a conditional rule, a cap, a negative rule and fit rules.
DEMO_RULES = [
    {"name": "Pricing page", "event_type": "PAGE_VIEW", "points": 15, "priority": 10,
     "conditions": [{"field": "metadata.url", "op": "contains", "value": "/pricing"}]},
    {"name": "Unsubscribe", "event_type": "UNSUBSCRIBE", "points": -50},
]
DEMO_FIT_RULES = [
    {"name": "Company given", "points": 20, "conditions": [{"field": "company", "op": "exists", "value": True}]},
    {"name": "Business e-mail", "points": 40, "conditions": [{"field": "free_mail", "op": "equals", "value": False}]},
    {"name": "Senior title", "points": 30, "conditions": [
        {"field": "job_title", "op": "regex", "value": r"\b(vp|head|director|cto|founder)\b", "ignore_case": True}]},
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
            "--with-rules",
            action="store_true",
            help="Add demo rules to the draft (pricing-page rule, PAGE_VIEW capped at 10 a day, UNSUBSCRIBE -50, "
            "fit rules) unless they exist, and publish it.",
        )
        parser.add_argument(
            "--keep-received-time",
            action="store_true",
            help="Keep received_at = now; by default it is set to the event time so the charts have history.",
        )

    def handle(self, *args, leads: int, events: int, hours: int, seed, keep_received_time: bool,
               with_rules: bool = False, **options):
        if leads < 0 or events < 0 or hours < 1:
            raise CommandError("--leads and --events must be >= 0, --hours >= 1")
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:6]
        started = time.monotonic()
        if with_rules:
            self._demo_rules()
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

    def _demo_rules(self) -> None:
        for rule in DEMO_RULES:
            if not ScoringRule.objects.filter(event_type=rule["event_type"], name=rule["name"]).exists():
                ScoringRule(**rule).save()
        ScoringRule.objects.filter(event_type="PAGE_VIEW", name="", cap_count__isnull=True).update(
            cap_count=10, cap_window_seconds=86_400
        )
        for rule in DEMO_FIT_RULES:
            if not FitRule.objects.filter(name=rule["name"]).exists():
                FitRule(**rule).save()
        try:
            version = ruleset_publish(actor="seed_demo", note="demo rules")
            self.stdout.write(f"published the demo rules as v{version.number}")
        except NothingToPublish:
            pass

    def _create_leads(self, count: int, rng: random.Random, run: str) -> list:
        ids = []
        for start in range(0, count, 5000):
            batch = []
            for index in range(start, min(count, start + 5000)):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                company = rng.choice(COMPANIES)
                domain = company.lower().replace(" ", "") + ".example"
                local = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
                if rng.random() < 0.25:
                    domain = rng.choice(FREE_MAIL)
                batch.append(
                    Lead(
                        id=uuid.uuid4(),
                        email=f"{local}.{run}{index}@{domain}",
                        first_name=first,
                        last_name=last,
                        company=company,
                        phone=f"+1 555 {rng.randint(1000000, 9999999)}",
                        job_title=rng.choice(TITLES),
                    )
                )
            Lead.objects.bulk_create(batch, batch_size=1000)
            for part in range(0, len(batch), 500):  # bulk inserts skip the profile notification
                leads_fit_refresh(lead_ids=[lead.id for lead in batch[part : part + 500]])
            ids.extend(lead.id for lead in batch)
            self.stderr.write(f"  leads: {len(ids)}/{count}", ending="\r")
        if count:
            self.stderr.write("")
        return ids

    def _ingest_events(self, count, lead_ids, rng, run, hours, *, backdate: bool) -> None:
        types = sorted(set(ScoringRule.objects.filter(enabled=True).values_list("event_type", flat=True)))
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
                        "metadata": {"seed": "demo", "url": rng.choice(PAGES), "campaign": rng.choice(CAMPAIGNS)},
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
