import os
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from events.imports import SNIFF_BYTES, ImportFileError, import_format_detect, import_job_create, import_job_run
from events.models import ImportFormat, ImportJob, ImportRowError, ImportStatus


class ProgressBar:
    """One terminal line: bar, percent, rows, rows/s, ETA (from bytes read vs the file size)."""

    WIDTH = 30

    def __init__(self, stream, *, interactive: bool):
        self.stream = stream
        self.interactive = interactive
        self.started = time.monotonic()
        self.start_rows = None
        self.last_draw = 0.0

    def __call__(self, job: ImportJob) -> None:
        now = time.monotonic()
        if self.start_rows is None:
            self.start_rows = job.processed  # a resumed job: rate over this run only
        interval = 0.2 if self.interactive else 5.0
        if now - self.last_draw < interval:
            return
        self.last_draw = now
        self.stream.write(self.line(job, now) + ("\r" if self.interactive else "\n"))
        self.stream.flush()

    def line(self, job: ImportJob, now: float) -> str:
        fraction = min(1.0, job.resume_offset / job.file_size) if job.file_size else 1.0
        elapsed = max(now - self.started, 1e-6)
        rate = (job.processed - (self.start_rows or 0)) / elapsed
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0
        filled = int(self.WIDTH * fraction)
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction * 100:5.1f}%  {job.processed:,} rows  "
                f"{rate:,.0f} rows/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}  "
                f"(accepted {job.accepted:,}, duplicates {job.duplicates:,}, rejected {job.rejected:,})")

    def done(self, job: ImportJob) -> None:
        self.last_draw = 0.0
        self.stream.write(self.line(job, time.monotonic()) + "\n")
        self.stream.flush()


class Command(BaseCommand):
    help = ("Import events from a CSV, JSON-array or NDJSON file through the same code path as uploads "
            "(streamed in chunks, resumable). Exits non-zero if any row was rejected.")

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="The file to import.")
        parser.add_argument("--format", choices=ImportFormat.values, help="Default: from the extension and content.")
        parser.add_argument("--source", default="import", help="Stored as the events' source (default: import).")
        parser.add_argument("--resume", type=int, metavar="JOB_ID", help="Resume an interrupted import job.")
        parser.add_argument("--errors", type=int, default=10, help="How many row errors to print (default 10).")

    def handle(self, *args, file=None, format=None, source="import", resume=None, errors=10, **options):
        if resume is not None:
            job = ImportJob.objects.filter(pk=resume).first()
            if job is None:
                raise CommandError(f"no import job {resume}")
            if job.done:
                raise CommandError(f"import {resume} is already {job.status}")
        else:
            if not file:
                raise CommandError("give a FILE to import (or --resume JOB_ID)")
            path = os.path.abspath(file)
            if not os.path.isfile(path):
                raise CommandError(f"{file}: no such file")
            if len(source) > 32:
                raise CommandError("--source is at most 32 characters")
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
            try:
                fmt = import_format_detect(head=head, name=path, declared=format or "")
            except ImportFileError as exc:
                raise CommandError(f"{file}: {exc.message}") from None
            job = import_job_create(file_path=path, fmt=fmt, source=source, original_name=os.path.basename(path),
                                    created_by="manage.py import_events", delete_file_when_done=False)

        bar = ProgressBar(self.stderr, interactive=sys.stderr.isatty())
        started = time.monotonic()
        job = import_job_run(job_id=job.pk, on_progress=bar)
        bar.done(job)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Import {job.pk} {job.status}: {job.processed:,} rows in {elapsed:.1f} s "
            f"({job.processed / max(elapsed, 1e-6):,.0f} rows/s): {job.accepted:,} accepted, "
            f"{job.duplicates:,} duplicates, {job.rejected:,} rejected."
        )
        if job.rejected:
            for error in ImportRowError.objects.filter(job=job).order_by("row", "id")[:errors]:
                self.stdout.write(f"  row {error.row} [{error.event_id or '-'}] {error.field}: {error.message}")
            self.stdout.write(f"  Full report: GET /api/imports/{job.pk}/errors.csv")
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"import {job.pk} failed: {job.error}", returncode=2)
        if job.status != ImportStatus.COMPLETED:
            raise CommandError(f"import {job.pk} is {job.status} (another process is running it)", returncode=2)
        if job.rejected:
            raise CommandError(f"{job.rejected:,} row(s) rejected", returncode=1)
