"""Segment-compatible ingest: /v1/* payloads, identity resolution and re-attribution, limits,
and the real segment-analytics-python client against a live server."""

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.db.models import Sum
from django.test import Client

from events.models import Event, SegmentEventMapping, SegmentIdentity
from events.segment import PLACEHOLDER_DOMAIN, segment_source_create
from leads.models import Lead
from scoring.models import ScoreChange
from scoring.partitions import partition_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def write_key(db):
    _, key = segment_source_create(name="website")
    return key


@pytest.fixture
def send(write_key, django_capture_on_commit_callbacks):
    def send(path, body, *, key=write_key, raw=None, **headers):
        auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()} if key else {}
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post(f"/v1/{path}", data=raw if raw is not None else json.dumps(body),
                                 content_type="application/json", **auth, **headers)

    return send


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def assert_audit_sums(*leads):
    for lead in leads:
        lead.refresh_from_db()
        total = ScoreChange.objects.filter(lead=lead).aggregate(total=Sum("delta"))["total"] or 0
        assert total == lead.current_score, (lead.email, total, lead.current_score)


def test_track_with_a_mapped_event_is_stored_and_scored(send):
    response = send("track", {"userId": "u-1", "event": "Demo Requested", "messageId": "m-1",
                              "properties": {"plan": "pro"}, "context": {"traits": {"email": "Ann@Example.com"}},
                              "timestamp": iso(datetime.now(timezone.utc))})
    assert response.status_code == 200, response.json()
    assert response.json()["success"] is True and response.json()["status"] == "accepted"
    event = Event.objects.get(event_id="m-1")
    assert event.event_type == "DEMO_REQUEST" and event.status == "processed" and event.points == 50
    assert event.source == "segment"
    assert event.metadata["plan"] == "pro" and event.metadata["_segment"]["event"] == "Demo Requested"
    assert event.lead.email == "ann@example.com" and event.lead.current_score == 50
    # the userId is now tied to the lead
    assert SegmentIdentity.objects.get(kind="user", value="u-1").lead == event.lead
    # and a retry of the same message is a duplicate
    again = send("track", {"userId": "u-1", "event": "Demo Requested", "messageId": "m-1",
                           "context": {"traits": {"email": "ann@example.com"}}})
    assert again.json()["status"] == "duplicate"
    assert Event.objects.count() == 1


def test_write_key_in_the_body_and_auth_failures(send, write_key):
    body = {"userId": "ann@example.com", "event": "Form Submitted", "messageId": "m-2"}
    assert send("track", dict(body, writeKey=write_key), key=None).status_code == 200
    assert send("track", body, key=None).status_code == 401
    assert send("track", body, key="wk_wrong").status_code == 401
    from events.models import SegmentSource

    SegmentSource.objects.update(enabled=False)
    response = send("track", dict(body, messageId="m-3"))
    assert response.status_code == 401 and "disabled" in response.json()["detail"]
    assert Event.objects.count() == 1


def test_timestamps_are_corrected_for_client_clock_skew(send):
    # given a client whose clock is two hours fast: it says the event happened 5 minutes before sending
    client_now = datetime.now(timezone.utc) + timedelta(hours=2)
    response = send("page", {"anonymousId": "a-skew", "messageId": "m-skew", "name": "Pricing",
                             "timestamp": iso(client_now - timedelta(minutes=5)), "sentAt": iso(client_now)})
    assert response.status_code == 200, response.json()
    # then the stored time is receivedAt - 5 minutes, not the client's clock
    stored = Event.objects.get(event_id="m-skew").timestamp
    expected = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert abs((stored - expected).total_seconds()) < 5
    # batch-level sentAt applies to every message; originalTimestamp wins over timestamp
    client_now = datetime.now(timezone.utc) - timedelta(hours=3)  # a slow clock this time
    response = send("batch", {"sentAt": iso(client_now), "batch": [
        {"type": "page", "anonymousId": "a-skew", "messageId": "m-skew-2",
         "originalTimestamp": iso(client_now - timedelta(minutes=1)), "timestamp": "2001-01-01T00:00:00Z"}]})
    assert response.status_code == 200, response.json()
    stored = Event.objects.get(event_id="m-skew-2").timestamp
    assert abs((stored - (datetime.now(timezone.utc) - timedelta(minutes=1))).total_seconds()) < 5
    # without sentAt the client's timestamp is used as is
    send("page", {"anonymousId": "a-skew", "messageId": "m-skew-3", "timestamp": "2026-01-01T00:00:00Z"})
    assert iso(Event.objects.get(event_id="m-skew-3").timestamp) == "2026-01-01T00:00:00Z"


