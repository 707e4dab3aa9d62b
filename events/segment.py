"""Segment-compatible ingest: translate Segment HTTP Tracking API messages into event_ingest items.

* ``track`` -> the event type mapped from its ``event`` name (SegmentEventMapping, admin-managed);
  an unmapped name is stored as ``skipped`` with the reason (visible, idempotent, never scored).
* ``page`` / ``screen`` -> PAGE_VIEW. ``properties`` -> metadata (plus ``_segment``: what the
  message was). ``messageId`` -> event_id; without one, a hash of the message, so a retried
  message is still a duplicate.
* Time: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` (client clock skew), where the
  client's time is ``originalTimestamp`` or else ``timestamp``, and ``sentAt`` is the message's or
  the batch's; without ``sentAt`` the client's time is used as is, without either, receivedAt.
* Leads: an e-mail (``traits.email``, ``context.traits.email``, or a ``userId`` that is an e-mail
  address) names the lead. Otherwise ``userId`` / ``anonymousId`` are looked up in
  SegmentIdentity; an unknown visitor gets a *placeholder lead*,
  ``anon-<hash>@anonymous.invalid`` (``.invalid`` is reserved, RFC 2606: never a real address),
  so its events are stored and scored from the first page view. When ``identify`` or ``alias``
  ties that id to another lead (one with an e-mail, or the lead of a userId), the placeholder's
  ids and events are re-attributed to it and both leads are re-scored
  (scoring.services.lead_events_reattribute). Real leads are never merged: an id already tied
  to a lead with a real e-mail stays with it.
* Merge vs. concurrent events: a message resolved to a placeholder may be stored just after an
  ``identify`` merged that placeholder. Both paths serialize on the placeholder's lead row: a
  merge locks it before it moves anything, and after storing events on a placeholder the ingest
  locks it and reads the ids' owner again (:func:`placeholder_events_settle`). Either the
  merge comes later (and moves the event with the rest) or it came first (and the ingest moves
  the event after it). No event is left on a merged placeholder, whatever the isolation level.
* ``identify`` updates the lead's profile from its traits; ``group`` is acknowledged, not stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from leads.models import Lead
from leads.services import lead_profile_update, leads_ensure_for_emails, leads_lock
from scoring.services import lead_events_reattribute

from .models import SegmentEventMapping, SegmentIdentity, SegmentSource
from .services import ACCEPTED, DUPLICATE, REJECTED, event_ingest
from .http import MAX_JSON_DEPTH
from .validation import json_value_problem, normalize_email, parse_timestamp, short_repr, text_problem

logger = logging.getLogger(__name__)

MESSAGE_MAX_BYTES = 32 * 1024
BATCH_MAX_BYTES = 500 * 1024
PLACEHOLDER_DOMAIN = "anonymous.invalid"
EVENT_TYPES = {"track", "page", "screen"}
IDENTITY_TYPES = {"identify", "alias"}
KNOWN_TYPES = EVENT_TYPES | IDENTITY_TYPES | {"group"}
UNSCORED = "unscored"
OK = "ok"


class SegmentAuthError(Exception):
    pass


def segment_write_key_assign(source: SegmentSource) -> str:
    """Give an unsaved source a new write key; returns the key (shown once; only its hash is stored)."""
    raw_key = "wk_" + secrets.token_urlsafe(24)
    source.write_key_hash = SegmentSource.hash_key(raw_key)
    source.write_key_prefix = raw_key[:8]
    return raw_key


def segment_source_create(*, name: str, source_tag: str = "segment") -> tuple[SegmentSource, str]:
    """A Segment source and its write key (returned once; only its hash is stored)."""
    source = SegmentSource(name=name, source_tag=source_tag)
    raw_key = segment_write_key_assign(source)
    source.save(force_insert=True)
    return source, raw_key


def write_key_from(*, authorization: str, body) -> str | None:
    """The write key: HTTP Basic username (Segment's scheme) or ``writeKey`` in the body."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            username = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            username = ""
        if username:
            return username
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str) and body["writeKey"]:
        return body["writeKey"]
    return None


