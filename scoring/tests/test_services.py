"""Scoring against a real database: given stored events, when they are processed in any order
and in any batches, then each lead's score equals the event-time fold of its events."""

import random
from datetime import timedelta

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from conftest import T0, ensure_default_rules, event_payload
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring import engine
from scoring.models import ScoreChange, ScoringRule
from scoring.rulesets import ruleset_current, stageset_current
from scoring.services import events_process

POINTS = {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}


def expected_fold(events, max_score=1000):
    return engine.fold(
        [engine.ScoredEvent(engine.EventKey(e["ts"], e["event_id"]), e["type"], POINTS[e["type"]]) for e in events],
        max_score=max_score,
    ).score


def ingest(*payloads):
    return event_ingest(items=list(payloads), source="test")


@pytest.mark.django_db(transaction=True)
def test_in_order_events_score_and_log_one_change_each():
    ingest(event_payload("a", minutes=0), event_payload("b", event_type="DEMO_REQUEST", minutes=1))
    lead = Lead.objects.get(email="ann@example.com")
    assert lead.current_score == 55
    changes = list(ScoreChange.objects.filter(lead=lead).order_by("id"))
    assert [(c.previous_score, c.new_score, c.delta) for c in changes] == [(0, 5, 5), (5, 55, 50)]
    assert set(Event.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}


@pytest.mark.django_db(transaction=True)
def test_late_event_is_refolded_and_logged_as_late():
    # Given a lead near its cap, scored in order,
    ingest(event_payload("b", event_type="PURCHASE", minutes=10))
    lead = Lead.objects.get()
    Lead.objects.filter(pk=lead.pk).update(max_score=120)
    ingest(event_payload("c", event_type="FORM_SUBMIT", minutes=20))
    assert Lead.objects.get().current_score == 120
    # when an older event arrives late,
    ingest(event_payload("a", event_type="DEMO_REQUEST", minutes=5))
    # then the score equals the fold 50 -> 120 (cap) -> 120, and the log says it was late.
    lead = Lead.objects.get()
    assert lead.current_score == 120
    late = ScoreChange.objects.get(event__event_id="a")
    assert late.late and "late" in late.reason
    assert Event.objects.get(event_id="a").late
    assert sum(ScoreChange.objects.values_list("delta", flat=True)) == lead.current_score
    # and the stored checkpoints were re-folded
    assert dict(Event.objects.values_list("event_id", "score_after")) == {"a": 50, "b": 120, "c": 120}


