"""realtime.broadcast: lead groups nobody watches are skipped; leaderboard updates are coalesced
(at most one per interval, always a trailing one)."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache

from realtime import broadcast, groups


def change(lead_id, event_id):
    return {"lead_id": str(lead_id), "event_id": event_id, "previous_score": 0, "new_score": 5, "delta": 5}


@pytest.fixture(autouse=True)
def fresh_coalescing():
    cache.delete_many([broadcast._SENT_KEY, broadcast._TRAILING_KEY])
    yield
    cache.delete_many([broadcast._SENT_KEY, broadcast._TRAILING_KEY])


async def drain(layer, channel, timeout=0.5):
    """Every message waiting on the channel (in-memory or Redis layer)."""
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout))
        except asyncio.TimeoutError:
            return messages


@pytest.mark.django_db
def test_only_watched_lead_groups_get_the_batch():
    # given two lead groups with a member each, only the first lead marked as watched
    layer = get_channel_layer()
    watched, unwatched = uuid.uuid4(), uuid.uuid4()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(groups.lead_group(watched), channel)
    async_to_sync(layer.group_add)(groups.lead_group(unwatched), channel)
    async_to_sync(groups.lead_watch)(watched)

    # when a batch changes both leads
    broadcast.broadcast_score_changes([change(watched, "a"), change(unwatched, "b")])

    # then only the watched lead's group got a message, carrying only its change
    messages = async_to_sync(drain)(layer, channel)
    assert [m["changes"] for m in messages if m["type"] == "score.changes"] == [[change(watched, "a")]]


@pytest.mark.django_db
def test_leaderboard_is_coalesced_with_one_trailing_update(settings, monkeypatch):
    settings.TARGETGRID_QUEUE = "celery"
    settings.TARGETGRID_LEADERBOARD_INTERVAL = 1
    from config import transport

    scheduled = []
    monkeypatch.setattr(transport.celery_app, "send_task", lambda name, **kwargs: scheduled.append((name, kwargs)))
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(groups.LEADERBOARD, channel)

    # when three batches are broadcast within the interval
    for i in range(3):
        broadcast.broadcast_score_changes([change(uuid.uuid4(), f"e{i}")])

    # then the first carries the leaderboard, and one trailing update is scheduled for the rest
    boards = [m for m in async_to_sync(drain)(layer, channel) if m["type"] == "leaderboard.updated"]
    assert len(boards) == 1
    assert scheduled == [("realtime.leaderboard_flush", {"args": (), "kwargs": {}, "countdown": 1})]

    # and the trailing update sends the current board (a fresh channel: a Redis layer's receive
    # buffer belongs to the event loop that first read it)
    later = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(groups.LEADERBOARD, later)
    broadcast.broadcast_leaderboard()
    boards = [m for m in async_to_sync(drain)(layer, later) if m["type"] == "leaderboard.updated"]
    assert len(boards) == 1