def segment_authenticate(*, write_key: str | None) -> SegmentSource:
    if not write_key:
        raise SegmentAuthError("missing write key: send it as the HTTP Basic username or as writeKey in the body")
    if text_problem(write_key):
        raise SegmentAuthError("unknown write key")
    source = SegmentSource.objects.filter(write_key_hash=SegmentSource.hash_key(write_key)).first()
    if source is None:
        raise SegmentAuthError("unknown write key")
    if not source.enabled:
        raise SegmentAuthError(f"the Segment source {source.name!r} is disabled")
    return source


# --- Messages ------------------------------------------------------------------------------


@dataclass
class MessageResult:
    index: int
    type: str
    message_id: str | None
    status: str = ACCEPTED
    errors: dict[str, list[str]] = field(default_factory=dict)
    lead_id: str | None = None
    # (userId, anonymousId) of an event resolved to a placeholder lead: checked after it is stored.
    placeholder_ids: tuple[str, str] | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        body = {"index": self.index, "type": self.type, "messageId": self.message_id, "status": self.status}
        if self.lead_id:
            body["lead_id"] = self.lead_id
        if self.errors:
            body["errors"] = self.errors
        return body


def _str_id(value) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return value.strip()[:255] if isinstance(value, str) else ""


def _message_id(msg: dict) -> str:
    given = msg.get("messageId")
    if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given).strip():
        return str(given).strip()[:255]
    stable = {k: v for k, v in msg.items() if k not in ("sentAt", "writeKey", "receivedAt")}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()
    return f"seg-{digest[:40]}"


def _time(msg: dict, name: str, errors: dict) -> datetime | None:
    value = msg.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        errors.setdefault(name, []).append(str(exc))
        return None


def event_time(msg: dict, *, received_at: datetime, batch_sent_at=None) -> tuple[datetime | None, dict]:
    """The event time corrected for client clock skew, as Segment defines it."""
    errors: dict[str, list[str]] = {}
    original = _time(msg, "originalTimestamp", errors) or _time(msg, "timestamp", errors)
    sent_at = _time(msg, "sentAt", errors) or batch_sent_at
    if errors:
        return None, errors
    if original is not None and sent_at is not None:
        try:
            return received_at - (sent_at - original), {}
        except OverflowError:
            return None, {"timestamp": ["the clock-skew correction receivedAt - (sentAt - timestamp) is out of range"]}
    return original or received_at, {}


def _email(msg: dict) -> tuple[str | None, dict]:
    candidates = []
    traits = msg.get("traits")
    if isinstance(traits, dict) and traits.get("email"):
        candidates.append(("traits.email", traits["email"]))
    context = msg.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict) and context["traits"].get("email"):
        candidates.append(("context.traits.email", context["traits"]["email"]))
    for name, value in candidates:
        try:
            return normalize_email(value), {}
        except ValueError as exc:
            return None, {name: [str(exc)]}
    user_id = _str_id(msg.get("userId"))
    if "@" in user_id:
        try:
            return normalize_email(user_id), {}
        except ValueError:
            pass
    return None, {}


def is_placeholder(email: str) -> bool:
    return email.endswith("@" + PLACEHOLDER_DOMAIN)


def placeholder_email(kind: str, value: str) -> str:
    return f"anon-{hashlib.sha256(f'{kind}:{value}'.encode()).hexdigest()[:24]}@{PLACEHOLDER_DOMAIN}"


def _identity_lead(kind: str, value: str):
    if not value:
        return None
    return SegmentIdentity.objects.filter(kind=kind, value=value).select_related("lead").first()


def identity_link(*, kind: str, value: str, lead: Lead) -> None:
    """Tie an id to ``lead``. An id on a placeholder lead moves there with the placeholder's events;
    an id already on another real lead stays where it is."""
    if not value:
        return
    for _attempt in range(3):
        identity = _identity_lead(kind, value)
        if identity is None:
            try:
                with transaction.atomic():
                    SegmentIdentity.objects.create(kind=kind, value=value, lead=lead)
                return
            except IntegrityError:
                continue  # created concurrently: look again
        if identity.lead_id == lead.id:
            return
        if is_placeholder(identity.lead.email):
            if leads_merge_placeholder(placeholder=identity.lead, into=lead) is None:
                continue  # merged elsewhere meanwhile: look again
            return
        logger.info("segment %s %r already belongs to lead %s; not moved to %s", kind, value, identity.lead_id, lead.id)
        return


