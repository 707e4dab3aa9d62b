"""The embedded queue: the web server's own worker runs published tasks (config/embedded.py)."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from config import transport
from config.embedded import EmbeddedWorker
from conftest import event_payload
from events.models import Event, EventStatus
from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


async def wait_for(condition, tries=200):
    for _ in range(tries):
        if await sync_to_async(condition, thread_sensitive=False)():
            return True
        await asyncio.sleep(0.05)
    return False


def test_embedded_worker_scores_published_events_in_one_merged_batch(settings, monkeypatch):
    from events.services import event_ingest

    worker = EmbeddedWorker()
    monkeypatch.setattr(transport, "embedded_worker", worker)
    settings.TARGETGRID_QUEUE = "embedded"
    spec = transport.task_spec("scoring.process_events")

    async def scenario():
        assert not worker.submit(spec, (["x"],))  # not running yet: the transport runs it inline
        worker.ensure_started()
        await sync_to_async(event_ingest, thread_sensitive=False)(
            items=[event_payload("a"), event_payload("b", minutes=1, event_type="PURCHASE")], source="test"
        )
        await wait_for(lambda: worker.processed == 2)
        worker._task.cancel()

    async_to_sync(scenario)()
    assert worker.processed == 2
    assert Lead.objects.get().current_score == 105
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()


def test_queued_calls_of_a_batch_task_are_merged_up_to_its_limit(settings):
    settings.TARGETGRID_PROCESS_CHUNK = 3
    worker = EmbeddedWorker()
    spec = transport.task_spec("scoring.process_events")

    async def scenario():
        worker.loop = asyncio.get_running_loop()
        worker._wake = asyncio.Event()
        for ids in (["a"], ["b", "c"], ["d"]):
            worker._put((spec, (ids,), {}))
        return [message[1][0] for message in worker._pending]

    assert async_to_sync(scenario)() == [["a", "b", "c"], ["d"]]


def test_without_a_running_worker_the_transport_scores_inline(settings):
    settings.TARGETGRID_QUEUE = "embedded"
    from events.services import event_ingest

    event_ingest(items=[event_payload("a")], source="cli")
    assert Lead.objects.get().current_score == 5


def test_embedded_worker_resumes_imports_left_by_a_previous_process(settings, monkeypatch, tmp_path):
    # Given an import a previous server process queued but never finished,
    from events.imports import import_job_create
    from events.models import ImportJob, ImportStatus

    path = tmp_path / "events.ndjson"
    path.write_text('{"event_id": "r1", "event_type": "PAGE_VIEW", "timestamp": "2026-01-01T00:00:00Z", "email": "r@example.com"}\n')
    job = import_job_create(file_path=str(path), fmt="ndjson", delete_file_when_done=False)
    worker = EmbeddedWorker()
    monkeypatch.setattr(transport, "embedded_worker", worker)
    settings.TARGETGRID_QUEUE = "embedded"

    # when the server's embedded worker starts (as the ASGI application starts it),
    async def scenario():
        transport.server_started()
        done = await wait_for(
            lambda: ImportJob.objects.get(pk=job.pk).status not in (ImportStatus.QUEUED, ImportStatus.RUNNING)
        )
        worker._task.cancel()
        return done

    assert async_to_sync(scenario)()
    # then the import ran to the end and its event was stored and scored.
    job.refresh_from_db()
    assert job.status == ImportStatus.COMPLETED and job.accepted == 1
    assert Event.objects.filter(event_id="r1").exists()


def test_periodic_tasks_with_the_same_period_all_run(settings):
    # Given two periodic tasks with the same period (the scoring sweep and the alerts sweep, both
    # every TARGETGRID_SWEEP_SECONDS) and a third with another one,
    from config.transport import TaskSpec

    runs = {"a": 0, "b": 0, "c": 0}

    def spec(name):
        def func():
            runs[name] += 1
        return TaskSpec(name=f"test.{name}", func=func)

    worker = EmbeddedWorker()

    async def scenario():
        worker.ensure_started(schedule=[(spec("a"), {}, 0.05), (spec("b"), {}, 0.05), (spec("c"), {}, 0.07)])
        await asyncio.sleep(0.6)
        worker._task.cancel()

    async_to_sync(scenario)()
    # then each runs on its schedule (before, the first one queued at a tick starved the second
    # forever: the alerts sweep never ran in `make run`, so a lost wake-up was never made good)
    assert all(count >= 4 for count in runs.values()), runs


def test_a_periodic_task_is_not_queued_behind_real_work(settings):
    # Given a backlog of real work queued,
    from config.transport import TaskSpec

    worker = EmbeddedWorker()
    sweep = TaskSpec(name="test.sweep", func=lambda: None)
    work = TaskSpec(name="test.work", func=lambda: None)

    async def scenario():
        worker.loop = asyncio.get_running_loop()
        worker._wake = asyncio.Event()
        worker._put((work, (), {}))
        worker._every(sweep, 0.01)
        await asyncio.sleep(0.05)
        return [message[0].name for message in worker._pending]

    # then the sweep waits until the worker is idle (it would re-send the backlog's own ids)
    assert async_to_sync(scenario)() == ["test.work"]
