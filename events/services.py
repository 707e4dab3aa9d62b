"""The one way in for events: every adapter (REST, batch, webhook, upload, import, Segment) calls
:func:`event_ingest`. The stored row is the source of truth; scoring is enqueued after commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from config.bulk import dicts_insert
from config.retry import is_transient, run_with_retries
from leads.selectors import leads_resolve
from leads.services import leads_ensure_for_emails
from scoring.partitions import partition_of
from scoring.selectors import known_event_types
from scoring.wakeups import events_enqueue

from .models import ApiKey, Event, EventStatus
from .validation import printable, validate_event

logger = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


@dataclass
class ItemResult:
    index: int
    event_id: str | None
    status: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    event: Event | None = None
    # True when the only problem is a lead_id that does not exist (a 404 for a single event).
    lead_not_found: bool = False


@dataclass
class IngestResult:
    items: list[ItemResult]

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "received": len(self.items),
            ACCEPTED: self.count(ACCEPTED),
            DUPLICATE: self.count(DUPLICATE),
            REJECTED: self.count(REJECTED),
        }


def event_ingest(
    *,
    items: Sequence,
    source: str,
    with_events: bool = False,
    allowed_event_types: Collection[str] | None = None,
    unscored: Mapping[int, str] | None = None,
) -> IngestResult:
    """Validate, deduplicate and store events; enqueue the new ones for scoring after commit.

    Every valid item is stored even when others in the batch are invalid. ``with_events`` loads the
    stored Event of each accepted/duplicate item (the single-event API returns it).

    ``allowed_event_types`` (a webhook source's allow-list) rejects other types. ``unscored`` maps
    item indexes to a reason: those items are stored as ``skipped`` (visible, idempotent, never
    scored) and their event type need not have a scoring rule (a Segment event with no mapping).
    """
    now = timezone.now()
    unscored = unscored or {}
    results: list[ItemResult] = []
    valid: list[tuple[ItemResult, object]] = []
    for index, raw in enumerate(items):
        parsed, errors = validate_event(raw, now=now)
        event_id = parsed.event_id if parsed else _raw_event_id(raw)
        result = ItemResult(index=index, event_id=event_id, status=REJECTED if errors else ACCEPTED, errors=errors)
        results.append(result)
        if parsed:
            valid.append((result, parsed))

    if valid and allowed_event_types is not None:
        allowed = {t.upper() for t in allowed_event_types}
        for result, parsed in valid:
            if parsed.event_type not in allowed:
                result.status = REJECTED
                result.errors = {
                    "event_type": [f"{parsed.event_type!r} is not allowed for this source; allowed: {', '.join(sorted(allowed))}"]
                }
        valid = [(r, p) for r, p in valid if r.status == ACCEPTED]

    if valid:
        types = known_event_types()
        for result, parsed in valid:
            if parsed.event_type not in types and result.index not in unscored:
                result.status = REJECTED
                known = ", ".join(sorted(types)) or "none (add a scoring rule first)"
                result.errors = {"event_type": [f"unknown event type {parsed.event_type!r}; known types: {known}"]}
        valid = [(r, p) for r, p in valid if r.status == ACCEPTED]

    # Duplicates inside the request: the first occurrence wins.
    seen: set[str] = set()
    unique = []
    for result, parsed in valid:
        if parsed.event_id in seen:
            result.status = DUPLICATE
            continue
        seen.add(parsed.event_id)
        unique.append((result, parsed))

    if unique:
        _store(unique, source=source, now=now, unscored=unscored, with_events=with_events)

    if with_events:
        # Accepted rows are the ones just written (already on the result); duplicates are read.
        ids = [r.event_id for r in results if r.status == DUPLICATE]
        by_event_id = {e.event_id: e for e in Event.objects.filter(event_id__in=ids)} if ids else {}
        for result in results:
            if result.status == DUPLICATE:
                result.event = by_event_id.get(result.event_id)

    duplicates = [r.event_id for r in results if r.status == DUPLICATE]
    if duplicates:
        logger.info("duplicate events ignored (source=%s): %s", source, ", ".join(duplicates[:20]))
    return IngestResult(items=results)


def _raw_event_id(raw) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), (str, int)) and not isinstance(raw["event_id"], bool):
        event_id = raw["event_id"]
        return printable(event_id[:255] if isinstance(event_id, str) else str(event_id)[:255])
    return None


def _store(unique, *, source: str, now, unscored: Mapping[int, str], with_events: bool) -> None:
    lead_ids = {p.lead_id for _, p in unique if p.lead_id}
    emails = {p.email for _, p in unique if p.email}
    known_leads, by_email = leads_resolve(lead_ids=lead_ids, emails=emails)

    if lead_ids <= known_leads and emails <= by_email.keys():
        # The common case: every lead exists. One multi-row INSERT IGNORE (a statement is atomic on
        # its own); the rows it skipped, if any (stored before, or by a concurrent request), are
        # sorted out after it. A single event costs two queries.
        for attempt in run_with_retries():
            with attempt:
                _insert(unique, source=source, now=now, unscored=unscored, by_email=by_email, with_events=with_events)
        return

    # Some lead is unknown. Events stored before are answered as duplicates first (no lead is
    # created for a duplicate), then unknown lead ids are refused, and missing e-mails get a lead.
    existing = set(Event.objects.filter(event_id__in=[p.event_id for _, p in unique]).values_list("event_id", flat=True))
    to_write = []
    for result, parsed in unique:
        if parsed.event_id in existing:
            result.status = DUPLICATE
        elif parsed.lead_id and parsed.lead_id not in known_leads:
            result.status = REJECTED
            result.lead_not_found = True
            result.errors = {"lead_id": [f"no lead with id {parsed.lead_id}"]}
        else:
            to_write.append((result, parsed))
    if not to_write:
        return

    # MySQL may pick this transaction as a deadlock victim (unique-key and foreign-key locks
    # against concurrent batches and scoring workers): the whole write is idempotent, so retry it.
    for attempt in run_with_retries():
        with attempt, transaction.atomic():
            wanted = {p.email for _, p in to_write if p.email}
            emails_to_ids = leads_ensure_for_emails(emails=wanted, found=by_email)
            _insert(to_write, source=source, now=now, unscored=unscored, by_email=emails_to_ids,
                    with_events=with_events)


def _insert(to_write, *, source: str, now, unscored: Mapping[int, str], by_email: Mapping, with_events: bool) -> None:
    for result, _ in to_write:
        result.status, result.errors = ACCEPTED, {}
    rows = []  # {attname: value}: no model instance per event (dicts_insert fills the defaults)
    for result, parsed in to_write:
        lead_id = parsed.lead_id or by_email[parsed.email]
        row = {
            "id": uuid.uuid4(),
            "event_id": parsed.event_id,
            "lead_id": lead_id,
            "partition": partition_of(lead_id),
            "event_type": parsed.event_type,
            "timestamp": parsed.timestamp,
            "received_at": now,
            "metadata": parsed.metadata,
            "source": source,
        }
        reason = unscored.get(result.index)
        if reason is not None:
            row.update(status=EventStatus.SKIPPED, processed=True, processed_at=now, error=reason)
        rows.append(row)
    # Insert in lead order: the foreign-key checks take shared locks on lead rows in the same
    # order the scoring workers lock them, which keeps deadlocks with them rare.
    rows.sort(key=lambda row: row["lead_id"])
    refused: dict[str, tuple[str, str]] = {}
    inserted = _rows_insert_isolating(rows, refused)
    if inserted == len(rows):  # nothing skipped: every row is ours
        stored = {row["event_id"]: row["id"] for row in rows}
    else:  # stored before or by a concurrent request, refused, or the lead was deleted meanwhile
        stored = dict(Event.objects.filter(event_id__in=[row["event_id"] for row in rows]).values_list("event_id", "id"))
    missing_leads = {row["lead_id"] for row in rows if row["event_id"] not in stored and row["event_id"] not in refused}
    # a row skipped without an error: its lead is gone, or the database ignored the row
    existing = leads_resolve(lead_ids=missing_leads)[0] if missing_leads else set()
    accepted = []
    partitions = set()
    by_event_id = {row["event_id"]: row for row in rows}
    for result, parsed in to_write:
        stored_pk = stored.get(parsed.event_id)
        row = by_event_id[parsed.event_id]
        if parsed.event_id in refused:
            name, reason = refused[parsed.event_id]
            result.status = REJECTED
            result.errors = {name: [f"the database refused this event: {reason}"]}
        elif stored_pk is None and row["lead_id"] in existing:
            # MariaDB's INSERT IGNORE skips a row that fails a CHECK constraint instead of raising:
            # the only one on events is the JSON check of metadata.
            result.status = REJECTED
            result.errors = {"metadata": ["the database refused to store this event's metadata"]}
        elif stored_pk is None:
            # The lead vanished between validation and insert (deleted concurrently).
            result.status = REJECTED
            result.errors = {"lead_id": ["the lead was deleted while the event was stored"]}
        elif stored_pk != row["id"]:
            result.status = DUPLICATE  # stored earlier, or by a concurrent request first
        elif result.index not in unscored:
            accepted.append(stored_pk)
            partitions.add(row["partition"])
            if with_events:
                result.event = Event(**row)
    if accepted:
        # After commit: at once when this ran in autocommit (the fast path above).
        events_enqueue(event_ids=accepted, partitions=partitions)


# What a database (or its driver) raises for a row it will not store: never a reason to lose the
# other rows of the statement. ValueError: also the drivers' encoding errors. OperationalError only
# when it is about the value (mysqlclient raises 1366 incorrect string value and 4025 CHECK so): a
# lost connection or a deadlock (config.retry.is_transient) is about the transaction, not a row, and
# is retried or answered 503.
ROW_REFUSED = (DataError, IntegrityError, ValueError, OperationalError)
_EVENT_COLUMNS = ("metadata", "event_id", "event_type", "timestamp", "lead_id", "source")


def _rows_insert_isolating(rows: list[dict], refused: dict[str, tuple[str, str]]) -> int | None:
    """INSERT IGNORE ``rows``; if the database refuses the statement, halve it until the refused
    rows stand alone and record them in ``refused`` (event_id -> (field, reason)). Returns how many
    rows were inserted. A refused statement is rolled back alone by MySQL/MariaDB and SQLite (the
    transaction goes on); PostgreSQL aborts the whole transaction, so there each try inside a
    transaction runs in a savepoint."""
    try:
        if connection.in_atomic_block and connection.vendor not in ("mysql", "sqlite"):
            with transaction.atomic():
                return dicts_insert(Event, rows, ignore_conflicts=True)
        return dicts_insert(Event, rows, ignore_conflicts=True)
    except ROW_REFUSED as exc:
        if is_transient(exc):
            raise
        if len(rows) == 1:
            reason = printable(str(exc))[:500] or type(exc).__name__
            name = "lead_id" if "foreign key" in reason.lower() else next(
                (column for column in _EVENT_COLUMNS if column in reason), "event")
            logger.warning("event %s refused by the database: %s", printable(rows[0]["event_id"]), reason)
            refused[rows[0]["event_id"]] = (name, reason)
            return 0
        middle = len(rows) // 2
        # (a statement that was split into several may have stored some rows before the failure:
        # inserting them again is ignored as a conflict, and the caller reads back what is stored)
        # (None: a backend that does not count; 0 makes the caller read back what is stored)
        return (_rows_insert_isolating(rows[:middle], refused) or 0) + (
            _rows_insert_isolating(rows[middle:], refused) or 0)


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the raw key (shown once, never stored)."""
    import secrets

    raw_key = ApiKey.PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(name=name, key_hash=ApiKey.hash_key(raw_key), key_prefix=raw_key[:10])
    return api_key, raw_key


def webhook_source_rotate_secret(*, source) -> str:
    """Start a rotation: the current secret becomes ``previous_secret`` (still accepted) and a new
    one is generated. Clear ``previous_secret`` once every sender signs with the new one."""
    from .models import webhook_secret_generate

    source.previous_secret = source.secret
    source.secret = webhook_secret_generate()
    source.save(update_fields=["secret", "previous_secret"])
    return source.secret


def webhook_source_create(
    *,
    name: str,
    mode: str = "signed",
    secret_header: str = "X-Webhook-Secret",
    allowed_event_types: Sequence[str] = (),
    source_tag: str = "webhook",
):
    """Create a webhook source; its secret (``whsec_…``) is generated and readable in the admin."""
    from .models import WebhookSource

    source = WebhookSource(
        name=name,
        mode=mode,
        secret_header=secret_header,
        allowed_event_types=[t.strip().upper() for t in allowed_event_types if t.strip()],
        source_tag=source_tag,
    )
    source.full_clean()
    source.save()
    return source
