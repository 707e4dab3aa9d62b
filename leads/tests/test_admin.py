"""Lead admin and lead import write through services: profile fields only, never the score.

The races are forced deterministically: the admin (or the import) reads the lead, then an event for
that lead is ingested and scored (a drain committing meanwhile), then the admin saves. Whatever the
admin writes, the score, its fold position and the audit log must still agree with every event.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from conftest import T0
from events.models import Event
from events.services import event_ingest
from leads.admin import LeadAdmin
from leads.models import Lead
from leads.resources import LeadResource
from scoring.models import ScoreChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def score(django_capture_on_commit_callbacks):
    """Ingest events and score them inline, as a drain would (committed before the caller goes on)."""

    def run(*event_ids, email="ann@example.com"):
        items = [
            {"event_id": event_id, "event_type": "PAGE_VIEW", "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
             "email": email}
            for n, event_id in enumerate(event_ids, start=Event.objects.count())
        ]
        with django_capture_on_commit_callbacks(execute=True):
            event_ingest(items=items, source="test")

    return run


def assert_consistent(lead: Lead, *, score: int, last_event_id: str):
    """The stored score, its fold position and the audit log agree with the events."""
    lead.refresh_from_db()
    audit = ScoreChange.objects.filter(lead=lead).aggregate(total=Sum("delta"))["total"] or 0
    assert (lead.current_score, audit, lead.last_processed_event_id) == (score, score, last_event_id)
    checkpoints = list(Event.objects.filter(lead=lead).order_by("timestamp", "event_id").values_list("score_after", flat=True))
    assert checkpoints[-1] == score


def change_form(lead: Lead, **changes) -> dict:
    data = {name: getattr(lead, name) for name in ("email", "first_name", "last_name", "company", "phone", "max_score")}
    data.update(changes)
    return data


def score_after_the_form_read(monkeypatch, score, *event_ids):
    """Between the change view's read of the lead (get_object) and its save, events are scored."""
    read = LeadAdmin.get_object

    def get_object(self, request, object_id, from_field=None):
        lead = read(self, request, object_id, from_field)
        if request.method == "POST":
            score(*event_ids)
        return lead

    monkeypatch.setattr(LeadAdmin, "get_object", get_object)


def test_a_profile_edit_never_overwrites_a_score_committed_meanwhile(admin_client, monkeypatch, score):
    score("a")
    lead = Lead.objects.get()
    url = f"/admin/leads/lead/{lead.id}/change/"
    assert admin_client.get(url).status_code == 200
    score_after_the_form_read(monkeypatch, score, "b")

    response = admin_client.post(url, change_form(lead, company="Acme", first_name="Ann"))

    assert response.status_code == 302
    assert_consistent(lead, score=10, last_event_id="b")
    assert (lead.company, lead.first_name) == ("Acme", "Ann")
    monkeypatch.undo()
    score("c")  # the next event folds from the right base
    assert_consistent(lead, score=15, last_event_id="c")


def test_a_profile_edit_writes_only_the_changed_fields(admin_client, score):
    score("a")
    lead = Lead.objects.get()
    admin_client.post(f"/admin/leads/lead/{lead.id}/change/", change_form(lead, phone="+1 555"))
    with CaptureQueriesContext(connection) as queries:
        admin_client.post(f"/admin/leads/lead/{lead.id}/change/", change_form(lead, phone="+1 555", last_name="Lee"))
    writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "leads_lead" in q["sql"]]
    assert len(writes) == 1
    assert "last_name" in writes[0] and "current_score" not in writes[0] and "phone" not in writes[0]
    lead.refresh_from_db()
    assert (lead.phone, lead.last_name, lead.current_score) == ("+1 555", "Lee", 5)


def test_max_score_edit_refolds_the_score_under_the_lock(admin_client, monkeypatch, score):
    score("a", "b", "c")
    lead = Lead.objects.get()
    url = f"/admin/leads/lead/{lead.id}/change/"
    score_after_the_form_read(monkeypatch, score, "d")

    assert admin_client.post(url, change_form(lead, max_score=12)).status_code == 302

    assert_consistent(lead, score=12, last_event_id="d")
    assert lead.max_score == 12
    checkpoints = list(Event.objects.order_by("timestamp").values_list("score_after", flat=True))
    assert checkpoints == [5, 10, 12, 12]
    monkeypatch.undo()
    assert admin_client.post(url, change_form(lead, max_score=1000)).status_code == 302
    assert_consistent(lead, score=20, last_event_id="d")
    score("e")
    assert_consistent(lead, score=25, last_event_id="e")


