"""Every write to leads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction

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
    max_score: int = 1000,
) -> Lead:
    email = email.strip().lower()
    lead = Lead(
        email=email, first_name=first_name, last_name=last_name, company=company, phone=phone, max_score=max_score
    )
    try:
        with transaction.atomic():
            lead.save(force_insert=True)
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
        Lead.objects.bulk_create([Lead(email=email) for email in sorted(missing)], ignore_conflicts=True)
        found.update(Lead.objects.filter(email__in=missing).values_list("email", "id"))
    return found


def leads_lock(*, lead_ids: Iterable) -> dict:
    """Lock the given leads (``SELECT … FOR UPDATE``) in primary-key order; must run in a transaction.

    Every service that changes a score goes through here, so two workers always take their locks
    in the same order and can never deadlock on each other.
    """
    ids = sorted({uuid.UUID(str(pk)) for pk in lead_ids})
    if not ids:
        return {}
    return {lead.id: lead for lead in Lead.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


PROFILE_FIELDS = ("first_name", "last_name", "company", "phone")


def lead_profile_update(*, lead_id, **fields) -> bool:
    """Set the given profile fields (non-empty values only, cut to the column size); True if any changed."""
    from django.utils import timezone

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
    return bool(changes)
