"""Partitioned drains (Celery mode): one wake-up per partition however many requests arrive, one
drain per partition at a time, and every pending row scored once. Needs a real Redis."""

import os
import uuid

import pytest
from django.test import override_settings

from conftest import event_payload
from events.models import Event, EventStatus
from events.services import event_ingest
from scoring import partitions
from scoring.models import ScoreChange
from scoring.services import events_drain_partition

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

    with partitions.drain_lock(partition) as acquired:
        assert acquired
        assert events_drain_partition(partition=partition) == 0  # busy: returns at once
        assert partitions.is_dirty(partition)  # ... and the holder will see there is work
        with django_capture_on_commit_callbacks(execute=True):  # the wake-up is still "queued":
            event_ingest(items=[event_payload("q-2", minutes=1, email="q@example.com")], source="batch")
        assert len(celery_mode) == 1  # ... so a request during the drain publishes nothing
    assert events_drain_partition(partition=partition) == 2
    assert not partitions.is_dirty(partition)
