"""The embedded worker: the tasks of the embedded mode, run inside the web server process (no Redis,
no Celery). Only config/transport.py talks to it.

An asyncio task on the server's event loop keeps the queue; the work itself runs in one daemon
thread, one task at a time (a burst of ``batch_limit`` tasks is merged into one call, so it becomes
one transaction); a long-running task (a file import) gets a daemon thread of its own. It is also
its own beat: each periodic task of ``CELERY_BEAT_SCHEDULE`` runs once at start-up (with the
kwargs of ``TARGETGRID_EMBEDDED_STARTUP_KWARGS``: a previous process may have died mid-work) and
then on its schedule whenever nothing else is queued.

Stopping: daphne's SIGTERM stops the event loop. Nothing here ever waits on that loop from a
thread (results are handed back with ``call_soon_threadsafe``, broadcasts are scheduled onto it
without waiting, realtime/broadcast.py), and the threads are daemons, so the process exits at
once. A task cut short mid-transaction is rolled back with the process: its rows stay pending
(or the import job stays at its last committed chunk) and the start-up run of the next process
takes them over. Nothing acknowledged is lost because the rows, not this queue, record the work.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._pending: deque = deque()
        self._wake: asyncio.Event | None = None
        self._inbox: queue.SimpleQueue | None = None
        self._lock = threading.Lock()
        self.processed = 0  # items handed to batch tasks (events scored), for /health
        self._periodic: set[str] = set()  # names of the scheduled (periodic) tasks

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def ensure_started(self, schedule=()) -> None:
        """Start on the running loop. ``schedule``: ``(spec, startup_kwargs, every_seconds)``."""
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self.loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._pending = deque()
            self._inbox = queue.SimpleQueue()
            threading.Thread(target=self._thread_main, args=(self._inbox,), daemon=True,
                             name="targetgrid-embedded-worker").start()
            self._task = self.loop.create_task(self._run(list(schedule)), name="targetgrid-embedded-worker")

    def submit(self, spec, args=(), kwargs=None, *, countdown: float | None = None) -> bool:
        """Queue a task from any thread; False when no worker runs in this process."""
        loop = self.loop
        if not self.running or loop is None or loop.is_closed():
            return False
        message = (spec, tuple(args), dict(kwargs or {}))
        if spec.long_running and not countdown:
            threading.Thread(target=self._call, args=message, daemon=True, name=f"targetgrid-{spec.name}").start()
            return True
        try:
            if countdown:
                loop.call_soon_threadsafe(loop.call_later, countdown, self._put, message)
            else:
                loop.call_soon_threadsafe(self._put, message)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            return False
        return True

    # --- on the loop ---

    def _put(self, message) -> None:
        spec, args, kwargs = message
        if spec.long_running:
            threading.Thread(target=self._call, args=message, daemon=True, name=f"targetgrid-{spec.name}").start()
            return
        last = self._pending[-1] if self._pending else None
        if spec.batch_limit is not None and last is not None and last[0] is spec and not kwargs and not last[2]:
            merged = list(last[1][0]) + list(args[0])
            if len(merged) <= spec.batch_limit():
                self._pending[-1] = (spec, (merged,), {})
                return
        self._pending.append(message)
        self._wake.set()

    def _every(self, spec, seconds: float) -> None:
        self._periodic.add(spec.name)

        def tick() -> None:
            # Only when idle: a sweep queued behind a backlog would re-send the backlog's own ids.
            # Other periodic tasks queued at the same moment are not a backlog: entries with the
            # same period tick together, and the first one queued must not starve the others.
            if all(message[0].name in self._periodic and message[0] is not spec for message in self._pending):
                self._put((spec, (), {}))
            self._every(spec, seconds)

        self.loop.call_later(seconds, tick)

    async def _run(self, schedule) -> None:
        for spec, startup_kwargs, every in schedule:
            self._put((spec, (), dict(startup_kwargs)))
            if every:
                self._every(spec, every)
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            spec, args, kwargs = self._pending.popleft()
            done = self.loop.create_future()
            self._inbox.put((spec, args, kwargs, done))
            if await done and spec.batch_limit is not None and args:
                self.processed += len(args[0])

    # --- in the worker thread ---

    def _thread_main(self, inbox: queue.SimpleQueue) -> None:
        while True:
            spec, args, kwargs, done = inbox.get()
            ok = self._call(spec, args, kwargs)
            loop = done.get_loop()
            try:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(ok))
            except RuntimeError:  # the loop is gone: the server is stopping
                return

    @staticmethod
    def _call(spec, args, kwargs) -> bool:
        close_old_connections()
        try:
            spec.func(*args, **kwargs)
            return True
        except Exception:  # the rows stay pending; the next sweep retries them
            logger.exception("embedded worker: %s failed", spec.name)
            return False
        finally:
            close_old_connections()


worker = EmbeddedWorker()
