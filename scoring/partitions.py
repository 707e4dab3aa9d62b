"""Scoring partitions: a lead's events always go to the same partition (its id modulo
``TARGETGRID_PARTITIONS``), and at most one drain task runs per partition, so two Celery workers
never wait on each other's lead locks and a burst of requests becomes a few large transactions.

Coordination lives in Redis (Celery mode only); the Event rows stay the source of truth:

* ``dirty:<p>``  set by every commit that stored events of the partition;
* ``queued:<p>`` set (NX) when a wake-up message is published and kept while that drain runs, so
  at most one wake-up per partition is queued or running however many requests arrive;
* ``lock:<p>``   the running drain's lease (token, ``TARGETGRID_DRAIN_LEASE_SECONDS``, seconds
  long), renewed by a thread while the drain works; a second drain returns at once and the holder,
  seeing ``dirty``, drains again.

Correctness never depends on the lease. It only keeps two workers from queueing on the same lead
locks: scoring locks its leads with ``SELECT … FOR UPDATE`` and re-reads their events as *pending*
under that lock (scoring.services), so two drains of one partition (a lease that lapsed under a
stalled holder) score every event once and wait for each other at worst. Hence leases can be
short: a SIGKILLed worker's partitions are free again after one lease, not minutes. A drain whose
lease was lost (its renewal found the key gone) stops after its current transaction.

A drain ends — in ``finally``, also when it raised — with: mark ``dirty`` if work may be left (it
stopped at its deadline, lost its lease, or raised), release its leases, clear ``queued``, re-check
``dirty`` (and, unless it raised, wake those partitions: a drain stopped by its deadline hands
over). A request committing at any point of that sequence is either seen by the re-check or
publishes a wake-up of its own that finds the lease free. A drain that raised publishes nothing
itself (its task's retry with back-off, the next request or the sweep wakes the partition), so a
database outage does not turn into a loop of wake-ups.

Nothing depends on a single wake-up arriving: the periodic sweep (``scoring.sweep_pending``,
every ``TARGETGRID_SWEEP_SECONDS``) wakes every partition whose oldest pending event is older
than ``TARGETGRID_SWEEP_AFTER_SECONDS``, whatever the flags say (a lost message, a killed worker,
a Redis outage).

Group commit: a drain whose own partition has only a few pending events also locks the other dirty
partitions that nobody is draining (:meth:`Drain.claim_dirty_others`) and scores them in the same
transaction. Under a stream of single-event requests each partition holds one or two events at a
time; without this every one of them paid a whole transaction, Redis handshake and broadcast of
its own. The extra partitions get the same end-of-drain sequence as the drain's own, so a wake-up
consumed meanwhile by another worker (which found the lock taken and returned) is never lost.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)

QUEUED_SECONDS = 300  # a wake-up flag nobody clears (a killed worker) expires after this
# A lease is renewed every third of its length; a renewer stops renewing after the drain's own
# deadline plus this margin (a transaction hung that long lets its partitions go to another worker).
RENEW_MARGIN_SECONDS = 60
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


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


def lease_ms() -> int:
    return max(100, int(float(settings.TARGETGRID_DRAIN_LEASE_SECONDS) * 1000))


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
    if partitions:
        client().delete(*(_key("queued", partition) for partition in partitions))


def mark_dirty(*partitions: int) -> None:
    """Note that the partitions may have work left (a drain handing over or giving up)."""
    if partitions:
        client().mset({_key("dirty", partition): 1 for partition in partitions})


def take_dirty(*partitions: int) -> None:
    """Clear the dirty flags (the caller is about to look at the rows)."""
    if partitions:
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
    """The partitions one drain task holds, under one token; its own partition first.

    :meth:`start_renewing` runs a thread that extends every held lease each third of its length;
    :meth:`release` (always in ``finally``) stops it and releases the leases still ours. ``lost`` is
    set when a renewal found a lease gone (it lapsed, maybe another drain holds it now): the drain
    stops after its current transaction.
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.partitions: list[int] = []
        self.lost = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def held(self) -> list[int]:
        with self._guard:
            return list(self.partitions)

    def acquire(self, partitions) -> list[int]:
        held = self.held()
        parts = [p for p in partitions if p not in held]
        if not parts:
            return []
        pipe = client().pipeline(transaction=False)
        for partition in parts:
            pipe.set(_key("lock", partition), self.token, nx=True, px=lease_ms())
        won = [partition for partition, ok in zip(parts, pipe.execute()) if ok]
        with self._guard:
            self.partitions.extend(won)
        return won

    def claim_dirty_others(self) -> list[int]:
        """Lock the other partitions that have work and no drain running (group commit)."""
        held = self.held()
        others = [p for p in range(settings.TARGETGRID_PARTITIONS) if p not in held]
        return self.acquire(dirty_among(others))

    def renew(self) -> bool:
        """Extend every held lease; False (and ``lost``) if one of them is no longer ours."""
        held = self.held()
        if not held:
            return True
        pipe = client().pipeline(transaction=False)
        for partition in held:
            pipe.eval(_RENEW, 1, _key("lock", partition), self.token, lease_ms())
        gone = [partition for partition, ok in zip(held, pipe.execute()) if not ok]
        if gone:
            self.lost = True
            logger.warning("drain %s lost its lease on partitions %s; it stops after this transaction",
                           self.token, gone)
        return not gone

    def start_renewing(self, *, max_seconds: float) -> None:
        self._renewer = threading.Thread(
            target=self._renew_until_stopped, args=(max_seconds,), name=f"lease-renewer-{self.token}", daemon=True
        )
        self._renewer.start()

    def _renew_until_stopped(self, max_seconds: float) -> None:
        interval = lease_ms() / 3000
        until = time.monotonic() + max_seconds
        while not self._stop.wait(interval):
            if time.monotonic() > until:
                logger.warning("drain %s ran past %.0f s; its leases are left to lapse", self.token, max_seconds)
                self.lost = True
                return
            try:
                if not self.renew():
                    return
            except Exception:  # Redis unreachable for a moment: try again; the lease may lapse meanwhile
                logger.warning("drain %s could not renew its leases", self.token, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=10)
        held = self.held()
        if not held:
            return
        pipe = client().pipeline(transaction=False)
        for partition in held:
            pipe.eval(_RELEASE, 1, _key("lock", partition), self.token)
        pipe.execute()

