"""Alerts on the page sockets: a lead crossing a stage reaches every operator page's socket as one
``alerts.created`` frame; a burst is one message; the Alerts page's socket also gets delivery
updates; second sockets (imports, rescore) do not toast. Through the real ASGI application and the
configured channel layer (in-memory, or Redis when TEST_REDIS_URL is set)."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from config import transport
from conftest import event_payload
from leads.models import Lead
from realtime import broadcast
from scoring.models import AlertEvent

from .test_consumers import communicator, ingest, receive_type, run

pytestmark = pytest.mark.django_db(transaction=True)


def stages_default() -> None:
    """The default stages of the data migration (transactional tests flush them): Cold < 40 <= Warm
    < 100 <= MQL < 300 <= SQL."""
    from scoring.models import Stage, StageSettings

    if not StageSettings.objects.exists():
        for position, (name, threshold) in enumerate([("Cold", None), ("Warm", 40), ("MQL", 100), ("SQL", 300)]):
            Stage.objects.create(name=name, position=position * 10, min_score=threshold)
        StageSettings.objects.create(pk=1, version=1, score_thresholds=[])


@pytest.fixture(autouse=True)
def default_stages(db):
    stages_default()


def alert_payload(n: int, *, email=None, to_stage="MQL") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "lead.stage_changed",
        "timestamp": "2026-11-29T21:30:00.000000Z",
        "data": {
            "lead": {"id": str(uuid.uuid4()), "email": email or f"lead{n}@example.com", "name": f"Lead {n}",
                     "company": "", "score": 120, "fit_score": 0, "grade": "D2", "stage": to_stage},
            "from_stage": "Warm", "to_stage": to_stage, "direction": "up", "previous_score": 90,
            "cause": "event", "event_id": f"evt-{n}", "rule_version": 1,
        },
    }


async def lead_of(email):
    return await database_sync_to_async(Lead.objects.get)(email=email)


def test_a_lead_crossing_mql_reaches_the_dashboard_socket_as_one_alert_frame(api_key):
    async def scenario():
        # Given a lead in Warm (50 points) and an open dashboard socket,
        await ingest(event_payload("warm", event_type="DEMO_REQUEST", email="hot@example.com"))
        comm = communicator("/ws/scores/", api_key=api_key)
        assert (await comm.connect())[0]
        # when an event takes it to 150 (MQL: 100 <= score < 300),
        await ingest(event_payload("buy", event_type="PURCHASE", minutes=1, email="hot@example.com"))
        # then the socket gets one alerts.created frame naming the lead and the stages,
        frame = await receive_type(comm, "alerts.created")
        lead = await lead_of("hot@example.com")
        assert frame["total"] == 1
        [alert] = frame["alerts"]
        assert (alert["kind"], alert["lead_id"], alert["email"], alert["from_stage"], alert["to_stage"], alert["direction"],
                alert["score"], alert["cause"]) == ("lead.stage_changed", str(lead.id), "hot@example.com", "Warm", "MQL",
                                                    "up", 150, "event")
        # with the uid of the stored alert,
        stored = await database_sync_to_async(lambda: list(AlertEvent.objects.filter(lead=lead, stage="MQL")))()
        assert [str(row.uid) for row in stored] == [alert["uid"]]
        # and no second alerts frame for that change.
        extra = []
        while not await comm.receive_nothing(timeout=0.5):
            extra.append((await comm.receive_json_from())["type"])
        assert "alerts.created" not in extra, extra
        await comm.disconnect()

    run(scenario)


def test_an_alert_reaches_lead_pages_of_other_leads_and_the_alerts_page(api_key):
    async def scenario():
        await ingest(event_payload("other", email="other@example.com"), event_payload("w", event_type="DEMO_REQUEST",
                                                                                      minutes=1, email="hot@example.com"))
        other = await lead_of("other@example.com")
        lead_page = communicator(f"/ws/leads/{other.id}/", api_key=api_key)
        alerts_page = communicator("/ws/alerts/", api_key=api_key)
        assert (await lead_page.connect())[0] and (await alerts_page.connect())[0]
        await ingest(event_payload("buy", event_type="PURCHASE", minutes=2, email="hot@example.com"))
        for comm in (lead_page, alerts_page):
            frame = await receive_type(comm, "alerts.created")
            assert [(a["email"], a["to_stage"]) for a in frame["alerts"]] == [("hot@example.com", "MQL")]
            await comm.disconnect()

    run(scenario)


def test_a_burst_of_1000_alerts_is_one_message_with_the_total(api_key):
    async def scenario():
        comm = communicator("/ws/scores/", api_key=api_key)
        assert (await comm.connect())[0]
        await receive_type(comm, "leaderboard.updated")
        # When one transaction announces 1,000 alerts,
        payloads = [alert_payload(n) for n in range(1000)]
        await sync_to_async(transport.notify)("alerts.created", payloads)
        # then the page gets one frame: the total and the first FRAME_ITEMS_LIMIT alerts,
        frame = await receive_type(comm, "alerts.created")
        assert frame["total"] == 1000
        assert [a["uid"] for a in frame["alerts"]] == [p["id"] for p in payloads[: broadcast.FRAME_ITEMS_LIMIT]]
        # and nothing else.
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

    run(scenario)


def test_no_alerts_no_message(api_key):
    async def scenario():
        comm = communicator("/ws/alerts/", api_key=api_key)
        assert (await comm.connect())[0]
        await sync_to_async(broadcast.broadcast_alerts)([])
        await sync_to_async(broadcast.broadcast_delivery_updates)([])
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)


def test_endpoint_paused_alert_carries_the_endpoint(api_key):
    async def scenario():
        comm = communicator("/ws/alerts/", api_key=api_key)
        assert (await comm.connect())[0]
        payload = {"id": str(uuid.uuid4()), "type": "endpoint.paused", "timestamp": "2026-11-29T21:30:00Z",
                   "data": {"endpoint": {"id": 7, "name": "CRM", "url": "https://crm.example/hook"},
                            "consecutive_failures": 5}}
        await sync_to_async(broadcast.broadcast_alerts)([payload])
        frame = await receive_type(comm, "alerts.created")
        assert frame["alerts"] == [{"kind": "endpoint.paused", "uid": payload["id"], "timestamp": payload["timestamp"],
                                    "endpoint": {"id": 7, "name": "CRM"}}]
        await comm.disconnect()

    run(scenario)


def test_delivery_updates_reach_the_alerts_page_only(api_key):
    async def scenario():
        alerts_page = communicator("/ws/alerts/", api_key=api_key)
        dashboard = communicator("/ws/scores/", api_key=api_key)
        assert (await alerts_page.connect())[0] and (await dashboard.connect())[0]
        await receive_type(dashboard, "leaderboard.updated")
        delivery_id, alert_uid = uuid.uuid4(), uuid.uuid4()
        # When the sender announces a delivery's new status (after commit),
        await sync_to_async(transport.notify)("deliveries.updated", [{
            "id": delivery_id, "endpoint_id": 3, "endpoint": "CRM", "kind": "lead.stage_changed", "status": "succeeded",
            "attempts": 2, "last_status_code": 200, "alert_uid": alert_uid,
        }])
        # then the Alerts page's socket gets it (ids as strings),
        frame = await receive_type(alerts_page, "deliveries.updated")
        assert frame["total"] == 1
        assert frame["deliveries"] == [{"id": str(delivery_id), "endpoint_id": 3, "endpoint": "CRM",
                                        "kind": "lead.stage_changed", "status": "succeeded", "attempts": 2,
                                        "last_status_code": 200, "alert_uid": str(alert_uid)}]
        # and the dashboard does not.
        assert await dashboard.receive_nothing(timeout=0.3)
        await alerts_page.disconnect()
        await dashboard.disconnect()

    run(scenario)


def test_second_sockets_of_a_page_do_not_get_alerts(api_key):
    # The import and rescore sockets are opened beside a page's own socket (upload.js, the admin's
    # progress page): joining the alerts group there would toast each alert twice.
    async def scenario():
        imports = communicator("/ws/imports/1/", api_key=api_key)
        rescore = communicator("/ws/rescore/", api_key=api_key)
        page = communicator("/ws/alerts/", api_key=api_key)
        for comm in (imports, rescore, page):
            assert (await comm.connect())[0]
        await sync_to_async(broadcast.broadcast_alerts)([alert_payload(1)])
        await receive_type(page, "alerts.created")  # it was sent
        assert await imports.receive_nothing(timeout=0.3)
        assert await rescore.receive_nothing(timeout=0.3)
        for comm in (imports, rescore, page):
            await comm.disconnect()

    run(scenario)


def test_alerts_socket_refuses_anonymous():
    async def scenario():
        comm = communicator("/ws/alerts/", origin="http://localhost")
        connected, _ = await comm.connect()
        assert not connected

    run(scenario)
