"""How stored events reach a scorer: scoring's side of publishing (config/transport.py carries it).

Always after commit, never inside the transaction: a worker must never look for a row that is not
committed yet. The event rows are the source of truth; a lost wake-up is repaired by the sweep.

With a broker that several workers share, a commit publishes wake-ups, not ids: one
``scoring.drain_partition`` per partition that has none queued yet (the ``queued`` flag in Redis,
scoring/partitions.py); the task drains the partition's pending rows. The single in-process
consumer (the embedded worker, or inline) gets the ids themselves (``scoring.process_events``,
which the embedded worker merges into one transaction per burst).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction

from config import transport
from config.outage import OutageLog

from . import partitions as parts

logger = logging.getLogger(__name__)
_redis_outage = OutageLog(logger)


def chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def events_enqueue(*, event_ids: Sequence, partitions: Iterable[int] = ()) -> None:
    ids = [str(pk) for pk in event_ids]
    if not ids:
        return
    if transport.has_broker():
        wanted = sorted(set(partitions))
        if not wanted:  # a caller that does not know the partitions: wake them all
            wanted = list(range(settings.TARGETGRID_PARTITIONS))
        transaction.on_commit(lambda: partitions_wake(partitions=wanted))
    else:
        transaction.on_commit(lambda: events_send(event_ids=ids))


def partitions_wake(*, partitions: Iterable[int], force: bool = False) -> None:
    """Publish a drain wake-up for each partition that has none queued (or for all, with force)."""
    wanted = sorted(set(partitions))
    try:
        to_send = wanted if force else parts.mark_and_claim(wanted)
        if force:
            parts.mark_and_claim(wanted)
    except Exception:  # Redis is down: the rows stay pending and the sweep retries
        _redis_outage.warning("could not wake partitions %s; the sweep will retry", wanted, exc=sys.exc_info()[1])
        return
    for partition in to_send:
        if not transport.publish("scoring.drain_partition", partition):
            break  # the broker is down (logged): the sweep wakes every stale partition


def events_send(*, event_ids: Sequence[str]) -> None:
    """Send ids to the scorer now (callers outside a transaction)."""
    for chunk in chunks(list(event_ids), settings.TARGETGRID_PROCESS_CHUNK):
        transport.publish("scoring.process_events", chunk)