def leads_merge_placeholder(*, placeholder: Lead, into: Lead) -> int | None:
    """Re-attribute a placeholder lead's ids and events to another lead and re-score both.

    Both leads are locked (pk order) before anything moves: an ingest that stored events on the
    placeholder meanwhile holds or waits for the same lock (:func:`placeholder_events_settle`).
    Returns how many events moved, or None when the placeholder holds no id any more (a concurrent
    merge took it first; the caller looks the id up again).
    """
    with transaction.atomic():
        leads_lock(lead_ids=[placeholder.id, into.id])
        if not SegmentIdentity.objects.filter(lead_id=placeholder.id).update(lead_id=into.id):
            return None
        moved = lead_events_reattribute(from_lead_id=placeholder.id, to_lead_id=into.id)
    logger.info("segment: placeholder %s merged into %s (%d events)", placeholder.email, into.email, moved)
    return moved


PLACEHOLDER_HOPS = 5


def _ids_owner(user_id: str, anonymous_id: str):
    """The lead the ids resolve to now (userId first, as :func:`lead_resolve`); a locking read, so
    it sees the latest committed merge whatever the isolation level."""
    wanted = Q(pk__in=[])
    if user_id:
        wanted |= Q(kind=SegmentIdentity.Kind.USER, value=user_id)
    if anonymous_id:
        wanted |= Q(kind=SegmentIdentity.Kind.ANONYMOUS, value=anonymous_id)
    owners = dict(SegmentIdentity.objects.select_for_update().filter(wanted).values_list("kind", "lead_id"))
    return owners.get(SegmentIdentity.Kind.USER) or owners.get(SegmentIdentity.Kind.ANONYMOUS)


def placeholder_events_settle(*, lead_id, user_id: str = "", anonymous_id: str = ""):
    """Make sure events just stored on placeholder ``lead_id`` end on the lead their ids belong to.

    Called after the events are committed. Under the placeholder's lock (which a merge takes
    before it moves anything) the ids' owner is read again: still the placeholder -> done (a later
    merge waits for the lock and moves these events with the rest); another lead -> the placeholder
    was merged before the events were stored: they are re-attributed there (and re-scored there
    once), and that lead is checked in turn if it is a placeholder too. Returns the lead id.
    """
    current = lead_id
    for _hop in range(PLACEHOLDER_HOPS):
        with transaction.atomic():
            lead = leads_lock(lead_ids=[current]).get(current)
            if lead is None or not is_placeholder(lead.email):
                return current  # gone, or a real lead: real leads are never merged
            owner = _ids_owner(user_id, anonymous_id)
        if owner is None or owner == current:
            return current
        logger.info("segment: events stored on merged placeholder %s follow it to %s", lead.email, owner)
        lead_events_reattribute(from_lead_id=current, to_lead_id=owner)
        current = owner
    return current


def lead_resolve(msg: dict) -> tuple[Lead | None, dict]:
    """The lead a message is about (see the module docstring); may create, link and merge."""
    user_id, anonymous_id = _str_id(msg.get("userId")), _str_id(msg.get("anonymousId"))
    if not user_id and not anonymous_id:
        return None, {"userId": ["userId or anonymousId is required"]}
    email, errors = _email(msg)
    if errors:
        return None, errors
    if email:
        lead_id = leads_ensure_for_emails(emails=[email])[email]
        lead = Lead.objects.get(pk=lead_id)
    else:
        by_user = _identity_lead(SegmentIdentity.Kind.USER, user_id)
        by_anon = _identity_lead(SegmentIdentity.Kind.ANONYMOUS, anonymous_id)
        lead = (by_user or by_anon).lead if (by_user or by_anon) else None
        if lead is None:
            kind, value = (SegmentIdentity.Kind.USER, user_id) if user_id else (SegmentIdentity.Kind.ANONYMOUS,
                                                                                anonymous_id)
            placeholder = placeholder_email(kind, value)
            lead = Lead.objects.get(pk=leads_ensure_for_emails(emails=[placeholder])[placeholder])
    identity_link(kind=SegmentIdentity.Kind.USER, value=user_id, lead=lead)
    identity_link(kind=SegmentIdentity.Kind.ANONYMOUS, value=anonymous_id, lead=lead)
    return lead, {}


