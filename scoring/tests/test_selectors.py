"""The per-process memory of which event types have a rule (read by every ingest request)."""

from time import monotonic

import pytest

from conftest import event_payload
from events.services import event_ingest
from scoring import selectors
from scoring.models import ScoringRule
from scoring.rulesets import ruleset_current
from scoring.services import rule_save


@pytest.fixture
def remembered(settings):
    settings.TARGETGRID_RULES_CACHE_SECONDS = 2
    selectors.known_event_types_clear()
    yield
    selectors.known_event_types_clear()


@pytest.mark.django_db
def test_known_types_are_read_once_then_remembered(remembered, django_assert_num_queries):
    ruleset_current()  # the current version is compiled once per process
    # the draft's types and the current version's number: two queries, then none for a while
    with django_assert_num_queries(2):
        first = selectors.known_event_types()
    with django_assert_num_queries(0):
        assert selectors.known_event_types() == first


@pytest.mark.django_db
def test_a_rule_saved_here_is_accepted_by_the_next_request(remembered):
    # given the types are remembered, and WEBINAR is not one of them
    assert "WEBINAR" not in selectors.known_event_types()
    # when an operator adds the rule in this process
    rule_save(event_type="WEBINAR", points=15, description="")
    # then the very next event of that type is accepted, and deleting the rule refuses it again
    assert event_ingest(items=[event_payload("w1", event_type="WEBINAR")], source="api").totals["accepted"] == 1
    ScoringRule.objects.get(event_type="WEBINAR").delete()
    assert event_ingest(items=[event_payload("w2", event_type="WEBINAR")], source="api").totals["rejected"] == 1


@pytest.mark.django_db
def test_a_rule_added_by_another_process_is_seen_once_the_memory_expires(remembered, monkeypatch):
    assert "WEBINAR" not in selectors.known_event_types()
    # given a rule written where this process gets no signal (another process; here a raw insert)
    ScoringRule.objects.bulk_create([ScoringRule(event_type="WEBINAR", points=15)])
    assert "WEBINAR" not in selectors.known_event_types()  # still remembered ...
    # when TARGETGRID_RULES_CACHE_SECONDS have passed, it is read again
    later = monotonic() + 3
    monkeypatch.setattr(selectors, "monotonic", lambda: later)
    assert "WEBINAR" in selectors.known_event_types()
