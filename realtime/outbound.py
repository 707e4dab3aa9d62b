"""Outbound webhooks (Standard Webhooks): fan-out of alerts into delivery rows, signing, sending
with retries (docs/stages-and-alerts.md, "Outbound webhooks").

* :func:`deliveries_create` -- in the transaction that marks alerts dispatched, one
  ``WebhookDelivery`` per (matching endpoint, alert): one statement, idempotent (the unique
  (endpoint, alert) pair and a ``msg_id`` derived from both).
* :func:`deliveries_send` -- claims due rows in small batches (``locked_until``, SKIP LOCKED),
  commits, and sends them concurrently from a bounded thread pool with a per-request timeout and a
  per-endpoint cap on requests in flight, so one hanging receiver never holds up the others. Each
  result is recorded as it arrives: one ``DeliveryAttempt``, the delivery (retry with back-off and
  jitter, ``Retry-After``, give up after ``MAX_ATTEMPTS``), the endpoint (410 disables it, N
  consecutive failures pause it and tell the operator with an ``endpoint.paused`` alert).
* Operator actions (admin): :func:`endpoint_resume`, :func:`endpoint_disable`,
  :func:`endpoint_rotate_secret`, :func:`endpoint_send_test`, :func:`deliveries_resend`.

Delivery is at least once with a stable ``webhook-id``: a sender killed mid-request leaves its claim
to run out (``locked_until``) and the row is sent again with the same id; receivers dedupe on it.
The rows are the source of truth; a publish of ``realtime.deliveries_send`` is only a wake-up.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import random
import secrets as secrets_module
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from config import transport
from config.bulk import dicts_insert
from config.retry import run_with_retries
from events.webhooks import SECRET_PREFIX, secret_key_bytes, signature_compute
from scoring.models import AlertEvent, AlertKind

from .models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointStatus,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

USER_AGENT = "TargetGrid-Webhooks/1"
TEST_KIND = "webhook.test"
# The kinds an endpoint may subscribe to, and what an empty list means (never endpoint.paused).
KNOWN_KINDS = tuple(AlertKind.values)
DEFAULT_KINDS = (AlertKind.STAGE_CHANGED.value, AlertKind.SCORE_CROSSED.value)
LEAD_KINDS = DEFAULT_KINDS
EXCERPT_CHARS = 1000
EXCERPT_BYTES = 4096
ERROR_CHARS = 500
# Jitter: each delay is multiplied by uniform(1 - JITTER, 1 + JITTER). With a factor >= 1.5 the
# slowest draw of attempt n+1 is still later than the fastest of attempt n (0.8 * 1.5 = 1.2).
JITTER = 0.2


# --- Secrets and signatures -------------------------------------------------------------------


def secret_generate() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(32)).decode("ascii")


def secret_mask(secret: str) -> str:
    return f"{secret[:10]}…{secret[-4:]}" if len(secret) > 16 else "…"


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation overlap lasts."""
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        found.append(endpoint.previous_secret)
    return found