def test_adding_a_lead_goes_through_lead_create(admin_client, monkeypatch):
    import leads.admin

    calls = []
    real = leads.admin.lead_create

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(leads.admin, "lead_create", spy)
    response = admin_client.post("/admin/leads/lead/add/", {"email": "New@Example.com", "first_name": "Nia",
                                                            "last_name": "", "company": "", "phone": "", "max_score": 50})
    assert response.status_code == 302
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.max_score, lead.current_score) == ("new@example.com", "Nia", 50, 0)
    assert len(calls) == 1 and calls[0]["email"] == "new@example.com"
    assert response["Location"].endswith("/admin/leads/lead/")
    duplicate = admin_client.post("/admin/leads/lead/add/", {"email": "new@example.com", "max_score": 1000})
    assert duplicate.status_code == 200 and Lead.objects.count() == 1


# --- import (django-import-export, through the admin's two steps) ---------------------------------


def admin_import(admin_client, csv_text: str, *, between=None):
    """Upload (dry run and preview), optionally run ``between``, then confirm (the real import)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("leads.csv", csv_text.encode(), content_type="text/csv")
    preview = admin_client.post("/admin/leads/lead/import/", {"import_file": upload, "format": "0", "resource": "0"})
    assert preview.status_code == 200
    hidden = dict(re.findall(r'name="(\w+)" value="([^"]*)"', preview.content.decode()))
    assert "import_file_name" in hidden, preview.content.decode()[:3000]
    if between:
        between()
    confirm = {name: hidden[name] for name in ("import_file_name", "original_file_name", "format", "resource") if name in hidden}
    response = admin_client.post("/admin/leads/lead/process_import/", confirm)
    assert response.status_code == 302, response.content.decode()[:3000]


def test_an_import_never_overwrites_a_score_committed_meanwhile(admin_client, monkeypatch, score):
    score("a")
    lead = Lead.objects.get()

    def arm():  # the import reads the lead, then a drain commits, then the import saves
        read = LeadResource.get_instance

        def get_instance(self, instance_loader, row):
            found = read(self, instance_loader, row)
            if found is not None:
                score("b")
            return found

        monkeypatch.setattr(LeadResource, "get_instance", get_instance)

    admin_import(admin_client, "email,first_name,company,current_score,max_score\n"
                               "ANN@example.com,Ann,Acme,999,1000\n"
                               "bob@example.com,Bob,Bobco,999,40\n", between=arm)

    assert_consistent(lead, score=10, last_event_id="b")
    assert (lead.first_name, lead.company) == ("Ann", "Acme")
    bob = Lead.objects.get(email="bob@example.com")
    assert (bob.first_name, bob.company, bob.max_score, bob.current_score) == ("Bob", "Bobco", 40, 0)
    monkeypatch.undo()
    score("c")
    assert_consistent(lead, score=15, last_event_id="c")


def test_an_imported_max_score_refolds_the_score(admin_client, score):
    score("a", "b", "c")
    lead = Lead.objects.get()
    admin_import(admin_client, "email,max_score\nann@example.com,7\n")
    assert_consistent(lead, score=7, last_event_id="c")
    assert lead.max_score == 7


def test_import_creates_new_leads_through_lead_create(monkeypatch):
    import tablib

    import leads.resources

    calls = []
    real = leads.resources.lead_create

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(leads.resources, "lead_create", spy)
    data = tablib.Dataset(headers=["email", "first_name", "max_score", "current_score"])
    data.append([" Cy@Example.com ", "Cy", 60, 500])
    result = LeadResource().import_data(data, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    cy = Lead.objects.get()
    assert (cy.email, cy.first_name, cy.max_score, cy.current_score) == ("cy@example.com", "Cy", 60, 0)
    assert [c["email"] for c in calls] == ["cy@example.com"]
    preview = LeadResource().import_data(tablib.Dataset(["dry@example.com", "D", 1, 0], headers=data.headers),
                                         dry_run=True)
    assert not preview.has_errors() and not Lead.objects.filter(email="dry@example.com").exists()
