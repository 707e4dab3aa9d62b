"""``manage.py rescore``: rescore every lead (or one) under the current rule-set version, in the
foreground, with a progress bar; or follow the background rescore already running to that version.
The work is scoring.rescoring's (the same job the background task runs, resumable)."""

import argparse
import time
import uuid

from django.core.management.base import BaseCommand, CommandError

from leads.selectors import lead_count
from scoring.models import RescoreStatus
from scoring.rescoring import RescoreRefused, rescore_job_ensure, rescore_job_payload, rescore_job_run
from scoring.rulesets import current_version_number
from scoring.selectors import rescore_job_get


class ProgressBar:
    """One terminal line: bar, percent, leads done/total, changed, leads/s (this run), ETA."""

    WIDTH = 30

    def __init__(self, stream, *, interactive: bool):
        self.stream = stream
        self.interactive = interactive
        self.started = time.monotonic()
        self.start_done = None
        self.last_draw = None

    def __call__(self, payload: dict) -> None:
        now = time.monotonic()
        if self.start_done is None:
            self.start_done = payload["done"]  # a resumed or followed job: the rate of this run only
        interval = 0.2 if self.interactive else 2.0
        if self.last_draw is not None and now - self.last_draw < interval:
            return
        self.last_draw = now
        self.stream.write(self.line(payload, now) + ("\r" if self.interactive else "\n"))
        self.stream.flush()

    def rate(self, payload: dict, now: float) -> float:
        return (payload["done"] - (self.start_done or 0)) / max(now - self.started, 1e-6)

    def line(self, payload: dict, now: float) -> str:
        total, done = payload["total"], payload["done"]
        fraction = min(1.0, done / total) if total else 1.0
        rate = self.rate(payload, now)
        eta = (total - done) / rate if rate > 0 and total > done else 0
        filled = int(self.WIDTH * fraction)
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction * 100:5.1f}%  "
                f"{done:,}/{total:,} leads  {payload['changed']:,} changed  {rate:,.0f} leads/s  "
                f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")

    def done(self, payload: dict) -> None:
        if self.start_done is None:
            self.start_done = payload["done"]
        self.stream.write(self.line(payload, time.monotonic()) + "\n")
        self.stream.flush()


class Command(BaseCommand):
    help = ("Rescore every lead (or --lead ID) from its stored events under the current rule-set version, "
            "with a progress bar. If a rescore to that version is already running, follow it (and take it "
            "over if it stopped moving). Exits 0 once it completed, 1 if it was superseded or failed.")

    def add_arguments(self, parser):
        parser.add_argument("--lead", metavar="ID", help="Rescore only this lead (its UUID).")
        # Not --version: Django's own option (it prints Django's version).
        parser.add_argument("--rules-version", type=int, metavar="N", dest="rules_version",
                            help="Refuse unless rules vN is the current version (a guard for scripts).")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="Do not ask for confirmation.")
        parser.add_argument("--stall-seconds", type=float, default=60.0,
                            help="Take over a followed job that has not moved for this long (default 60).")
        parser.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)

    def handle(self, *args, lead=None, rules_version=None, interactive=True, stall_seconds=60.0, poll=0.5, **options):
        lead_id = None
        if lead is not None:
            try:
                lead_id = uuid.UUID(lead)
            except ValueError:
                raise CommandError(f"--lead: {lead!r} is not a lead id (a UUID)") from None
        if interactive and lead_id is None:
            current = current_version_number()
            answer = input(f"Rescore all {lead_count():,} leads under rules v{current}? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("cancelled")
        try:
            job, created = rescore_job_ensure(actor="manage.py rescore", lead_id=lead_id, version=rules_version)
        except RescoreRefused as exc:
            raise CommandError(str(exc)) from None
        bar = ProgressBar(self.stdout, interactive=self.stdout.isatty())
        bar.start_done = job.done  # the rate of this run only (a followed job is already under way)
        what = f"lead {lead_id}" if lead_id else "every lead"
        try:
            if created:
                self.stdout.write(f"Rescoring {what} under rules v{job.version} (job {job.pk})")
                job = rescore_job_run(job_id=job.pk, on_progress=bar)
            else:
                self.stdout.write(f"A rescore to rules v{job.version} is already running (job {job.pk}); following it")
                job = self.follow(job, bar, stall_seconds=stall_seconds, poll=poll)
        except KeyboardInterrupt:
            raise CommandError(
                f"interrupted: job {job.pk} stops here and resumes from its last batch in the background "
                "(scoring.rescore_resume) or with `manage.py rescore`"
            ) from None
        payload = rescore_job_payload(job)
        bar.done(payload)
        if job.status == RescoreStatus.COMPLETED:
            self.stdout.write(self.style.SUCCESS(
                f"Rescored under rules v{job.version}: {job.done:,} leads, {job.changed:,} changed"
            ))
            return
        if job.status == RescoreStatus.SUPERSEDED:
            raise CommandError(
                f"the rescore to rules v{job.version} was superseded by a newer version, "
                f"whose rescore runs in the background (run `manage.py rescore` again to follow it)"
            )
        raise CommandError(f"the rescore to rules v{job.version} {job.status}: {job.error or 'see the log'}")

    def follow(self, job, bar, *, stall_seconds: float, poll: float):
        """Draw the progress of a job another process runs; run it here if it stops moving."""
        moved_at, last = time.monotonic(), None
        while True:
            job = rescore_job_get(job_id=job.pk)
            if job.finished:
                return job
            state = (job.status, job.done, job.updated_at)
            if state != last:
                moved_at, last = time.monotonic(), state
                bar(rescore_job_payload(job))
            elif time.monotonic() - moved_at > stall_seconds:
                self.stdout.write(f"\njob {job.pk} has not moved for {stall_seconds:g} s; running it here")
                return rescore_job_run(job_id=job.pk, on_progress=bar)
            time.sleep(poll)

