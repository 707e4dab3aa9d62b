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
from config.retry import RetryTransaction, is_transient, run_with_retries
from events.models import Event, EventStatus
from leads.models import Lead
from leads.services import leads_lock

from . import engine, partitions
from .models import AlertEvent, AlertKind, FitRule, ScoreChange, ScoringRule, StageCause, StageChange
from .partitions import partition_of
from .rulesets import ruleset_current, settings_draft, stageset_current
from .selectors import pending_oldest_by_partition
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


def _change_frame(lead, *, previous: int, new: int, event_id, event_type: str, timestamp, reason: str, late=False,
                  fit_score: int | None = None, grade: str | None = None) -> dict:
    """The ``score.changed`` payload of one score change (realtime.broadcast sends it). ``grade`` is
    the lead's grade at ``new`` with ``fit_score`` (the pages update the badge from it)."""
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
        "fit_score": lead.fit_score if fit_score is None else fit_score,
        "grade": lead.grade if grade is None else grade,
        # The lead's stage after the transaction (lead_done sets it once the stage is decided).
        "stage": lead.__dict__.get("stage", ""),  # (never a query for a deferred field)
    }


@dataclass(slots=True)
class _PendingEvent:
    """A pending event being scored: what the fold reads and what ``_write_events`` writes back."""

    id: uuid.UUID
    event_id: str
    lead_id: uuid.UUID
    event_type: str
    timestamp: object
    metadata: object = None
    source: str = ""
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
    leads = leads_lock(lead_ids=lead_ids, fields=SCORING_LEAD_FIELDS)
    if not leads:
        return ProcessResult(0, 0, [])
    # Re-read under the lead locks: only this transaction can process these leads' events now.
    # Plain rows, not model instances (an instance costs as much as the rest of an event's scoring).
    ruleset = _ruleset_for(leads.values())
    # Metadata and source only when a rule reads them (decoding JSON costs as much as the rest).
    columns = ("id", "event_id", "lead_id", "event_type", "timestamp") + (
        ("metadata", "source") if ruleset.reads_event else ()
    )
    events = [
        _PendingEvent(*row)
        for row in Event.objects.filter(pk__in=ids, status=EventStatus.PENDING, lead_id__in=leads.keys()).values_list(
            *columns
        )
    ]
    if not events:
        return ProcessResult(0, 0, [])
    policy = engine.LatePolicy(settings.TARGETGRID_LATE_EVENTS)
    now = timezone.now()
    batch = _Batch(ruleset=ruleset, stages=_stages_for(leads.values()), now=now)

    by_lead: dict[uuid.UUID, list[_PendingEvent]] = defaultdict(list)
    for event in events:
        by_lead[event.lead_id].append(event)
    for events_of_lead in by_lead.values():
        events_of_lead.sort(key=lambda e: (e.timestamp, e.event_id))

    # Which leads the incremental timeline can score, and which need the whole definition
    # (engine.evaluate over every event): a lead scored under an older version, a lead holding or
    # receiving a decaying contribution (decay depends on ``now``), a late event under caps.
    full: dict[uuid.UUID, list[_PendingEvent]] = {}
    incremental: dict[uuid.UUID, list[_PendingEvent]] = {}
    for lead_id, new in by_lead.items():
        lead = leads[lead_id]
        last = _last_key(lead)
        late = last is not None and _key(new[0].timestamp, new[0].event_id) < last
        if (
            (lead.rule_version != ruleset.version and last is not None)
            # (a late event under a decaying rule set: the tail's stored points are raw, and an
            # expired contribution no longer marks the lead as decaying; only the definition refolds it)
            or (ruleset.decays and (lead.decaying or late or _any_decaying(ruleset, new)))
            or (ruleset.stateful and late and policy is engine.LatePolicy.REFOLD)
        ):
            full[lead_id] = new
        else:
            incremental[lead_id] = new

    late_from = {}
    if policy is engine.LatePolicy.REFOLD:
        for lead_id, new in incremental.items():
            first, last = _key(new[0].timestamp, new[0].event_id), _last_key(leads[lead_id])
            if last is not None and first < last:
                late_from[lead_id] = first
    tails = _load_tails(late_from)
    for lead_id in sorted(incremental):
        _lead_apply_incremental(batch, leads[lead_id], incremental[lead_id], tails.get(lead_id), policy)
    if full:
        history = _events_history(full.keys())
        for lead_id in sorted(full):
            _lead_apply_full(batch, leads[lead_id], history.get(lead_id, []), full[lead_id], reason="")
    batch.write()
    return ProcessResult(processed=batch.processed, skipped=batch.skipped, changes=batch.broadcasts)


