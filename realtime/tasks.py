"""Celery tasks of the realtime app: thin, named."""

from celery import shared_task

from .broadcast import broadcast_leaderboard


@shared_task(name="realtime.leaderboard_flush", ignore_result=True)
def leaderboard_flush() -> None:
    """The trailing leaderboard update of a coalesced burst (realtime.broadcast)."""
    broadcast_leaderboard()
