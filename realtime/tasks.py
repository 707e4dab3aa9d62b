"""Celery tasks of the realtime app: thin, named."""

from django.db import OperationalError

from config.transport import task

from . import alerts, outbound
from .broadcast import broadcast_leaderboard


# The database may be restarting: a few retries with back-off, so the last board of a burst is
# not lost to a blip (the next score change sends a fresh one anyway).
@task("realtime.leaderboard_flush", autoretry_for=(OperationalError,), retry_backoff=True, retry_backoff_max=30,
      max_retries=5)
def leaderboard_flush() -> None:
    """The trailing leaderboard update of a coalesced burst (realtime.broadcast)."""
    broadcast_leaderboard()


@task("realtime.alerts_dispatch", reliable=True)
def alerts_dispatch() -> None:
    """Fan out undispatched domain events (realtime.alerts); idempotent."""
    alerts.alerts_dispatch()


@task("realtime.alerts_sweep", reliable=True)
def alerts_sweep() -> None:
    alerts.alerts_sweep()


# Its own queue ("outbound", CELERY_TASK_ROUTES): a receiver that hangs holds an outbound worker,
# never a scoring slot. long_running: in the embedded mode it runs in a thread of its own instead of
# holding up the serial worker; single flight per process (a wake-up meanwhile makes it look again).
@task("realtime.deliveries_send", reliable=True, long_running=True)
def deliveries_send() -> None:
    """Send due webhook deliveries (realtime.outbound); the rows are the source of truth."""
    outbound.deliveries_send_single_flight()
