"""Celery tasks: thin, named, idempotent (they re-read state under the lock)."""

from django.conf import settings

from config.transport import task

from .rescoring import rescore_job_run, rescore_jobs_resume
from .services import events_drain_partition, events_process, events_requeue_pending, leads_decay_refresh


@task("scoring.process_events", reliable=True, batch_limit=lambda: settings.TARGETGRID_PROCESS_CHUNK)
def process_events(event_ids: list[str]) -> int:
    return events_process(event_ids=event_ids).processed


@task("scoring.drain_partition", reliable=True)
def drain_partition(partition: int) -> int:
    """A wake-up: score whatever is pending in the partition (the rows are the source of truth)."""
    return events_drain_partition(partition=partition)


@task("scoring.sweep_pending", acks_late=True)
def sweep_pending(older_than_seconds: int | None = None) -> int:
    return events_requeue_pending(older_than_seconds=older_than_seconds)


@task("scoring.rescore_run", reliable=True, long_running=True)
def rescore_run(job_id: int) -> None:
    rescore_job_run(job_id=job_id)


@task("scoring.rescore_resume", acks_late=True)
def rescore_resume(older_than_seconds: int = 60) -> int:
    return rescore_jobs_resume(older_than_seconds=older_than_seconds)


@task("scoring.decay_refresh", acks_late=True)
def decay_refresh() -> int:
    return leads_decay_refresh()