def headers_sign(*, secrets: list[str], msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The request headers of one attempt: Standard Webhooks id, timestamp and one ``v1``
    signature per secret (space-separated), plus content type and user agent."""
    timestamp = str(int(now.timestamp()))
    signatures = [
        "v1," + base64.b64encode(signature_compute(key=secret_key_bytes(secret), msg_id=msg_id,
                                                   timestamp=timestamp, body=body)).decode("ascii")
        for secret in secrets
    ]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- Fan-out ------------------------------------------------------------------------------------


def body_of(payload: dict) -> str:
    """The frozen body of a delivery: compact JSON, UTF-8 (every attempt signs these bytes)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def msg_id_of(*, alert_uid: uuid.UUID, endpoint_id: int) -> str:
    """Stable and unique per (alert, endpoint): every attempt and every re-fan-out of the same pair
    gets the same ``webhook-id`` (msg_id is unique across endpoints, so it is derived from both)."""
    return "msg_" + uuid.uuid5(alert_uid, f"endpoint:{endpoint_id}").hex


def endpoint_wants(endpoint: WebhookEndpoint, alert) -> bool:
    """Kinds: empty = lead.stage_changed and lead.score_crossed. Stages (lead kinds only): empty =
    all; a stage change matches its ``to_stage`` or its ``from_stage`` (a drop out of MQL reaches
    an MQL subscriber); a score crossing matches the lead's stage. Names compare exactly."""
    kinds = endpoint.event_kinds or DEFAULT_KINDS
    if alert.kind not in kinds:
        return False
    if alert.kind == AlertKind.ENDPOINT_PAUSED:
        # Not to the endpoint whose own pause it reports (it is failing anyway).
        about = ((alert.payload or {}).get("data") or {}).get("endpoint") or {}
        return about.get("id") != endpoint.pk
    if not endpoint.stages or alert.kind not in LEAD_KINDS:
        return True
    if alert.kind == AlertKind.STAGE_CHANGED:
        data = (alert.payload or {}).get("data") or {}
        touched = {data.get("to_stage"), data.get("from_stage"), alert.stage}
    else:
        touched = {alert.stage}
    return any(stage in touched for stage in endpoint.stages)


def deliveries_create(*, alerts) -> int:
    """One WebhookDelivery per (endpoint active or paused -- paused endpoints keep accumulating
    pending rows until resumed --, matching alert), in the caller's transaction: the endpoints
    are read once, the rows inserted in one statement that skips pairs already there (idempotent).
    Returns the number of rows inserted (None-safe: 0 when the backend does not say)."""
    if not alerts:
        return 0
    endpoints = list(
        WebhookEndpoint.objects.filter(status__in=[EndpointStatus.ACTIVE, EndpointStatus.PAUSED])
        .only("id", "event_kinds", "stages")
    )
    if not endpoints:
        return 0
    now = timezone.now()
    rows = []
    for alert in alerts:
        body = None
        for endpoint in endpoints:
            if not endpoint_wants(endpoint, alert):
                continue
            body = body if body is not None else body_of(alert.payload)
            rows.append({
                "id": uuid.uuid4(), "endpoint_id": endpoint.pk, "alert_id": alert.pk,
                "msg_id": msg_id_of(alert_uid=alert.uid, endpoint_id=endpoint.pk), "kind": alert.kind,
                "body": body, "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now,
                "locked_until": None, "last_status_code": None, "last_error": "", "created_at": now,
                "delivered_at": None,
            })
    if not rows:
        return 0
    return dicts_insert(WebhookDelivery, rows, ignore_conflicts=True) or 0


# --- Retry policy ---------------------------------------------------------------------------------


def retry_delay(number: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after failed attempt ``number`` (1-based, within a series):
    ``base * factor ** (number - 1)``, times a jitter in [0.8, 1.2], at most the cap. With the
    factor >= 1.5 every delay is longer than the one before until the cap."""
    base = settings.TARGETGRID_WEBHOOK_RETRY_BASE_SECONDS
    factor = settings.TARGETGRID_WEBHOOK_RETRY_FACTOR
    cap = settings.TARGETGRID_WEBHOOK_RETRY_MAX_SECONDS
    raw = base * factor ** min(max(number - 1, 0), 64)
    return float(min(cap, raw * (rng or random).uniform(1 - JITTER, 1 + JITTER)))


def retry_after_parse(value: str | None, *, now: datetime) -> int | None:
    """``Retry-After`` as whole seconds from now (delay-seconds or an HTTP-date), bounded to
    ``TARGETGRID_WEBHOOK_RETRY_AFTER_MAX_SECONDS``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    limit = settings.TARGETGRID_WEBHOOK_RETRY_AFTER_MAX_SECONDS
    if value.isascii() and value.isdigit():
        return min(int(value[:12]), limit)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt_timezone.utc)
    try:
        seconds = (when - now).total_seconds()
    except OverflowError:
        return None
    return int(min(max(seconds, 0), limit))


# --- Sending ----------------------------------------------------------------------------------------


@dataclass
class Result:
    outcome: str
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str
    retry_after: str | None
    started_at: datetime


_http_lock = threading.Lock()
_http: urllib3.PoolManager | None = None


def _pool() -> urllib3.PoolManager:
    """One connection pool per process (keep-alive to each receiver); thread-safe."""
    global _http
    with _http_lock:
        if _http is None:
            size = max(1, settings.TARGETGRID_WEBHOOK_SENDER_THREADS)
            _http = urllib3.PoolManager(num_pools=64, maxsize=size, block=False, retries=False)
        return _http


def _clean(text: str, limit: int) -> str:
    # NUL is refused by PostgreSQL text columns.
    return text.replace("\x00", "\ufffd")[:limit]


def http_post(*, url: str, headers: dict[str, str], body: bytes) -> Result:
    """One POST, never raising: redirects are not followed (a 3xx is a failure), at most
    ``EXCERPT_BYTES`` of the answer are read, connect and each read bounded by the timeout."""
    started_at = timezone.now()
    clock = time.monotonic()
    timeout = float(settings.TARGETGRID_WEBHOOK_TIMEOUT_SECONDS)
    response = None
    try:
        response = _pool().request(
            "POST", url, body=body, headers=headers, redirect=False, retries=False, preload_content=False,
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        )
        data = response.read(EXCERPT_BYTES + 1)
        status = response.status
        excerpt = _clean(data[:EXCERPT_BYTES].decode("utf-8", errors="replace"), EXCERPT_CHARS)
        retry_after = response.headers.get("Retry-After")
        outcome = AttemptOutcome.SUCCESS if 200 <= status < 300 else AttemptOutcome.HTTP_ERROR
        error = "" if outcome == AttemptOutcome.SUCCESS else f"HTTP {status}"
        if 300 <= status < 400:
            error = f"HTTP {status} (redirects are not followed): {response.headers.get('Location', '')}"
        return Result(outcome, status, _ms(clock), excerpt, _clean(error, ERROR_CHARS), retry_after, started_at)
    except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable (a ConnectTimeoutError subclass)
        return Result(AttemptOutcome.CONNECTION, None, _ms(clock), "",
                      _clean(f"connection failed: {exc}", ERROR_CHARS), None, started_at)
    except urllib3.exceptions.TimeoutError as exc:
        return Result(AttemptOutcome.TIMEOUT, None, _ms(clock), "", _clean(f"timed out: {exc}", ERROR_CHARS),
                      None, started_at)
    except Exception as exc:  # noqa: BLE001 -- connection refused, TLS, bad URL, protocol: all a failed attempt
        return Result(AttemptOutcome.CONNECTION, None, _ms(clock), "",
                      _clean(f"{type(exc).__name__}: {exc}", ERROR_CHARS), None, started_at)
    finally:
        if response is not None:
            try:
                if response.closed or response.isclosed():
                    response.release_conn()
                else:  # an answer longer than the excerpt: drop the connection rather than read it
                    response.close()
                    response.release_conn()
            except Exception:  # noqa: BLE001
                pass


def _ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


@dataclass
class _Job:
    delivery_id: uuid.UUID
    endpoint_id: int
    msg_id: str
    url: str
    body: bytes
    secrets: list[str]
    series_done: int  # attempts already made in the current series (resend starts a new series)


def _due_filter(now: datetime) -> Q:
    return Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) & (
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )


def _claim(*, limit: int, in_flight: dict[int, int], delivery_ids=None) -> list[_Job]:
    """Claim up to ``limit`` due rows of active endpoints (at most the per-endpoint cap in flight),
    under SKIP LOCKED, until now + timeout + margin; committed before anything is sent."""
    cap = max(1, settings.TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY)
    claim_seconds = settings.TARGETGRID_WEBHOOK_TIMEOUT_SECONDS + settings.TARGETGRID_WEBHOOK_CLAIM_MARGIN_SECONDS
    jobs: list[_Job] = []
    for attempt in run_with_retries():
        with attempt, transaction.atomic(durable=True):
            now = timezone.now()
            endpoints = WebhookEndpoint.objects.all() if delivery_ids is not None else \
                WebhookEndpoint.objects.filter(status=EndpointStatus.ACTIVE)
            endpoints = {e.pk: e for e in endpoints.exclude(pk__in=[k for k, n in in_flight.items() if n >= cap])}
            if not endpoints:
                return []
            counts = dict(in_flight)
            picked = []
            # A few passes: a backlog of one endpoint fills the first rows but only its cap is
            # taken; the next pass leaves the saturated endpoints out, so the others get slots.
            for _pass in range(4):
                open_ids = [pk for pk in endpoints if counts.get(pk, 0) < cap]
                if not open_ids or len(picked) >= limit:
                    break
                rows = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(endpoint_id__in=open_ids)
                if delivery_ids is not None:
                    rows = rows.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING)
                else:
                    rows = rows.filter(_due_filter(now))
                if picked:
                    rows = rows.exclude(pk__in=[row.pk for row in picked])
                # Read no more rows than could be taken: a backlog of one endpoint yields its
                # free slots, not four times the limit (each row read is locked and built).
                window = min((limit - len(picked)) * 4, sum(cap - counts.get(pk, 0) for pk in open_ids))
                rows = list(rows.only("id", "endpoint_id", "msg_id", "body", "attempts")
                            .order_by("next_attempt_at")[:window])
                for row in rows:
                    if len(picked) >= limit:
                        break
                    if counts.get(row.endpoint_id, 0) >= cap:
                        continue
                    counts[row.endpoint_id] = counts.get(row.endpoint_id, 0) + 1
                    picked.append(row)
                if len(rows) < window:
                    break  # nothing else is due
            if not picked:
                return []
            WebhookDelivery.objects.filter(pk__in=[row.pk for row in picked]).update(
                locked_until=now + timedelta(seconds=claim_seconds)
            )
            jobs = [
                _Job(row.pk, row.endpoint_id, row.msg_id, endpoints[row.endpoint_id].url, row.body.encode("utf-8"),
                     signing_secrets(endpoints[row.endpoint_id], now=now), row.attempts)
                for row in picked
            ]
    resumed = [job for job in jobs if job.series_done]
    if resumed:
        # A series ends with an attempt after which nothing was scheduled (success, gave up, 410);
        # a resend starts a new one, so only the attempts after that count towards the limit.
        ends = dict(
            DeliveryAttempt.objects.filter(delivery_id__in=[job.delivery_id for job in resumed],
                                           next_attempt_at__isnull=True)
            .values_list("delivery_id").annotate(last=Max("number")).values_list("delivery_id", "last")
        )
        for job in resumed:
            job.series_done -= ends.get(job.delivery_id, 0)
    return jobs