def test_page_is_a_page_view_with_properties_as_metadata(send):
    send("page", {"userId": "bob@example.com", "messageId": "m-p", "name": "Home", "category": "Docs",
                  "properties": {"path": "/"}, "context": {"page": {"url": "https://x.test/"}}})
    event = Event.objects.get(event_id="m-p")
    assert event.event_type == "PAGE_VIEW" and event.points == 5
    assert event.metadata == {"path": "/", "_segment": {"type": "page", "name": "Home", "category": "Docs",
                                                         "userId": "bob@example.com", "url": "https://x.test/"}}


def test_unmapped_track_events_are_stored_unscored_and_mappings_apply(send):
    response = send("track", {"userId": "c@example.com", "event": "Video Watched", "messageId": "m-u"})
    assert response.status_code == 200
    assert response.json()["status"] == "unscored"
    event = Event.objects.get(event_id="m-u")
    assert event.status == "skipped" and event.event_type == "VIDEO_WATCHED" and event.points is None
    assert "no event-type mapping" in event.error
    assert event.lead.current_score == 0
    assert send("track", {"userId": "c@example.com", "event": "Video Watched", "messageId": "m-u"}).json()[
        "status"] == "duplicate"
    # once mapped (admin), new ones are scored; names match case-insensitively
    SegmentEventMapping.objects.create(event_name="Video Watched", event_type="EMAIL_OPEN")
    send("track", {"userId": "c@example.com", "event": "video watched", "messageId": "m-u2"})
    assert Event.objects.get(event_id="m-u2").points == 10


def test_identify_reattributes_anonymous_events_and_rescores_both_leads(send):
    # given a known lead with a score, and an anonymous visitor with page views and a demo request
    send("track", {"userId": "dana@example.com", "event": "Form Submitted", "messageId": "k-1",
                   "timestamp": "2026-01-01T10:00:00Z"})
    dana = Lead.objects.get(email="dana@example.com")
    for i in range(3):
        send("page", {"anonymousId": "anon-42", "messageId": f"a-{i}", "timestamp": f"2026-01-01T0{i}:00:00Z"})
    send("track", {"anonymousId": "anon-42", "event": "Demo Requested", "messageId": "a-demo",
                   "timestamp": "2026-01-01T11:00:00Z"})
    placeholder = Lead.objects.get(segment_identities__value="anon-42")
    assert placeholder.email.endswith("@" + PLACEHOLDER_DOMAIN)
    assert placeholder.current_score == 3 * 5 + 50
    dana.refresh_from_db()
    assert dana.current_score == 20
    # when the visitor identifies as dana
    response = send("identify", {"anonymousId": "anon-42", "userId": "u-dana", "messageId": "i-1",
                                 "traits": {"email": "dana@example.com", "name": "Dana Scully",
                                            "company": {"name": "FBI"}}})
    assert response.status_code == 200, response.json()
    assert response.json()["lead_id"] == str(dana.id)
    # then the anonymous events belong to dana, re-folded in event time, and the placeholder is empty
    dana.refresh_from_db()
    placeholder.refresh_from_db()
    assert Event.objects.filter(lead=dana).count() == 5
    # (in dana's scoring partition now, so only drains of that partition lock dana for them)
    assert set(Event.objects.filter(lead=dana).values_list("partition", flat=True)) == {partition_of(dana.id)}
    assert dana.current_score == 20 + 3 * 5 + 50
    assert dana.last_processed_event_id == "a-demo"
    assert [e.score_after for e in Event.objects.filter(lead=dana).order_by("timestamp")] == [5, 10, 15, 35, 85]
    assert placeholder.current_score == 0 and not Event.objects.filter(lead=placeholder).exists()
    assert_audit_sums(dana, placeholder)
    # and the profile was updated, the ids now resolve to dana
    assert (dana.first_name, dana.last_name, dana.company) == ("Dana", "Scully", "FBI")
    assert set(SegmentIdentity.objects.filter(lead=dana).values_list("value", flat=True)) == {
        "dana@example.com", "anon-42", "u-dana"}
    # and later anonymous events go straight to dana
    send("page", {"anonymousId": "anon-42", "messageId": "a-later", "timestamp": "2026-01-01T12:00:00Z"})
    assert Event.objects.get(event_id="a-later").lead_id == dana.id
    dana.refresh_from_db()
    assert dana.current_score == 90
    assert_audit_sums(dana)


