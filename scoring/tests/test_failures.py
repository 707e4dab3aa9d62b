"""One bad event never blocks anything else: a batch that fails is split (per lead, then per event),
the culprit is marked ``failed`` with its reason, every other event is scored, and the failed
event can be retried (service, admin action, API)."""

from datetime import datetime, timedelta
from functools import partial
from unittest import mock

import pytest
from django.db import IntegrityError, OperationalError, connection
from django.test import override_settings

from config.retry import run_with_retries
from conftest import T0, event_payload
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring import engine
from scoring.models import ScoreChange
from scoring.services import events_process, events_retry

POINTS = {"PAGE_VIEW": 5, "EMAIL_OPEN": 10, "FORM_SUBMIT": 20, "DEMO_REQUEST": 50, "PURCHASE": 100}
TYPES = list(POINTS)


def store_pending(*payloads):
    """Store events without scoring them (as if the wake-up had not run yet)."""
    with mock.patch("config.transport.publish", return_value=True):
        result = event_ingest(items=list(payloads), source="test")
    assert result.totals["accepted"] == len(payloads)


def many_leads_with_one_culprit(culprit="bad-7-2"):
    """12 leads x 4 events; the culprit is the 3rd event of lead 7 (two before it, one after)."""
    payloads = [
        event_payload(f"bad-{n}-{i}", event_type=TYPES[(n + i) % len(TYPES)], minutes=i, email=f"iso{n}@example.com")
        for n in range(12)
        for i in range(4)
    ]
    store_pending(*payloads)
    return payloads, culprit


@pytest.fixture
def fault_for(monkeypatch):
    """Make the engine raise ``error`` when it folds the event with the given event_id."""

    def install(event_id, error):
        original = engine.LeadTimeline.apply

        def apply(self, event):
            if event.key.event_id == event_id:
                raise error
            return original(self, event)

        monkeypatch.setattr(engine.LeadTimeline, "apply", apply)
        return monkeypatch

    return install


def fold_of(payloads, *, without=()):
    """Each lead's score: the event-time fold of its events, leaving out ``without``."""
    by_email = {}
    for p in payloads:
        if p["event_id"] not in without:
            key = engine.EventKey(datetime.fromisoformat(p["timestamp"]), p["event_id"])
            by_email.setdefault(p["email"], []).append(engine.ScoredEvent(key, p["event_type"], POINTS[p["event_type"]]))
    return {email: engine.fold(events, max_score=1000).score for email, events in by_email.items()}


@pytest.mark.django_db(transaction=True)
def test_a_failing_event_is_marked_failed_and_every_other_event_of_the_batch_is_scored(fault_for):
    # given 48 pending events of 12 leads, one of which makes scoring raise
    payloads, culprit = many_leads_with_one_culprit()
    fault_for(culprit, ValueError("rule lookup exploded for this event"))

    # when the whole batch is processed as one call (one transaction, as a drain chunk)
    result = events_process(event_ids=list(Event.objects.values_list("id", flat=True)))

    # then the culprit alone is failed, with its reason; every other event is scored
    assert (result.processed, result.failed) == (47, 1)
    bad = Event.objects.get(event_id=culprit)
    assert bad.status == EventStatus.FAILED and not bad.processed
    assert bad.error == "ValueError: rule lookup exploded for this event"
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert Event.objects.filter(status=EventStatus.PROCESSED).count() == 47
    assert not ScoreChange.objects.filter(event=bad).exists()
    # and each lead equals the fold of its scored events (the culprit's lead: without it, including
    # its event after the culprit)
    expected = fold_of(payloads, without={culprit})
    assert {lead.email: lead.current_score for lead in Lead.objects.all()} == expected
    for lead in Lead.objects.all():
        assert sum(ScoreChange.objects.filter(lead=lead).values_list("delta", flat=True)) == lead.current_score


