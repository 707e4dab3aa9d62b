"""The one place where scores change.

:func:`events_process` scores any number of pending events for any number of leads in one
transaction: it locks the leads (pk order), folds each lead's new events into its timeline with the
pure engine, writes the ScoreChange rows and the leads in bulk, and broadcasts after commit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone

from config import transport
from config.bulk import dicts_insert, rows_update
from config.retry import is_transient, run_with_retries
from events.models import Event, EventStatus
from leads.models import Lead
from leads.services import leads_lock

from . import engine, partitions
from .models import ScoreChange
from .partitions import partition_of
from .selectors import pending_oldest_by_partition, rule_points_by_type
from .wakeups import events_enqueue, events_send, partitions_wake

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessResult:
    processed: int
    skipped: int
    changes: list[dict]
    failed: int = 0

    def __add__(self, other: ProcessResult) -> ProcessResult:
        return ProcessResult(
            self.processed + other.processed,
            self.skipped + other.skipped,
            self.changes + other.changes,
            self.failed + other.failed,
        )


def events_process(*, event_ids: Sequence, lead_ids: Sequence | None = None) -> ProcessResult:
    """Score the given events (those still pending); safe to call twice with the same ids.

    ``lead_ids``: the events' leads, when the caller has just read them (a drain) — saves a query.
    A stale hint is harmless: events are re-read under the locks, only for the locked leads; one
    whose lead changed meanwhile stays pending and is woken again by whoever moved it.

    One bad event never blocks the others: when the transaction fails with anything but a
    transient database error (``config.retry.is_transient``: connection lost, deadlock, lock wait
    timeout — those propagate, so the task is retried as a whole), the batch is split — per lead,
    then per event of the failing lead, each part in its own transaction and in fold order — and
    the culprit alone gets status ``failed`` with its reason (:func:`events_retry` sends it back).
    Its lead's later events fold without it; a retried event folds in as a late event.
    """
    ids = [pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk)) for pk in event_ids]
    try:
        return _process_batch(ids, lead_ids)
    except Exception as exc:
        if is_transient(exc):
            raise
        logger.warning(
            "scoring %d events failed (%s: %s); splitting the batch to isolate the culprit",
            len(ids), type(exc).__name__, exc,
        )
        first_error = exc
    pending = _pending_in_fold_order(ids)
    # The same events as the failed transaction: its error stands for them (no second attempt of
    # the whole); otherwise some moved on meanwhile and the rest is tried again before any blame.
    same = {pk for pk, _, _ in pending} == set(ids)
    return _process_split(pending, first_error=first_error if same else None)


def _process_batch(ids: list[uuid.UUID], lead_ids=None) -> ProcessResult:
    """One transaction (retried as a whole when chosen as a deadlock victim)."""
    result = ProcessResult(0, 0, [])
    for attempt in run_with_retries():
        with attempt, transaction.atomic():
            result = _process_locked(ids, lead_ids)
            if result.changes:
                transport.notify_on_commit("score.changes", result.changes)
    return result


def _pending_in_fold_order(ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """``(pk, lead id, event_id)`` of the still pending events, per lead in the engine's order."""
    rows = Event.objects.filter(pk__in=ids, status=EventStatus.PENDING).values_list(
        "id", "lead_id", "timestamp", "event_id"
    )
    return [(pk, lead_id, event_id) for pk, lead_id, _, event_id in sorted(rows, key=lambda r: (r[1], r[2], r[3]))]