# What scoring reads of a lead (fit rules read the profile); not the timestamps it only writes
# (a datetime column costs a converter call per row).
SCORING_LEAD_FIELDS = (
    "id", "email", "first_name", "last_name", "company", "job_title", "phone", "current_score", "max_score",
    "last_processed_event_time", "last_processed_event_id", "rule_version", "fit_score", "grade", "decaying",
    "fold_state", "stage", "stage_version",
)


class StaleRuleSet(RetryTransaction):
    """A locked lead is already scored under a newer version than this transaction's snapshot shows
    (a publish and its rescore committed between the snapshot and the lock)."""


def _ruleset_for(leads) -> engine.RuleSet:
    """The current version, read after the leads were locked: never older than any of theirs (a
    lead never goes back to an older version; the transaction is retried with a fresh snapshot)."""
    ruleset = ruleset_current()
    newest = max((lead.rule_version for lead in leads), default=0)
    if newest > ruleset.version:
        raise StaleRuleSet(f"a lead is under rules v{newest}, this snapshot shows v{ruleset.version}")
    return ruleset


class StaleStages(RetryTransaction):
    """A locked lead's stage was decided under newer stage settings than this transaction's
    snapshot shows (a stage change and its restage committed between the snapshot and the lock)."""


def _stages_for(leads) -> engine.StageSet:
    """The current stage settings, read after the leads were locked (as ``_ruleset_for``)."""
    stages = stageset_current()
    newest = max((lead.stage_version for lead in leads), default=0)
    if newest > stages.version:
        raise StaleStages(f"a lead is staged under stage settings v{newest}, this snapshot shows v{stages.version}")
    return stages


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class _StageWrites:
    """Stage decisions of one transaction: the leads' stage fields, the StageChange audit rows and
    the domain events (AlertEvent), written in a few statements; the alerts are announced after
    commit (``alerts.created``: realtime fans them out; the rows are the source of truth)."""

    def __init__(self, *, stages: engine.StageSet, now, rule_version: int | None = None):
        self.stages, self.now, self.rule_version = stages, now, rule_version
        self.leads: list = []  # (pk, stage, stage_entered_at, stage_version)
        self.versions: list = []  # (pk, stage_version)
        self.changes: list[dict] = []
        self.alerts: list[dict] = []

    def decide(self, lead, *, previous_score: int, previous_fit: int, cause: str, event=None) -> None:
        """Decide ``lead``'s stage from its (new) ``current_score`` and ``fit_score``. A lead never
        staged before starts where its previous score put it (a new lead enters its first stage
        silently); an actual change is audited and becomes ``lead.stage_changed``; each score
        threshold crossed becomes ``lead.score_crossed``."""
        stages, now = self.stages, self.now
        score, fit = lead.current_score, lead.fit_score
        before = lead.stage
        if lead.stage_version == 0 and not before:
            before = stages.stage_of(score=previous_score, fit_score=previous_fit)
        after = stages.stage_of(score=score, fit_score=fit)
        for threshold, direction in stages.crossings(previous=previous_score, new=score):
            self._alert(lead, AlertKind.SCORE_CROSSED, stage=after, data={
                "threshold": threshold, "direction": direction, "previous_score": previous_score,
                "cause": cause, "event_id": event.event_id if event is not None else None,
            })
        if after == lead.stage and lead.stage_version == stages.version:
            return
        if before != after:
            direction = stages.direction(before, after)
            self.changes.append({
                "lead_id": lead.id, "from_stage": before, "to_stage": after, "direction": direction,
                "score": score, "fit_score": fit, "cause": cause,
                "event_id": event.id if event is not None else None,
                "event_ref": event.event_id if event is not None else "",
                "rule_version": self.rule_version, "stage_version": stages.version, "created_at": now,
            })
            self._alert(lead, AlertKind.STAGE_CHANGED, stage=after, data={
                "from_stage": before, "to_stage": after, "direction": direction, "previous_score": previous_score,
                "cause": cause, "event_id": event.event_id if event is not None else None,
            })
        if after != lead.stage or lead.stage_version == 0:
            lead.stage, lead.stage_entered_at = after, now
            self.leads.append((lead.id, after, now, stages.version))
        else:  # the same stage under newer settings: only the version (stage_entered_at is not loaded)
            self.versions.append((lead.id, stages.version))
        lead.stage_version = stages.version

    def _alert(self, lead, kind: str, *, stage: str, data: dict) -> None:
        uid = uuid.uuid4()
        data = {
            "lead": {
                "id": str(lead.id), "email": lead.email, "name": lead.name, "company": lead.company,
                "score": lead.current_score, "fit_score": lead.fit_score, "grade": lead.grade, "stage": stage,
            },
            **data,
            "rule_version": self.rule_version,
        }
        self.alerts.append({
            "uid": uid, "kind": kind, "lead_id": lead.id, "stage": stage, "dispatched": False, "created_at": self.now,
            "payload": {"id": str(uid), "type": str(kind), "timestamp": _iso(self.now), "data": data},
        })

    def write(self) -> None:
        rows_update(Lead, fields=["stage", "stage_entered_at", "stage_version"], rows=self.leads)
        rows_update(Lead, fields=["stage_version"], rows=self.versions)
        dicts_insert(StageChange, self.changes)
        dicts_insert(AlertEvent, self.alerts)
        if self.alerts:
            transport.notify_on_commit("alerts.created", [alert["payload"] for alert in self.alerts])