def _send(job: _Job) -> Result:
    now = timezone.now()
    try:
        headers = headers_sign(secrets=job.secrets, msg_id=job.msg_id, body=job.body, now=now)
    except ValueError as exc:  # a malformed secret stored outside the admin: a failed attempt, visible
        return Result(AttemptOutcome.CONNECTION, None, 0, "", _clean(f"cannot sign: {exc}", ERROR_CHARS), None, now)
    return http_post(url=job.url, headers=headers, body=job.body)


def _record(pairs: list[tuple[_Job, Result]]) -> None:
    """Write the outcomes that arrived together in one transaction with a fixed number of
    statements (:func:`_record_group`); if that fails, each on its own (the one-by-one path), so
    one bad row cannot keep the others from being recorded."""
    try:
        for attempt in run_with_retries():
            with attempt, transaction.atomic(durable=True):
                _record_group(pairs)
        return
    except Exception:
        if len(pairs) == 1:
            raise
        logger.warning("recording %d webhook attempts together failed; one by one", len(pairs), exc_info=True)
    for pair in pairs:
        try:
            _record_one(*pair)
        except Exception:  # the claim runs out and the row is sent again (same msg_id)
            logger.exception("recording webhook delivery %s failed", pair[0].msg_id)


def _record_one(job: _Job, result: Result) -> None:
    """The one-by-one path: one result in a transaction of its own."""
    for attempt in run_with_retries():
        with attempt, transaction.atomic(durable=True):
            _record_in_transaction(job, result)


@dataclass
class _Outcome:
    status: str
    next_at: datetime | None
    retry_after: int | None
    success: bool
    gone: bool


def _outcome_of(job: _Job, result: Result, *, now: datetime) -> _Outcome:
    """What one answer means for its delivery: succeeded, failed for good (410, the series'
    last attempt) or pending again after the later of our back-off and ``Retry-After``."""
    success = result.outcome == AttemptOutcome.SUCCESS
    gone = result.status_code == 410
    retry_after = None if success else retry_after_parse(result.retry_after, now=now)
    series = job.series_done + 1
    if success:
        return _Outcome(DeliveryStatus.SUCCEEDED, None, None, True, False)
    if gone or series >= settings.TARGETGRID_WEBHOOK_MAX_ATTEMPTS:
        return _Outcome(DeliveryStatus.FAILED, None, retry_after, False, gone)
    # The later of our back-off and the receiver's Retry-After (bounded): never sooner than the
    # receiver asked, never sooner than our own schedule.
    delay = max(retry_delay(series), float(retry_after or 0))
    return _Outcome(DeliveryStatus.PENDING, now + timedelta(seconds=delay), retry_after, False, False)


