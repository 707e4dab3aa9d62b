"""WebSocket consumers through the real ASGI application (auth middleware, routing, channel layer)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from config.asgi import application
from conftest import event_payload
from events.services import event_ingest
from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

ingest = database_sync_to_async(lambda *items: event_ingest(items=list(items), source="test"))


def run(coro_fn):
    return async_to_sync(coro_fn)()


def communicator(path, *, api_key=None, cookie=None, origin=None):
    headers = []
    if api_key:
        headers.append((b"authorization", f"Bearer {api_key}".encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_type(comm, wanted, timeout=3):
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        if frame["type"] == wanted:
            return frame


def test_anonymous_is_refused():
    async def scenario():
        comm = communicator("/ws/scores/", origin="http://localhost")
        connected, _ = await comm.connect()
        assert not connected

    run(scenario)


def test_wrong_api_key_is_refused():
    async def scenario():
        comm = communicator("/ws/scores/", api_key="tg_wrong")
        connected, _ = await comm.connect()
        assert not connected

    run(scenario)


def test_api_key_client_gets_leaderboard_then_one_frame_per_change(api_key):
    async def scenario():
        comm = communicator("/ws/scores/", api_key=api_key)
        connected, _ = await comm.connect()
        assert connected
        first = await comm.receive_json_from(timeout=3)
        assert first["type"] == "leaderboard.updated"
        await ingest(event_payload("a"), event_payload("b", minutes=1, event_type="EMAIL_OPEN"))
        frames = [await receive_type(comm, "score.changed"), await receive_type(comm, "score.changed")]
        assert [(f["event_id"], f["previous_score"], f["new_score"], f["delta"]) for f in frames] == [
            ("a", 0, 5, 5),
            ("b", 5, 15, 10),
        ]
        assert set(frames[0]) >= {
            "lead_id",
            "email",
            "previous_score",
            "new_score",
            "delta",
            "event_id",
            "event_type",
            "timestamp",
        }
        board = await receive_type(comm, "leaderboard.updated")
        assert board["leaders"][0]["current_score"] == 15
        assert await comm.receive_nothing(timeout=0.3)  # one leaderboard update per batch, no extra frames
        await comm.disconnect()

    run(scenario)


def test_score_changed_frames_carry_the_grade_after_each_change(api_key, publish):
    # Given a fit rule a work e-mail meets (fit 45: letter B) and the default engagement thresholds
    # (2 from 100, 3 from 40),
    from scoring.models import FitRule

    FitRule.objects.create(name="Work e-mail", points=45, conditions=[{"field": "free_mail", "op": "equals", "value": False}])
    publish()

    async def scenario():
        comm = communicator("/ws/scores/", api_key=api_key)
        connected, _ = await comm.connect()
        assert connected
        # when a new lead's first events are scored in one batch (its fit is computed with them),
        await ingest(
            event_payload("demo", event_type="DEMO_REQUEST", email="ann@acme.example"),
            event_payload("buy", event_type="PURCHASE", minutes=1, email="ann@acme.example"),
        )
        frames = [await receive_type(comm, "score.changed"), await receive_type(comm, "score.changed")]
        # then each frame carries the grade at its new score, with the lead's fit,
        assert [(f["new_score"], f["fit_score"], f["grade"]) for f in frames] == [(50, 45, "B3"), (150, 45, "B2")]
        # and the leaderboard rows carry them too.
        board = await receive_type(comm, "leaderboard.updated")
        leader = board["leaders"][0]
        assert (leader["email"], leader["grade"], leader["fit_score"], leader["max_score"]) == ("ann@acme.example", "B2", 45, 1000)
        await comm.disconnect()

    run(scenario)


def test_lead_socket_gets_only_its_lead(api_key):
    async def scenario():
        await ingest(event_payload("a", email="mine@example.com"))
        lead = await database_sync_to_async(Lead.objects.get)(email="mine@example.com")
        comm = communicator(f"/ws/leads/{lead.id}/", api_key=api_key)
        connected, _ = await comm.connect()
        assert connected
        await ingest(event_payload("other", email="other@example.com"), event_payload("b", minutes=1, email="mine@example.com"))
        frame = await receive_type(comm, "score.changed")
        assert frame["event_id"] == "b" and frame["lead_id"] == str(lead.id)
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)


def test_unknown_lead_socket_is_closed(api_key):
    async def scenario():
        comm = communicator("/ws/leads/00000000-0000-0000-0000-000000000000/", api_key=api_key)
        connected, code = await comm.connect()
        assert not connected and code == 4404

    run(scenario)


def test_staff_session_with_allowed_origin(client, staff_user):
    client.force_login(staff_user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    async def scenario():
        good = communicator("/ws/scores/", cookie=cookie, origin="http://localhost:8000")
        connected, _ = await good.connect()
        assert connected
        await good.disconnect()
        evil = communicator("/ws/scores/", cookie=cookie, origin="http://evil.example")
        connected, _ = await evil.connect()
        assert not connected

    run(scenario)
