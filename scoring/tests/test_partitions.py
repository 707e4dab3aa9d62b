"""Partitioned drains (Celery mode): one wake-up per partition however many requests arrive, one
drain per partition at a time, and every pending row scored once. Needs a real Redis."""

import os
import time
import uuid

import pytest
from django.db import OperationalError
from django.test import override_settings

from conftest import event_payload
from events.models import Event, EventStatus
from events.services import event_ingest
from scoring import partitions
from scoring.models import ScoreChange
from scoring.services import events_drain_partition, events_requeue_pending

needs_redis = pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL")


def test_a_lead_always_maps_to_the_same_partition():
    lead = uuid.uuid4()
    assert partitions.partition_of(lead) == partitions.partition_of(str(lead)) == lead.int % 8


@pytest.fixture
def celery_mode(monkeypatch):
    from config import transport

    sent = []
    monkeypatch.setattr(transport.celery_app, "send_task", lambda name, args, **kwargs: sent.append(args[0]))
    with override_settings(TARGETGRID_QUEUE="celery", TARGETGRID_PARTITIONS=4):
        conn = partitions.client()
        for key in conn.scan_iter("tg:scoring:*"):
            conn.delete(key)
        yield sent


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_many_requests_queue_one_wake_up_per_partition_and_a_drain_scores_everything(
    celery_mode, django_capture_on_commit_callbacks
):
    # given two requests over the same leads
    for start in (0, 40):
        with django_capture_on_commit_callbacks(execute=True):
            items = [event_payload(f"p-{i}", minutes=i, email=f"p{i % 12}@example.com") for i in range(start, start + 40)]
            assert event_ingest(items=items, source="batch").totals["accepted"] == 40

    # then each touched partition got exactly one wake-up
    stored = set(Event.objects.values_list("partition", flat=True))
    assert sorted(celery_mode) == sorted(stored)

    # when each woken partition is drained, every event is scored exactly once
    assert sum(events_drain_partition(partition=p) for p in celery_mode) == 80
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert ScoreChange.objects.count() == 80

    # and once the drain has finished, the next request wakes the partition again
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("p-new", minutes=100, email="p0@example.com")], source="batch")
    assert len(celery_mode) == len(stored) + 1


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_second_drain_of_a_busy_partition_returns_and_the_holder_drains_again(
    celery_mode, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("q-1", email="q@example.com")], source="batch")
    partition = Event.objects.get().partition

    holder = partitions.Drain()  # another worker's drain holds the partition's lease
    assert holder.acquire([partition])
    try:
        assert events_drain_partition(partition=partition) == 0  # busy: returns at once
        assert partitions.is_dirty(partition)  # ... and the holder will see there is work
        with django_capture_on_commit_callbacks(execute=True):  # the wake-up is still "queued":
            event_ingest(items=[event_payload("q-2", minutes=1, email="q@example.com")], source="batch")
        assert len(celery_mode) == 1  # ... so a request during the drain publishes nothing
    finally:
        holder.release()
    assert events_drain_partition(partition=partition) == 2
    assert not partitions.is_dirty(partition)


def flag(kind, partition):
    return bool(partitions.client().exists(f"tg:scoring:{kind}:{partition}"))


