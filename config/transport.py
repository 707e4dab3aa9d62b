"""The one transport module: the only code that knows how work leaves the request that caused it.

Modelled on Zulip's ``zerver/lib/queue.py``: domain code names the work and never knows what carries
it. ``TARGETGRID_QUEUE`` picks the carrier, and this module is the only reader of that setting:

* ``celery``   -- a message to the broker, published by task name (``app.send_task``): nothing here
  imports a task module, and the routes in ``CELERY_TASK_ROUTES`` pick the queue by kind;
* ``embedded`` -- the in-process worker of the web server (config/embedded.py) runs the registered
  function of that name in its own thread, off the event loop;
* ``inline``   -- the registered function runs now, in the caller (tests, one-shot commands).

Two kinds of outside effect, two functions:

:func:`publish` / :func:`publish_on_commit` -- *tasks*: work that may run in another process
    (scoring, imports, the trailing leaderboard). The task functions register themselves by name
    with :func:`task` (their ``tasks.py`` is imported on first use in the embedded and inline
    modes, as Celery's autodiscovery does for workers). A publish that fails (the broker is down)
    is logged and returns False: the database rows that record the work are the source of truth,
    and the periodic sweep publishes again.

:func:`notify_on_commit` -- *notifications*: facts for whoever listens *in this process*, after
    the transaction commits (score changes, import progress). The realtime app subscribes in its
    ``AppConfig.ready`` (:func:`listen`) and forwards them to the channel layer. They never become
    a task: the worker that committed a scoring batch broadcasts it itself, because one extra
    broker message per batch is the largest fixed cost on the measured hot path
    (shared/MEASURED.md), and a notification lost with its process is harmless (the pages reload
    the rows). So scoring and events depend on this module only, never on realtime or on a task
    module, and nothing has to import lazily to dodge a cycle.

What differs by carrier is only a *capability*, not a mode: :func:`has_broker` says whether
several worker processes share the queue (scoring then coalesces its wake-ups per partition
through Redis, scoring/wakeups.py), and :func:`can_defer` whether a delayed publish
(``countdown``) can be honoured here; where nothing keeps time (inline, or a process without the
embedded worker) such a publish returns False and the caller does the work now instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from celery import shared_task
from django.apps import apps as django_apps
from django.conf import settings
from django.db import OperationalError, close_old_connections, transaction

from .celery import RELIABLE_TASK
from .celery import app as celery_app
from .embedded import worker as embedded_worker
from .outage import OutageLog

logger = logging.getLogger(__name__)
_broker_outage = OutageLog(logger)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: Callable
    # The embedded worker may merge queued calls of this task (one list argument) up to this many
    # items, so a burst of small requests becomes one transaction.
    batch_limit: Callable[[], int] | None = None
    # Runs for minutes (a file import): in the embedded mode it gets a thread of its own instead of
    # holding up the serial worker.
    long_running: bool = False


_registry: dict[str, TaskSpec] = {}
_discovered = False


def task(name: str, *, reliable: bool = False, batch_limit: Callable[[], int] | None = None,
         long_running: bool = False, **celery_options):
    """Register ``func`` under the stable task ``name`` and make it a Celery task of that name.

    ``reliable``: the work is recorded in a database row -- at-least-once delivery, bounded retries
    with back-off on a transient database error (config/celery.py ``RELIABLE_TASK``)."""

    def decorate(func):
        _registry[name] = TaskSpec(name=name, func=func, batch_limit=batch_limit, long_running=long_running)
        options = dict(RELIABLE_TASK, autoretry_for=(OperationalError,)) if reliable else {"ignore_result": True}
        options.update(celery_options)
        return shared_task(name=name, **options)(func)

    return decorate


def task_spec(name: str) -> TaskSpec:
    global _discovered
    if name not in _registry and not _discovered:
        for app_config in django_apps.get_app_configs():
            module = f"{app_config.name}.tasks"
            try:
                import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
        _discovered = True
    return _registry[name]


def has_broker() -> bool:
    """True when tasks go through a broker that several worker processes share (Celery)."""
    return settings.TARGETGRID_QUEUE == "celery"


def can_defer() -> bool:
    """True when a delayed publish (``countdown``) can be honoured here: a broker, or the embedded
    worker running in this process. Otherwise the caller should do the work now."""
    mode = settings.TARGETGRID_QUEUE
    return mode == "celery" or (mode == "embedded" and embedded_worker.running)


def publish(name: str, *args, countdown: float | None = None, **kwargs) -> bool:
    """Send task ``name`` now (outside a transaction, or from an on-commit callback).

    Returns False when it was not sent: the broker is down (logged; the caller's rows stay as they
    are for the sweep), or ``countdown`` was asked where nothing keeps time (the caller runs the
    work itself)."""
    mode = settings.TARGETGRID_QUEUE
    if mode == "celery":
        try:
            celery_app.send_task(name, args=args, kwargs=kwargs, countdown=countdown)
        except Exception:  # the broker is down: the rows stay pending and the sweep retries
            _broker_outage.warning("could not publish %s; the sweep will retry", name, exc=sys.exc_info()[1])
            return False
        return True
    spec = task_spec(name)
    if mode == "embedded" and embedded_worker.submit(spec, args, kwargs, countdown=countdown):
        return True
    if countdown:
        return False
    if mode == "embedded" and spec.long_running:
        # A process without the embedded worker (a management command): the job runs beside it.
        threading.Thread(target=_run_logged, args=(spec, args, kwargs), daemon=True,
                         name=f"targetgrid-{name}").start()
        return True
    spec.func(*args, **kwargs)  # inline (or embedded without a running worker): now, in the caller
    return True


def publish_on_commit(name: str, *args, **kwargs) -> None:
    """Send task ``name`` once the current transaction commits (a worker must never look for a row
    that is not committed yet); nothing is sent if it rolls back."""
    transaction.on_commit(lambda: publish(name, *args, **kwargs))


def _run_logged(spec: TaskSpec, args, kwargs) -> None:
    close_old_connections()
    try:
        spec.func(*args, **kwargs)
    except Exception:  # a bare thread: logged; the work's rows make it resumable
        logger.exception("task %s failed", spec.name)
    finally:
        close_old_connections()


# --- After-commit notifications (in process) ---------------------------------------------------

_listeners: dict[str, list[Callable]] = defaultdict(list)


def listen(topic: str, handler: Callable) -> None:
    """Call ``handler(payload)`` for every notification on ``topic`` in this process (idempotent)."""
    if handler not in _listeners[topic]:
        _listeners[topic].append(handler)


def notify_on_commit(topic: str, payload) -> None:
    """Hand ``payload`` to the ``topic`` listeners of this process after the transaction commits."""
    transaction.on_commit(lambda: notify(topic, payload))


def notify(topic: str, payload) -> None:
    for handler in list(_listeners.get(topic, ())):
        try:
            handler(payload)
        except Exception:  # a notification must never undo or repeat committed work
            logger.exception("notifying %s to %s failed", topic, getattr(handler, "__qualname__", handler))


# --- The embedded worker's place in the web server ----------------------------------------------


def server_started() -> None:
    """Called on the web server's event loop for each request: start the in-process worker there
    when this mode has one (embedded)."""
    if settings.TARGETGRID_QUEUE == "embedded" and not embedded_worker.running:
        embedded_worker.ensure_started(schedule=_embedded_schedule())


def _embedded_schedule() -> list[tuple]:
    """The embedded worker is its own beat: ``CELERY_BEAT_SCHEDULE``, each entry once at start-up."""
    startup = settings.TARGETGRID_EMBEDDED_STARTUP_KWARGS
    return [
        (task_spec(entry["task"]), startup.get(entry["task"], {}), float(entry["schedule"]))
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
    ]


def server_loop():
    """The event loop of the embedded worker of this process (the web server's), or None."""
    return embedded_worker.loop if embedded_worker.running else None

