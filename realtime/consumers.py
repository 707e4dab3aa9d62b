"""WebSocket consumers: ``/ws/scores/`` (every score change + the leaderboard),
``/ws/leads/<id>/`` (one lead), ``/ws/alerts/`` (the Alerts page: alerts and webhook deliveries),
``/ws/imports/<id>/`` and ``/ws/rescore/`` (rescore progress).
Server-to-client only; frames are JSON objects with a ``type``.

The socket a page opens (templates/base.html ``data-ws-url``: scores, one lead, or alerts) also
joins the group ``alerts``, so every open operator page gets the ``alerts.created`` toasts on the
socket it already has. The import and rescore sockets are second sockets of a page (or admin pages)
and do not join it: a page would toast twice."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from leads.models import Lead

from . import groups
from .auth import scope_is_authorized
from .broadcast import leaderboard_payload

CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404


class LiveConsumer(AsyncJsonWebsocketConsumer):
    group_names: list[str] = []

    async def connect(self):
        if not scope_is_authorized(self.scope):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.joined: list[str] = []
        groups_to_join = await self.get_groups()
        if groups_to_join is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        for name in groups_to_join:
            await self.channel_layer.group_add(name, self.channel_name)
            self.joined.append(name)
        await self.accept()
        await self.on_accepted()

    async def get_groups(self) -> list[str] | None:
        return list(self.group_names)

    async def on_accepted(self) -> None:
        pass

    async def disconnect(self, code):
        for name in getattr(self, "joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    # Channel-layer handlers -------------------------------------------------------------

    async def score_changes(self, message):
        for change in message["changes"]:
            await self.send_json({"type": "score.changed", **change})

    async def score_changed(self, message):
        await self.send_json(message)

    async def leaderboard_updated(self, message):
        await self.send_json(message)

    async def import_progress(self, message):
        await self.send_json(message)

    async def rescore_progress(self, message):
        await self.send_json(message)

    async def alerts_created(self, message):
        # One frame per message, however many alerts (a burst is coalesced by the broadcast).
        await self.send_json(message)

    async def deliveries_updated(self, message):
        await self.send_json(message)


class ScoresConsumer(LiveConsumer):
    group_names = [groups.EVENTS, groups.LEADERBOARD, groups.ALERTS]

    async def on_accepted(self) -> None:
        await self.send_json(await database_sync_to_async(leaderboard_payload)())


class LeadConsumer(LiveConsumer):
    async def get_groups(self) -> list[str] | None:
        lead_id = self.scope["url_route"]["kwargs"]["lead_id"]
        exists = await database_sync_to_async(Lead.objects.filter(pk=lead_id).exists)()
        if not exists:
            return None
        # Marked before joining: the broadcast skips lead groups that nobody watches.
        await groups.lead_watch(lead_id)
        return [groups.lead_group(lead_id), groups.ALERTS]

    async def on_accepted(self) -> None:
        self.watching = asyncio.create_task(self._keep_watching(self.scope["url_route"]["kwargs"]["lead_id"]))

    async def _keep_watching(self, lead_id) -> None:
        while True:
            await asyncio.sleep(groups.LEAD_WATCH_REFRESH_SECONDS)
            await groups.lead_watch(lead_id)

    async def disconnect(self, code):
        watching = getattr(self, "watching", None)
        if watching is not None:
            watching.cancel()
        await super().disconnect(code)


class AlertsConsumer(LiveConsumer):
    """The Alerts page: new alerts (also its toasts) and webhook delivery status changes."""

    group_names = [groups.ALERTS, groups.DELIVERIES]


class RescoreConsumer(LiveConsumer):
    """Every rescore job's progress (``rescore.progress`` frames); pages pick their job by id."""

    group_names = [groups.RESCORE]


class ImportConsumer(LiveConsumer):
    async def get_groups(self) -> list[str] | None:
        return [groups.import_group(self.scope["url_route"]["kwargs"]["import_id"])]