_CAUSE_OF_KIND = {ScoreChange.RESCORE: StageCause.RESCORE, ScoreChange.DECAY: StageCause.DECAY}


def _any_decaying(ruleset: engine.RuleSet, events) -> bool:
    return any(rule.decays for event in events for rule in ruleset.rules_for(event.event_type))


def _engine_event(event) -> engine.EngineEvent:
    return engine.EngineEvent.of(event_id=event.event_id, event_type=event.event_type, timestamp=event.timestamp,
                                 metadata=event.metadata, source=event.source)


def _rules_record(contributions) -> list[dict]:
    """What ``ScoreChange.rules`` stores: the rules that produced (or were capped on) the change."""
    out = []
    for contribution in contributions:
        item = {"rule": contribution.rule.key, "name": contribution.rule.label, "points": contribution.points}
        if contribution.capped:
            item["capped"] = True
        out.append(item)
    return out


def _contributions_text(contributions) -> str:
    parts = []
    for contribution in contributions:
        if contribution.capped:
            parts.append(f"{contribution.rule.label} capped")
        else:
            parts.append(f"{contribution.rule.label} {contribution.points:+d}")
    return ", ".join(parts)


class _Batch:
    """What one scoring transaction writes: collected per lead, written in a few statements."""

    def __init__(self, *, ruleset: engine.RuleSet, stages: engine.StageSet, now, cause: str | None = None):
        self.ruleset, self.now = ruleset, now
        self.stage_writes = _StageWrites(stages=stages, now=now, rule_version=ruleset.version)
        # The cause of a stage change of this transaction (None: from the lead's last score change).
        self.cause = cause
        self._lead_cause: tuple[str, object] = (StageCause.EVENT, None)
        self.score_changes: list[dict] = []  # ScoreChange rows as {attname: value}
        self.event_updates: dict[uuid.UUID, _PendingEvent] = {}
        self.refold_updates: list = []  # (pk, score_after) of stored events re-folded incrementally
        self.history_updates: list = []  # (pk, points, score_after) of stored events re-evaluated
        self.score_leads: list[Lead] = []  # score fields changed
        self.model_leads: list[Lead] = []  # score fields plus the rule-set fields changed
        self.broadcasts: list[dict] = []
        self._lead_frames = 0  # index of the first broadcast of the lead being applied
        self.processed = 0
        self.skipped = 0
        self._records: dict[tuple, list] = {}
        self._plain: dict[str, tuple] = {}

    def plain_contributions(self, event_type: str) -> tuple:
        contributions = self._plain.get(event_type)
        if contributions is None:
            contributions = self._plain[event_type] = engine.contributions(
                self.ruleset, engine.EngineEvent(engine.EventKey(self.now, ""), event_type), engine.CapCounter()
            )
        return contributions

    def rules_record(self, contributions) -> list:
        """``ScoreChange.rules`` for these contributions: one shared list per distinct record (they
        repeat across thousands of rows; config.bulk encodes each list once)."""
        signature = tuple((c.rule.key, c.points, c.capped) for c in contributions)
        record = self._records.get(signature)
        if record is None:
            record = self._records[signature] = _rules_record(contributions)
        return record

    def change(self, lead, *, previous: int, new: int, event=None, event_type: str, timestamp, reason: str,
               late: bool = False, rules=()) -> None:
        self.score_changes.append(
            {
                "lead_id": lead.id,
                "event_id": event.id if event is not None else None,
                "event_type": event_type,
                "previous_score": previous,
                "new_score": new,
                "delta": new - previous,
                "reason": reason[:500],
                "late": late,
                "rule_version": self.ruleset.version,
                "rules": rules if isinstance(rules, list) else list(rules),
                "timestamp": timestamp,
                "created_at": self.now,
            }
        )
        self._lead_cause = (_CAUSE_OF_KIND.get(event_type, StageCause.EVENT), event)
        self.broadcasts.append(
            _change_frame(
                lead, previous=previous, new=new, event_id=event.event_id if event is not None else None,
                event_type=event_type, timestamp=timestamp, late=late, reason=reason,
            )
        )

    def lead_done(self, lead, *, score: int, last_key, model_fields: bool, fit_score: int | None = None,
                  caps: dict | None = None, decaying: bool | None = None) -> None:
        """Record the lead's new state; only what changed is written."""
        ruleset = self.ruleset
        before = (lead.current_score, _last_key(lead), lead.grade)
        previous_fit = lead.fit_score
        lead.current_score = score
        lead.last_processed_event_time = last_key.timestamp if last_key else None
        lead.last_processed_event_id = last_key.event_id if last_key else ""
        if fit_score is not None:
            lead.fit_score = fit_score
        lead.grade = ruleset.grade(fit_score=lead.fit_score, score=score)
        # The lead's frames carry the grade after each change, with the lead's (possibly new) fit.
        frames = self.broadcasts[self._lead_frames:]
        for frame in frames:
            frame["fit_score"] = lead.fit_score
            frame["grade"] = ruleset.grade(fit_score=lead.fit_score, score=frame["new_score"])
        self._lead_frames = len(self.broadcasts)
        lead.score_as_of = self.now
        lead.updated_at = self.now
        if model_fields:
            lead.rule_version = ruleset.version
            if caps is not None:
                lead.fold_state = {"caps": caps} if caps else {}
            if decaying is not None:
                lead.decaying = decaying
            self.model_leads.append(lead)
        elif before != (lead.current_score, _last_key(lead), lead.grade):
            self.score_leads.append(lead)
        cause, event = self._lead_cause
        self._lead_cause = (StageCause.EVENT, None)
        self.stage_writes.decide(lead, previous_score=before[0], previous_fit=previous_fit,
                                 cause=self.cause or cause, event=event)
        for frame in frames:
            frame["stage"] = lead.stage

    def write(self) -> None:
        now = self.now
        dicts_insert(ScoreChange, self.score_changes)
        _write_events(self.event_updates.values(), now=now, version=self.ruleset.version)
        rows_update(Event, fields=["score_after"], rows=self.refold_updates)
        rows_update(Event, fields=["points", "score_after"], rows=self.history_updates,
                    constants={"rule_version": self.ruleset.version})
        score_fields = ["current_score", "last_processed_event_time", "last_processed_event_id", "grade"]
        rows_update(
            Lead,
            fields=score_fields,
            rows=[(lead.id, *(getattr(lead, name) for name in score_fields)) for lead in self.score_leads],
            constants={"updated_at": now, "score_as_of": now},
        )
        model_fields = [*score_fields, "fit_score", "rule_version", "fold_state", "decaying"]
        rows_update(
            Lead,
            fields=model_fields,
            rows=[(lead.id, *(getattr(lead, name) for name in model_fields)) for lead in self.model_leads],
            constants={"updated_at": now, "score_as_of": now},
        )
        self.stage_writes.write()