def _endpoint_account(endpoint: WebhookEndpoint, job: _Job, result: Result, outcome: _Outcome, *,
                      now: datetime, fields: set[str]) -> bool:
    """One answer's effect on its endpoint (in memory; the caller saves ``fields``): consecutive
    failures, 410 disables, ``PAUSE_AFTER`` consecutive failures pause it and tell the operator.
    Returns True when this answer disabled the endpoint (the caller cancels its pending rows)."""
    if outcome.success:
        endpoint.consecutive_failures, endpoint.last_success_at = 0, now
        fields.update(("consecutive_failures", "last_success_at"))
    else:
        endpoint.consecutive_failures += 1
        endpoint.last_failure_at = now
        fields.update(("consecutive_failures", "last_failure_at"))
    if outcome.gone and endpoint.status != EndpointStatus.DISABLED:
        endpoint.status = EndpointStatus.DISABLED
        endpoint.status_reason = f"the receiver answered 410 Gone (delivery {job.msg_id})"[:500]
        endpoint.status_changed_at = now
        fields.update(("status", "status_reason", "status_changed_at"))
        return True
    if (not outcome.success and endpoint.status == EndpointStatus.ACTIVE
            and endpoint.consecutive_failures >= settings.TARGETGRID_WEBHOOK_PAUSE_AFTER):
        endpoint.status = EndpointStatus.PAUSED
        endpoint.status_reason = f"{endpoint.consecutive_failures} consecutive failures; last: {result.error}"[:500]
        endpoint.status_changed_at = now
        fields.update(("status", "status_reason", "status_changed_at"))
        _paused_alert(endpoint, last_error=result.error, now=now)
    return False


def _attempt_row(job: _Job, result: Result, outcome: _Outcome, *, number: int) -> dict:
    return {
        "delivery_id": job.delivery_id, "number": number, "outcome": result.outcome,
        "status_code": result.status_code, "latency_ms": result.latency_ms, "response_excerpt": result.excerpt,
        "error": result.error, "retry_after_seconds": outcome.retry_after, "next_attempt_at": outcome.next_at,
        "started_at": result.started_at,
    }


def _record_group(pairs: list[tuple[_Job, Result]]) -> None:
    """Set-based recording, recorded exactly as :func:`_record_in_transaction` one pair after the
    other (endpoints in pk order, each endpoint's answers in arrival order) would, in a number of
    statements that does not grow with the answers: the endpoints locked in one statement (pk
    order), the deliveries read in one, the attempt rows inserted in one, the successful deliveries
    updated in one per status code; then one UPDATE per failed delivery (each has its own
    schedule), per endpoint saved (and per endpoint disabled or paused)."""
    ids = [job.delivery_id for job, _ in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError("the same delivery twice in one group")  # -> one by one, in order
    now = timezone.now()
    endpoints = {
        endpoint.pk: endpoint
        for endpoint in WebhookEndpoint.objects.select_for_update()
        .filter(pk__in=sorted({job.endpoint_id for job, _ in pairs})).order_by("pk")
    }
    attempts = dict(WebhookDelivery.objects.filter(pk__in=ids).values_list("id", "attempts"))
    attempt_rows: list[dict] = []
    succeeded: dict[int | None, list] = {}  # status code -> delivery ids
    failed: list[tuple[uuid.UUID, Result, _Outcome]] = []
    disabled: list[WebhookEndpoint] = []
    saves: list[tuple[WebhookEndpoint, set[str]]] = []
    for endpoint_id in sorted(endpoints):  # the one-by-one path's order: lock order, then arrival
        endpoint = endpoints[endpoint_id]
        fields: set[str] = set()
        cancelled = False  # after a 410 the endpoint's pending rows are cancelled, later answers too
        for job, result in pairs:
            if job.endpoint_id != endpoint_id or job.delivery_id not in attempts:
                continue  # deleted meanwhile
            outcome = _outcome_of(job, result, now=now)
            attempt_rows.append(_attempt_row(job, result, outcome, number=attempts[job.delivery_id] + 1))
            if not cancelled:
                if outcome.success:
                    succeeded.setdefault(result.status_code, []).append(job.delivery_id)
                else:
                    failed.append((job.delivery_id, result, outcome))
            if _endpoint_account(endpoint, job, result, outcome, now=now, fields=fields):
                cancelled = True
                disabled.append(endpoint)
        if fields:
            saves.append((endpoint, fields))
    dicts_insert(DeliveryAttempt, attempt_rows)
    # Only a row still pending changes state (an operator may have cancelled it meanwhile).
    for status_code, delivery_ids in succeeded.items():
        WebhookDelivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING).update(
            attempts=F("attempts") + 1, status=DeliveryStatus.SUCCEEDED, locked_until=None,
            last_status_code=status_code, last_error="", delivered_at=now,
        )
    for delivery_id, result, outcome in failed:
        changes = {
            "attempts": F("attempts") + 1, "status": outcome.status, "locked_until": None,
            "last_status_code": result.status_code, "last_error": result.error,
        }
        if outcome.next_at is not None:
            changes["next_attempt_at"] = outcome.next_at
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(**changes)
    for endpoint in disabled:
        _cancel_pending(endpoint, reason=endpoint.status_reason)
    for endpoint, fields in saves:
        endpoint.save(update_fields=[*sorted(fields), "updated_at"])