def test_alias_links_an_anonymous_id_to_a_known_user(send):
    send("identify", {"userId": "u-eve", "messageId": "i-eve", "traits": {"email": "eve@example.com"}})
    eve = Lead.objects.get(email="eve@example.com")
    send("page", {"anonymousId": "anon-eve", "messageId": "ae-1", "timestamp": "2026-01-01T00:00:00Z"})
    response = send("alias", {"previousId": "anon-eve", "userId": "u-eve", "messageId": "al-1"})
    assert response.status_code == 200 and response.json()["lead_id"] == str(eve.id)
    eve.refresh_from_db()
    assert eve.current_score == 5
    assert Event.objects.get(event_id="ae-1").lead_id == eve.id
    assert_audit_sums(eve)
    # alias of an id nobody has seen: the new id joins the previous one's lead
    send("page", {"anonymousId": "anon-z", "messageId": "az-1"})
    anon_lead = Lead.objects.get(segment_identities__value="anon-z")
    send("alias", {"previousId": "anon-z", "userId": "u-z", "messageId": "al-2"})
    assert SegmentIdentity.objects.get(kind="user", value="u-z").lead == anon_lead
    assert send("alias", {"userId": "u-z"}).json()["errors"] == {"previousId": ["this field is required"]}


def test_batch_mixes_types_in_order_with_one_result_each(send):
    response = send("batch", {"batch": [
        {"type": "page", "anonymousId": "b-anon", "messageId": "b-1", "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "identify", "anonymousId": "b-anon", "traits": {"email": "fay@example.com"}, "messageId": "b-2"},
        {"type": "track", "anonymousId": "b-anon", "event": "Email Opened", "messageId": "b-3",
         "timestamp": "2026-01-01T01:00:00Z"},
        {"type": "group", "userId": "fay@example.com", "groupId": "g-1", "messageId": "b-4"},
        {"type": "nonsense", "userId": "x", "messageId": "b-5"},
        {"type": "track", "messageId": "b-6", "event": "Demo Requested"},
        "not an object",
    ]})
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "ok", "accepted", "ok", "rejected", "rejected", "rejected"]
    assert "type" in results[4]["errors"] and "userId" in results[5]["errors"]
    fay = Lead.objects.get(email="fay@example.com")
    assert set(Event.objects.filter(lead=fay).values_list("event_id", flat=True)) == {"b-1", "b-3"}
    assert fay.current_score == 15
    assert_audit_sums(fay)


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("track", {"event": "Demo Requested"}, "userId"),
        ("track", {"userId": "u", "event": ""}, "event"),
        ("track", {"userId": "u", "event": "Demo Requested", "timestamp": "yesterday"}, "timestamp"),
        ("track", {"userId": "u", "event": "Demo Requested", "sentAt": 5}, "sentAt"),
        ("track", {"userId": "u", "event": "Demo Requested", "properties": [1]}, "properties"),
        ("identify", {"userId": "u", "traits": {"email": "nope"}}, "traits.email"),
        ("identify", {"userId": "u", "traits": "x"}, "traits"),
        ("batch", {"batch": []}, "batch"),
        ("batch", {"batch": [{"type": "page", "userId": "u"}], "sentAt": "soon"}, "sentAt"),
        ("track", ["not", "an", "object"], "body"),
    ],
)
def test_bad_calls_are_400_naming_the_field(send, path, body, field):
    response = send(path, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert Event.objects.count() == 0


def test_bad_json_is_400(send):
    response = send("track", None, raw="{nope")
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


def test_segment_size_limits(send):
    big = "x" * (33 * 1024)
    response = send("track", {"userId": "u@example.com", "event": "Demo Requested", "properties": {"big": big}})
    assert response.status_code == 400 and "32 KB" in response.json()["detail"]
    # a batch over 500 KB is refused whole
    many = [{"type": "page", "userId": "u@example.com", "messageId": f"l-{i}", "properties": {"pad": "y" * 20_000}}
            for i in range(30)]
    response = send("batch", {"batch": many})
    assert response.status_code == 400 and "500 KB" in response.json()["detail"]
    # inside a batch, one message over 32 KB is rejected and the others are kept
    response = send("batch", {"batch": [
        {"type": "page", "userId": "u@example.com", "messageId": "ok-1"},
        {"type": "page", "userId": "u@example.com", "messageId": "big-1", "properties": {"big": big}},
    ]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    assert "message" in response.json()["results"][1]["errors"]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["ok-1"]


def test_message_id_is_generated_stably_when_absent_and_gzip_bodies_work(send):
    body = {"userId": "g@example.com", "event": "Form Submitted", "timestamp": "2026-01-01T00:00:00Z"}
    first = send("track", body).json()
    assert first["messageId"].startswith("seg-")
    raw = gzip.compress(json.dumps(body).encode())
    again = send("track", None, raw=raw, HTTP_CONTENT_ENCODING="gzip").json()
    assert again["messageId"] == first["messageId"] and again["status"] == "duplicate"
    assert Event.objects.count() == 1


@pytest.mark.localhost
def test_the_real_segment_client_against_a_live_server(live_server, transactional_db):
    """segment-analytics-python (PyPI) posting to /v1/batch on a local server (no internet)."""
    from segment.analytics import Client as SegmentClient

    _, key = segment_source_create(name="python-client")
    errors = []
    client = SegmentClient(key, host=live_server.url, sync_mode=True, max_retries=0,
                           on_error=lambda error, batch: errors.append(error))
    client.page(anonymous_id="visitor-1", name="Pricing", properties={"path": "/pricing"})
    client.track(anonymous_id="visitor-1", event="Demo Requested", properties={"seats": 5})
    client.identify(user_id="user-1", anonymous_id="visitor-1",
                    traits={"email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper"})
    client.track(user_id="user-1", event="Order Completed", properties={"revenue": 99})
    client.track(user_id="user-1", event="Something Unmapped")
    client.flush()
    assert errors == []
    grace = Lead.objects.get(email="grace@example.com")
    events = {e.event_type: e for e in Event.objects.filter(lead=grace)}
    assert set(events) == {"PAGE_VIEW", "DEMO_REQUEST", "PURCHASE", "SOMETHING_UNMAPPED"}
    assert events["DEMO_REQUEST"].metadata["seats"] == 5
    assert events["SOMETHING_UNMAPPED"].status == "skipped"
    assert grace.current_score == 5 + 50 + 100
    assert (grace.first_name, grace.last_name) == ("Grace", "Hopper")
    assert_audit_sums(grace)