def _halves(part: list[tuple]) -> list[list[tuple]]:
    """Split at a lead boundary while the part spans several leads, else between events."""
    leads = list(dict.fromkeys(lead_id for _, lead_id, _ in part))
    if len(leads) > 1:
        left = set(leads[: len(leads) // 2])
        return [[e for e in part if e[1] in left], [e for e in part if e[1] not in left]]
    middle = len(part) // 2
    return [part[:middle], part[middle:]]


def _process_split(events: list[tuple], *, first_error: Exception | None) -> ProcessResult:
    """Score a batch that failed as a whole, a part per transaction, halving the failing parts
    (down to single leads, then single events): one culprit among n events costs about 2·log2(n)
    transactions, every other event is scored, and each culprit is marked ``failed``."""
    total = ProcessResult(0, 0, [])

    def run(part: list[tuple], error: Exception | None) -> None:
        nonlocal total
        if error is None:
            try:
                total += _process_batch([pk for pk, _, _ in part], {lead_id for _, lead_id, _ in part})
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                error = exc
        if len(part) == 1:
            pk, lead_id, event_id = part[0]
            total += ProcessResult(0, 0, [], failed=_event_fail(pk=pk, lead_id=lead_id, event_id=event_id, error=error))
            return
        for half in _halves(part):
            run(half, None)

    if events:
        run(events, first_error)
    return total


def _failure_reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    # Storable anywhere: no lone surrogates (MySQL refuses them), no NUL (PostgreSQL refuses it).
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:1000]


def _event_fail(*, pk: uuid.UUID, lead_id: uuid.UUID, event_id: str, error: BaseException) -> int:
    """Mark one pending event ``failed`` with its reason, in a transaction of its own (under its lead's
    lock, as scoring would). Returns 1 if it was still pending."""
    now = timezone.now()
    reason = _failure_reason(error)
    marked = 0
    for text in (reason, f"{type(error).__name__} (the reason could not be stored; see the log)"):
        try:
            for attempt in run_with_retries():
                with attempt, transaction.atomic():
                    leads_lock(lead_ids=[lead_id])
                    marked = Event.objects.filter(pk=pk, status=EventStatus.PENDING).update(
                        status=EventStatus.FAILED, error=text, processed_at=now
                    )
            break
        except Exception as exc:
            if is_transient(exc) or text is not reason:
                raise
    logger.error(
        "event %r (id %s, lead %s) failed scoring and is marked failed: %s", event_id, pk, lead_id, reason,
        exc_info=(type(error), error, error.__traceback__),
    )
    return marked


def _change_frame(lead, *, previous: int, new: int, event_id, event_type: str, timestamp, reason: str, late=False) -> dict:
    """The ``score.changed`` payload of one score change (realtime.broadcast sends it)."""
    return {
        "lead_id": str(lead.id),
        "email": lead.email,
        "previous_score": previous,
        "new_score": new,
        "delta": new - previous,
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z") if timestamp else None,
        "late": late,
        "reason": reason,
    }


@dataclass(slots=True)
class _PendingEvent:
    """A pending event being scored: what the fold reads and what ``_write_events`` writes back."""

    id: uuid.UUID
    event_id: str
    lead_id: uuid.UUID
    event_type: str
    timestamp: object
    status: str = EventStatus.PENDING
    processed: bool = False
    processed_at: object = None
    points: int | None = None
    late: bool = False
    score_after: int | None = None
    error: str = ""


def _key(timestamp, event_id) -> engine.EventKey:
    return engine.EventKey(timestamp, event_id)


def _last_key(lead) -> engine.EventKey | None:
    """The key of the last event folded into the lead's stored score (None before any)."""
    if not lead.last_processed_event_time:
        return None
    return _key(lead.last_processed_event_time, lead.last_processed_event_id)


def _process_locked(ids: list[uuid.UUID], lead_ids=None) -> ProcessResult:
    if lead_ids is None:
        lead_ids = set(
            Event.objects.filter(pk__in=ids, status=EventStatus.PENDING).values_list("lead_id", flat=True).distinct()
        )
    if not lead_ids:
        return ProcessResult(0, 0, [])
    leads = leads_lock(lead_ids=lead_ids)
    # Re-read under the lead locks: only this transaction can process these leads' events now.
    # Plain rows, not model instances (an instance costs as much as the rest of an event's scoring).
    events = [
        _PendingEvent(*row)
        for row in Event.objects.filter(pk__in=ids, status=EventStatus.PENDING, lead_id__in=leads.keys()).values_list(
            "id", "event_id", "lead_id", "event_type", "timestamp"
        )
    ]
    if not events:
        return ProcessResult(0, 0, [])
    points_by_type = rule_points_by_type()
    policy = engine.LatePolicy(settings.TARGETGRID_LATE_EVENTS)
    now = timezone.now()

    by_lead: dict[uuid.UUID, list[_PendingEvent]] = defaultdict(list)
    for event in events:
        by_lead[event.lead_id].append(event)

    score_changes: list[dict] = []  # ScoreChange rows as {attname: value}
    event_updates: dict[uuid.UUID, _PendingEvent] = {}
    refold_updates: list[_StoredEvent] = []
    changed_leads: list[Lead] = []
    broadcasts: list[dict] = []
    skipped = 0

    for events_of_lead in by_lead.values():
        events_of_lead.sort(key=lambda e: (e.timestamp, e.event_id))
    # Late events: every late lead's stored tail in one statement (was two queries per lead).
    late_from = {}
    if policy is engine.LatePolicy.REFOLD:
        for lead_id, new in by_lead.items():
            first, last = _key(new[0].timestamp, new[0].event_id), _last_key(leads[lead_id])
            if last is not None and first < last:
                late_from[lead_id] = first
    tails = _load_tails(late_from)

    for lead_id in sorted(by_lead):
        lead = leads[lead_id]
        new_events = by_lead[lead_id]
        scored = {
            e.id: engine.ScoredEvent(_key(e.timestamp, e.event_id), e.event_type, points_by_type.get(e.event_type) or 0)
            for e in new_events
        }
        last_key = _last_key(lead)
        base = engine.FoldState(lead.current_score, last_key)
        tail: list[engine.TailEntry] = []
        stored_by_event_id: dict[str, _StoredEvent] = {}
        if lead_id in tails:
            base, tail, stored_by_event_id = tails[lead_id]
        timeline = engine.LeadTimeline(max_score=lead.max_score, base=base, tail=tail, late_policy=policy)

        for event in new_events:
            step = timeline.apply(scored[event.id])
            if step is None:  # cannot happen for pending rows (event_id is unique); keep it harmless
                continue
            event.processed_at = now
            event.points = step.event.points
            event.late = step.late
            if step.skipped:
                skipped += 1
                event.status = EventStatus.SKIPPED
                event.processed = True
                event.error = step.reason
                event_updates[event.id] = event
                logger.info("late event %s for lead %s skipped (TARGETGRID_LATE_EVENTS=drop)", event.event_id, lead_id)
                continue
            event.status = EventStatus.PROCESSED
            event.processed = True
            event_updates[event.id] = event
            score_changes.append(
                {
                    "lead_id": lead_id,
                    "event_id": event.id,
                    "event_type": event.event_type,
                    "previous_score": step.previous_score,
                    "new_score": step.new_score,
                    "delta": step.delta,
                    "reason": step.reason[:500],
                    "late": step.late,
                    "timestamp": event.timestamp,
                    "created_at": now,
                }
            )
            broadcasts.append(
                _change_frame(
                    lead,
                    previous=step.previous_score,
                    new=step.new_score,
                    event_id=event.event_id,
                    event_type=event.event_type,
                    timestamp=event.timestamp,
                    late=step.late,
                    reason=step.reason,
                )
            )

        # Checkpoints: score_after for every new event and every re-folded stored event.
        for entry in timeline.tail:
            event_id = entry.event.key.event_id
            stored = stored_by_event_id.get(event_id)
            if stored is not None:
                if entry.changed:
                    stored.score_after = entry.score_after
                    refold_updates.append(stored)
        new_by_event_id = {e.event_id: e for e in new_events}
        for entry in timeline.tail:
            new = new_by_event_id.get(entry.event.key.event_id)
            if new is not None:
                new.score_after = entry.score_after

        state = timeline.state
        if (state.score, state.last_key) != (lead.current_score, last_key):
            lead.current_score = state.score
            lead.last_processed_event_time = state.last_key.timestamp if state.last_key else None
            lead.last_processed_event_id = state.last_key.event_id if state.last_key else ""
            lead.updated_at = now
            changed_leads.append(lead)

    dicts_insert(ScoreChange, score_changes)
    _write_events(event_updates.values(), now=now)
    rows_update(Event, fields=["score_after"], rows=[(e.id, e.score_after) for e in refold_updates])
    rows_update(
        Lead,
        fields=["current_score", "last_processed_event_time", "last_processed_event_id"],
        rows=[
            (lead.id, lead.current_score, lead.last_processed_event_time, lead.last_processed_event_id)
            for lead in changed_leads
        ],
        constants={"updated_at": now},
    )
    return ProcessResult(processed=len(score_changes), skipped=skipped, changes=broadcasts)


def _write_events(events, *, now) -> None:
    """One set-based UPDATE per outcome (processed / skipped) instead of a CASE per field."""
    processed, skipped = [], []
    for event in events:
        if event.status == EventStatus.PROCESSED:
            processed.append((event.id, event.points, event.score_after, event.late))
        else:
            skipped.append((event.id, event.points, event.late, event.error))
    common = {"processed": True, "processed_at": now}
    rows_update(
        Event,
        fields=["points", "score_after", "late"],
        rows=processed,
        constants={"status": EventStatus.PROCESSED, **common},
    )
    rows_update(
        Event, fields=["points", "late", "error"], rows=skipped, constants={"status": EventStatus.SKIPPED, **common}
    )


TAIL_LEADS_PER_STATEMENT = 200


def _load_tails(earliest_by_lead: dict) -> dict:
    """For each late lead: the fold state right before its earliest new event, and every processed
    event after it, as ``(base, tail, stored events by event_id)``.

    One statement per 200 leads, a UNION ALL of two index range reads per lead (on
    ``event_lead_fold_idx``): the processed event just before the new one (``ORDER BY … DESC
    LIMIT 1``; its ``score_after`` is the base) and the processed events after it. No processed
    event lies between those two, so the tail is exactly what the re-fold needs.
    """
    out = {}
    leads = sorted(earliest_by_lead)
    for start in range(0, len(leads), TAIL_LEADS_PER_STATEMENT):
        part = leads[start : start + TAIL_LEADS_PER_STATEMENT]
        predecessors, later = {}, defaultdict(list)
        for kind, row in _tail_rows({lead_id: earliest_by_lead[lead_id] for lead_id in part}):
            if kind == 0:
                predecessors[row.lead_id] = row
            else:
                later[row.lead_id].append(row)
        for lead_id in part:
            before = predecessors.get(lead_id)
            base = (
                engine.FoldState(before.score_after or 0, _key(before.timestamp, before.event_id))
                if before is not None
                else engine.FoldState()
            )
            stored = sorted(later[lead_id], key=lambda e: (e.timestamp, e.event_id))
            tail = [
                engine.TailEntry(
                    event=engine.ScoredEvent(_key(e.timestamp, e.event_id), e.event_type, e.points or 0),
                    score_after=e.score_after or 0,
                    loaded_score_after=e.score_after,
                )
                for e in stored
            ]
            out[lead_id] = (base, tail, {e.event_id: e for e in stored})
    return out


@dataclass(slots=True)
class _StoredEvent:
    """A processed event of a late lead's tail (what the re-fold reads and rewrites)."""

    id: uuid.UUID
    event_id: str
    lead_id: uuid.UUID
    event_type: str
    timestamp: object
    points: int | None
    score_after: int | None


def _tail_rows(earliest_by_lead: dict):
    """``(kind, _StoredEvent)`` rows of :func:`_load_tails` (kind 0: the predecessor, 1: a later
    event). Plain rows through the backend's own converters: a hot lead's tail holds thousands of
    events, and model instances cost ~10x more per row."""
    connection = connections[Event.objects.db]
    ops = connection.ops
    qn = ops.quote_name
    meta = Event._meta
    selected = ("id", "event_id", "lead", "event_type", "timestamp", "points", "score_after")  # = _StoredEvent
    column = {name: qn(meta.get_field(name).column) for name in (*selected, "status")}
    names = ", ".join(column[name] for name in selected)
    table = qn(meta.db_table)
    ts, eid = column["timestamp"], column["event_id"]
    lead_field, ts_field = meta.get_field("lead"), meta.get_field("timestamp")
    parts, params = [], []
    for index, (lead_id, key) in enumerate(sorted(earliest_by_lead.items())):
        lead_param = lead_field.get_db_prep_value(lead_id, connection)
        ts_param = ts_field.get_db_prep_value(key.timestamp, connection)
        where = f"{column['lead']} = %s AND {column['status']} = %s"
        parts.append(
            f"SELECT 0 AS kind, {names} FROM (SELECT {names} FROM {table} WHERE {where} "
            f"AND ({ts} < %s OR ({ts} = %s AND {eid} < %s)) ORDER BY {ts} DESC, {eid} DESC LIMIT 1) AS p{index}"
        )
        parts.append(
            f"SELECT 1 AS kind, {names} FROM {table} WHERE {where} AND ({ts} > %s OR ({ts} = %s AND {eid} > %s))"
        )
        for _ in range(2):
            params += [lead_param, EventStatus.PROCESSED, ts_param, ts_param, key.event_id]
    # Backends without these converters (PostgreSQL) return UUIDs and aware datetimes already.
    to_datetime = getattr(ops, "convert_datetimefield_value", None)
    to_uuid = getattr(ops, "convert_uuidfield_value", None)

    def as_uuid(value):
        return value if to_uuid is None or isinstance(value, uuid.UUID) else to_uuid(value, None, connection)

    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    for kind, pk, event_id, lead_id, event_type, timestamp, points, score_after in rows:
        if to_datetime is not None:
            timestamp = to_datetime(timestamp, None, connection)
        yield kind, _StoredEvent(as_uuid(pk), event_id, as_uuid(lead_id), event_type, timestamp, points, score_after)


def events_drain_partition(*, partition: int) -> int:
    """Score the pending events of one partition, a chunk per transaction, until none is left.

    At most one drain runs per partition (a short Redis lease, renewed while it works); a second
    one returns at once and the holder, seeing the partition marked dirty, drains again. While a
    drain is queued or running, the partition's ``queued`` flag stays set, so requests publish no
    further wake-ups; it is cleared in ``finally`` after the leases are released, and the dirty
    flag is re-checked there (scoring/partitions.py).
    Batch window: a drain woken less than ``TARGETGRID_DRAIN_WINDOW_MS`` ago first waits for the
    rest of that window, so a stream of single events becomes a few transactions rather than one
    each (a backlog is never held up: its wake-up is already older than the window).
    When the partition has fewer than ``TARGETGRID_DRAIN_COMBINE_BELOW`` events pending, the drain
    also takes the other dirty partitions nobody is draining and scores them in the same
    transaction (group commit; their leads are disjoint from every other drain's).
    Bounded in time: after ``TARGETGRID_DRAIN_SECONDS`` (or when its lease was lost) the drain
    stops after its current transaction and hands over: it marks its partitions dirty and the
    end-of-drain re-check publishes a fresh wake-up. A drain that raises marks them dirty and
    clears ``queued`` too, so its task's retry, the next request or the sweep drains them.
    """
    if not partitions.is_dirty(partition):
        # A drain that combined this partition took its work already (and clears its wake-up flag
        # when it ends): this wake-up costs one round trip instead of a whole empty drain.
        return 0
    drain = partitions.Drain()
    if not drain.acquire([partition]):
        return 0
    processed, work_left, raised = 0, True, True
    try:
        drain.start_renewing(max_seconds=settings.TARGETGRID_DRAIN_SECONDS + partitions.RENEW_MARGIN_SECONDS)
        processed, work_left = _drain(drain, partition)
        raised = False
    finally:
        _drain_end(drain, work_left=work_left, wake=not raised)
    return processed


def _drain(drain, partition: int) -> tuple[int, bool]:
    """The drain loop; returns ``(events scored, work may be left)``."""
    processed = 0
    limit = settings.TARGETGRID_DRAIN_CHUNK
    combine_below = settings.TARGETGRID_DRAIN_COMBINE_BELOW
    deadline = time.monotonic() + settings.TARGETGRID_DRAIN_SECONDS
    window = settings.TARGETGRID_DRAIN_WINDOW_MS / 1000
    if window > 0:
        age = partitions.wake_age_seconds(partition)
        if age is not None and age < window:
            time.sleep(window - age)
    while True:
        held = drain.held()
        partitions.take_dirty(*held)
        pending = _pending(held, limit)
        if len(pending) < combine_below:
            extra = drain.claim_dirty_others()
            if extra:
                partitions.take_dirty(*extra)
                pending += _pending(extra, limit - len(pending))
        if pending:
            processed += events_process(
                event_ids=[pk for pk, _ in pending], lead_ids={lead_id for _, lead_id in pending}
            ).processed
        if len(pending) < limit and not partitions.dirty_among(drain.held()):
            return processed, False
        if drain.lost:
            logger.warning("drain of partition %s lost its lease; handing over", partition)
            return processed, True
        if time.monotonic() > deadline:
            return processed, True


def _drain_end(drain, *, work_left: bool, wake: bool) -> None:
    """Mark (if work may be left), release, clear ``queued``, re-check ``dirty`` and wake: in this
    order, so a request committing meanwhile is either seen here or wakes a free partition itself.
    Each step is best effort (Redis may be down): leases lapse by themselves, ``queued`` expires,
    and the sweep wakes whatever is still pending."""
    held = drain.held()

    def recheck() -> None:  # events committed after the last look, or handed over: wake them again
        again = partitions.dirty_among(held)
        if again:
            partitions_wake(partitions=again)

    steps = [lambda: partitions.mark_dirty(*held)] if work_left else []
    steps += [drain.release, lambda: partitions.unqueue(*held)] + ([recheck] if wake else [])
    for step in steps:
        try:
            step()
        except Exception:
            logger.warning("ending the drain of partitions %s: a step failed; the sweep will wake them", held,
                           exc_info=True)


def _pending(parts: Sequence[int], limit: int) -> list[tuple]:
    """``(event pk, lead id)`` of the oldest pending events of the given partitions."""
    if limit <= 0:
        return []
    return list(
        Event.objects.filter(status=EventStatus.PENDING, partition__in=list(parts))
        .order_by("received_at")
        .values_list("id", "lead_id")[:limit]
    )


def events_requeue_pending(*, older_than_seconds: int | None = None, limit: int = 100_000) -> int:
    """The sweep: re-send events still pending after a while (a lost wake-up, a broker outage, a
    killed worker). Celery mode: wake every partition whose oldest pending event is older than
    that, whatever its flags say (one indexed query: :func:`pending_oldest_by_partition`); a
    wake-up of a partition being drained right now returns at once. Returns how many partitions
    (Celery) or events were re-sent."""
    age = settings.TARGETGRID_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timezone.timedelta(seconds=age)
    if transport.has_broker():
        stale = {partition for partition, oldest in pending_oldest_by_partition().items() if oldest <= cutoff}
        if stale:
            logger.info("sweep: waking partitions %s", sorted(stale))
            partitions_wake(partitions=stale, force=True)
        return len(stale)
    ids = list(
        Event.objects.filter(status=EventStatus.PENDING, received_at__lte=cutoff)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )
    if ids:
        logger.info("sweep: re-enqueueing %d pending events", len(ids))
        events_send(event_ids=[str(pk) for pk in ids])
    return len(ids)


def events_requeue(*, event_ids: Sequence) -> int:
    """Re-send the given events that are still pending (an operator's nudge from the admin); events
    already scored are left alone, and scoring them twice is harmless anyway. Returns how many."""
    ids = list(
        Event.objects.filter(pk__in=list(event_ids), status=EventStatus.PENDING)
        .order_by("received_at")
        .values_list("id", flat=True)
    )
    if ids:
        logger.info("re-enqueueing %d pending events on request", len(ids))
        events_send(event_ids=[str(pk) for pk in ids])
    return len(ids)


def events_retry(*, event_ids: Sequence) -> int:
    """Send failed events back to scoring: ``failed`` -> ``pending`` with the error cleared, enqueued
    after commit. Events in any other state are left alone, so retrying twice is harmless. A retried
    event older than its lead's newest scored event folds in as a late event. Returns how many."""
    ids = [pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk)) for pk in event_ids]
    with transaction.atomic():
        rows = list(
            Event.objects.select_for_update()
            .filter(pk__in=ids, status=EventStatus.FAILED)
            .order_by("pk")
            .values_list("id", "partition")
        )
        if rows:
            Event.objects.filter(pk__in=[pk for pk, _ in rows]).update(
                status=EventStatus.PENDING, error="", processed_at=None
            )
            events_enqueue(event_ids=[pk for pk, _ in rows], partitions={partition for _, partition in rows})
    if rows:
        logger.info("retrying %d failed events on request", len(rows))
    return len(rows)