def drain_woken(sent):
    """Run the queued wake-ups (as a worker would), including those the drains publish."""
    total = 0
    while sent:
        total += events_drain_partition(partition=sent.pop(0))
    return total


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_drain_that_raises_clears_its_wake_up_flag_so_the_next_request_wakes_the_partition(
    celery_mode, django_capture_on_commit_callbacks, monkeypatch
):
    # given a partition with a pending event and its wake-up
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("x-1", email="x@example.com")], source="batch")
    partition = Event.objects.get().partition
    assert celery_mode == [partition]

    # when its drain raises (the database went away mid-drain)
    def gone(**kwargs):
        raise OperationalError(2006, "MySQL server has gone away")

    with monkeypatch.context() as patched, pytest.raises(OperationalError):
        patched.setattr("scoring.services.events_process", gone)
        events_drain_partition(partition=celery_mode.pop())

    # then the lease and the wake-up flag are gone, and the work is still marked (the task's retry
    # drains it)
    assert not flag("lock", partition) and not flag("queued", partition)
    assert flag("dirty", partition)
    # and the next request publishes a wake-up again (it was silenced for 300 s before)
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("x-2", minutes=1, email="x@example.com")], source="batch")
    assert celery_mode == [partition]
    assert drain_woken(celery_mode) == 2
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_drain_stopped_by_its_deadline_hands_over_to_a_fresh_wake_up(
    celery_mode, django_capture_on_commit_callbacks, settings
):
    # given 12 pending events of one lead (one partition) and drains of 5 events per transaction
    # that reach their deadline after the first transaction
    settings.TARGETGRID_DRAIN_CHUNK = 5
    settings.TARGETGRID_DRAIN_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload(f"d-{i}", minutes=i, email="d@example.com") for i in range(12)], source="batch")
    partition = Event.objects.first().partition

    # when the woken drain stops at its deadline with work left
    assert events_drain_partition(partition=celery_mode.pop()) == 5
    # then it has handed over: a fresh wake-up for the partition is queued
    assert celery_mode == [partition]
    # and the wake-ups that follow drain everything, each event once
    assert drain_woken(celery_mode) == 7
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert ScoreChange.objects.count() == 12


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_killed_drain_holding_leases_costs_about_one_lease_then_another_worker_drains(
    celery_mode, django_capture_on_commit_callbacks, settings
):
    # given pending events in every partition, and a drain that took every lease and was SIGKILLed
    # (never released, never renewed)
    settings.TARGETGRID_DRAIN_LEASE_SECONDS = 1
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload(f"k-{i}", email=f"k{i}@example.com") for i in range(24)], source="batch")
    held = sorted(set(Event.objects.values_list("partition", flat=True)))
    killed = partitions.Drain()
    assert killed.acquire(held) == held
    assert drain_woken(celery_mode) == 0  # the wake-ups find the leases taken

    # when another worker runs the periodic sweep and the wake-ups it publishes (bounded wait)
    deadline = time.monotonic() + 30
    while Event.objects.filter(status=EventStatus.PENDING).exists() and time.monotonic() < deadline:
        events_requeue_pending(older_than_seconds=0)
        drain_woken(celery_mode)
        time.sleep(0.2)

    # then every event is scored exactly once, once the dead drain's leases lapsed
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert ScoreChange.objects.count() == 24


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_working_drain_renews_its_lease_and_one_that_lost_it_stops_after_its_transaction(
    celery_mode, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from scoring import services

    settings.TARGETGRID_DRAIN_LEASE_SECONDS = 2
    settings.TARGETGRID_DRAIN_CHUNK = 3
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload(f"w-{i}", minutes=i, email="w@example.com") for i in range(9)], source="batch")
    partition = Event.objects.first().partition
    lock = f"tg:scoring:lock:{partition}"
    seen, renewals = [], []
    original, renew = services.events_process, partitions.Drain.renew

    def recorded_renew(self):
        renewals.append(renew(self))
        return renewals[-1]

    def slow_then_stolen(**kwargs):
        if not seen:
            # a transaction longer than the lease: the renewer keeps the lease ours
            token = partitions.client().get(lock)
            time.sleep(3)
            seen.append(partitions.client().get(lock) == token and not partitions.Drain().acquire([partition]))
            # then the lease is lost (it lapsed under a stalled holder and another drain took it)
            partitions.client().set(lock, "another-drain", px=60_000)
            waited = time.monotonic() + 10
            while False not in renewals and time.monotonic() < waited:
                time.sleep(0.05)
        return original(**kwargs)

    monkeypatch.setattr(partitions.Drain, "renew", recorded_renew)
    monkeypatch.setattr(services, "events_process", slow_then_stolen)
    processed = events_drain_partition(partition=celery_mode.pop())

    assert seen == [True]
    # the drain stopped after the transaction it was in (3 of 9) and handed over
    assert processed == 3
    assert partitions.client().get(lock) == b"another-drain"  # not released by the old holder
    assert celery_mode == [partition] and flag("dirty", partition)


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_the_sweep_wakes_a_partition_whose_wake_up_was_lost_whatever_its_flags_say(
    celery_mode, django_capture_on_commit_callbacks
):
    # given pending events whose wake-up message was lost (the flag says one is queued)
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("s-1", email="s@example.com")], source="batch")
    partition = Event.objects.get().partition
    celery_mode.clear()
    assert flag("queued", partition)
    # when the sweep runs: young events are left to their own wake-up, old ones are woken
    assert events_requeue_pending(older_than_seconds=3600) == 0 and celery_mode == []
    assert events_requeue_pending(older_than_seconds=0) == 1
    assert celery_mode == [partition]
    # then the drain scores them
    assert drain_woken(celery_mode) == 1
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_one_failing_event_in_a_drain_chunk_of_many_leads_is_failed_and_the_partitions_drain_to_empty(
    celery_mode, django_capture_on_commit_callbacks, monkeypatch
):
    from scoring import engine

    # given 60 pending events of 20 leads, and one event whose scoring raises
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(
            items=[event_payload(f"f-{n}-{i}", minutes=i, email=f"f{n}@example.com") for n in range(20) for i in range(3)],
            source="batch",
        )
    original = engine.LeadTimeline.apply

    def apply(self, event):
        if event.key.event_id == "f-11-1":
            raise KeyError("no rule for this event")
        return original(self, event)

    monkeypatch.setattr(engine.LeadTimeline, "apply", apply)
    # when the woken drains run (group commit: one chunk holds every partition's events)
    assert drain_woken(celery_mode) == 59
    # then every partition drained to empty, the culprit alone failed with its reason
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert dict(Event.objects.filter(status=EventStatus.FAILED).values_list("event_id", "error")) == {
        "f-11-1": "KeyError: 'no rule for this event'"
    }
    assert ScoreChange.objects.count() == 59
    assert not any(flag(kind, p) for kind in ("lock", "queued", "dirty") for p in range(4))


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db
def test_a_failing_end_of_drain_step_neither_masks_the_drain_error_nor_skips_the_other_steps(
    celery_mode, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=[event_payload("e-1", email="e@example.com")], source="batch")
    partition = Event.objects.get().partition

    def gone(**kwargs):
        raise OperationalError(2013, "Lost connection to server during query")

    def redis_blip(*partitions):
        raise ConnectionError("Redis went away for a moment")

    with monkeypatch.context() as patched, pytest.raises(OperationalError):
        patched.setattr("scoring.services.events_process", gone)
        patched.setattr(partitions, "mark_dirty", redis_blip)
        events_drain_partition(partition=celery_mode.pop())
    # the lease was still released and the wake-up flag cleared
    assert not flag("lock", partition) and not flag("queued", partition)
