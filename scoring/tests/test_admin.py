"""The Django admin: import/export resources, actions that call services, read-only audit rows,
and the Viewers / Operators groups (UI and API refuse a viewer's rule change)."""

from datetime import timedelta

import pytest
import tablib
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from conftest import T0
from events.authentication import api_key_authenticate
from events.models import ApiKey, Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from leads.resources import LeadResource
from scoring.models import ScoreChange, ScoringRule
from scoring.resources import ScoreChangeResource, ScoringRuleResource

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def user_in(group_name, username):
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def score(django_capture_on_commit_callbacks, *events):
    with django_capture_on_commit_callbacks(execute=True):
        event_ingest(items=list(events), source="test")


def ev(event_id, event_type="PAGE_VIEW", minutes=0, email="ann@example.com"):
    return {"event_id": event_id, "event_type": event_type, "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(), "email": email}


def test_groups_from_the_migration():
    viewers = set(Group.objects.get(name="Viewers").permissions.values_list("codename", flat=True))
    assert viewers == {
        "view_lead", "view_event", "view_scoringrule", "view_scorechange",
        "view_rulesetversion", "view_rescorejob", "view_fitrule", "view_scoringsettings",
        "view_stage", "view_stagesettings", "view_stagechange",
    }
    operators = set(Group.objects.get(name="Operators").permissions.values_list("codename", flat=True))
    assert {"change_scoringrule", "add_lead", "change_lead", "change_event"} <= operators
    assert {"add_rulesetversion", "change_fitrule", "change_scoringsettings"} <= operators  # publish the draft
    assert {"add_stage", "change_stage", "change_stagesettings"} <= operators  # edit the stages
    assert not {"change_rulesetversion", "add_rulesetversion"} & viewers
    assert not any(code.startswith("delete_") for code in operators)


def test_create_viewer_command(capsys):
    call_command("create_viewer", "vera")
    user = get_user_model().objects.get(username="vera")
    assert user.is_staff and not user.is_superuser and list(user.groups.values_list("name", flat=True)) == ["Viewers"]
    password = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert user.check_password(password)


def test_viewer_cannot_change_a_rule_in_the_admin_or_the_api(client):
    client.force_login(user_in("Viewers", "vic"))
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    url = f"/admin/scoring/scoringrule/{rule.id}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content  # the read-only view
    assert client.post(url, {"event_type": "PAGE_VIEW", "points": 99, "enabled": "on"}).status_code == 403
    assert client.get("/admin/scoring/scoringrule/add/").status_code == 403
    api = client.patch(f"/api/scoring-rules/{rule.id}", {"points": 99}, content_type="application/json")
    assert api.status_code == 403
    rule.refresh_from_db()
    assert rule.points == 5


def test_operator_changes_a_rule_publishes_and_the_next_event_uses_it(client, django_capture_on_commit_callbacks):
    client.force_login(user_in("Operators", "olga"))
    rule = ScoringRule.objects.get(event_type="PAGE_VIEW")
    response = client.post(
        f"/admin/scoring/scoringrule/{rule.id}/change/",
        {"event_type": "PAGE_VIEW", "points": 7, "priority": 100, "enabled": "on", "description": "x", "conditions": "[]"},
    )
    assert response.status_code == 302
    score(django_capture_on_commit_callbacks, ev("before"))
    assert Lead.objects.get().current_score == 5  # the draft scores nothing until published
    with django_capture_on_commit_callbacks(execute=True):
        published = client.post("/admin/scoring/rulesetversion/publish/", {"note": "page views 7"})
    assert published.status_code == 302 and "/admin/scoring/rescorejob/" in published["Location"]
    score(django_capture_on_commit_callbacks, ev("after", minutes=1))
    assert Lead.objects.get().current_score == 14  # rescored to 7, then +7


def test_admin_rule_form_validates_inline(admin_client):
    response = admin_client.post("/admin/scoring/scoringrule/add/", {"event_type": "bad type", "points": 1})
    assert response.status_code == 200 and b"UPPER_SNAKE_CASE" in response.content
    assert not ScoringRule.objects.filter(event_type="bad type").exists()


def test_rescore_action_calls_the_service(admin_client, django_capture_on_commit_callbacks, publish):
    score(django_capture_on_commit_callbacks, ev("a"), ev("b", minutes=1))
    lead = Lead.objects.get()
    assert lead.current_score == 10
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=8)
    publish()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/leads/lead/", {"action": "rescore_selected", "_selected_action": [str(lead.id)]}, follow=True
        )
    assert b"1 score changed" in response.content
    lead.refresh_from_db()
    assert lead.current_score == 16
    rescore = ScoreChange.objects.get(event_type=ScoreChange.RESCORE)
    assert (rescore.previous_score, rescore.new_score) == (10, 16) and "by boss" in rescore.reason