def rule_save(*, rule=None, **fields):
    """Create or update a scoring rule; it applies to the next event scored (rules are read per batch)."""
    from .models import ScoringRule

    rule = rule or ScoringRule()
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.full_clean()
    rule.save()
    return rule


def leads_rescore(*, lead_ids: Sequence, actor: str = "") -> int:
    """Re-fold each lead's processed events with the *current* rules (after an operator changed
    points and wants history to follow). Stored points and checkpoints are rewritten; a lead whose
    score changes gets one ``RESCORE`` ScoreChange, so the audit deltas still sum to the score.
    Returns the number of leads whose score changed."""
    changes: list[dict] = []
    for attempt in run_with_retries():
        with attempt, transaction.atomic():
            changes = _rescore_locked(lead_ids, actor=actor)
            if changes:
                transport.notify_on_commit("score.changes", changes)
    return len(changes)


def _rescore_locked(lead_ids, *, actor: str) -> list[dict]:
    leads = leads_lock(lead_ids=lead_ids)
    if not leads:
        return []
    points_by_type = rule_points_by_type()
    now = timezone.now()
    events = Event.objects.filter(lead_id__in=leads.keys(), status=EventStatus.PROCESSED).only(
        "id", "event_id", "lead_id", "event_type", "timestamp", "points", "score_after"
    )
    by_lead: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for event in events:
        by_lead[event.lead_id].append(event)
    changed_events, changed_leads, score_changes, broadcasts = [], [], [], []
    for lead_id in sorted(leads):
        lead = leads[lead_id]
        score = 0
        for event in sorted(by_lead[lead_id], key=lambda e: (e.timestamp, e.event_id)):
            points = points_by_type.get(event.event_type) or 0
            score = engine.clamp(score + points, lead.max_score)
            if (event.points, event.score_after) != (points, score):
                event.points, event.score_after = points, score
                changed_events.append(event)
        if score == lead.current_score:
            continue
        reason = "rescored with the current rules" + (f" by {actor}" if actor else "")
        score_changes.append(
            ScoreChange(
                lead_id=lead_id,
                event=None,
                event_type=ScoreChange.RESCORE,
                previous_score=lead.current_score,
                new_score=score,
                delta=score - lead.current_score,
                reason=reason,
                timestamp=now,
                created_at=now,
            )
        )
        broadcasts.append(
            _change_frame(
                lead,
                previous=lead.current_score,
                new=score,
                event_id=None,
                event_type=ScoreChange.RESCORE,
                timestamp=now,
                reason=reason,
            )
        )
        lead.current_score, lead.updated_at = score, now
        changed_leads.append(lead)
    ScoreChange.objects.bulk_create(score_changes)
    Event.objects.bulk_update(changed_events, ["points", "score_after"], batch_size=1000)
    Lead.objects.bulk_update(changed_leads, ["current_score", "updated_at"], batch_size=1000)
    return broadcasts