def _record_in_transaction(job: _Job, result: Result) -> None:
    """One answer, the one-by-one way (the fallback of :func:`_record_group`, and its reference)."""
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=job.endpoint_id).first()
    delivery = WebhookDelivery.objects.filter(pk=job.delivery_id).only("id", "attempts", "status").first()
    if endpoint is None or delivery is None:
        return  # deleted meanwhile
    outcome = _outcome_of(job, result, now=now)
    DeliveryAttempt.objects.create(**_attempt_row(job, result, outcome, number=delivery.attempts + 1))
    changes = {
        "attempts": F("attempts") + 1, "status": outcome.status, "locked_until": None,
        "last_status_code": result.status_code, "last_error": result.error,
    }
    if outcome.success:
        changes["delivered_at"] = now
    if outcome.next_at is not None:
        changes["next_attempt_at"] = outcome.next_at
    # Only a row still pending changes state (an operator may have cancelled it meanwhile).
    WebhookDelivery.objects.filter(pk=job.delivery_id, status=DeliveryStatus.PENDING).update(**changes)
    fields: set[str] = set()
    if _endpoint_account(endpoint, job, result, outcome, now=now, fields=fields):
        _cancel_pending(endpoint, reason=endpoint.status_reason)
    endpoint.save(update_fields=[*sorted(fields), "updated_at"])


def _disable(endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    endpoint.status, endpoint.status_reason, endpoint.status_changed_at = EndpointStatus.DISABLED, reason[:500], now
    _cancel_pending(endpoint, reason=reason)


def _cancel_pending(endpoint: WebhookEndpoint, *, reason: str) -> None:
    WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, locked_until=None, last_error=reason[:500]
    )


def _paused_alert(endpoint: WebhookEndpoint, *, last_error: str, now: datetime) -> None:
    """Tell the operator, in the transaction that paused the endpoint: an ``endpoint.paused``
    AlertEvent (e-mail, toast, subscribed endpoints), announced after commit."""
    uid = uuid.uuid4()
    payload = {
        "id": str(uid), "type": AlertKind.ENDPOINT_PAUSED.value,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"endpoint": {"id": endpoint.pk, "name": endpoint.name, "url": endpoint.url},
                 "failures": endpoint.consecutive_failures, "last_error": last_error},
    }
    AlertEvent.objects.create(uid=uid, kind=AlertKind.ENDPOINT_PAUSED, lead=None, stage="", payload=payload,
                              dispatched=False, created_at=now)
    transport.notify_on_commit("alerts.created", [payload])


