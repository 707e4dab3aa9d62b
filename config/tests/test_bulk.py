"""config.bulk.rows_update: many rows, different values, one statement; same result as the ORM."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from config.bulk import dicts_insert, objs_insert, rows_update
from leads.models import Lead

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.mark.django_db
def test_each_row_gets_its_own_values_and_every_row_the_constants():
    # given three leads
    leads = [Lead.objects.create(email=f"l{i}@example.com") for i in range(3)]
    untouched = Lead.objects.create(email="other@example.com", current_score=7)
    stamp = T0 + timedelta(days=3)

    # when two of them are updated in one call (a None and a microsecond datetime included)
    statements = rows_update(
        Lead,
        fields=["current_score", "last_processed_event_time", "last_processed_event_id"],
        rows=[(leads[0].id, 10, T0, "e-1"), (leads[2].id, 30, None, "")],
        constants={"updated_at": stamp},
    )

    # then each row holds its values, the constants are set, and other rows are left alone
    assert statements == 1
    by_id = {lead.id: lead for lead in Lead.objects.all()}
    assert (by_id[leads[0].id].current_score, by_id[leads[0].id].last_processed_event_time) == (10, T0)
    assert by_id[leads[0].id].last_processed_event_id == "e-1"
    assert (by_id[leads[2].id].current_score, by_id[leads[2].id].last_processed_event_time) == (30, None)
    assert by_id[leads[0].id].updated_at == stamp and by_id[leads[2].id].updated_at == stamp
    assert by_id[leads[1].id].current_score == 0 and by_id[leads[1].id].updated_at != stamp
    assert by_id[untouched.id].current_score == 7


@pytest.mark.django_db
def test_many_rows_are_split_into_statements_and_an_unknown_pk_changes_nothing():
    leads = Lead.objects.bulk_create([Lead(email=f"m{i}@example.com") for i in range(2500)])
    rows = [(lead.id, i % 1000) for i, lead in enumerate(leads)] + [(uuid.uuid4(), 5)]

    statements = rows_update(Lead, fields=["current_score"], rows=rows)

    assert statements == 2  # 2,000 rows per statement
    scores = dict(Lead.objects.values_list("id", "current_score"))
    assert all(scores[lead.id] == i % 1000 for i, lead in enumerate(leads))
    assert len(scores) == 2500


@pytest.mark.django_db
def test_no_rows_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert rows_update(Lead, fields=["current_score"], rows=[]) == 0


@pytest.mark.django_db
def test_objs_insert_stores_what_bulk_create_stores_and_can_ignore_conflicts():
    from events.models import Event
    from scoring.models import ScoreChange

    # given a lead, two events and a score change built like the pipeline builds them
    lead = Lead.objects.create(email="ins@example.com")
    events = [
        Event(id=uuid.uuid4(), event_id=f"ins-{i}", lead_id=lead.id, event_type="PAGE_VIEW", timestamp=T0,
              received_at=T0, metadata={"k": [i, None]}, partition=3)
        for i in range(2)
    ]
    # when they are inserted, and the first again with conflicts ignored
    assert objs_insert(events) == 2
    again = Event(id=uuid.uuid4(), event_id="ins-0", lead_id=lead.id, event_type="X", timestamp=T0, received_at=T0)
    fresh = Event(id=uuid.uuid4(), event_id="ins-9", lead_id=lead.id, event_type="X", timestamp=T0, received_at=T0)
    # (the count says how many rows went in: the caller knows a conflict happened without a query)
    assert objs_insert([again, fresh], ignore_conflicts=True) == 1
    objs_insert([ScoreChange(lead_id=lead.id, event_id=events[0].id, event_type="PAGE_VIEW", previous_score=0,
                             new_score=5, delta=5, reason="PAGE_VIEW +5", timestamp=T0, created_at=T0)])

    # then the ORM reads back exactly those values (defaults included), and the conflict kept the first
    stored = Event.objects.get(event_id="ins-0")
    assert (stored.id, stored.lead_id, stored.timestamp, stored.received_at) == (events[0].id, lead.id, T0, T0)
    assert (stored.metadata, stored.partition, stored.status, stored.processed, stored.points) == (
        {"k": [0, None]}, 3, "pending", False, None)
    assert stored.event_type == "PAGE_VIEW" and Event.objects.count() == 3
    change = ScoreChange.objects.get()
    assert (change.event_id, change.new_score, change.created_at) == (events[0].id, 5, T0)


@pytest.mark.django_db
def test_dicts_insert_fills_defaults_per_row_and_stores_what_the_orm_reads_back():
    from events.models import Event

    lead = Lead.objects.create(email="dicts@example.com")
    # given rows that name only some fields (as the ingest path builds them)
    rows = [
        {"id": uuid.uuid4(), "event_id": f"d-{i}", "lead_id": lead.id, "event_type": "PAGE_VIEW", "timestamp": T0,
         "received_at": T0}
        for i in range(2)
    ]
    rows[1]["metadata"] = {"utm": "x"}
    # when they are inserted (and one again, with conflicts ignored)
    assert dicts_insert(Event, rows) == 2
    assert dicts_insert(Event, [dict(rows[0], id=uuid.uuid4())], ignore_conflicts=True) == 0
    # then the left-out fields hold their defaults, each row its own (a callable default per row)
    first, second = Event.objects.get(event_id="d-0"), Event.objects.get(event_id="d-1")
    assert (first.id, first.status, first.processed, first.metadata, first.partition, first.error) == (
        rows[0]["id"], "pending", False, {}, 0, "")
    assert second.metadata == {"utm": "x"} and second.timestamp == T0
    assert rows[0].get("metadata") is None  # the caller's dicts are not modified
