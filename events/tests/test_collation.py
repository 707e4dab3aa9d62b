"""Identity strings compare by code point in the database (config/fields.py): on MariaDB with
``utf8mb4_unicode_ci`` (the test database's collation, as in docker-compose.yml) and on PostgreSQL
as on SQLite. Searches that the UI offers as case-insensitive stay so."""

import base64
import json

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client

from config.fields import BinaryCharField, BinaryEmailField, binary_collation
from conftest import event_payload
from events.models import Event, SegmentEventMapping, SegmentIdentity
from events.segment import segment_source_create
from events.services import event_ingest
from leads.models import Lead
from leads.selectors import lead_list
from leads.services import leads_ensure_for_emails
from scoring.models import ScoringRule

pytestmark = pytest.mark.django_db

BINARY_COLUMNS = [
    (Event, "event_id"),
    (SegmentEventMapping, "event_name"),
    (SegmentIdentity, "value"),
    (Lead, "email"),
    (Lead, "last_processed_event_id"),
    (ScoringRule, "event_type"),
]


def column_collation(model, field_name) -> str | None:
    column = model._meta.get_field(field_name).column
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s",
                [model._meta.db_table, column],
            )
        elif connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation"
                " WHERE a.attrelid = %s::regclass AND a.attname = %s",
                [model._meta.db_table, column],
            )
        else:  # SQLite: the COLLATE clause in the table's SQL, if any (none: BINARY)
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [model._meta.db_table])
            sql = cursor.fetchone()[0]
            return "BINARY" if f'"{column}" varchar' in sql and "COLLATE" not in sql else sql
        return cursor.fetchone()[0]


def test_every_identity_column_has_the_binary_collation_after_the_migrations():
    expected = binary_collation(connection) or "BINARY"
    for model, field_name in BINARY_COLUMNS:
        assert isinstance(model._meta.get_field(field_name), (BinaryCharField, BinaryEmailField))
        assert column_collation(model, field_name) == expected, (model.__name__, field_name)
    if connection.vendor == "mysql":  # NO PAD: 'a' and 'a ' are distinct, as in Python
        assert expected in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


def test_every_binary_field_of_the_project_is_in_the_list_above():
    found = {
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, (BinaryCharField, BinaryEmailField))
    }
    assert found == set(BINARY_COLUMNS)


@pytest.mark.parametrize(
    "first, second",
    [("evt-A", "evt-a"), ("straße", "strasse"), ("ｅｖｔ-1", "evt-1"), ("evt-é", "evt-e"), ("ǅ-1", "ǆ-1")],
)
def test_ids_that_differ_only_in_case_accent_or_width_are_distinct_events(api, first, second):
    # Given one event stored,
    assert api.post("/api/events", event_payload(first), format="json").status_code == 202
    # when another whose id differs only in case, accent or width arrives (alone, then in a batch),
    response = api.post("/api/events", event_payload(second, minutes=1), format="json")
    # then it is a new event, not a bogus rejection or a duplicate,
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "accepted"
    again = event_ingest(items=[event_payload(first), event_payload(second)], source="test")
    assert [item.status for item in again.items] == ["duplicate", "duplicate"]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == sorted([first, second])


def test_emails_that_differ_only_in_accents_are_distinct_leads():
    ids = leads_ensure_for_emails(emails=["ann@example.com", "ann@exämple.com", "straße@example.com",
                                          "strasse@example.com"])
    assert len(set(ids.values())) == 4
    assert dict(Lead.objects.values_list("email", "id")) == ids
    result = event_ingest(items=[event_payload("e1", email="ann@exämple.com"), event_payload("e2")], source="test")
    assert [item.status for item in result.items] == ["accepted", "accepted"]
    assert Event.objects.get(event_id="e1").lead_id == ids["ann@exämple.com"]


def test_segment_user_ids_that_differ_only_in_case_are_distinct_people(django_capture_on_commit_callbacks):
    _, key = segment_source_create(name="site")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    for message_id, user_id in (("m-1", "User-1"), ("m-2", "user-1")):
        with django_capture_on_commit_callbacks(execute=True):
            response = Client().post("/v1/page", data=json.dumps({"userId": user_id, "messageId": message_id}),
                                     content_type="application/json", HTTP_AUTHORIZATION=auth)
        assert response.status_code == 200, response.content
    identities = dict(SegmentIdentity.objects.values_list("value", "lead_id"))
    assert set(identities) == {"User-1", "user-1"}
    assert identities["User-1"] != identities["user-1"]


def test_segment_event_names_that_differ_only_in_case_are_distinct_mappings():
    SegmentEventMapping.objects.create(event_name="Signed Up", event_type="FORM_SUBMIT")
    SegmentEventMapping.objects.create(event_name="signed up", event_type="PAGE_VIEW")
    assert SegmentEventMapping.objects.get(event_name="signed up").event_type == "PAGE_VIEW"


def test_case_insensitive_lookups_stay_case_insensitive_on_binary_columns():
    Lead.objects.create(email="ann.smith@example.com")
    Lead.objects.create(email="bob@example.com")
    assert [lead.email for lead in lead_list(search="ANN.Smith")] == ["ann.smith@example.com"]
    assert Lead.objects.filter(email__iexact="ANN.SMITH@EXAMPLE.COM").count() == 1
    assert Lead.objects.filter(email__istartswith="BOB@").count() == 1
    assert Lead.objects.filter(email__iendswith="EXAMPLE.COM").count() == 2
    # wildcards in the search are literal characters
    assert Lead.objects.filter(email__icontains="_").count() == 0
    assert Lead.objects.filter(email__icontains="%").count() == 0
    # the case-sensitive lookups are exact (SQLite's LIKE, behind Django's contains, folds ASCII)
    if connection.vendor != "sqlite":
        assert Lead.objects.filter(email__contains="ANN").count() == 0
    assert Lead.objects.filter(email="ANN.SMITH@EXAMPLE.COM").count() == 0


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite folds only ASCII case in LIKE")
def test_case_insensitive_search_folds_non_ascii_letters_on_server_databases():
    Lead.objects.create(email="änne@exämple.com")
    assert Lead.objects.filter(email__icontains="ÄNNE@EXÄ").count() == 1
    assert Lead.objects.filter(email__iexact="ÄNNE@EXÄMPLE.COM").count() == 1


def test_admin_searches_ids_and_emails_case_insensitively(admin_client):
    event_ingest(items=[event_payload("Evt-Mixed-Case", email="carol@example.com")], source="test")
    assert "Evt-Mixed-Case" in admin_client.get("/admin/events/event/", {"q": "evt-mixed"}).content.decode()
    assert "Evt-Mixed-Case" in admin_client.get("/admin/events/event/", {"q": "CAROL@"}).content.decode()
    assert "carol@example.com" in admin_client.get("/admin/leads/lead/", {"q": "CAROL"}).content.decode()
    assert "Evt-Mixed-Case" not in admin_client.get("/admin/events/event/", {"q": "nobody"}).content.decode()
