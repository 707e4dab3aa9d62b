"""The end-of-run check of bench/chaos.py, as pure functions (no database, no HTTP): what the client
sent and was told, against a snapshot of the database. Unit-tested in bench/tests/.

The expected score of a lead is the fold of ``scoring/engine.py`` (the service's own definition:
events in ``(timestamp, event_id)`` code-point order, rule points, clamped to ``[0, max_score]``)
over the events the client sent for it that the service acknowledged or stored, with the client's
own copy of each event (type, timestamp, id) — never the database's.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import engine  # noqa: E402  (pure: no Django import)

EXAMPLES = 5  # examples kept per kind of violation


@dataclass
class Outcome:
    """What the client was told about one event id, over every attempt."""

    accepted: int = 0
    duplicate: int = 0
    rejected: list[str] = field(default_factory=list)  # 4xx item errors (a valid event: a bug)
    attempts: int = 0

    @property
    def acknowledged(self) -> bool:
        return bool(self.accepted or self.duplicate)


@dataclass
class Snapshot:
    """The rows of the run's leads, read at the end."""

    leads: list[tuple]  # (lead_pk, email, current_score, max_score)
    events: list[tuple]  # (event_pk, event_id, lead_pk, event_type, timestamp, status, points, error)
    changes: list[tuple]  # (lead_pk, event_pk or None, delta, new_score)


@dataclass
class Verdict:
    counts: dict = field(default_factory=dict)
    violations: dict = field(default_factory=lambda: defaultdict(list))  # kind -> examples
    violation_counts: Counter = field(default_factory=Counter)

    def add(self, kind: str, example: str) -> None:
        self.violation_counts[kind] += 1
        if len(self.violations[kind]) < EXAMPLES:
            self.violations[kind].append(example)

    @property
    def ok(self) -> bool:
        return not self.violation_counts


def parse_ts(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected_score(payloads, points: dict[str, int], max_score: int) -> int:
    events = [
        engine.ScoredEvent(engine.EventKey(parse_ts(p["timestamp"]), p["event_id"]), p["event_type"],
                           points.get(p["event_type"], 0))
        for p in payloads
    ]
    return engine.fold(events, max_score=max_score).score


def verify(sent: dict[str, dict], outcomes: dict[str, Outcome], snap: Snapshot, points: dict[str, int],
           *, default_max_score: int = 1000) -> Verdict:
    """``sent``: event_id -> payload (event_id, event_type, timestamp, email) of every distinct id sent."""
    v = Verdict()
    lead_by_pk = {row[0]: row for row in snap.leads}
    stored_by_id: dict[str, list[tuple]] = defaultdict(list)
    for row in snap.events:
        stored_by_id[row[1]].append(row)  # exact string: Python compares code points

    changes_by_event: Counter = Counter()
    delta_sum: Counter = Counter()
    for lead_pk, event_pk, delta, _new in snap.changes:
        delta_sum[lead_pk] += delta
        if event_pk is None:
            v.add("ScoreChange without an event (a rescore nobody asked for)", f"lead {lead_pk}")
        else:
            changes_by_event[event_pk] += 1

    acknowledged = {eid for eid, o in outcomes.items() if o.acknowledged}
    v.counts = {
        "sent ids": len(sent),
        "acknowledged": len(acknowledged),
        "stored rows": len(snap.events),
        "leads": len(snap.leads),
        "score changes": len(snap.changes),
    }

    # Every id the client sent: acknowledged and stored exactly once; never rejected.
    for event_id, payload in sent.items():
        outcome = outcomes.get(event_id, Outcome())
        rows = stored_by_id.get(event_id, [])
        if outcome.rejected:
            v.add("valid event rejected (4xx)", f"{event_id!r}: {outcome.rejected[0]}")
        if not outcome.acknowledged and not outcome.rejected:
            v.add("never acknowledged (every attempt failed)", f"{event_id!r} ({outcome.attempts} attempts)")
        if outcome.acknowledged and not rows:
            v.add("lost: acknowledged, not stored",
                  f"{event_id!r} (answered accepted x{outcome.accepted}, duplicate x{outcome.duplicate})")
        if len(rows) > 1:
            v.add("doubled: stored more than once", f"{event_id!r} x{len(rows)}")
        for row in rows[:1]:
            lead = lead_by_pk.get(row[2])
            if lead is None or lead[1] != payload["email"].lower():
                v.add("stored on the wrong lead", f"{event_id!r}: {lead[1] if lead else row[2]}")
            if row[3] != payload["event_type"] or parse_ts(row[4]) != parse_ts(payload["timestamp"]):
                v.add("stored with other data", f"{event_id!r}: {row[3]} {row[4]}")

    statuses = Counter(row[5] for row in snap.events)
    v.counts.update({f"status {name}": n for name, n in sorted(statuses.items())})
    for row in snap.events:
        event_pk, event_id, status = row[0], row[1], row[5]
        if event_id not in sent:
            v.add("stored id that was never sent", repr(event_id))
        if status != "processed":
            v.add(f"event left {status}", f"{event_id!r}" + (f": {row[7][:120]}" if row[7] else ""))
        n = changes_by_event.get(event_pk, 0)
        if status == "processed" and n == 0:
            v.add("processed without a ScoreChange", repr(event_id))
        if n > 1:
            v.add("more than one ScoreChange for an event", f"{event_id!r} x{n}")

    # Scores: each lead against the fold of its events as the client knows them.
    by_email: dict[str, list[dict]] = defaultdict(list)
    for event_id, payload in sent.items():
        if event_id in acknowledged or stored_by_id.get(event_id):
            by_email[payload["email"].lower()].append(payload)
    leads_by_email = {row[1]: row for row in snap.leads}
    stored_by_lead: dict = defaultdict(list)
    for row in snap.events:
        stored_by_lead[row[2]].append(row)
    for email, payloads in sorted(by_email.items()):
        lead = leads_by_email.get(email)
        if lead is None:
            v.add("lead missing", email)
            continue
        lead_pk, _, current, max_score = lead
        want = expected_score(payloads, points, max_score if max_score is not None else default_max_score)
        if current != want:
            v.add("wrong score (vs the fold of the events sent)", f"{email}: {current}, expected {want}")
        if delta_sum[lead_pk] != current:
            v.add("ScoreChange deltas do not sum to the score", f"{email}: sum {delta_sum[lead_pk]}, score {current}")
        db_events = [
            engine.ScoredEvent(engine.EventKey(parse_ts(r[4]), r[1]), r[3], r[6] or 0)
            for r in stored_by_lead[lead_pk] if r[5] == "processed"
        ]
        db_fold = engine.fold(db_events, max_score=max_score).score
        if db_fold != current:
            v.add("score != fold of the stored events", f"{email}: {current}, stored fold {db_fold}")
    v.counts["leads checked"] = len(by_email)
    return v
