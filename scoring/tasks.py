"""Celery tasks: thin, named, idempotent (they re-read state under the lock)."""

from celery import shared_task
from django.db import OperationalError

from .services import events_drain_partition, events_process, events_requeue_pending


@shared_task(
    name="scoring.process_events",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def process_events(event_ids: list[str]) -> int:
    return events_process(event_ids=event_ids).processed


@shared_task(
    name="scoring.drain_partition",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def drain_partition(partition: int) -> int:
    """A wake-up: score whatever is pending in the partition (the rows are the source of truth)."""
    return events_drain_partition(partition=partition)


@shared_task(name="scoring.sweep_pending", ignore_result=True, acks_late=True)
def sweep_pending() -> int:
    return events_requeue_pending()