def deliveries_send(*, max_seconds: float | None = None, delivery_ids=None) -> int:
    """Send due deliveries until none is due or ``max_seconds`` passed; returns attempts made.

    A bounded pool of threads does the HTTP (no database work in them); this thread claims rows as
    slots free up and records the results as they arrive, so a receiver that hangs holds one slot
    (at most the per-endpoint cap) until its timeout, never the others. Results are gathered for
    a moment (half the requests in flight, or ``GATHER_SECONDS``) and recorded together; a claim
    waits for half of what the last one left in flight to come back: fewer, larger transactions.
    ``delivery_ids``: send just these pending rows now, whatever their endpoint's status or
    schedule (the test button)."""
    if max_seconds is None:
        max_seconds = settings.TARGETGRID_WEBHOOK_SENDER_MAX_SECONDS
    threads = max(1, settings.TARGETGRID_WEBHOOK_SENDER_THREADS)
    deadline = time.monotonic() + max_seconds
    in_flight: dict = {}  # future -> job
    per_endpoint: dict[int, int] = {}
    finished: queue.SimpleQueue = queue.SimpleQueue()  # futures, as they complete
    sent = 0
    claimed = False
    freed = 0  # slots freed since the last claim
    claim_at = 1
    last_claim = 0.0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="targetgrid-webhook") as pool:
        while True:
            may_claim = not claimed if delivery_ids is not None else time.monotonic() < deadline
            # Claim when nothing is out, when half of what the last claim left in flight has come
            # back, when anything came back 0.1 s after the last claim (slow receivers hold the
            # rest), or after a second (rows that came due meanwhile, other endpoints).
            since = time.monotonic() - last_claim
            if may_claim and (not in_flight or freed >= claim_at or (freed and since >= 2 * GATHER_SECONDS)
                              or since >= 1.0):
                jobs = _claim(limit=threads - len(in_flight), in_flight=per_endpoint, delivery_ids=delivery_ids)
                claimed, freed, last_claim = True, 0, time.monotonic()
                for job in jobs:
                    future = pool.submit(_send, job)
                    in_flight[future] = job
                    per_endpoint[job.endpoint_id] = per_endpoint.get(job.endpoint_id, 0) + 1
                    future.add_done_callback(finished.put)
                claim_at = max(1, min(len(in_flight), threads) // 2)
                if not jobs and not in_flight:
                    break
            if not in_flight:
                break
            done = _gather(finished, in_flight=len(in_flight))
            pairs = []
            for future in done:
                job = in_flight.pop(future)
                per_endpoint[job.endpoint_id] -= 1
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 -- _send catches what it expects; anything else is a failed attempt
                    result = Result(AttemptOutcome.CONNECTION, None, 0, "", _clean(f"{type(exc).__name__}: {exc}",
                                                                                   ERROR_CHARS), None, timezone.now())
                pairs.append((job, result))
            if pairs:
                freed += len(pairs)
                try:
                    _record(pairs)
                except Exception:  # the claim runs out and the row is sent again (same msg_id)
                    logger.exception("recording webhook delivery %s failed", pairs[0][0].msg_id)
                sent += len(pairs)
    if delivery_ids is None:
        _schedule_next_wake()
    return sent


# How long the sender gathers answers before recording them (when fewer than half the requests
# in flight have come back): a few ms of latency for a transaction per batch.
GATHER_SECONDS = 0.05


def _gather(finished: queue.SimpleQueue, *, in_flight: int) -> list:
    """Futures that completed: waits up to a second for the first (rows that come due meanwhile
    are claimed while a slow one is out), then up to ``GATHER_SECONDS`` more until half of
    the ``in_flight`` requests are back."""
    try:
        done = [finished.get(timeout=1.0)]
    except queue.Empty:
        return []
    want = max(1, in_flight // 2)
    until = time.monotonic() + GATHER_SECONDS
    while len(done) < want:
        left = until - time.monotonic()
        try:
            done.append(finished.get(timeout=left) if left > 0 else finished.get_nowait())
        except queue.Empty:
            break
    while True:  # whatever else is already back
        try:
            done.append(finished.get_nowait())
        except queue.Empty:
            return done


_wake_lock = threading.Lock()
_wake_scheduled_at = 0.0  # monotonic time of the delayed wake-up this process has scheduled


def _schedule_next_wake() -> None:
    """Wake again when the earliest pending row of an active endpoint comes due (a delayed publish,
    where something keeps time); waits beyond ``SENDER_WAKE_MAX`` are the periodic sweep's."""
    global _wake_scheduled_at
    if not transport.can_defer():
        return
    # A row claimed by another sender is due again when that claim runs out (its sender died).
    earliest = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__status=EndpointStatus.ACTIVE)
        .aggregate(at=Min(Greatest("next_attempt_at", Coalesce("locked_until", "next_attempt_at"))))["at"]
    )
    if earliest is None:
        return
    delay = max(1.0, (earliest - timezone.now()).total_seconds() + 0.5)
    if delay > settings.TARGETGRID_WEBHOOK_WAKE_MAX_SECONDS:
        return
    target = time.monotonic() + delay
    with _wake_lock:
        if time.monotonic() < _wake_scheduled_at <= target + 1:
            return  # an earlier (or the same) wake-up is already on its way
        _wake_scheduled_at = target
    transport.publish("realtime.deliveries_send", countdown=delay)


# Single flight per process: the embedded mode starts a thread per wake-up (long_running), so a
# wake-up that finds a sender running only asks it to look once more.
_flight = threading.Lock()
_again = threading.Event()


def deliveries_send_single_flight() -> None:
    while True:
        if not _flight.acquire(blocking=False):
            _again.set()
            return
        try:
            _again.clear()
            deliveries_send()
        finally:
            _flight.release()
        if not _again.is_set():
            return


def sender_wake() -> None:
    """Wake the sender (a task on its own queue, ``outbound``; never blocks scoring) when a
    delivery of an active endpoint is due: one indexed query, so the periodic sweep publishes
    nothing on an installation without endpoints or with nothing due."""
    due = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now(), endpoint__status=EndpointStatus.ACTIVE
    )
    if due.exists():
        transport.publish("realtime.deliveries_send")