@pytest.mark.django_db(transaction=True)
def test_one_batch_of_late_events_for_many_leads_refolds_each_from_its_own_position(django_assert_max_num_queries):
    # Given 30 leads with a scored history (some near their cap, some with ties on the timestamp),
    rng = random.Random(7)
    history, late = {}, {}
    for n in range(30):
        email = f"late{n}@example.com"
        history[email] = [
            {"event_id": f"h{n}-{i:02d}", "type": rng.choice(list(POINTS)), "ts": T0 + timedelta(minutes=10 * (i // 2))}
            for i in range(rng.randint(1, 8))
        ]
        Lead.objects.create(email=email, max_score=150 if n % 3 == 0 else 1000)
        ingest(*[event_payload(e["event_id"], event_type=e["type"], email=email,
                               minutes=(e["ts"] - T0) / timedelta(minutes=1)) for e in history[email]])
    # when one batch brings, for every lead, events before, between and after what is stored
    # (processed as one transaction: the tails of all 30 leads are loaded together),
    for n, email in enumerate(history):
        late[email] = [
            {"event_id": f"l{n}-{i}", "type": rng.choice(list(POINTS)), "ts": T0 + timedelta(minutes=rng.randint(-5, 45))}
            for i in range(rng.randint(1, 3))
        ]
    with override_settings(TARGETGRID_QUEUE="embedded"):  # stored only; scored below in one call
        from unittest import mock

        with mock.patch("config.transport.publish", return_value=True):
            ingest(*[event_payload(e["event_id"], event_type=e["type"], email=email,
                                   minutes=(e["ts"] - T0) / timedelta(minutes=1))
                     for email, events in late.items() for e in events])
    pending = list(Event.objects.filter(status=EventStatus.PENDING).values_list("id", flat=True))
    assert len(pending) == sum(len(v) for v in late.values())
    # (+3 for the stages the late events move leads into: one UPDATE, the StageChange rows, the
    # AlertEvent rows; the alerts' fan-out is a task of its own, not sent here)
    with mock.patch("config.transport.publish", return_value=True), django_assert_max_num_queries(17):
        events_process(event_ids=pending)
    # then every lead's score and every stored checkpoint equal the event-time fold of all its events
    for email, events in history.items():
        lead = Lead.objects.get(email=email)
        ordered = sorted(events + late[email], key=lambda e: (e["ts"], e["event_id"]))
        assert lead.current_score == expected_fold(ordered, max_score=lead.max_score), email
        stored = dict(Event.objects.filter(lead=lead).values_list("event_id", "score_after"))
        for i, e in enumerate(ordered):
            assert stored[e["event_id"]] == expected_fold(ordered[: i + 1], max_score=lead.max_score), (email, e)
        assert sum(ScoreChange.objects.filter(lead=lead).values_list("delta", flat=True)) == lead.current_score


@pytest.mark.django_db(transaction=True)
@override_settings(TARGETGRID_LATE_EVENTS="drop")
def test_drop_mode_skips_late_events():
    ingest(event_payload("b", minutes=10))
    ingest(event_payload("a", event_type="PURCHASE", minutes=5))
    lead = Lead.objects.get()
    assert lead.current_score == 5
    skipped = Event.objects.get(event_id="a")
    assert skipped.status == EventStatus.SKIPPED and skipped.late
    assert not ScoreChange.objects.filter(event=skipped).exists()


@pytest.mark.django_db(transaction=True)
def test_processing_twice_changes_nothing():
    ingest(event_payload("a"))
    event = Event.objects.get()
    result = events_process(event_ids=[event.pk])
    assert result.processed == 0
    assert ScoreChange.objects.count() == 1
    assert Lead.objects.get().current_score == 5


@pytest.mark.django_db(transaction=True)
def test_a_draft_edit_scores_nothing_until_published_then_the_lead_is_refolded_under_the_new_version(publish):
    ingest(event_payload("a"))
    # Given a draft edit that is not published: events still score under v1
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=7)
    ingest(event_payload("b", minutes=1))
    lead = Lead.objects.get()
    assert (lead.current_score, lead.rule_version) == (10, 1)
    # When it is published, the lead's next event first re-evaluates its history under v2 (one
    # RESCORE row) and then scores under v2: the score is the fold of all its events under v2.
    assert publish() == 2
    ingest(event_payload("c", minutes=2))
    lead.refresh_from_db()
    assert (lead.current_score, lead.rule_version) == (21, 2)
    assert list(Event.objects.order_by("timestamp").values_list("points", "rule_version")) == [(7, 2), (7, 2), (7, 2)]
    rescore = ScoreChange.objects.get(event_type=ScoreChange.RESCORE)
    assert (rescore.previous_score, rescore.new_score, rescore.rule_version) == (10, 14, 2)
    # A disabled rule scores 0 once published: the whole history folds to 0.
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(enabled=False)
    publish()
    ingest(event_payload("d", minutes=3))
    lead.refresh_from_db()
    assert lead.current_score == 0
    assert sum(ScoreChange.objects.values_list("delta", flat=True)) == 0


@pytest.mark.django_db(transaction=True)
def test_many_leads_in_one_transaction_with_pinned_query_count(django_assert_max_num_queries, settings):
    # Given 40 pending events for 20 leads stored without scoring,
    settings.TARGETGRID_QUEUE = "celery-off"  # nothing is dispatched; we call the service ourselves
    from unittest import mock

    with mock.patch("config.transport.publish", return_value=True):
        ingest(*[event_payload(f"e{i}", minutes=i, email=f"l{i % 20}@example.com") for i in range(40)])
    ids = list(Event.objects.values_list("id", flat=True))
    ruleset_current()  # a published version is compiled once per process (steady state)
    stageset_current()
    # when one call scores them all, then the number of queries does not grow with the batch.
    # BEGIN, lead ids, lock leads, events, current version, current stage settings, insert changes,
    # update events, update leads, the new leads' first stage, COMMIT, and the leaderboard read for
    # the broadcast.
    with django_assert_max_num_queries(12):
        result = events_process(event_ids=ids)
    assert result.processed == 40
    assert set(Lead.objects.values_list("current_score", flat=True)) == {10}


class TestShuffledBatches(HypothesisTestCase):
    """Property: any shuffle, split into batches and duplication of a stream gives the in-order fold."""

    @classmethod
    def setUpTestData(cls):
        ensure_default_rules()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        stream=st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 20), st.sampled_from(sorted(POINTS))), min_size=1, max_size=25
        ),
        seed=st.integers(0, 10_000),
        batch=st.integers(1, 7),
    )
    def test_shuffled_duplicated_batches(self, stream, seed, batch):
        Lead.objects.all().delete()
        events = [
            {"event_id": f"e{i}", "lead": lead, "ts": T0 + timedelta(minutes=minute), "type": etype}
            for i, (lead, minute, etype) in enumerate(stream)
        ]
        rng = random.Random(seed)
        arrivals = events + rng.sample(events, k=len(events) // 3)
        rng.shuffle(arrivals)
        for start in range(0, len(arrivals), batch):
            with self.captureOnCommitCallbacks(execute=True):
                ingest(
                    *[
                        {
                            "event_id": e["event_id"],
                            "event_type": e["type"],
                            "timestamp": e["ts"].isoformat(),
                            "email": f"lead{e['lead']}@example.com",
                        }
                        for e in arrivals[start : start + batch]
                    ]
                )
        for lead_no in {e["lead"] for e in events}:
            lead = Lead.objects.get(email=f"lead{lead_no}@example.com")
            mine = [e for e in events if e["lead"] == lead_no]
            assert lead.current_score == expected_fold(mine)
            assert sum(ScoreChange.objects.filter(lead=lead).values_list("delta", flat=True)) == lead.current_score
            processed = set(Event.objects.filter(lead=lead, status="processed").values_list("event_id", flat=True))
            assert processed == {e["event_id"] for e in mine}
        assert ScoreChange.objects.count() == len(events)


@pytest.mark.django_db(transaction=True)
def test_rescore_applies_current_rules_to_history_with_one_audit_row(publish):
    from scoring.services import leads_rescore

    ingest(event_payload("a"), event_payload("b", minutes=1, event_type="EMAIL_OPEN"))
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=25)
    publish()
    lead = Lead.objects.get()
    assert leads_rescore(lead_ids=[lead.id], actor="ops") == 1
    lead.refresh_from_db()
    assert lead.current_score == 35
    rescore = ScoreChange.objects.get(event_type=ScoreChange.RESCORE)
    assert (rescore.previous_score, rescore.new_score, rescore.event) == (15, 35, None)
    assert "by ops" in rescore.reason
    assert sum(ScoreChange.objects.values_list("delta", flat=True)) == 35
    assert dict(Event.objects.values_list("event_id", "score_after")) == {"a": 25, "b": 35}
    # a later late event re-folds from the rewritten checkpoints
    ingest(event_payload("c", minutes=-5, event_type="EMAIL_OPEN"))
    lead.refresh_from_db()
    assert lead.current_score == 45
    assert leads_rescore(lead_ids=[lead.id]) == 0