def _profile(traits: dict) -> dict:
    def text(*names):
        for name in names:
            value = traits.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
        return ""

    first, last = text("firstName", "first_name"), text("lastName", "last_name")
    name = text("name")
    if name and not (first or last):
        first, _, last = name.partition(" ")
    company = traits.get("company")
    company = text("company") if not isinstance(company, dict) else str(company.get("name") or "").strip()
    return {"first_name": first, "last_name": last, "company": company, "phone": text("phone")}


def _event_type_for_name(name: str, mappings: dict[str, str]) -> tuple[str, str | None]:
    mapped = mappings.get(name) or mappings.get(name.casefold())
    if mapped:
        return mapped, None
    normalized = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")[:64] or "SEGMENT_TRACK"
    if not normalized[0].isalpha():
        normalized = ("E_" + normalized)[:64]
    return normalized, f"no event-type mapping for the Segment event {name!r}: stored unscored (map it in the admin)"


def segment_messages_ingest(
    *, messages: list, source: SegmentSource, received_at: datetime, batch_sent_at: datetime | None = None
) -> list[MessageResult]:
    """Process messages in order; every event goes through event_ingest (one call per run of
    events; identity changes flush the events before them, so re-attribution sees them stored)."""
    mapping_rows = SegmentEventMapping.objects.values_list("event_name", "event_type")
    mappings: dict[str, str] = {}
    for name, event_type in mapping_rows:
        mappings[name] = event_type
        mappings.setdefault(name.casefold(), event_type)
    results: list[MessageResult] = []
    pending: list[tuple[MessageResult, dict, str | None]] = []

    def flush() -> None:
        if not pending:
            return
        items = [item for _, item, _ in pending]
        unscored = {i: reason for i, (_, _, reason) in enumerate(pending) if reason}
        ingested = event_ingest(items=items, source=source.source_tag, unscored=unscored)
        for (result, _, reason), item_result in zip(pending, ingested.items):
            result.status = item_result.status
            result.errors = item_result.errors
            if reason and item_result.status == ACCEPTED:
                result.status = UNSCORED
        on_placeholders = {}
        for result, _, _ in pending:
            if result.placeholder_ids and result.status in (ACCEPTED, UNSCORED, DUPLICATE):
                on_placeholders.setdefault(result.lead_id, (result.placeholder_ids, []))[1].append(result)
        for lead_id in sorted(on_placeholders):
            (user_id, anonymous_id), settled = on_placeholders[lead_id]
            final = placeholder_events_settle(lead_id=uuid.UUID(lead_id), user_id=user_id, anonymous_id=anonymous_id)
            for result in settled:
                result.lead_id = str(final)
        pending.clear()

    for index, msg in enumerate(messages):
        kind = msg.get("type") if isinstance(msg, dict) else None
        result = MessageResult(index=index, type=kind if isinstance(kind, str) else "",
                               message_id=_message_id(msg) if isinstance(msg, dict) else None)
        results.append(result)
        if not isinstance(msg, dict):
            result.status, result.errors = REJECTED, {"message": ["each message must be a JSON object"]}
            continue
        if not isinstance(kind, str) or kind not in KNOWN_TYPES:
            result.status = REJECTED
            result.errors = {"type": [f"must be one of {', '.join(sorted(KNOWN_TYPES))}; got {short_repr(kind)}"]}
            continue
        problem = _message_problem(msg)
        if problem:
            result.status, result.errors = REJECTED, problem
            continue
        size = len(json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=str).encode())
        if size > MESSAGE_MAX_BYTES:
            result.status = REJECTED
            result.errors = {"message": [f"{size} bytes; a message is at most {MESSAGE_MAX_BYTES // 1024} KB"]}
            continue
        if kind in IDENTITY_TYPES or kind == "group":
            flush()
            _identity_message(kind, msg, result)
            continue
        _event_message(kind, msg, result, received_at=received_at, batch_sent_at=batch_sent_at,
                       mappings=mappings, pending=pending)
    flush()
    return results


