"""Domain events (scoring.AlertEvent) leave TargetGrid from here: the toast on every open page, the
fan-out into webhook deliveries (realtime/outbound.py) and the e-mail digests (realtime/mail.py).

Scoring writes an AlertEvent row in the transaction that changed the lead (exactly once per actual
change) and announces ``alerts.created`` after commit (config/transport.py). In the process that
committed, :func:`on_alerts_created` broadcasts the toasts and wakes :func:`alerts_dispatch`. The
row, not the wake-up, is the source of truth: ``dispatched`` stays False until the fan-out for it
committed, and the periodic sweep (``realtime.alerts_sweep``) dispatches whatever a lost wake-up or
a killed worker left behind. Fan-out is idempotent (one delivery per endpoint and alert: a unique
constraint), so dispatching an alert twice creates nothing twice.
"""

from __future__ import annotations

import logging

from django.db import transaction

from config import transport
from config.retry import run_with_retries
from scoring.models import AlertEvent

from . import mail, outbound
from .broadcast import broadcast_alerts

logger = logging.getLogger(__name__)

DISPATCH_BATCH = 500


def on_alerts_created(payloads: list[dict]) -> None:
    """After commit, in the committing process: toasts now, fan-out in the background."""
    broadcast_alerts(payloads)
    transport.publish("realtime.alerts_dispatch")


def alerts_dispatch(*, limit: int = 100_000) -> int:
    """Fan out undispatched alerts, oldest first, a batch per transaction: webhook deliveries for
    every matching endpoint, marked dispatched in the same transaction. Then wake the sender and
    the e-mail digests. Returns how many alerts were dispatched."""
    done = 0
    while done < limit:
        for attempt in run_with_retries():
            with attempt, transaction.atomic():
                alerts = list(
                    AlertEvent.objects.select_for_update(skip_locked=True)
                    .filter(dispatched=False)
                    .order_by("id")[:DISPATCH_BATCH]
                )
                if alerts:
                    outbound.deliveries_create(alerts=alerts)
                    AlertEvent.objects.filter(pk__in=[alert.pk for alert in alerts]).update(dispatched=True)
        if not alerts:
            break
        done += len(alerts)
    if done:
        outbound.sender_wake()
        mail.digests_wake()
    return done


def alerts_sweep() -> None:
    """The periodic safety net: dispatch what was missed, send due deliveries and digests."""
    alerts_dispatch()
    outbound.sender_wake()
    mail.digests_wake()