def test_requeue_action_scores_pending_events_only(admin_client, django_capture_on_commit_callbacks):
    score(django_capture_on_commit_callbacks, ev("done"))
    lead = Lead.objects.get()
    pending = Event.objects.create(event_id="stuck", lead=lead, event_type="EMAIL_OPEN", timestamp=T0 + timedelta(minutes=5))
    done = Event.objects.get(event_id="done")
    response = admin_client.post(
        "/admin/events/event/", {"action": "requeue_selected", "_selected_action": [str(pending.id), str(done.id)]}, follow=True
    )
    assert b"Re-enqueued 1 pending event" in response.content and b"1 already scored" in response.content
    pending.refresh_from_db()
    lead.refresh_from_db()
    assert pending.status == EventStatus.PROCESSED and lead.current_score == 15


def test_audit_rows_and_scored_events_are_read_only(admin_client, django_capture_on_commit_callbacks):
    score(django_capture_on_commit_callbacks, ev("a"))
    change = ScoreChange.objects.get()
    url = f"/admin/scoring/scorechange/{change.id}/change/"
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"reason": "edited"}).status_code == 403
    assert admin_client.post(f"/admin/scoring/scorechange/{change.id}/delete/", {"post": "yes"}).status_code == 403
    processed = Event.objects.get()
    assert admin_client.post(f"/admin/events/event/{processed.id}/change/", {"event_type": "PURCHASE"}).status_code == 403
    assert admin_client.get("/admin/events/event/add/").status_code == 403
    pending = Event.objects.create(event_id="p", lead=processed.lead, event_type="PAGE_VIEW", timestamp=T0)
    assert b'name="_save"' not in admin_client.get(f"/admin/events/event/{pending.id}/change/").content  # events/tests/test_admin_readonly.py


