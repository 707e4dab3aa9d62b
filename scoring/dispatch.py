"""Hands stored events to whatever scores them: Celery, the embedded worker, or inline.

Always after commit, never inside the transaction: a worker must never look for a row that is not
committed yet. The event rows are the source of truth; a lost wake-up is repaired by the sweep.

Celery mode sends wake-ups, not ids: one ``scoring.drain_partition`` message per partition that
has none queued yet (scoring/partitions.py); the task drains the partition's pending rows. The
embedded worker and inline mode get the ids themselves (one consumer, in process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def events_enqueue(*, event_ids: Sequence, partitions: Iterable[int] = ()) -> None:
    ids = [str(pk) for pk in event_ids]
    if not ids:
        return
    if settings.TARGETGRID_QUEUE == "celery":
        parts = sorted(set(partitions))
        if not parts:  # a caller that does not know the partitions: wake them all
            parts = list(range(settings.TARGETGRID_PARTITIONS))
        transaction.on_commit(lambda: partitions_wake(partitions=parts))
    else:
        transaction.on_commit(lambda: events_send(event_ids=ids))


def partitions_wake(*, partitions: Iterable[int], force: bool = False) -> None:
    """Publish a drain wake-up for each partition that has none queued (or for all, with force)."""
    from . import partitions as parts
    from .tasks import drain_partition

    wanted = sorted(set(partitions))
    try:
        to_send = wanted if force else parts.mark_and_claim(wanted)
        if force:
            parts.mark_and_claim(wanted)
        for partition in to_send:
            drain_partition.apply_async(args=[partition])
    except Exception:  # the broker is down: the rows stay pending and the sweep retries
        logger.warning("could not wake partitions %s; the sweep will retry", wanted, exc_info=True)


def events_send(*, event_ids: Sequence[str]) -> None:
    """Send ids to the configured queue now (callers outside a transaction)."""
    mode = settings.TARGETGRID_QUEUE
    for chunk in chunks(list(event_ids), settings.TARGETGRID_PROCESS_CHUNK):
        if mode == "celery":
            from .tasks import process_events

            try:
                process_events.apply_async(args=[chunk])
            except Exception:  # the broker is down: the rows stay pending and the sweep retries
                logger.warning("could not enqueue %d events; the sweep will retry", len(chunk), exc_info=True)
        elif mode == "embedded":
            from .embedded import worker

            if not worker.submit(chunk):
                _process_inline(chunk)
        else:
            _process_inline(chunk)


def _process_inline(event_ids: list[str]) -> None:
    from .services import events_process

    events_process(event_ids=event_ids)
