"""Celery tasks: thin, named, idempotent (they re-read state under the lock)."""

from celery import shared_task

from config.celery import reliable_task

from .services import events_drain_partition, events_process, events_requeue_pending


@reliable_task("scoring.process_events")
def process_events(event_ids: list[str]) -> int:
    return events_process(event_ids=event_ids).processed


@reliable_task("scoring.drain_partition")
def drain_partition(partition: int) -> int:
    """A wake-up: score whatever is pending in the partition (the rows are the source of truth)."""
    return events_drain_partition(partition=partition)


@shared_task(name="scoring.sweep_pending", ignore_result=True, acks_late=True)
def sweep_pending() -> int:
    return events_requeue_pending()
