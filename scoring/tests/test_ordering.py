"""Ordering and identity against the real database: event ids are compared by code point, as the
engine compares them in Python (``(timestamp, event_id)``), on every backend and collation.

MariaDB's ``utf8mb4_unicode_ci`` compares ``evt-A`` = ``evt-a``, ``straße`` = ``strasse`` and
full-width = ASCII, and sorts ``a-1`` before ``B-1``; SQLite compares bytes. These tests run on
SQLite in the normal suite and on MariaDB / PostgreSQL with TEST_DATABASE_URL (CI)."""

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from conftest import T0, ensure_default_rules, event_payload
from events.models import Event, EventStatus
from events.services import DUPLICATE, event_ingest
from leads.models import Lead
from scoring import engine
from scoring.models import ScoreChange

POINTS = {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}


def ingest(*payloads):
    return event_ingest(items=list(payloads), source="test")


@pytest.mark.django_db(transaction=True)
def test_late_event_tying_on_timestamp_folds_in_code_point_order():
    # Given `a-1`@T and `z`@T+10s, scored,
    ingest(event_payload("a-1", minutes=0), event_payload("z", minutes=10 / 60))
    assert Lead.objects.get().current_score == 10
    # when `B-1`@T arrives (code point order: "B-1" < "a-1"; a case-insensitive collation says
    # the opposite, and the tail query then picks "a-1" as its predecessor),
    result = ingest(event_payload("B-1", event_type="DEMO_REQUEST", minutes=0))
    # then it is stored, scored first of the three, and the lead equals the fold.
    assert [item.status for item in result.items] == ["accepted"]
    lead = Lead.objects.get()
    assert lead.current_score == 60
    assert dict(Event.objects.values_list("event_id", "status")) == dict.fromkeys(["B-1", "a-1", "z"], "processed")
    assert dict(Event.objects.values_list("event_id", "score_after")) == {"B-1": 50, "a-1": 55, "z": 60}
    assert sum(ScoreChange.objects.values_list("delta", flat=True)) == 60


# Ids a case-, accent-, width- or pad-insensitive collation confuses, each distinct by code point.
CONFUSABLE = ["evt-a", "evt-A", "EVT-a", "evt-á", "evt-à", "evt-ä", "straße", "strasse", "STRASSE", "ｅｖｔ-ａ",
              "evt-a\u0301", "e", "é", "E", "a-1", "B-1", "b-1", "A-1", "z", "Z", "_", "-", "evt-ａ", "ǅ", "ǆ", "Ǆ"]


class TestConfusableIds(HypothesisTestCase):
    """Property: ids that differ only in case, accents or width, with ties on the timestamp,
    ingested in any order across batches and with duplicates, are distinct events, duplicates
    are answered as duplicates, and each lead equals the event-time fold in code-point order."""

    @classmethod
    def setUpTestData(cls):
        ensure_default_rules()

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        stream=st.lists(
            st.tuples(st.sampled_from(CONFUSABLE), st.integers(0, 1), st.integers(0, 3), st.sampled_from(sorted(POINTS))),
            min_size=1,
            max_size=20,
            unique_by=lambda item: item[0],
        ),
        seed=st.integers(0, 10_000),
        batch=st.integers(1, 6),
        cap=st.sampled_from([60, 1000]),
    )
    def test_confusable_ids_fold_in_code_point_order(self, stream, seed, batch, cap):
        Lead.objects.all().delete()
        for lead_no in range(2):
            Lead.objects.create(email=f"lead{lead_no}@example.com", max_score=cap)
        events = [
            {"event_id": event_id, "lead": lead, "ts": T0 + timedelta(seconds=second), "type": etype}
            for event_id, lead, second, etype in stream
        ]
        rng = random.Random(seed)
        arrivals = events + rng.sample(events, k=len(events) // 2)
        rng.shuffle(arrivals)
        seen, statuses = set(), []
        for start in range(0, len(arrivals), batch):
            part = arrivals[start : start + batch]
            with self.captureOnCommitCallbacks(execute=True):
                result = ingest(
                    *[
                        {
                            "event_id": e["event_id"],
                            "event_type": e["type"],
                            "timestamp": e["ts"].isoformat(),
                            "email": f"lead{e['lead']}@example.com",
                        }
                        for e in part
                    ]
                )
            for e, item in zip(part, result.items):
                statuses.append((e["event_id"], item.status, e["event_id"] in seen, item.errors))
                seen.add(e["event_id"])
        # Every first arrival is accepted, every repeat is a duplicate (never a bogus rejection).
        assert [(eid, status) for eid, status, repeat, _ in statuses] == [
            (eid, DUPLICATE if repeat else "accepted") for eid, _, repeat, _ in statuses
        ]
        stored = dict(Event.objects.values_list("event_id", "status"))
        assert stored == {e["event_id"]: EventStatus.PROCESSED for e in events}
        for lead_no in range(2):
            lead = Lead.objects.get(email=f"lead{lead_no}@example.com")
            mine = sorted(
                (e for e in events if e["lead"] == lead_no), key=lambda e: (e["ts"], e["event_id"])
            )  # code-point order, as Python compares str
            score, after = 0, {}
            for e in mine:
                score = engine.clamp(score + POINTS[e["type"]], cap)
                after[e["event_id"]] = score
            assert engine.fold(
                [engine.ScoredEvent(engine.EventKey(e["ts"], e["event_id"]), e["type"], POINTS[e["type"]]) for e in mine],
                max_score=cap,
            ).score == score
            assert lead.current_score == score
            assert lead.last_processed_event_id == (mine[-1]["event_id"] if mine else "")
            assert dict(Event.objects.filter(lead=lead).values_list("event_id", "score_after")) == after
            assert sum(ScoreChange.objects.filter(lead=lead).values_list("delta", flat=True)) == score
        assert ScoreChange.objects.count() == len(events)
