"""Celery tasks of the realtime app: thin, named."""

from config.transport import task

from .broadcast import broadcast_leaderboard


@task("realtime.leaderboard_flush")
def leaderboard_flush() -> None:
    """The trailing leaderboard update of a coalesced burst (realtime.broadcast)."""
    broadcast_leaderboard()