def test_lead_import_previews_row_errors_then_imports(django_capture_on_commit_callbacks):
    Lead.objects.create(email="old@example.com", company="Old")
    data = tablib.Dataset(headers=["email", "first_name", "company", "max_score", "current_score"])
    data.append(["NEW@example.com", "New", "Acme", 500, 999])
    data.append(["old@example.com", "", "Renamed", 1000, 5])
    data.append(["not-an-email", "Bad", "X", 10, 0])
    preview = LeadResource().import_data(data, dry_run=True)
    assert preview.has_validation_errors()
    assert [row.number for row in preview.invalid_rows] == [3]
    assert "email" in preview.invalid_rows[0].field_specific_errors
    assert not Lead.objects.filter(email="new@example.com").exists()
    del data[2]
    result = LeadResource().import_data(data, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    new = Lead.objects.get(email="new@example.com")
    assert (new.max_score, new.current_score) == (500, 0)  # scores are never imported
    assert Lead.objects.get(email="old@example.com").company == "Renamed"


def test_rule_import_goes_through_rule_save_and_reports_bad_rows():
    data = tablib.Dataset(headers=["event_type", "points", "enabled", "description"])
    data.append(["webinar_join", 15, 1, "Joined a webinar"])
    data.append(["PAGE_VIEW", 6, 1, ""])
    data.append(["bad type!", 1, 1, ""])
    assert [r.number for r in ScoringRuleResource().import_data(data, dry_run=True).invalid_rows] == [3]
    del data[2]
    assert not ScoringRuleResource().import_data(data, dry_run=False).has_errors()
    assert ScoringRule.objects.get(event_type="WEBINAR_JOIN").points == 15
    assert ScoringRule.objects.get(event_type="PAGE_VIEW").points == 6  # the one PAGE_VIEW rule named ""


def test_rule_import_by_id_with_conditions_and_export_round_trip():
    # Given an export of the draft edited: a rule changed by id, a conditional rule added,
    pricing = ScoringRule.objects.create(name="Pricing", event_type="PAGE_VIEW", points=15, priority=10,
                                         conditions=[{"field": "metadata.url", "op": "contains", "value": "/pricing"}])
    exported = ScoringRuleResource().export()
    assert exported.headers[:4] == ["id", "name", "event_type", "points"]
    row = next(r for r in exported.dict if r["id"] == str(pricing.id) or r["id"] == pricing.id)
    assert '"/pricing"' in row["conditions"]
    data = tablib.Dataset(headers=["id", "name", "event_type", "points", "priority", "enabled", "conditions", "cap_count"])
    data.append([pricing.id, "Pricing", "PAGE_VIEW", 20, 10, 1, row["conditions"], 3])
    data.append(["", "Docs", "page_view", 2, 50, 1, '[{"field": "metadata.url", "op": "starts_with", "value": "/docs"}]', ""])
    data.append(["", "Bad", "PAGE_VIEW", 2, 50, 1, '[{"field": "metadata.url", "op": "nope", "value": 1}]', ""])
    # when imported, the bad condition is reported on its row,
    preview = ScoringRuleResource().import_data(data, dry_run=True)
    assert [r.number for r in preview.invalid_rows] == [3] and "conditions" in preview.invalid_rows[0].field_specific_errors
    del data[2]
    result = ScoringRuleResource().import_data(data, dry_run=False)
    # then the id's rule is updated and the new one created, both through rule_save (validated).
    assert not result.has_errors() and not result.has_validation_errors()
    pricing.refresh_from_db()
    assert (pricing.points, pricing.cap_count) == (20, 3)
    docs = ScoringRule.objects.get(name="Docs")
    assert docs.event_type == "PAGE_VIEW" and docs.conditions[0]["op"] == "starts_with"
    assert ScoringRule.objects.filter(event_type="PAGE_VIEW").count() == 3


def test_exports(admin_client, django_capture_on_commit_callbacks):
    score(django_capture_on_commit_callbacks, ev("a", "DEMO_REQUEST"))
    exported = ScoreChangeResource().export()
    assert exported.headers[:4] == ["id", "lead", "lead_email", "event_id"]
    assert exported.dict[0]["lead_email"] == "ann@example.com" and exported.dict[0]["delta"] == "50"
    for model in ["leads/lead", "scoring/scoringrule", "scoring/scorechange"]:
        assert admin_client.get(f"/admin/{model}/export/").status_code == 200
    no_import = admin_client.get("/admin/scoring/scorechange/import/", follow=True)  # export only
    assert b"import_file" not in no_import.content
    xlsx = ScoringRuleResource().export().export("xlsx")
    assert xlsx[:2] == b"PK"  # an Office Open XML (zip) file


def test_viewer_may_export_but_not_import(client):
    client.force_login(user_in("Viewers", "vic"))
    assert client.get("/admin/leads/lead/export/").status_code == 200
    assert client.get("/admin/leads/lead/import/").status_code == 403


def test_api_key_added_in_the_admin_is_hashed_and_shown_once(admin_client):
    response = admin_client.post("/admin/events/apikey/add/", {"name": "zapier", "is_active": "on"}, follow=True)
    text = response.content.decode()
    raw = text.split("API key for &#x27;zapier&#x27;: ")[1].split(" ")[0]
    key = ApiKey.objects.get(name="zapier")
    assert raw.startswith("tg_") and key.key_hash == ApiKey.hash_key(raw) and raw not in key.key_hash
    assert api_key_authenticate(raw) == key


def test_seed_demo_uses_ingest_and_scoring(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--leads", "5", "--events", "40", "--seed", "3")
    assert Lead.objects.count() == 5 and Event.objects.count() == 40
    assert set(Event.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    for lead in Lead.objects.all():
        deltas = sum(lead.score_changes.values_list("delta", flat=True))
        assert lead.current_score == deltas
