"""E-mail alerts: digests of domain events (scoring.AlertEvent) to the admin-managed recipients
(realtime.AlertRecipient), through Django's mail framework (SMTP settings from the environment).

Each recipient has a **cursor**: the id of the last alert considered for it. A digest is every
dispatched alert after the cursor that passes the recipient's filters; ``endpoint.paused`` operator
notices pass every filter. At most one e-mail per recipient per window
(``TARGETGRID_ALERT_DIGEST_SECONDS``): a digest is due at the later of *first new alert +
gather delay* (``TARGETGRID_ALERT_GATHER_SECONDS``) and *window start + window*. One alert is a
single-alert e-mail ("Ann entered MQL"); more are one digest listing them (the first
:data:`LIST_CAP`, then "and N more").

Sending, per recipient (:func:`_recipient_send`):

1. the recipient row is read, and if its window is over, the digest is collected and the window
   **claimed** with one conditional UPDATE (``last_sent_at = now`` where the cursor and
   ``last_sent_at`` are still what was read: a compare-and-set). The database lets one of two
   concurrent workers win, so two workers never send the same digest, and no lock is held while
   alerts are read or the e-mail is sent (on SQLite a transaction open across an SMTP exchange
   would stop every scoring writer);
2. the e-mail is sent;
3. on success the cursor moves past the alerts sent and ``last_error`` is cleared; on failure the
   cursor stays and ``last_error`` says why. The claimed window is the back-off: the same alerts
   (and any newer ones) go again one window later.

Delivery is at least once: a worker killed between 2 and 3 leaves the cursor where it was, and the
next window sends those alerts again (with the newer ones). Nothing here raises into its caller
(scoring runs it after commit in the inline mode): failures are logged and recorded on the row.

Alerts are read in id order, and the cursor never passes an alert that is not dispatched yet (the
fan-out runs batches in parallel under SKIP LOCKED, so a higher id can be dispatched first): the
digest stops below the lowest undispatched id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Max, Min
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from config import transport
from scoring.models import AlertEvent, AlertKind

from .models import AlertRecipient

logger = logging.getLogger(__name__)

LEAD_KINDS = (AlertKind.STAGE_CHANGED.value, AlertKind.SCORE_CROSSED.value)
KINDS = (*LEAD_KINDS, AlertKind.ENDPOINT_PAUSED.value)
# Rows listed in one digest; the rest are counted ("and 1,234 more").
LIST_CAP = 200
# Alerts read per query, and at most per digest (the rest go in the next one).
SCAN_CHUNK = 1000
SCAN_MAX = 50_000
SUBJECT_PREFIX = "[TargetGrid] "


def digests_wake() -> None:
    """Schedule the digests of recipients with new alerts (at most one e-mail per window).

    Where a delayed task can be kept (Celery, the embedded worker) the digest task runs after the
    gather delay, on the ``outbound`` queue; the periodic alerts sweep wakes it too, so a lost
    wake-up only delays a digest by a sweep. Elsewhere (inline) what is due is sent now."""
    try:
        if not AlertRecipient.objects.filter(enabled=True).exists():
            return
        if transport.can_defer():
            transport.publish("realtime.mail_digests", countdown=max(settings.TARGETGRID_ALERT_GATHER_SECONDS, 0) or None)
        else:
            digests_send()
    except Exception:  # never into scoring: the sweep wakes the digests again
        logger.exception("could not wake the e-mail digests")


def digests_send(*, now: datetime | None = None) -> int:
    """Send every digest that is due; returns how many e-mails went out. Safe to run concurrently
    and repeatedly; never raises (a failure is logged and recorded on the recipient)."""
    now = now or timezone.now()
    sent = 0
    try:
        pks = list(AlertRecipient.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))
    except Exception:
        logger.exception("could not read the e-mail alert recipients")
        return 0
    for pk in pks:
        try:
            sent += _recipient_send(pk, now=now)
        except Exception:  # one recipient's trouble never stops the others
            logger.exception("e-mail digest of recipient %s failed", pk)
    return sent


def cursor_now() -> int:
    """The cursor of a recipient added now: it gets the alerts from now on, not the history."""
    return AlertEvent.objects.aggregate(high=Max("id"))["high"] or 0


# --- One recipient ------------------------------------------------------------------------------


@dataclass
class Digest:
    items: list[dict] = field(default_factory=list)  # the listed alerts (at most LIST_CAP)
    total: int = 0  # matching alerts, listed or not
    first_at: datetime | None = None  # when the first matching alert was created
    last_id: int = 0  # the cursor after this digest (every alert read, matching or not)
    skip_to: int = 0  # the cursor may move here at once: alerts before the first match

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def _recipient_send(pk: int, *, now: datetime) -> int:
    window = timedelta(seconds=settings.TARGETGRID_ALERT_DIGEST_SECONDS)
    gather = timedelta(seconds=settings.TARGETGRID_ALERT_GATHER_SECONDS)
    recipient = AlertRecipient.objects.filter(pk=pk, enabled=True).first()
    if recipient is None:
        return 0
    if recipient.last_sent_at is not None and now < recipient.last_sent_at + window:
        return 0  # this window is taken (sent, being sent, or failed: the back-off)
    digest = _digest_collect(recipient)
    # Every write below is a compare-and-set on what was read: the row is as it was, or another
    # worker got there first and this one does nothing.
    unchanged = AlertRecipient.objects.filter(
        pk=pk, enabled=True, cursor=recipient.cursor, last_sent_at=recipient.last_sent_at
    )
    if digest.total == 0 or now < digest.first_at + gather:
        if digest.skip_to > recipient.cursor:  # nothing for this recipient up to there
            unchanged.update(cursor=digest.skip_to)
        return 0
    if not unchanged.update(last_sent_at=now):  # claim the window: one UPDATE, one winner
        return 0
    try:
        _send(recipient.email, digest)
    except Exception as exc:
        reason = f"{now.isoformat(timespec='seconds')}: {type(exc).__name__}: {exc}"[:500]
        logger.warning("e-mail digest to %s failed (%d alerts wait for the next window): %s",
                       recipient.email, digest.total, reason)
        AlertRecipient.objects.filter(pk=pk).update(last_error=reason)
        return 0
    AlertRecipient.objects.filter(pk=pk, cursor=recipient.cursor).update(cursor=digest.last_id, last_error="")
    logger.info("e-mail digest to %s: %d alerts", recipient.email, digest.total)
    return 1


def _digest_collect(recipient: AlertRecipient) -> Digest:
    """The dispatched alerts after the recipient's cursor, below the lowest undispatched one."""
    digest = Digest(last_id=recipient.cursor, skip_to=recipient.cursor)
    horizon = AlertEvent.objects.filter(dispatched=False).aggregate(low=Min("id"))["low"]
    match = _matcher(recipient)
    read = 0
    while read < SCAN_MAX:
        rows = AlertEvent.objects.filter(id__gt=digest.last_id, dispatched=True)
        if horizon is not None:
            rows = rows.filter(id__lt=horizon)
        rows = list(rows.order_by("id").values_list("id", "kind", "stage", "payload", "created_at")[:SCAN_CHUNK])
        for pk, kind, stage, payload, created_at in rows:
            digest.last_id = pk
            if not match(kind, stage, (payload or {}).get("data") or {}):
                if digest.total == 0:
                    digest.skip_to = pk
                continue
            digest.total += 1
            if digest.first_at is None:
                digest.first_at = created_at
            if len(digest.items) < LIST_CAP:
                digest.items.append(_item(kind, stage, payload or {}, created_at))
        read += len(rows)
        if len(rows) < SCAN_CHUNK:
            break
    return digest


