"""Hands stored events to whatever scores them: Celery, the embedded worker, or inline.

Always after commit, never inside the transaction: a worker must never look for a row that is not
committed yet. The event rows are the source of truth; a lost wake-up is repaired by the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def events_enqueue(*, event_ids: Sequence) -> None:
    ids = [str(pk) for pk in event_ids]
    if ids:
        transaction.on_commit(lambda: events_send(event_ids=ids))


def events_send(*, event_ids: Sequence[str]) -> None:
    """Send ids to the configured queue now (callers outside a transaction, e.g. the sweep)."""
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
