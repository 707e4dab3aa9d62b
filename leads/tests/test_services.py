"""leads.services.lead_profile_set: the admin's and the import's only way to edit a lead."""

import pytest
from django.core.exceptions import ValidationError

from leads.models import Lead
from leads.services import LeadAlreadyExists, lead_profile_set

pytestmark = pytest.mark.django_db


def test_writes_only_changed_profile_fields_and_refuses_score_fields():
    lead = Lead.objects.create(email="ann@example.com", company="Old", current_score=7)
    assert lead_profile_set(lead_id=lead.id, fields={"company": " New ", "first_name": ""}) == ["company"]
    assert lead_profile_set(lead_id=lead.id, fields={"company": "New"}) == []
    for name in ("current_score", "max_score", "last_processed_event_id"):
        with pytest.raises(ValueError, match=name):
            lead_profile_set(lead_id=lead.id, fields={name: 0})
    lead.refresh_from_db()
    assert (lead.company, lead.current_score) == ("New", 7)


def test_validates_like_the_model_and_reports_a_taken_email():
    lead = Lead.objects.create(email="ann@example.com")
    Lead.objects.create(email="bob@example.com")
    with pytest.raises(ValidationError):
        lead_profile_set(lead_id=lead.id, fields={"email": "not-an-email"})
    with pytest.raises(ValidationError):
        lead_profile_set(lead_id=lead.id, fields={"phone": "9" * 51})
    with pytest.raises(LeadAlreadyExists):
        lead_profile_set(lead_id=lead.id, fields={"email": "BOB@example.com"})
    assert lead_profile_set(lead_id=lead.id, fields={"email": " Ann.Lee@Example.com"}) == ["email"]
    lead.refresh_from_db()
    assert lead.email == "ann.lee@example.com"
