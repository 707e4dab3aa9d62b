"""The embedded queue: an asyncio task on the server's loop scores what requests hand it."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from conftest import event_payload
from events.models import Event, EventStatus
from leads.models import Lead
from scoring.embedded import EmbeddedWorker

pytestmark = pytest.mark.django_db(transaction=True)


def test_embedded_worker_scores_submitted_events(settings, monkeypatch):
    from events.services import event_ingest

    worker = EmbeddedWorker()
    monkeypatch.setattr("scoring.embedded.worker", worker)
    settings.TARGETGRID_QUEUE = "embedded"

    async def scenario():
        assert not worker.submit(["x"])  # not running yet: the caller falls back to inline
        worker.ensure_started()
        await sync_to_async(event_ingest, thread_sensitive=False)(
            items=[event_payload("a"), event_payload("b", minutes=1, event_type="PURCHASE")], source="test"
        )
        for _ in range(100):
            if worker.processed == 2:
                break
            await asyncio.sleep(0.05)
        worker._task.cancel()

    async_to_sync(scenario)()
    assert worker.processed == 2
    assert Lead.objects.get().current_score == 105
    assert not Event.objects.filter(status=EventStatus.PENDING).exists()


def test_without_a_running_worker_dispatch_scores_inline(settings):
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
    monkeypatch.setattr("scoring.embedded.worker", worker)
    settings.TARGETGRID_QUEUE = "embedded"

    # when the server's embedded worker starts,
    async def scenario():
        worker.ensure_started()
        for _ in range(200):
            status = await sync_to_async(lambda: ImportJob.objects.get(pk=job.pk).status, thread_sensitive=False)()
            if status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
                break
            await asyncio.sleep(0.05)
        worker._task.cancel()

    async_to_sync(scenario)()
    # then the import ran to the end and its event was stored.
    job.refresh_from_db()
    assert job.status == ImportStatus.COMPLETED and job.accepted == 1
    assert Event.objects.filter(event_id="r1").exists()
