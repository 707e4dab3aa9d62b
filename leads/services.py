"""Every write to leads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from django.db import IntegrityError, transaction
from django.utils import timezone

from config import transport
from config.bulk import dicts_insert

from .models import Lead


class LeadAlreadyExists(Exception):
    def __init__(self, lead: Lead):
        super().__init__(f"a lead with e-mail {lead.email} already exists")
        self.lead = lead


def lead_create(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    company: str = "",
    phone: str = "",
    job_title: str = "",
    max_score: int = 1000,
) -> Lead:
    email = email.strip().lower()
    lead = Lead(
        email=email, first_name=first_name, last_name=last_name, company=company, phone=phone,
        job_title=job_title, max_score=max_score,
    )
    try:
        with transaction.atomic():
            lead.save(force_insert=True)
            _profile_changed(lead.pk)
    except IntegrityError:
        existing = Lead.objects.filter(email=email).first()
        if existing is None:
            raise
        raise LeadAlreadyExists(existing) from None
    return lead


def leads_ensure_for_emails(*, emails: Iterable[str], found: dict | None = None) -> dict[str, uuid.UUID]:
    """Map each (lower-cased, validated) e-mail to its lead's id, creating the leads that are missing.

    ``found``: e-mail -> id already read by the caller (those are not read again).
    Safe under concurrency: creation ignores conflicts and the ids are read back afterwards.
    """
    wanted = set(emails)
    if not wanted:
        return {}
    if found is None:
        found = dict(Lead.objects.filter(email__in=wanted).values_list("email", "id"))
    else:
        found = {email: pk for email, pk in found.items() if email in wanted}
    missing = wanted - found.keys()
    if missing:
        # Plain rows through config.bulk (bulk_create compiles every value of every column; a lead
        # has ~20): auto_now fields and the pk are set here.
        now = timezone.now()
        dicts_insert(
            Lead,
            [{"id": uuid.uuid4(), "email": email, "created_at": now, "updated_at": now} for email in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update(Lead.objects.filter(email__in=missing).values_list("email", "id"))
    return found


def leads_lock(*, lead_ids: Iterable, fields: Iterable[str] | None = None) -> dict:
    """Lock the given leads (``SELECT … FOR UPDATE``) in primary-key order; must run in a transaction.

    Every service that changes a score goes through here, so two workers always take their locks
    in the same order and can never deadlock on each other. ``fields``: load only these (the rest
    is deferred; the row lock is the same).
    """
    ids = sorted({uuid.UUID(str(pk)) for pk in lead_ids})
    if not ids:
        return {}
    query = Lead.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    if fields is not None:
        query = query.only(*fields)
    return {lead.id: lead for lead in query}


def _profile_changed(lead_id) -> None:
    """After commit: the fit score depends on the profile (scoring listens)."""
    transport.notify_on_commit("lead.profile_changed", [lead_id])


PROFILE_FIELDS = ("first_name", "last_name", "company", "phone", "job_title")
# What an operator may edit on a lead (admin form, import). Never the score fields
# (current_score, last_processed_*: scoring owns them) nor max_score (a scoring parameter:
# scoring.services.lead_max_score_set re-folds the score with it under the lead's lock).
EDITABLE_FIELDS = ("email", *PROFILE_FIELDS)


def lead_profile_set(*, lead_id, fields: Mapping[str, object]) -> list[str]:
    """Write exactly the given profile fields of one lead, nothing else (HackSoft's ``model_update``).

    One ``UPDATE`` of the fields whose value differs from the stored one (plus ``updated_at``), so a
    score committed by a drain meanwhile is never overwritten by a stale copy of the row. Values are
    validated like the model fields (``ValidationError``); an e-mail already taken raises
    :class:`LeadAlreadyExists`. Returns the names of the fields that changed.
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable profile fields: {', '.join(sorted(unknown))}")
    values = {}
    for name, value in fields.items():
        value = "" if value is None else str(value).strip()
        if name == "email":
            value = value.lower()
        values[name] = Lead._meta.get_field(name).clean(value, None)
    stored = Lead.objects.filter(pk=lead_id).values(*values).first()
    if stored is None:
        return []
    changes = {name: value for name, value in values.items() if stored[name] != value}
    if changes:
        try:
            with transaction.atomic():
                Lead.objects.filter(pk=lead_id).update(**changes, updated_at=timezone.now())
                _profile_changed(lead_id)
        except IntegrityError:
            existing = Lead.objects.filter(email=changes.get("email")).exclude(pk=lead_id).first()
            if existing is None:
                raise
            raise LeadAlreadyExists(existing) from None
    return sorted(changes)


def lead_profile_update(*, lead_id, **fields) -> bool:
    """Set the given profile fields (non-empty values only, cut to the column size); True if any changed."""
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {', '.join(sorted(unknown))}")
    lead = Lead.objects.filter(pk=lead_id).only(*PROFILE_FIELDS).first()
    if lead is None:
        return False
    changes = {}
    for name, value in fields.items():
        if value in (None, ""):
            continue
        value = str(value).strip()[: Lead._meta.get_field(name).max_length]
        if value and getattr(lead, name) != value:
            changes[name] = value
    if changes:
        Lead.objects.filter(pk=lead_id).update(**changes, updated_at=timezone.now())
        _profile_changed(lead_id)
    return bool(changes)
