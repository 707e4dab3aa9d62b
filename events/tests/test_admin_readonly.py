"""Events are read-only in the admin: list and detail views and actions, never a change-form save.

Saving a pending event from its change form wrote the whole row back: when a drain scored the event
between the form's read and its save, the event was pending again although its points were in the
lead's score (stuck forever as the lead's newest event, else scored a second time).
"""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Sum

from conftest import T0
from events.admin import EventAdmin
from events.models import Event, EventStatus
from leads.models import Lead
from scoring.models import ScoreChange
from scoring.services import events_process, events_requeue_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def pending_event(event_id="p", minutes=0, lead=None):
    lead = lead or Lead.objects.get_or_create(email="ann@example.com")[0]
    return Event.objects.create(event_id=event_id, lead=lead, event_type="PAGE_VIEW", timestamp=T0 + timedelta(minutes=minutes))


def form_data(event, event_type="PURCHASE"):
    when = event.timestamp
    return {"event_type": event_type, "timestamp_0": when.strftime("%Y-%m-%d"), "timestamp_1": when.strftime("%H:%M:%S"),
            "metadata": "{}", "partition": event.partition}


@pytest.mark.parametrize("newest", [True, False], ids=["newest-event", "older-event"])
def test_a_change_form_post_never_rewrites_an_event_scored_meanwhile(
    admin_client, monkeypatch, django_capture_on_commit_callbacks, newest
):
    event = pending_event("p", minutes=0 if newest else 5)
    if not newest:
        later = pending_event("later", minutes=10, lead=event.lead)
        events_process(event_ids=[later.id])
    read = EventAdmin.get_object

    def get_object(self, request, object_id, from_field=None):
        found = read(self, request, object_id, from_field)
        if request.method == "POST":
            events_process(event_ids=[event.id])  # a drain scores it between the form's read and its save
        return found

    monkeypatch.setattr(EventAdmin, "get_object", get_object)
    response = admin_client.post(f"/admin/events/event/{event.id}/change/", form_data(event, "PAGE_VIEW"))
    monkeypatch.undo()

    with django_capture_on_commit_callbacks(execute=True):
        events_requeue_pending(older_than_seconds=0)  # the sweep: nothing may be left pending
    event.refresh_from_db()
    lead = Lead.objects.get()
    assert (event.status, event.event_type) == (EventStatus.PROCESSED, "PAGE_VIEW")
    assert ScoreChange.objects.filter(event=event).count() == 1  # scored exactly once
    expected = 5 if newest else 10
    audit = ScoreChange.objects.filter(lead=lead).aggregate(total=Sum("delta"))["total"]
    assert (lead.current_score, audit) == (expected, expected)
    assert response.status_code == 403


def test_no_event_is_editable_or_deletable_but_the_requeue_action_works(admin_client, django_capture_on_commit_callbacks):
    event = pending_event()
    url = f"/admin/events/event/{event.id}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content  # the read-only detail view
    assert admin_client.post(url, form_data(event)).status_code == 403
    assert admin_client.get("/admin/events/event/add/").status_code == 403
    assert admin_client.post(f"/admin/events/event/{event.id}/delete/", {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/events/event/")
    assert b"requeue_selected" in changelist.content and b"delete_selected" not in changelist.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/events/event/", {"action": "requeue_selected", "_selected_action": [str(event.id)]}, follow=True
        )
    assert b"Re-enqueued 1 pending event" in response.content
    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED and event.event_type == "PAGE_VIEW"


def test_an_operator_may_requeue_a_viewer_may_not(client):
    event = pending_event()
    User = get_user_model()
    for group, allowed in (("Operators", True), ("Viewers", False)):
        user = User.objects.create_user(group.lower(), password="pw-123456", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        client.force_login(user)
        page = client.get(f"/admin/events/event/{event.id}/change/")
        assert page.status_code == 200 and b'name="_save"' not in page.content
        assert (b"requeue_selected" in client.get("/admin/events/event/").content) is allowed


def test_segment_identities_are_read_only_in_the_admin(admin_client):
    # given an identity of a lead with a scored event, and another lead
    from events.models import SegmentIdentity

    ann = Lead.objects.create(email="ann@example.com")
    bob = Lead.objects.create(email="bob@example.com")
    identity = SegmentIdentity.objects.create(kind="user", value="user-1", lead=ann)
    url = f"/admin/events/segmentidentity/{identity.pk}/change/"

    # when an operator tries to re-point it to the other lead (which would strand ann's events)
    response = admin_client.post(url, {"kind": "user", "value": "user-1", "lead": str(bob.pk)})

    # then the admin refuses: the merge service is the only way an identity changes lead
    assert response.status_code == 403
    assert SegmentIdentity.objects.get(pk=identity.pk).lead_id == ann.pk
    assert admin_client.get(url).status_code == 200  # still viewable
    assert admin_client.get("/admin/events/segmentidentity/add/").status_code == 403
    assert admin_client.get("/admin/events/segmentidentity/").status_code == 200