def _lead_apply_incremental(batch: _Batch, lead, new_events, tail_data, policy) -> None:
    """In-order events (any rule set without decay) and late events (without caps) through the
    incremental timeline: the lead's stored state is the fold so far under the current version."""
    ruleset = batch.ruleset
    fresh = lead.rule_version != ruleset.version  # no processed event yet (else it would be full)
    caps = engine.CapCounter((lead.fold_state or {}).get("caps")) if ruleset.stateful and not fresh else engine.CapCounter()
    last_key = _last_key(lead)
    base = engine.FoldState(lead.current_score, last_key)
    tail: list[engine.TailEntry] = []
    stored_by_event_id: dict = {}
    if tail_data is not None:
        base, tail, stored_by_event_id = tail_data
    timeline = engine.LeadTimeline(max_score=lead.max_score, base=base, tail=tail, late_policy=policy)
    now = batch.now
    drop_late = policy is engine.LatePolicy.DROP
    for event in new_events:
        points = ruleset.unconditional_points(event.event_type)
        if points is not None:  # one plain rule for the type: nothing to match, no state
            contributions = batch.plain_contributions(event.event_type)
        elif drop_late and timeline.state.last_key is not None and (
            _key(event.timestamp, event.event_id) < timeline.state.last_key
        ):
            contributions, points = (), 0  # dropped below: it must not take a cap slot
        else:
            contributions = engine.contributions(ruleset, _engine_event(event), caps)
            points = sum(c.points for c in contributions)
        step = timeline.apply(engine.ScoredEvent(_key(event.timestamp, event.event_id), event.event_type, points))
        if step is None:  # cannot happen for pending rows (event_id is unique); keep it harmless
            continue
        event.processed_at = now
        event.points = points
        event.late = step.late
        event.processed = True
        batch.event_updates[event.id] = event
        if step.skipped:
            batch.skipped += 1
            event.status = EventStatus.SKIPPED
            event.error = step.reason
            logger.info("late event %s for lead %s skipped (TARGETGRID_LATE_EVENTS=drop)", event.event_id, lead.id)
            continue
        event.status = EventStatus.PROCESSED
        batch.processed += 1
        reason = step.reason
        if contributions and not (len(contributions) == 1 and contributions[0].rule.label == event.event_type
                                  and not contributions[0].capped):
            reason = f"{reason} [{_contributions_text(contributions)}]"
        batch.change(
            lead, previous=step.previous_score, new=step.new_score, event=event, event_type=event.event_type,
            timestamp=event.timestamp, reason=reason, late=step.late, rules=batch.rules_record(contributions),
        )
    # Checkpoints: score_after for every new event and every re-folded stored event.
    new_by_event_id = {e.event_id: e for e in new_events}
    for entry in timeline.tail:
        event_id = entry.event.key.event_id
        stored = stored_by_event_id.get(event_id)
        if stored is not None:
            if entry.changed:
                batch.refold_updates.append((stored.id, entry.score_after))
        else:
            new = new_by_event_id.get(event_id)
            if new is not None:
                new.score_after = entry.score_after
    state = timeline.state
    if fresh:
        fit, _ = ruleset.fit(engine.profile_of(lead))
        batch.lead_done(lead, score=state.score, last_key=state.last_key, model_fields=True, fit_score=fit,
                        caps=caps.as_dict(), decaying=False)
    else:
        batch.lead_done(lead, score=state.score, last_key=state.last_key, model_fields=ruleset.stateful,
                        caps=caps.as_dict() if ruleset.stateful else None)


