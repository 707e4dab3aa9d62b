"""Celery tasks: thin, named, idempotent (they re-read state under the lock)."""

from django.conf import settings

from config.transport import task

from .services import events_drain_partition, events_process, events_requeue_pending


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
