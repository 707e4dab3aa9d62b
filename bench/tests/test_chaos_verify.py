"""The end-of-run check of bench/chaos.py finds each kind of violation (and none on a clean run).

Pure: no database, no server. Run with `.venv/bin/pytest -q bench/tests`.
"""

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos_verify import Outcome, Snapshot, expected_score, verify  # noqa: E402

POINTS = {"PAGE_VIEW": 5, "PURCHASE": 100, "UNSUBSCRIBE": -30}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def payload(event_id, event_type, seconds, email="a@chaos.example"):
    ts = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {"event_id": event_id, "event_type": event_type, "timestamp": ts, "email": email}


def clean_run():
    """Two leads; 'evt-A' and 'evt-a' are distinct events; scores as the service should leave them."""
    sent = {
        "evt-A": payload("evt-A", "PURCHASE", 10),
        "evt-a": payload("evt-a", "UNSUBSCRIBE", 10),  # same timestamp: "evt-A" < "evt-a" by code point
        "straße": payload("straße", "PAGE_VIEW", 5),
        "strasse": payload("strasse", "PAGE_VIEW", 20, email="b@chaos.example"),
    }
    outcomes = {eid: Outcome(accepted=1, attempts=1) for eid in sent}
    # Lead a: PAGE_VIEW +5 (5), PURCHASE +100 (105), UNSUBSCRIBE -30 (75). Lead b: 5.
    leads = [("L1", "a@chaos.example", 75, 1000), ("L2", "b@chaos.example", 5, 1000)]
    naive = lambda s: (T0 + timedelta(seconds=s)).replace(tzinfo=None)  # noqa: E731  (as MySQLdb returns it)
    events = [
        ("E1", "evt-A", "L1", "PURCHASE", naive(10), "processed", 100, ""),
        ("E2", "evt-a", "L1", "UNSUBSCRIBE", naive(10), "processed", -30, ""),
        ("E3", "straße", "L1", "PAGE_VIEW", naive(5), "processed", 5, ""),
        ("E4", "strasse", "L2", "PAGE_VIEW", naive(20), "processed", 5, ""),
    ]
    changes = [("L1", "E3", 5, 5), ("L1", "E1", 100, 105), ("L1", "E2", -30, 75), ("L2", "E4", 5, 5)]
    return sent, outcomes, Snapshot(leads=leads, events=events, changes=changes)


def test_a_clean_run_has_no_violation():
    sent, outcomes, snap = clean_run()

    verdict = verify(sent, outcomes, snap, POINTS)

    assert verdict.ok, dict(verdict.violations)
    assert verdict.counts["leads checked"] == 2


def test_the_fold_orders_ties_by_code_point_and_clamps():
    # Given the same timestamp, "B" sorts before "a" by code point (not under a _ci collation)
    events = [payload("a", "UNSUBSCRIBE", 0), payload("B", "PURCHASE", 0)]

    # then PURCHASE is applied first (100), then -30 -> 70; the other order would floor at 0 first.
    assert expected_score(events, POINTS, 1000) == 70
    assert expected_score([payload("x", "PURCHASE", 0)], POINTS, 50) == 50


@pytest.mark.parametrize(
    "damage, kind",
    [
        (lambda s, o, snap: snap.events.pop(1), "lost: acknowledged, not stored"),
        (lambda s, o, snap: snap.events.append(snap.events[0]), "doubled: stored more than once"),
        (lambda s, o, snap: snap.changes.append(("L1", "E1", 0, 75)), "more than one ScoreChange for an event"),
        (lambda s, o, snap: snap.changes.pop(0), "ScoreChange deltas do not sum to the score"),
        (lambda s, o, snap: snap.leads.__setitem__(0, ("L1", "a@chaos.example", 80, 1000)),
         "wrong score (vs the fold of the events sent)"),
        (lambda s, o, snap: snap.events.__setitem__(3, snap.events[3][:5] + ("pending", None, "")),
         "event left pending"),
        (lambda s, o, snap: o.__setitem__("evt-a", Outcome(rejected=["400 the lead was deleted"])),
         "valid event rejected (4xx)"),
        (lambda s, o, snap: o.__setitem__("evt-a", Outcome(attempts=9)), "never acknowledged (every attempt failed)"),
        (lambda s, o, snap: snap.events.__setitem__(1, ("E2", "EVT-A", *snap.events[1][2:])),
         "stored id that was never sent"),
    ],
)
def test_each_kind_of_damage_is_found(damage, kind):
    sent, outcomes, snap = clean_run()
    damage(sent, outcomes, snap)

    verdict = verify(sent, outcomes, snap, POINTS)

    assert kind in verdict.violation_counts, dict(verdict.violations)