def _events_history(lead_ids) -> dict:
    """Every processed event of the given leads, as plain rows (what the full evaluation reads)."""
    out: dict[uuid.UUID, list[_PendingEvent]] = defaultdict(list)
    rows = Event.objects.filter(lead_id__in=list(lead_ids), status=EventStatus.PROCESSED).values_list(
        "id", "event_id", "lead_id", "event_type", "timestamp", "metadata", "source", "points", "score_after"
    )
    for pk, event_id, lead_id, event_type, timestamp, metadata, source, points, score_after in rows:
        event = _PendingEvent(pk, event_id, lead_id, event_type, timestamp, metadata, source)
        event.points, event.score_after, event.status = points, score_after, EventStatus.PROCESSED
        out[lead_id].append(event)
    return out


def _lead_apply_full(batch: _Batch, lead, history: list, new_events: list, *, reason: str, kind: str = "",
                     previous: int | None = None) -> bool:
    """The whole definition for one locked lead: re-evaluate its processed events under the current
    version at ``now`` (one audit row if that alone changes the score: a new version, decay), then
    add the new events one at a time in event-time order (one audit row each), and write every
    event whose points or checkpoint changed. Returns True if the score changed."""
    ruleset, now = batch.ruleset, batch.now
    fit, _ = ruleset.fit(engine.profile_of(lead))
    old = [_engine_event(e) for e in history]
    evaluation = engine.evaluate(ruleset, old, max_score=lead.max_score, as_of=now)
    displayed = lead.current_score
    previous = displayed if previous is None else previous  # what the audit log sums to
    changed = evaluation.score != previous
    if changed:
        if not kind:
            kind = ScoreChange.RESCORE if lead.rule_version != ruleset.version else ScoreChange.DECAY
        text = reason or (
            f"rescored under rules v{ruleset.version}" if kind == ScoreChange.RESCORE else f"decay as of {now:%Y-%m-%d %H:%M}Z"
        )
        batch.change(lead, previous=previous, new=evaluation.score, event_type=kind, timestamp=now, reason=text)
    current = evaluation
    events = list(old)
    for event in new_events:
        engine_event = _engine_event(event)
        late = current.last_key is not None and engine_event.key < current.last_key
        events.append(engine_event)
        after = engine.evaluate(ruleset, events, max_score=lead.max_score, as_of=now)
        mine = next(e for e in after.events if e.event.key.event_id == event.event_id)
        event.processed_at, event.points, event.late, event.processed = now, mine.points, late, True
        event.status = EventStatus.PROCESSED
        batch.event_updates[event.id] = event
        batch.processed += 1
        text = f"{event.event_type} {mine.points:+d}"
        if late:
            text = f"late {text}: re-evaluated in event time"
        if mine.contributions:
            text += f" [{_contributions_text(mine.contributions)}]"
        batch.change(
            lead, previous=current.score, new=after.score, event=event, event_type=event.event_type,
            timestamp=event.timestamp, reason=text, late=late, rules=batch.rules_record(mine.contributions),
        )
        current = after
    # Checkpoints and points of every event (stored ones only when they differ).
    by_event_id = {e.event.key.event_id: e for e in current.events}
    for stored in history:
        evaluated = by_event_id[stored.event_id]
        if (stored.points, stored.score_after) != (evaluated.points, evaluated.score_after):
            batch.history_updates.append((stored.id, evaluated.points, evaluated.score_after))
    for event in new_events:
        event.score_after = by_event_id[event.event_id].score_after
    batch.lead_done(
        lead, score=current.score, last_key=current.last_key, model_fields=True, fit_score=fit,
        caps=current.caps.as_dict() if ruleset.stateful else {}, decaying=current.decaying,
    )
    return current.score != displayed