@pytest.mark.django_db(transaction=True)
def test_sweep_scores_events_left_pending(monkeypatch):
    # Given events stored while the queue was unreachable (the wake-up was lost),
    from config import transport
    from scoring.services import events_requeue_pending

    monkeypatch.setattr(transport, "publish", lambda *args, **kwargs: False)
    ingest(event_payload("a"), event_payload("b", minutes=1))
    monkeypatch.undo()
    assert Event.objects.filter(status=EventStatus.PENDING).count() == 2
    # when the sweep runs (young events wait for their own wake-up first),
    assert events_requeue_pending(older_than_seconds=3600) == 0
    assert events_requeue_pending(older_than_seconds=0) == 2
    # then they are scored exactly once.
    assert Lead.objects.get().current_score == 10
    assert events_requeue_pending(older_than_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_a_stale_lead_hint_scores_nothing_wrongly_and_leaves_the_event_pending(django_assert_num_queries):
    # given a stored, pending event of ann's lead, and bob's lead (as if the event had moved)
    with override_settings(TARGETGRID_QUEUE="embedded"):
        from unittest import mock

        with mock.patch("config.transport.publish", return_value=True):
            ingest(event_payload("hint-1"), event_payload("hint-0", email="bob@example.com"))
    event = Event.objects.get(event_id="hint-1")
    bob = Lead.objects.get(email="bob@example.com")
    # when a drain passes a lead hint that does not match the event's lead
    assert events_process(event_ids=[event.id], lead_ids=[bob.id]).processed == 0
    # then the event is untouched (still pending, no score change), and a later call scores it
    event.refresh_from_db()
    assert event.status == EventStatus.PENDING and not ScoreChange.objects.filter(event=event).exists()
    assert events_process(event_ids=[event.id]).processed == 1
    assert Lead.objects.get(email="ann@example.com").current_score == 5
