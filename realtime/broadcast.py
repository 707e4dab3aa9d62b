"""The one place that talks to WebSockets: ``broadcast_*`` helpers, called after commit.

A batch of score changes is one channel-layer message per group (``score.changes``); consumers
unpack it into one ``score.changed`` frame per change. All sends of a batch share one
``async_to_sync`` call (each call costs milliseconds; see shared/MEASURED.md).
"""

from __future__ import annotations

from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from leads.selectors import leaderboard_top

from . import groups


def leaderboard_payload(limit: int | None = None) -> dict:
    leaders = leaderboard_top(limit=limit or settings.TARGETGRID_LEADERBOARD_SIZE)
    return {
        "type": "leaderboard.updated",
        "leaders": [
            {
                "rank": rank,
                "lead_id": str(lead.id),
                "email": lead.email,
                "name": lead.name,
                "company": lead.company,
                "current_score": lead.current_score,
            }
            for rank, lead in enumerate(leaders, start=1)
        ],
    }


def broadcast_score_changes(changes: list[dict]) -> None:
    if not changes:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    per_lead: dict[str, list[dict]] = defaultdict(list)
    for change in changes:
        per_lead[change["lead_id"]].append(change)
    leaderboard = leaderboard_payload()

    async def send_all() -> None:
        await layer.group_send(groups.EVENTS, {"type": "score.changes", "changes": changes})
        for lead_id, lead_changes in per_lead.items():
            await layer.group_send(groups.lead_group(lead_id), {"type": "score.changes", "changes": lead_changes})
        await layer.group_send(groups.LEADERBOARD, leaderboard)

    async_to_sync(send_all)()


def broadcast_import_progress(import_id, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(groups.import_group(import_id), {"type": "import.progress", **payload})