def _write_events(events, *, now, version: int) -> None:
    """One set-based UPDATE per outcome (processed / skipped) instead of a CASE per field."""
    processed, skipped = [], []
    for event in events:
        if event.status == EventStatus.PROCESSED:
            processed.append((event.id, event.points, event.score_after, event.late))
        else:
            skipped.append((event.id, event.points, event.late, event.error))
    common = {"processed": True, "processed_at": now, "rule_version": version}
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
    """Create or update a behaviour rule of the **draft** (it scores once a version is published).
    Validated by the model (``full_clean``: ``ScoringRule.clean``); raises Django's ValidationError."""
    return _draft_row_save(rule or ScoringRule(), fields)


def rule_delete(*, rule) -> None:
    """Remove a behaviour rule from the draft (the published versions keep their snapshot)."""
    rule.delete()


def fit_rule_save(*, rule=None, **fields):
    """Create or update a fit rule of the draft; validated like ``rule_save``."""
    return _draft_row_save(rule or FitRule(), fields)


def fit_rule_delete(*, rule) -> None:
    rule.delete()


def scoring_settings_save(*, draft=None, **fields):
    """Change the draft rule set's settings (match mode, grade thresholds; the singleton row, pk 1);
    validated like ``rule_save``. ``draft``: an instance a form has already changed (the admin)."""
    if draft is not None:
        draft.pk = 1
    return _draft_row_save(draft or settings_draft(), fields)


