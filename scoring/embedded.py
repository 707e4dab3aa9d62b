"""The embedded queue: an asyncio task inside the web server process (no Redis, no Celery).

Requests hand it event ids after commit; it drains whatever has arrived (so a burst becomes one
transaction), scores it in a worker thread, and sweeps pending rows at start-up and periodically.
Broadcasts made from that thread run on the server's own event loop, where the in-memory channel
layer lives.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 30


class EmbeddedWorker:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()
        self.processed = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def ensure_started(self) -> None:
        """Start on the running loop (called from the ASGI application)."""
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._task = self._loop.create_task(self._run(), name="targetgrid-embedded-worker")

    def submit(self, event_ids: list[str]) -> bool:
        """Queue ids from any thread; False when no worker runs in this process."""
        loop, queue = self._loop, self._queue
        if not self.running or loop is None or queue is None or loop.is_closed():
            return False
        loop.call_soon_threadsafe(queue.put_nowait, list(event_ids))
        return True

    def run_in_thread(self, func, **kwargs) -> bool:
        """Run a long sync job (a file import) in a thread owned by this server's event loop, so
        its broadcasts reach the in-memory channel layer; False when no worker runs here."""
        loop = self._loop
        if not self.running or loop is None or loop.is_closed():
            return False
        job = sync_to_async(self._in_thread(func), thread_sensitive=False)
        loop.call_soon_threadsafe(lambda: loop.create_task(self._safely(job, **kwargs)))
        return True

    def call_later(self, delay: float, func) -> bool:
        """Run ``func()`` in a worker thread after ``delay`` seconds; False when no worker runs here."""
        loop = self._loop
        if not self.running or loop is None or loop.is_closed():
            return False
        call = sync_to_async(self._in_thread(func), thread_sensitive=False)

        def schedule() -> None:
            loop.call_later(delay, lambda: loop.create_task(self._safely(call)))

        loop.call_soon_threadsafe(schedule)
        return True

    async def _run(self) -> None:
        from .services import events_process, events_requeue_pending

        process = sync_to_async(self._in_thread(events_process), thread_sensitive=False)
        sweep = sync_to_async(self._in_thread(events_requeue_pending), thread_sensitive=False)
        chunk = settings.TARGETGRID_PROCESS_CHUNK
        await self._safely(sweep, older_than_seconds=0)
        await self._safely(self._resume_imports)
        while True:
            try:
                ids = await asyncio.wait_for(self._queue.get(), timeout=SWEEP_INTERVAL_SECONDS)
            except TimeoutError:
                await self._safely(sweep)
                continue
            while len(ids) < chunk and not self._queue.empty():
                ids.extend(self._queue.get_nowait())
            result = await self._safely(process, event_ids=ids)
            if result is not None:
                self.processed += result.processed

    async def _resume_imports(self) -> None:
        """Imports left queued/running by a previous server process continue from their last
        committed chunk (a concurrent runner of the same job stops at its next chunk)."""
        from events.imports import imports_resume_stalled

        await sync_to_async(self._in_thread(imports_resume_stalled), thread_sensitive=False)(older_than_seconds=0)

    @staticmethod
    def _in_thread(func):
        def run(**kwargs):
            close_old_connections()
            try:
                return func(**kwargs)
            finally:
                close_old_connections()

        return run

    @staticmethod
    async def _safely(func, **kwargs):
        try:
            return await func(**kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:  # the rows stay pending; the next sweep retries them
            logger.exception("embedded worker: %s failed", getattr(func, "__name__", func))
            return None


worker = EmbeddedWorker()
