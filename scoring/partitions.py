"""Scoring partitions: a lead's events always go to the same partition (its id modulo
``TARGETGRID_PARTITIONS``), and at most one drain task runs per partition, so two Celery workers
never wait on each other's lead locks and a burst of requests becomes a few large transactions.

Coordination lives in Redis (Celery mode only); the Event rows stay the source of truth:

* ``dirty:<p>``  set by every commit that stored events of the partition;
* ``queued:<p>`` set (NX) when a wake-up message is published and kept while that drain runs, so
  at most one wake-up per partition is queued or running however many requests arrive;
* ``lock:<p>``   held by the running drain (token, expiry); a second drain returns at once and the
  holder, seeing ``dirty``, drains again.

A drain ends with: release ``lock``, clear ``queued``, re-check ``dirty`` (and wake if set). A
request committing at any point of that sequence is either seen by the re-check or publishes a
wake-up of its own that finds the lock free.

Group commit: a drain whose own partition has only a few pending events also locks the other dirty
partitions that nobody is draining (:meth:`Drain.claim_dirty_others`) and scores them in the same
transaction. Under a stream of single-event requests each partition holds one or two events at a
time; without this every one of them paid a whole transaction, Redis handshake and broadcast of
its own. The extra partitions get the same end-of-drain sequence as the drain's own, so a wake-up
consumed meanwhile by another worker (which found the lock taken and returned) is never lost.
"""

from __future__ import annotations

import secrets
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache

from django.conf import settings

QUEUED_SECONDS = 300  # a lost wake-up is re-sent by the sweep after this at the latest
LOCK_MS = 120_000
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def partition_of(lead_id) -> int:
    value = lead_id if isinstance(lead_id, uuid.UUID) else uuid.UUID(str(lead_id))
    return value.int % settings.TARGETGRID_PARTITIONS


@lru_cache(maxsize=1)
def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def client():
    return _client(settings.REDIS_URL)


def _key(kind: str, partition: int) -> str:
    return f"tg:scoring:{kind}:{partition}"


def mark_and_claim(partitions) -> list[int]:
    """Mark partitions dirty; return those that had no wake-up queued (the caller publishes one).
    The ``queued`` flag holds the time of the wake-up (for the drain's batch window)."""
    parts = sorted(set(partitions))
    now_ms = int(time.time() * 1000)
    pipe = client().pipeline(transaction=False)
    for partition in parts:
        pipe.set(_key("dirty", partition), 1)
        pipe.set(_key("queued", partition), now_ms, nx=True, ex=QUEUED_SECONDS)
    replies = pipe.execute()
    return [partition for partition, claimed in zip(parts, replies[1::2]) if claimed]


def wake_age_seconds(partition: int) -> float | None:
    """How long ago the partition's pending wake-up was published (None if unknown)."""
    value = client().get(_key("queued", partition))
    try:
        return max(0.0, time.time() - int(value) / 1000)
    except (TypeError, ValueError):
        return None


def unqueue(*partitions: int) -> None:
    client().delete(*(_key("queued", partition) for partition in partitions))


def take_dirty(*partitions: int) -> None:
    """Clear the dirty flags (the caller is about to look at the rows)."""
    client().delete(*(_key("dirty", partition) for partition in partitions))


def is_dirty(partition: int) -> bool:
    return bool(client().exists(_key("dirty", partition)))


def dirty_among(partitions) -> list[int]:
    parts = list(partitions)
    if not parts:
        return []
    pipe = client().pipeline(transaction=False)
    for partition in parts:
        pipe.exists(_key("dirty", partition))
    return [partition for partition, dirty in zip(parts, pipe.execute()) if dirty]


class Drain:
    """The partitions one drain task holds, under one token; its own partition first."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.partitions: list[int] = []

    def acquire(self, partitions) -> list[int]:
        parts = [p for p in partitions if p not in self.partitions]
        if not parts:
            return []
        pipe = client().pipeline(transaction=False)
        for partition in parts:
            pipe.set(_key("lock", partition), self.token, nx=True, px=LOCK_MS)
        won = [partition for partition, ok in zip(parts, pipe.execute()) if ok]
        self.partitions.extend(won)
        return won

    def claim_dirty_others(self) -> list[int]:
        """Lock the other partitions that have work and no drain running (group commit)."""
        others = [p for p in range(settings.TARGETGRID_PARTITIONS) if p not in self.partitions]
        return self.acquire(dirty_among(others))

    def release(self) -> None:
        if not self.partitions:
            return
        pipe = client().pipeline(transaction=False)
        for partition in self.partitions:
            pipe.eval(_RELEASE, 1, _key("lock", partition), self.token)
        pipe.execute()


@contextmanager
def drain_locks(partition: int):
    """Hold ``partition``'s drain lock (yields a :class:`Drain`), or yield None if it is taken."""
    drain = Drain()
    acquired = bool(drain.acquire([partition]))
    try:
        yield drain if acquired else None
    finally:
        drain.release()


@contextmanager
def drain_lock(partition: int):
    with drain_locks(partition) as drain:
        yield drain is not None