def _draft_row_save(row, fields: dict):
    for name, value in fields.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()  # the whole row: the admin passes an instance its form has already changed
    return row


def leads_rescore(*, lead_ids: Sequence, actor: str = "", only_outdated: bool = False) -> int:
    """Re-evaluate each lead from all its processed events under the current version (a new
    version, an operator's request). Stored points and checkpoints are rewritten; a lead whose score
    changes gets one ``RESCORE`` ScoreChange, so the audit deltas still sum to the score.
    ``only_outdated``: skip leads already under the current version (the background rescore: a
    drain may have rescored them first). Returns the number of leads whose score changed."""
    changed = 0
    for attempt in run_with_retries():
        with attempt, transaction.atomic():
            changed, changes = _rescore_locked(lead_ids, actor=actor, only_outdated=only_outdated)
            if changes:
                transport.notify_on_commit("score.changes", changes)
    return changed


def _rescore_locked(lead_ids, *, actor: str, only_outdated: bool, kind: str = ScoreChange.RESCORE,
                    reason: str = "") -> tuple[int, list[dict]]:
    leads = leads_lock(lead_ids=lead_ids)
    if not leads:
        return 0, []
    ruleset = _ruleset_for(leads.values())
    batch = _Batch(ruleset=ruleset, stages=_stages_for(leads.values()), now=timezone.now(),
                   cause=_CAUSE_OF_KIND.get(kind) if kind else None)
    if only_outdated:
        leads = {pk: lead for pk, lead in leads.items() if lead.rule_version != ruleset.version}
    history = _events_history(leads.keys())
    rescored = f"rescored under rules v{ruleset.version}" + (f" by {actor}" if actor else "")
    changed = 0
    for lead_id in sorted(leads):
        lead = leads[lead_id]
        # A lead under an older version is rescored by whoever locks it first (the background job, a
        # drain, a decay refresh): whichever it is, the change is that version's one RESCORE row.
        if lead.rule_version != ruleset.version:
            lead_kind, text = ScoreChange.RESCORE, rescored
        else:
            lead_kind, text = kind, reason or (rescored if kind == ScoreChange.RESCORE else "")
        changed += _lead_apply_full(batch, lead, history.get(lead_id, []), [], reason=text, kind=lead_kind)
    batch.write()
    return changed, batch.broadcasts


