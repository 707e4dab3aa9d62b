"""Webhook authentication: Standard Webhooks signatures, or a static shared-secret header.

Signed mode (https://www.standardwebhooks.com/): headers ``webhook-id``, ``webhook-timestamp``
(Unix seconds) and ``webhook-signature`` (space-separated ``v1,<base64 signature>``), where the
signature is HMAC-SHA256 over ``"{id}.{timestamp}.{raw body}"`` keyed with the base64-decoded
``whsec_`` secret. Timestamps outside the tolerance are rejected (replay protection); any one
matching signature passes, so a sender may sign with the old and the new secret during a rotation,
and a source's ``previous_secret`` is accepted until it is cleared.

The source is named by ``?source=<name>``; without it every source is tried (senders then only need
the URL and the secret). Nothing here reads the database except to list candidate sources.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import WebhookSource

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class WebhookRejected(Exception):
    """Authentication failed: ``status`` 401 (who are you?) or 403 (source disabled)."""

    def __init__(self, reason: str, *, status: int = 401, source: WebhookSource | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.source = source


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError if it is not one."""
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret needs at least 16 bytes of key material")
    return key


def signature_compute(*, key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()


def signatures_parse(header: str) -> list[bytes]:
    """The ``v1`` signatures of a ``webhook-signature`` header (other versions are ignored)."""
    found = []
    for token in header.split():
        version, _, value = token.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def timestamp_check(value: str, *, now: datetime, tolerance: int) -> None:
    try:
        sent = int(value.strip())
        skew = now.timestamp() - sent
    except (TypeError, ValueError, OverflowError):
        raise WebhookRejected("webhook-timestamp must be Unix seconds") from None
    if skew > tolerance:
        raise WebhookRejected(f"webhook-timestamp is {int(skew)} s old (more than {tolerance} s): replay refused")
    if -skew > tolerance:
        raise WebhookRejected(f"webhook-timestamp is {int(-skew)} s in the future (more than {tolerance} s)")


def signature_matches(*, secrets: list[str], headers, body: bytes) -> bool:
    """True if any v1 signature in the headers was made with any of ``secrets`` (constant time)."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    offered = signatures_parse(headers["webhook-signature"])
    matched = False
    for secret in secrets:
        try:
            key = secret_key_bytes(secret)
        except ValueError:
            logger.error("a webhook source has a malformed secret; it can never verify")
            continue
        expected = signature_compute(key=key, msg_id=msg_id, timestamp=timestamp, body=body)
        for signature in offered:
            # No early exit: the time taken does not depend on which signature matched.
            matched |= hmac.compare_digest(expected, signature)
    return matched


@dataclass(frozen=True)
class _Headers:
    request_headers: object

    def get(self, name: str) -> str:
        return (self.request_headers.get(name) or "").strip()

    def __getitem__(self, name: str) -> str:
        return self.get(name)


def webhook_authenticate(*, request_headers, body: bytes, source_name: str | None = None, now=None) -> WebhookSource:
    """The WebhookSource that sent this request, or WebhookRejected with the reason."""
    now = now or timezone.now()
    headers = _Headers(request_headers)
    tolerance = settings.TARGETGRID_WEBHOOK_TOLERANCE_SECONDS
    candidates = list(WebhookSource.objects.order_by("pk"))
    if source_name is not None:
        candidates = [source for source in candidates if source.name == source_name]
        if not candidates:
            raise WebhookRejected(f"unknown webhook source {source_name!r}")
    if not candidates:
        raise WebhookRejected("no webhook sources are configured")

    signed = [source for source in candidates if source.mode == WebhookSource.Mode.SIGNED]
    shared = [source for source in candidates if source.mode == WebhookSource.Mode.SHARED_SECRET]
    reasons: list[str] = []

    for source in shared:
        offered = headers.get(source.secret_header)
        if not offered:
            continue
        secrets = [s for s in (source.secret, source.previous_secret) if s]
        if any(hmac.compare_digest(offered.encode(), s.encode()) for s in secrets):
            return _authenticated(source, now=now)
        reasons.append(f"wrong shared secret in {source.secret_header}")

    if signed:
        missing = [name for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if not headers.get(name)]
        if missing:
            reasons.append("missing signature header(s): " + ", ".join(missing))
        else:
            timestamp_check(headers["webhook-timestamp"], now=now, tolerance=tolerance)
            if not signatures_parse(headers["webhook-signature"]):
                raise WebhookRejected("webhook-signature has no v1,<base64> signature")
            for source in signed:
                secrets = [s for s in (source.secret, source.previous_secret) if s]
                if signature_matches(secrets=secrets, headers=headers, body=body):
                    return _authenticated(source, now=now)
            reasons.append("no signature matches" + (f" the secret of {source_name!r}" if source_name else ""))

    if not reasons:
        names = sorted({s.secret_header for s in shared})
        reasons.append("no credentials: send Standard Webhooks signature headers" + (
            f" or the shared-secret header ({', '.join(names)})" if names else ""))
    raise WebhookRejected("; ".join(reasons))


def _authenticated(source: WebhookSource, *, now) -> WebhookSource:
    if not source.enabled:
        raise WebhookRejected(f"webhook source {source.name!r} is disabled", status=403, source=source)
    if source.last_used_at is None or now - source.last_used_at > LAST_USED_RESOLUTION:
        WebhookSource.objects.filter(pk=source.pk).update(last_used_at=now)
    return source
