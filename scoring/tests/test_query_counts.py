"""The hot paths run a fixed number of queries whatever the batch size (pinned here; speed itself
is measured by bench/, never asserted in tests)."""

import pytest
from django.db import connection

from conftest import event_payload
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring.models import ScoreChange
from scoring.rulesets import ruleset_current, stageset_current
from scoring.services import events_process

# SAVEPOINT/RELEASE: the test runs inside a transaction, so each atomic() block adds two queries.
INGEST_NEW_LEADS = 9  # types (draft, current version), leads read, existing ids, savepoint, leads insert, leads re-read,
#                       events insert, release (stored ids are read back only when a row was skipped)
INGEST_KNOWN_LEADS = 4  # types (draft, current version), leads read, events insert (no transaction: one statement)
PROCESS_IN_ORDER = 10  # lead ids, savepoint, lock leads, events, current version, current stage settings,
#                        score changes, events, leads, release (a published version and the stage settings are
#                        compiled once per process: warmed below)
PLACE_NEW_LEADS = 1  # leads never staged before enter their first stage (one UPDATE for the batch)
STAGE_CHANGES = 2  # StageChange rows, AlertEvent rows (one INSERT each, whatever the number of leads)


@pytest.fixture(autouse=True)
def _compiled_version():
    ruleset_current()
    stageset_current()


def items(tag, n, *, leads=5, start=0):
    return [event_payload(f"{tag}-{i}", minutes=start + i, email=f"{tag}{i % leads}@example.com") for i in
            range(start, start + n)]


@pytest.mark.django_db
@pytest.mark.parametrize("size", [10, 40])
def test_batch_ingest_runs_a_fixed_number_of_queries(size, django_assert_num_queries):
    # given a batch whose leads do not exist yet: they are created in bulk (PostgreSQL: the events
    # insert inside the transaction runs in a savepoint of its own, so a refused row can be isolated)
    # (the known-lead path runs in autocommit in production; here the test's own transaction
    # wraps it, so PostgreSQL takes that savepoint there too)
    savepoint = 2 if connection.vendor == "postgresql" else 0
    with django_assert_num_queries(INGEST_NEW_LEADS + savepoint):
        result = event_ingest(items=items("a", size), source="batch")
    assert result.totals["accepted"] == size

    # when the same leads send more events, no lead is created
    with django_assert_num_queries(INGEST_KNOWN_LEADS + savepoint):
        result = event_ingest(items=items("a", size, start=size), source="batch")
    assert result.totals["accepted"] == size


@pytest.mark.django_db
@pytest.mark.parametrize("size", [10, 40])
def test_scoring_in_order_events_runs_a_fixed_number_of_queries(size, django_assert_num_queries):
    event_ingest(items=items("b", size), source="batch")
    ids = list(Event.objects.values_list("id", flat=True))

    # (at 40 events the leads reach 40 points, Warm: the audit rows and the alerts are one INSERT each)
    crossed = stageset_current().stage_of(score=5 * (size // 5), fit_score=0) != "Cold"
    with django_assert_num_queries(PROCESS_IN_ORDER + PLACE_NEW_LEADS + (STAGE_CHANGES if crossed else 0)):
        result = events_process(event_ids=ids)

    # then every event is scored exactly once and each lead holds the fold (+5 per PAGE_VIEW)
    assert result.processed == size
    assert ScoreChange.objects.count() == size
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()
    assert sorted(Lead.objects.values_list("current_score", flat=True)) == [5 * (size // 5)] * 5

    # and the same leads' next events (staged, no stage change) cost no stage statement at all
    event_ingest(items=items("b", size, start=size), source="batch")
    ids = list(Event.objects.filter(status=EventStatus.PENDING).values_list("id", flat=True))
    with django_assert_num_queries(PROCESS_IN_ORDER):
        assert events_process(event_ids=ids).processed == size


@pytest.mark.django_db
def test_scoring_twice_is_a_no_op(django_assert_num_queries):
    event_ingest(items=items("c", 10), source="batch")
    ids = list(Event.objects.values_list("id", flat=True))
    events_process(event_ids=ids)

    with django_assert_num_queries(3):  # savepoint, pending lead ids (none), release
        assert events_process(event_ids=ids).processed == 0
    assert ScoreChange.objects.count() == 10