def leads_decay_refresh(*, batch_size: int = 500, max_seconds: float = 60.0) -> int:
    """The decay refresh (docs/scoring-model.md): re-evaluate every lead holding a decaying
    contribution at ``now``, a batch per transaction, in primary-key order. Returns how many
    leads' scores changed."""
    changed, after = 0, None
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        query = Lead.objects.filter(decaying=True).order_by("pk")
        if after is not None:
            query = query.filter(pk__gt=after)
        ids = list(query.values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        for attempt in run_with_retries():
            with attempt, transaction.atomic():
                count, changes = _rescore_locked(ids, actor="", only_outdated=False, kind=ScoreChange.DECAY)
                if changes:
                    transport.notify_on_commit("score.changes", changes)
        changed += count
        after = ids[-1]
    return changed


def _lead_refold(lead: Lead, *, now, reason: str, cause: str) -> dict | None:
    """Re-evaluate a locked lead from its processed events under the current version (after its
    events or its cap changed). When the audit log no longer sums to the new score (audit rows moved
    with re-attributed events), one ScoreChange carries the difference. Returns the broadcast
    payload when the score changed."""
    audit_total = ScoreChange.objects.filter(lead_id=lead.id).aggregate(total=models.Sum("delta"))["total"] or 0
    displayed = lead.current_score
    batch = _Batch(ruleset=_ruleset_for([lead]), stages=_stages_for([lead]), now=now, cause=cause)
    _lead_apply_full(batch, lead, _events_history([lead.id]).get(lead.id, []), [], reason=reason,
                     kind=ScoreChange.RESCORE, previous=audit_total)
    batch.write()
    if lead.current_score == displayed:
        return None
    return _change_frame(lead, previous=displayed, new=lead.current_score, event_id=None,
                         event_type=ScoreChange.RESCORE, timestamp=now, reason=reason)


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
                _lead_refold(lead, now=now, reason=reason if lead is target else f"events moved to {target.email}",
                             cause=StageCause.MERGE)
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
        change = _lead_refold(lead, now=now, reason=reason, cause=StageCause.MAX_SCORE)
        if change is not None:
            transport.notify_on_commit("score.changes", [change])
    logger.info("lead %s: max score %d -> %d", lead.id, previous, max_score)
    return True


def leads_fit_refresh(*, lead_ids: Sequence) -> int:
    """Recompute the fit score and grade of the given leads under the current version, under their
    locks (a drain writing the grade meanwhile waits, then reads the new fit), and their stage (a
    stage may have a fit threshold). A lead with no scored event yet is marked as scored under the
    current version (its score, 0, is the same under any). Returns how many leads changed."""
    changed = 0
    with transaction.atomic():
        leads = leads_lock(lead_ids=lead_ids, fields=SCORING_LEAD_FIELDS)
        ruleset = _ruleset_for(leads.values())
        stage_writes = _StageWrites(stages=_stages_for(leads.values()), now=timezone.now(),
                                    rule_version=ruleset.version)
        for lead in leads.values():
            fit, _ = ruleset.fit(engine.profile_of(lead))
            grade = ruleset.grade(fit_score=fit, score=lead.current_score)
            fields = {"fit_score": fit, "grade": grade}
            if lead.last_processed_event_time is None:
                fields["rule_version"] = ruleset.version
            if any(getattr(lead, name) != value for name, value in fields.items()):
                Lead.objects.filter(pk=lead.pk).update(**fields)
                changed += 1
            previous_fit = lead.fit_score
            for name, value in fields.items():
                setattr(lead, name, value)
            stage_writes.decide(lead, previous_score=lead.current_score, previous_fit=previous_fit,
                                cause=StageCause.FIT)
        stage_writes.write()
    return changed


def leads_restage(*, lead_ids: Sequence, only_outdated: bool = True) -> int:
    """Decide the stage of the given leads again under the current stage settings, under their locks
    (the background restage after a stage change: cause ``stages``). ``only_outdated``: skip leads
    already decided under the current settings (a drain may have staged them first). Returns how
    many leads changed stage."""
    with transaction.atomic():
        leads = leads_lock(lead_ids=lead_ids, fields=SCORING_LEAD_FIELDS)
        stages = _stages_for(leads.values())
        stage_writes = _StageWrites(stages=stages, now=timezone.now(), rule_version=None)
        for lead_id in sorted(leads):
            lead = leads[lead_id]
            if only_outdated and lead.stage_version == stages.version:
                continue
            stage_writes.decide(lead, previous_score=lead.current_score, previous_fit=lead.fit_score,
                                cause=StageCause.STAGES)
        stage_writes.write()
    return len(stage_writes.changes)


def leads_fit_refresh_notified(lead_ids) -> None:
    for attempt in run_with_retries():
        with attempt:
            leads_fit_refresh(lead_ids=lead_ids)