def _message_problem(msg: dict) -> dict[str, list[str]] | None:
    """Errors for a message holding what no database stores (NaN/Infinity, a lone surrogate, NUL),
    keyed by the path of the first such value; None for a clean message (one ``json.dumps``)."""
    try:
        text = json.dumps(msg, ensure_ascii=False, allow_nan=False, default=str)
        text.encode("utf-8")
        if "\\u0000" not in text:
            return None
    except ValueError:  # (UnicodeEncodeError is one)
        pass
    found = json_value_problem(msg, name="message", max_depth=MAX_JSON_DEPTH)
    if found is None:
        return None
    path, reason = found
    return {path.removeprefix("message.") or "message": [reason]}


def _identity_message(kind: str, msg: dict, result: MessageResult) -> None:
    if kind == "alias":
        previous_id, user_id = _str_id(msg.get("previousId")), _str_id(msg.get("userId"))
        errors = {}
        if not previous_id:
            errors["previousId"] = ["this field is required"]
        if not user_id:
            errors["userId"] = ["this field is required"]
        if errors:
            result.status, result.errors = REJECTED, errors
            return
        # The new id names the lead when it is known (an e-mail, or an id already tied to a lead);
        # otherwise the new id joins the lead of the previous id.
        context = msg.get("context") if isinstance(msg.get("context"), dict) else {}
        email, errors = _email({"userId": user_id, "context": context})
        if errors:
            result.status, result.errors = REJECTED, errors
            return
        previous = _identity_lead(SegmentIdentity.Kind.ANONYMOUS, previous_id) or _identity_lead(
            SegmentIdentity.Kind.USER, previous_id)
        if email or _identity_lead(SegmentIdentity.Kind.USER, user_id) or previous is None:
            lead, errors = lead_resolve({"userId": user_id, "context": context})
            if lead is None:
                result.status, result.errors = REJECTED, errors
                return
            kind = previous.kind if previous is not None else SegmentIdentity.Kind.ANONYMOUS
            identity_link(kind=kind, value=previous_id, lead=lead)
        else:
            lead = previous.lead
            identity_link(kind=SegmentIdentity.Kind.USER, value=user_id, lead=lead)
        result.status, result.lead_id = OK, str(lead.id)
        return
    traits = msg.get("traits")
    if traits is not None and not isinstance(traits, dict):
        result.status, result.errors = REJECTED, {"traits": ["must be a JSON object"]}
        return
    lead, errors = lead_resolve(msg)
    if lead is None:
        result.status, result.errors = REJECTED, errors
        return
    if kind == "identify" and traits:
        lead_profile_update(lead_id=lead.id, **_profile(traits))
    result.status, result.lead_id = OK, str(lead.id)


def _event_message(kind, msg, result, *, received_at, batch_sent_at, mappings, pending) -> None:
    properties = msg.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        result.status, result.errors = REJECTED, {"properties": ["must be a JSON object"]}
        return
    reason = None
    if kind == "track":
        name = msg.get("event")
        if not isinstance(name, str) or not name.strip():
            result.status, result.errors = REJECTED, {"event": ["a track call needs the event name"]}
            return
        event_type, reason = _event_type_for_name(name.strip(), mappings)
        about = {"type": "track", "event": name.strip()}
    else:
        event_type = "PAGE_VIEW"
        about = {"type": kind}
        for key in ("name", "category"):
            if isinstance(msg.get(key), str) and msg[key]:
                about[key] = msg[key]
    when, errors = event_time(msg, received_at=received_at, batch_sent_at=batch_sent_at)
    if errors:
        result.status, result.errors = REJECTED, errors
        return
    lead, errors = lead_resolve(msg)
    if lead is None:
        result.status, result.errors = REJECTED, errors
        return
    result.lead_id = str(lead.id)
    if is_placeholder(lead.email):
        result.placeholder_ids = (_str_id(msg.get("userId")), _str_id(msg.get("anonymousId")))
    for key in ("userId", "anonymousId"):
        if _str_id(msg.get(key)):
            about[key] = _str_id(msg.get(key))
    context = msg.get("context")
    if isinstance(context, dict) and isinstance(context.get("page"), dict) and context["page"].get("url"):
        about["url"] = str(context["page"]["url"])[:2000]
    item = {
        "event_id": result.message_id,
        "event_type": event_type,
        "timestamp": when.isoformat(),
        "lead_id": str(lead.id),
        "metadata": {**properties, "_segment": about},
    }
    pending.append((result, item, reason))
