"""Outbound webhooks (Standard Webhooks): fan-out of alerts into delivery rows, signing, sending
with retries. TO BE BUILT (helper A): see docs/stages-and-alerts.md."""

from __future__ import annotations


def deliveries_create(*, alerts) -> int:
    """One WebhookDelivery per (matching endpoint, alert) — idempotent; in the caller's transaction."""
    return 0


def sender_wake() -> None:
    """Wake the sender (a task on its own queue; never blocks scoring)."""
