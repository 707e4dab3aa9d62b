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
"""

from __future__ import annotations

import secrets
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
    """Mark partitions dirty; return those that had no wake-up queued (the caller publishes one)."""
    parts = sorted(set(partitions))
    pipe = client().pipeline(transaction=False)
    for partition in parts:
        pipe.set(_key("dirty", partition), 1)
        pipe.set(_key("queued", partition), 1, nx=True, ex=QUEUED_SECONDS)
    replies = pipe.execute()
    return [partition for partition, claimed in zip(parts, replies[1::2]) if claimed]


def unqueue(partition: int) -> None:
    client().delete(_key("queued", partition))


def take_dirty(partition: int) -> bool:
    """Clear the dirty flag; True if it was set (new events may have arrived)."""
    return bool(client().delete(_key("dirty", partition)))


def is_dirty(partition: int) -> bool:
    return bool(client().exists(_key("dirty", partition)))


@contextmanager
def drain_lock(partition: int):
    token = secrets.token_hex(8)
    conn = client()
    acquired = bool(conn.set(_key("lock", partition), token, nx=True, px=LOCK_MS))
    try:
        yield acquired
    finally:
        if acquired:
            conn.eval(_RELEASE, 1, _key("lock", partition), token)