# --- Operator actions (admin) ----------------------------------------------------------------------


def url_check(url: str) -> str:
    """The URL if it is http(s) with a host; ValueError naming the problem otherwise."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL needs a host")
    return url


def kinds_check(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
        raise ValueError("a list of event kinds, e.g. [\"lead.stage_changed\"]")
    unknown = [kind for kind in value if kind not in KNOWN_KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KINDS)}")
    return value


def stages_check(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(stage, str) and stage for stage in value):
        raise ValueError("a list of stage names, e.g. [\"MQL\", \"SQL\"]")
    return value


def endpoint_save(*, endpoint: WebhookEndpoint, fields: list[str] | None = None) -> str | None:
    """Create (``fields`` None) or update the named fields of an endpoint. A blank secret is
    generated; a given one must be a valid ``whsec_`` secret. Returns the secret when it was
    generated (shown to the operator once)."""
    generated = None
    if not endpoint.secret:
        endpoint.secret = generated = secret_generate()
        if fields is not None:
            fields = [*fields, "secret"]
    secret_key_bytes(endpoint.secret)  # ValueError if malformed
    url_check(endpoint.url)
    kinds_check(endpoint.event_kinds)
    stages_check(endpoint.stages)
    if fields is None or endpoint.pk is None:
        endpoint.save()
    elif fields:
        endpoint.save(update_fields=sorted({*fields, "updated_at"}))
    return generated


def endpoint_resume(*, endpoint_ids) -> int:
    """Active again, failures forgotten, every pending delivery due now; wakes the sender."""
    now = timezone.now()
    with transaction.atomic():
        count = WebhookEndpoint.objects.filter(pk__in=list(endpoint_ids)).update(
            status=EndpointStatus.ACTIVE, status_reason="", status_changed_at=now, consecutive_failures=0,
            updated_at=now,
        )
        WebhookDelivery.objects.filter(endpoint_id__in=list(endpoint_ids), status=DeliveryStatus.PENDING).update(
            next_attempt_at=now
        )
        transaction.on_commit(sender_wake)
    return count


def endpoint_disable(*, endpoint_ids, reason: str = "disabled by an operator") -> int:
    """Disabled; its pending deliveries cancelled (a resend brings one back)."""
    now = timezone.now()
    count = 0
    with transaction.atomic():
        for endpoint in WebhookEndpoint.objects.select_for_update().filter(pk__in=list(endpoint_ids)).order_by("pk"):
            _disable(endpoint, reason=reason, now=now)
            endpoint.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
            count += 1
    return count


def endpoint_rotate_secret(*, endpoint_id: int) -> str:
    """A new secret; the old one keeps signing too (two signatures) for the overlap. Returns it."""
    now = timezone.now()
    overlap = timedelta(hours=settings.TARGETGRID_WEBHOOK_ROTATION_OVERLAP_HOURS)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        endpoint.previous_secret, endpoint.secret = endpoint.secret, secret_generate()
        endpoint.previous_secret_expires_at = now + overlap
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint.secret


def endpoint_send_test(*, endpoint_id: int) -> WebhookDelivery:
    """A ``webhook.test`` delivery (no alert), sent now whatever the endpoint's status; the
    delivery is returned after the first attempt (retries follow the usual schedule)."""
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    uid = uuid.uuid4()
    payload = {
        "id": str(uid), "type": TEST_KIND, "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"endpoint": {"id": endpoint.pk, "name": endpoint.name, "url": endpoint.url},
                 "message": "A test event from TargetGrid."},
    }
    delivery = WebhookDelivery.objects.create(
        id=uuid.uuid4(), endpoint=endpoint, alert=None, msg_id="msg_" + uid.hex, kind=TEST_KIND,
        body=body_of(payload), status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now,
    )
    deliveries_send(delivery_ids=[delivery.pk], max_seconds=settings.TARGETGRID_WEBHOOK_TIMEOUT_SECONDS + 5)
    delivery.refresh_from_db()
    return delivery


def deliveries_resend(*, delivery_ids) -> int:
    """A new series of attempts for the same ``msg_id``: pending, due now (attempts are kept; the
    limit counts the new series); wakes the sender."""
    now = timezone.now()
    with transaction.atomic():
        count = WebhookDelivery.objects.filter(pk__in=list(delivery_ids)).update(
            status=DeliveryStatus.PENDING, next_attempt_at=now, locked_until=None, delivered_at=None
        )
        transaction.on_commit(sender_wake)
    return count