@pytest.mark.django_db(transaction=True)
def test_a_database_error_of_one_event_is_isolated_too(fault_for):
    # given a culprit whose failure is a database refusal (not transient)
    payloads, culprit = many_leads_with_one_culprit("bad-3-0")
    fault_for(culprit, IntegrityError(4025, "CONSTRAINT failed"))
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    assert dict(Event.objects.filter(status=EventStatus.FAILED).values_list("event_id", "error")) == {
        culprit: "IntegrityError: (4025, 'CONSTRAINT failed')"
    }
    assert Event.objects.filter(status=EventStatus.PROCESSED).count() == 47


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error",
    [
        OperationalError(2006, "MySQL server has gone away"),
        OperationalError(1213, "Deadlock found when trying to get lock"),
        OperationalError("server closed the connection unexpectedly"),
    ],
    ids=["gone-away", "deadlock", "postgres-connection-lost"],
)
def test_a_transient_database_error_propagates_and_blames_no_event(fault_for, error, monkeypatch):
    # given a batch whose scoring hits a lost connection / a deadlock (retries exhausted at once)
    monkeypatch.setattr("scoring.services.run_with_retries", partial(run_with_retries, 1))
    payloads, culprit = many_leads_with_one_culprit()
    fault_for(culprit, error)
    # when it is processed, the error reaches the caller (the Celery task retries with back-off)
    with pytest.raises(OperationalError):
        events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    # and nothing is marked failed or half-scored
    assert Event.objects.filter(status=EventStatus.PENDING).count() == 48
    assert not ScoreChange.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_event_blocks_neither_its_lead_nor_a_retry_and_the_retry_folds_it_in(fault_for):
    # given a lead whose second event failed
    store_pending(*(event_payload(f"r-{i}", minutes=i, event_type="EMAIL_OPEN") for i in range(3)))
    undo = fault_for("r-1", RuntimeError("boom"))
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    assert Event.objects.get(event_id="r-1").status == EventStatus.FAILED
    assert Lead.objects.get().current_score == 20
    # when later events of the same lead arrive, they are scored (inline mode: at once)
    event_ingest(items=[event_payload("r-9", minutes=9, event_type="PURCHASE")], source="test")
    assert Lead.objects.get().current_score == 120

    # when the cause is fixed and the failed event is retried
    undo.undo()
    failed = Event.objects.get(event_id="r-1")
    assert events_retry(event_ids=[failed.id]) == 1
    # then it is scored as a late event, the lead equals the fold of all four, the audit sums up
    failed.refresh_from_db()
    assert (failed.status, failed.error, failed.late) == (EventStatus.PROCESSED, "", True)
    lead = Lead.objects.get()
    assert lead.current_score == 130
    assert dict(Event.objects.values_list("event_id", "score_after")) == {"r-0": 10, "r-1": 20, "r-2": 30, "r-9": 130}
    assert sum(ScoreChange.objects.values_list("delta", flat=True)) == 130
    # and a second retry of the same event changes nothing
    assert events_retry(event_ids=[failed.id]) == 0
    assert ScoreChange.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_retry_leaves_events_that_are_not_failed_alone(fault_for):
    store_pending(event_payload("n-1"))
    event = Event.objects.get()
    assert events_retry(event_ids=[event.id]) == 0  # pending: nothing to retry
    assert Event.objects.get().status == EventStatus.PENDING
    events_process(event_ids=[event.id])
    assert events_retry(event_ids=[event.id]) == 0  # processed: nothing to retry
    assert Event.objects.get().status == EventStatus.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_retry_wakes_the_event_partition_after_commit_in_celery_mode(fault_for, monkeypatch):
    store_pending(event_payload("c-1"))
    fault_for("c-1", RuntimeError("boom"))
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    event = Event.objects.get()
    woken = []

    def wake(*, partitions, force=False):  # when, and in which transaction state, the wake-up is sent
        woken.append((sorted(partitions), connection.in_atomic_block))

    monkeypatch.setattr("scoring.wakeups.partitions_wake", wake)
    with override_settings(TARGETGRID_QUEUE="celery"):
        assert events_retry(event_ids=[event.id]) == 1
    assert woken == [([event.partition], False)]  # after commit, not inside the transaction
    assert Event.objects.get().status == EventStatus.PENDING


def failed_event(event_id="f-1", *, minutes=0, email="ann@example.com"):
    """A failed event of a lead (as the drain leaves it), next to an earlier scored one."""
    event_ingest(items=[event_payload(f"{event_id}-before", minutes=minutes - 1, email=email)], source="test")
    lead = Lead.objects.get(email=email)
    return Event.objects.create(
        event_id=event_id, lead=lead, event_type="EMAIL_OPEN", timestamp=T0 + timedelta(minutes=minutes),
        status=EventStatus.FAILED, error="RuntimeError: boom", partition=Event.objects.get(event_id=f"{event_id}-before").partition,
    )


@pytest.mark.django_db(transaction=True)
def test_api_shows_the_error_and_retries_a_failed_event_by_id_or_event_id(api):
    # given a failed event
    event = failed_event("api/1")
    # the API shows its status and reason
    listed = api.get(f"/api/events/lead/{event.lead_id}").json()["results"]
    assert {e["event_id"]: (e["status"], e["error"]) for e in listed}["api/1"] == ("failed", "RuntimeError: boom")

    # when it is retried through the API (by its client event_id, which may hold a slash)
    response = api.post("/api/events/api/1/retry")
    # then 200 with the event, scored again (inline mode scores after commit), the error cleared
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "retried"
    assert (body["event"]["event_id"], body["event"]["status"], body["event"]["error"]) == ("api/1", "processed", "")
    assert Lead.objects.get().current_score == 15

    # and a second retry is a 409 naming the status; by its id too
    again = api.post(f"/api/events/{event.id}/retry")
    assert again.status_code == 409
    assert again.json()["errors"] == {"status": ["is processed, not failed"]}


@pytest.mark.django_db(transaction=True)
def test_api_retry_of_an_unknown_event_is_a_json_404_and_it_needs_a_key(api, anon):
    response = api.post("/api/events/nope/retry")
    assert response.status_code == 404 and response.json()["detail"] == "No event 'nope'."
    event = failed_event()
    assert anon.post(f"/api/events/{event.id}/retry").status_code in (401, 403)
    assert Event.objects.get(pk=event.pk).status == EventStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_admin_action_retries_the_selected_failed_events_only(client, staff_user):
    # given a failed event and a processed one
    event = failed_event()
    done = Event.objects.get(event_id="f-1-before")
    client.force_login(staff_user)
    # when the operator retries both from the changelist
    response = client.post(
        "/admin/events/event/",
        {"action": "retry_failed", "_selected_action": [str(event.id), str(done.id)]},
        follow=True,
    )
    # then the failed one is scored, the other left alone, and the message says so
    assert b"Sent 1 failed event back to scoring. 1 not failed were left alone." in response.content
    event.refresh_from_db()
    assert (event.status, event.error) == (EventStatus.PROCESSED, "")
    assert Lead.objects.get().current_score == 15
    # and the existing requeue action is still offered next to it
    page = client.get("/admin/events/event/").content
    assert b"retry_failed" in page and b"requeue_selected" in page