def _lead_refold(lead: Lead, *, now, reason: str) -> dict | None:
    """Recompute a locked lead's score from its processed events (their frozen points) in event time.

    Rewrites the ``score_after`` checkpoints and, when the audit log no longer sums to the new
    score, appends one ScoreChange carrying the difference, so the deltas still sum to the score.
    Returns the broadcast payload when the score changed.
    """
    events = list(
        Event.objects.filter(lead_id=lead.id, status=EventStatus.PROCESSED)
        .order_by("timestamp", "event_id")
        .only("id", "event_id", "event_type", "timestamp", "points", "score_after")
    )
    state = engine.FoldState()
    checkpoints = []
    for event in events:
        state = engine.step(
            state, engine.ScoredEvent(_key(event.timestamp, event.event_id), event.event_type, event.points or 0),
            max_score=lead.max_score,
        )
        if event.score_after != state.score:
            event.score_after = state.score
            checkpoints.append(event)
    Event.objects.bulk_update(checkpoints, ["score_after"], batch_size=1000)

    audit_total = ScoreChange.objects.filter(lead_id=lead.id).aggregate(total=models.Sum("delta"))["total"] or 0
    anchor = events[-1] if events else None
    if audit_total != state.score and anchor is not None:
        ScoreChange.objects.create(
            lead_id=lead.id, event_id=anchor.id, event_type=anchor.event_type, previous_score=audit_total,
            new_score=state.score, delta=state.score - audit_total, reason=reason[:500], late=False,
            timestamp=anchor.timestamp, created_at=now,
        )
    previous = lead.current_score
    lead.current_score = state.score
    lead.last_processed_event_time = state.last_key.timestamp if state.last_key else None
    lead.last_processed_event_id = state.last_key.event_id if state.last_key else ""
    lead.updated_at = now
    lead.save(update_fields=["current_score", "last_processed_event_time", "last_processed_event_id", "updated_at"])
    if previous == state.score:
        return None
    return _change_frame(
        lead,
        previous=previous,
        new=state.score,
        event_id=anchor.event_id if anchor else "",
        event_type=anchor.event_type if anchor else "",
        timestamp=anchor.timestamp if anchor else None,
        reason=reason,
    )


