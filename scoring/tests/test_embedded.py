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