def _matcher(recipient: AlertRecipient):
    kinds = set(recipient.event_kinds or LEAD_KINDS)
    stages = {str(name).casefold() for name in recipient.stages or ()}
    only_up = recipient.only_up

    def match(kind: str, stage: str, data: dict) -> bool:
        if kind == AlertKind.ENDPOINT_PAUSED:
            return True  # operator notices reach everybody
        if kind not in kinds:
            return False
        direction = data.get("direction")
        if only_up and direction == "down":
            return False
        if stages:
            # A stage change matches the stage entered, or the stage left when going down; a score
            # crossing matches the stage the lead is in after it.
            names = [data.get("to_stage"), data.get("from_stage") if direction == "down" else None] \
                if kind == AlertKind.STAGE_CHANGED else [stage]
            if not any(name is not None and str(name).casefold() in stages for name in names):
                return False
        return True

    return match


# --- The e-mail -------------------------------------------------------------------------------


def _one_line(value, limit: int = 120) -> str:
    """Text for a header or a table cell: no line breaks (a header may not hold one), bounded."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url(name: str, *args) -> str:
    try:
        return settings.TARGETGRID_PUBLIC_URL + reverse(name, args=args)
    except NoReverseMatch:
        return settings.TARGETGRID_PUBLIC_URL + "/"


def _item(kind: str, stage: str, payload: dict, created_at) -> dict:
    data = payload.get("data") or {}
    if kind == AlertKind.ENDPOINT_PAUSED:
        endpoint = data.get("endpoint") if isinstance(data.get("endpoint"), dict) else {}
        name = _one_line(endpoint.get("name") or endpoint.get("url") or data.get("name") or "an endpoint")
        failures = data.get("failures")
        reason = _one_line(data.get("reason") or data.get("last_error") or endpoint.get("status_reason") or "", 300)
        if isinstance(failures, int) and not isinstance(failures, bool):
            reason = f"{failures} consecutive failures" + (f"; last: {reason}" if reason else "")
        url = _url("admin:realtime_webhookendpoint_change", endpoint["id"]) if endpoint.get("id") else \
            _url("admin:index")
        return {"kind": kind, "operator": True, "created_at": created_at, "url": url, "lead": None,
                "headline": f"Webhook endpoint {name} paused", "detail": reason}
    lead = data.get("lead") if isinstance(data.get("lead"), dict) else {}
    label = _one_line(lead.get("name") or lead.get("email") or "A lead", 80)
    direction = data.get("direction")
    if kind == AlertKind.STAGE_CHANGED:
        to_stage = _one_line(data.get("to_stage") or "no stage", 64)
        headline = f"{label} entered {to_stage}" if direction != "down" else f"{label} dropped to {to_stage}"
        from_stage = data.get("from_stage")
        detail = f"from {_one_line(from_stage, 64)}" if from_stage else ""
    else:
        threshold = data.get("threshold")
        headline = f"{label} crossed {threshold} points" if direction != "down" else f"{label} fell below {threshold} points"
        detail = f"was {data.get('previous_score')}" if data.get("previous_score") is not None else ""
    lead_id = lead.get("id")
    return {
        "kind": kind, "operator": False, "created_at": created_at, "headline": headline, "detail": detail,
        "direction": direction or "", "url": _url("lead-detail", lead_id) if lead_id else _url("leads"),
        "lead": {
            "name": _one_line(lead.get("name"), 80), "email": _one_line(lead.get("email"), 254),
            "company": _one_line(lead.get("company"), 80), "score": lead.get("score"),
            "stage": _one_line(lead.get("stage") or stage, 64),
        },
    }


def _subject(digest: Digest) -> str:
    if digest.total == 1:
        return SUBJECT_PREFIX + digest.items[0]["headline"]
    return SUBJECT_PREFIX + f"{digest.total:,} alerts"


def message_build(*, email: str, digest: Digest) -> EmailMultiAlternatives:
    """The multipart (text + HTML) e-mail of a digest."""
    context = {
        "digest": digest, "items": digest.items, "total": digest.total, "more": digest.more,
        "single": digest.total == 1, "subject": _subject(digest),
        "alerts_url": _url("admin:realtime_alertrecipient_changelist"), "public_url": settings.TARGETGRID_PUBLIC_URL,
        "window_seconds": settings.TARGETGRID_ALERT_DIGEST_SECONDS,
    }
    message = EmailMultiAlternatives(
        subject=context["subject"],
        body=render_to_string("realtime/alert_digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email],
        headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
    )
    message.attach_alternative(render_to_string("realtime/alert_digest.html", context), "text/html")
    return message


def _send(email: str, digest: Digest) -> None:
    message_build(email=email, digest=digest).send(fail_silently=False)


def recipient_test_send(*, recipient: AlertRecipient) -> str:
    """Send a sample alert to ``recipient`` now (the admin's "Send test e-mail"); the cursor and the
    window are left alone. Returns "" or the error, which is also recorded in ``last_error``."""
    now = timezone.now()
    sample = _item(AlertKind.STAGE_CHANGED, "MQL", {"data": {
        "lead": {"name": "Test Lead", "email": "test.lead@example.com", "company": "Example Inc.",
                 "score": 120, "stage": "MQL"},
        "from_stage": "Warm", "to_stage": "MQL", "direction": "up",
    }}, now)
    sample["headline"] = "Test e-mail: " + sample["headline"]
    sample["url"] = _url("leads")
    try:
        _send(recipient.email, Digest(items=[sample], total=1, first_at=now))
    except Exception as exc:
        error = f"{now.isoformat(timespec='seconds')}: test e-mail: {type(exc).__name__}: {exc}"[:500]
        AlertRecipient.objects.filter(pk=recipient.pk).update(last_error=error)
        return error
    return ""