def lead_events_reattribute(*, from_lead_id, to_lead_id) -> int:
    """Move every event of one lead (an anonymous placeholder) to another and re-score both.

    Both leads are locked in primary-key order. The moved events keep their frozen points; both
    leads are re-folded in event time. The audit rows of the moved events move with them and one
    correcting ScoreChange is written where needed, so each lead's deltas still sum to its score.
    Pending moved events are re-enqueued (a worker that locked the old lead skips them).
    Returns how many events moved.
    """
    if str(from_lead_id) == str(to_lead_id):
        return 0
    now = timezone.now()
    with transaction.atomic():
        leads = leads_lock(lead_ids=[from_lead_id, to_lead_id])
        source, target = leads.get(uuid.UUID(str(from_lead_id))), leads.get(uuid.UUID(str(to_lead_id)))
        if source is None or target is None:
            return 0
        pending = list(Event.objects.filter(lead_id=source.id, status=EventStatus.PENDING).values_list("id", flat=True))
        # The moved rows join the target lead's partition, so only drains of that partition
        # ever lock the target lead for them.
        moved = Event.objects.filter(lead_id=source.id).update(lead_id=target.id, partition=partition_of(target.id))
        ScoreChange.objects.filter(lead_id=source.id).update(lead_id=target.id)
        reason = f"re-attributed {moved} event{'s' if moved != 1 else ''} from {source.email}; re-folded in event time"
        changes = [
            change
            for change in (
                _lead_refold(lead, now=now, reason=reason if lead is target else f"events moved to {target.email}")
                for lead in sorted((source, target), key=lambda lead: lead.id)
            )
            if change is not None
        ]
        if pending:
            events_enqueue(event_ids=pending)
        if changes:
            transport.notify_on_commit("score.changes", changes)
    logger.info("re-attributed %d events from lead %s to lead %s", moved, source.id, target.id)
    return moved


