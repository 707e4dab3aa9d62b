"""``/ws/rescore/``: a staff page receives every batch's progress of a rescore job, monotonically."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from config.asgi import application
from conftest import event_payload
from events.services import event_ingest
from scoring.models import RescoreJob, ScoringRule
from scoring.rescoring import rescore_job_run, ruleset_publish

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_socket_gets_monotonic_rescore_progress(client, staff_user, settings):
    # Given seven scored leads, a rescore batch of 2 and a staff page on /ws/rescore/,
    settings.TARGETGRID_RESCORE_BATCH = 2
    event_ingest(items=[event_payload(f"e{n}", email=f"l{n}@example.com") for n in range(7)], source="test")
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=9)
    client.force_login(staff_user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    def publish_and_run():
        version = ruleset_publish(actor="boss")
        job = RescoreJob.objects.get(version=version.number)
        rescore_job_run(job_id=job.pk)  # a no-op when the inline queue already ran it
        return job.pk

    async def scenario():
        anonymous = WebsocketCommunicator(application, "/ws/rescore/", headers=[(b"origin", b"http://localhost")])
        assert not (await anonymous.connect())[0]
        comm = WebsocketCommunicator(
            application, "/ws/rescore/", headers=[(b"cookie", cookie.encode()), (b"origin", b"http://localhost:8000")]
        )
        connected, _ = await comm.connect()
        assert connected
        # when the draft is published and the job runs,
        job_id = await database_sync_to_async(publish_and_run)()
        frames = []
        while not frames or frames[-1]["status"] != "completed":
            frames.append(await comm.receive_json_from(timeout=5))
        await comm.disconnect()
        return job_id, frames

    job_id, frames = async_to_sync(scenario)()
    # then one frame per batch arrives for that job, done only grows, and the last says 100%.
    assert {frame["type"] for frame in frames} == {"rescore.progress"}
    assert {frame["id"] for frame in frames} == {job_id}
    assert [frame["done"] for frame in frames] == [2, 4, 6, 7]
    assert frames[-1]["percent"] == 100.0 and frames[-1]["changed"] == 7