def lead_max_score_set(*, lead_id, max_score: int, actor: str = "") -> bool:
    """Change a lead's score cap and re-fold its score with it, under the lead's lock.

    ``max_score`` is a scoring parameter, not a profile field: the stored score, the events'
    ``score_after`` checkpoints and the audit log all depend on it, so it changes only here, in
    the same locked transaction as the re-fold (a drain scoring the lead meanwhile waits, then folds
    with the new cap). Not durable: the admin and the import call it inside their own transaction.
    Returns False when the lead is gone or already has that cap.
    """
    if isinstance(max_score, bool) or not isinstance(max_score, int) or max_score < 0:
        raise ValueError(f"max_score must be an integer >= 0, got {max_score!r}")
    with transaction.atomic():
        lead = leads_lock(lead_ids=[lead_id]).get(uuid.UUID(str(lead_id)))
        if lead is None or lead.max_score == max_score:
            return False
        previous, now = lead.max_score, timezone.now()
        lead.max_score = max_score
        Lead.objects.filter(pk=lead.id).update(max_score=max_score, updated_at=now)
        reason = f"max score {previous} -> {max_score}" + (f" by {actor}" if actor else "") + "; re-folded"
        change = _lead_refold(lead, now=now, reason=reason)
        if change is not None:
            transport.notify_on_commit("score.changes", [change])
    logger.info("lead %s: max score %d -> %d", lead.id, previous, max_score)
    return True
