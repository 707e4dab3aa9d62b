"""The preview of the draft (scoring.preview): its counts equal what the rescore after publishing
does, it evaluates only the leads the change can affect, and it samples above ``sample_limit``."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import models
from django.utils import timezone

from conftest import T0
from events.services import event_ingest
from leads.models import Lead
from scoring import engine
from scoring.models import FitRule, RescoreJob, ScoringRule, Stage, StageSettings
from scoring.preview import distribution, ruleset_preview, stage_of
from scoring.rescoring import rescore_job_run, ruleset_publish

pytestmark = pytest.mark.django_db

STAGES = engine.StageSet(version=1, stages=(engine.Stage("MQL", 20), engine.Stage("SQL", 60), engine.Stage("HOT", 100)))


@pytest.fixture
def stages_mql_sql_hot(db):
    """The operators' stages of these tests (instead of the default Cold/Warm/MQL/SQL)."""
    Stage.objects.all().delete()
    for position, stage in enumerate(STAGES.stages):
        Stage.objects.create(name=stage.name, position=position, min_score=stage.min_score)
    StageSettings.objects.filter(pk=1).update(version=models.F("version") + 1, updated_at=timezone.now())


def ingest(capture, items):
    with capture(execute=True):
        event_ingest(items=items, source="test")


def ev(event_id, email, event_type="PAGE_VIEW", minutes=0, **metadata):
    return {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "email": email,
        "metadata": metadata,
    }


def data_set(capture):
    """Fourteen leads: pricing page views (some many), other page views, e-mail opens only, a lead
    near its max score, and four with no event at all."""
    items = []
    for n in range(8):
        email = f"pv{n}@example.com"
        for i in range(n + 1):
            url = "/pricing" if i % 2 == 0 and n % 3 != 0 else "/blog"
            items.append(ev(f"pv{n}-{i}", email, minutes=i, url=url))
    items += [ev(f"open{n}", "opener@example.com", "EMAIL_OPEN", minutes=n) for n in range(4)]
    items += [ev(f"cap{n}", "capped@example.com", minutes=n, url="/pricing") for n in range(3)]
    ingest(capture, items)
    Lead.objects.filter(email="capped@example.com").update(max_score=20)
    for n in range(4):
        Lead.objects.create(email=f"silent{n}@example.com")


def test_stage_of_is_the_highest_threshold_reached():
    assert [stage_of(score, STAGES) for score in (0, 19, 20, 59, 60, 100, 5000)] == [
        None, None, "MQL", "MQL", "SQL", "HOT", "HOT",
    ]


def test_distribution_uses_the_same_buckets_for_both():
    rows = distribution(Counter({0: 3, 7: 1}), Counter({0: 2, 45: 2}))
    assert [(row["low"], row["high"]) for row in rows] == [(low, low + 5) for low in range(0, 50, 5)]
    assert sum(row["current"] for row in rows) == 4 and sum(row["new"] for row in rows) == 4
    assert rows[0] == {"low": 0, "high": 5, "current": 3, "new": 2} and rows[9]["new"] == 2


def test_preview_counts_equal_what_the_rescore_then_does(django_capture_on_commit_callbacks, stages_mql_sql_hot):
    # Given leads scored under v1 and a draft with a conditional rule (+15 for /pricing page views,
    # at most twice per lead), a fit rule and a changed e-mail rule,
    data_set(django_capture_on_commit_callbacks)
    ScoringRule.objects.create(
        name="Pricing page", event_type="PAGE_VIEW", points=15, cap_count=2,
        conditions=[{"field": "metadata.url", "op": "contains", "value": "/pricing"}],
    )
    FitRule.objects.create(name="Company domain", points=30, conditions=[{"field": "free_mail", "op": "equals", "value": False}])
    before = {lead.email: lead.current_score for lead in Lead.objects.all()}

    # when the draft is previewed, then published and the rescore job run,
    preview = ruleset_preview()
    version = ruleset_publish(actor="test", note="pricing")
    job = RescoreJob.objects.get(version=version.number)
    rescore_job_run(job_id=job.pk)
    job.refresh_from_db()

    # then the preview's changed count is the job's, and its stage moves and new distribution are
    # what the stored scores became.
    after = {lead.email: lead.current_score for lead in Lead.objects.all()}
    really_changed = {email for email in after if after[email] != before[email]}
    assert job.status == "completed" and job.changed == len(really_changed) > 0
    assert preview["changed"] == job.changed
    assert preview["sampled"] is False and preview["total_leads"] == Lead.objects.count() == 14
    assert preview["affected_event_types"] == ["PAGE_VIEW"]
    assert preview["evaluated_leads"] == 9  # the page-view leads only (not the opener, not the silent one)
    assert {lead["email"] for lead in preview["changed_leads"]} == really_changed
    assert {lead["email"]: lead["new_score"] for lead in preview["changed_leads"]} == {e: after[e] for e in really_changed}
    moves = Counter(
        (stage_of(before[e], STAGES), stage_of(after[e], STAGES))
        for e in really_changed
        if stage_of(before[e], STAGES) != stage_of(after[e], STAGES)
    )
    assert {(m["from"], m["to"]): m["count"] for m in preview["stage_moves"]} == dict(moves) != {}
    assert [(row["low"], row["current"], row["new"]) for row in preview["distribution"]] == [
        (row["low"], row["current"], row["new"]) for row in distribution(Counter(before.values()), Counter(after.values()))
    ]
    assert preview["fit_changed"] == Lead.objects.filter(fit_score=30).count() == 14
    assert Lead.objects.get(email="capped@example.com").current_score == 20  # the max score held


def test_unaffected_leads_are_not_evaluated_and_nothing_changes(django_capture_on_commit_callbacks):
    # Given leads with page views and e-mail opens, and a draft that changes only PURCHASE,
    data_set(django_capture_on_commit_callbacks)
    ScoringRule.objects.filter(event_type="PURCHASE").update(points=120)
    # when previewed, then no lead's events are read (nobody has a purchase) and nothing changes.
    preview = ruleset_preview()
    assert preview["affected_event_types"] == ["PURCHASE"]
    assert (preview["evaluated_leads"], preview["changed"], preview["stage_moves"]) == (0, 0, [])
    assert [row["current"] for row in preview["distribution"]] == [row["new"] for row in preview["distribution"]]


def test_match_mode_change_evaluates_every_lead_with_events(django_capture_on_commit_callbacks):
    from scoring.models import ScoringSettings

    data_set(django_capture_on_commit_callbacks)
    ScoringSettings.objects.filter(pk=1).update(match_mode="first")
    preview = ruleset_preview()
    assert preview["affected_event_types"] is None and preview["evaluated_leads"] == 10


def test_above_the_sample_limit_a_deterministic_sample_is_scaled(django_capture_on_commit_callbacks, stages_mql_sql_hot):
    # Given 14 leads and a draft that changes every page-view lead,
    data_set(django_capture_on_commit_callbacks)
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=6)
    full = ruleset_preview()
    # when previewed with a sample limit of 7,
    first, second = ruleset_preview(sample_limit=7), ruleset_preview(sample_limit=7)
    # then it says it sampled, evaluates at most the sample, scales the counts to all leads, and is
    # deterministic.
    assert (first["sampled"], first["sample_size"], first["total_leads"]) == (True, 7, 14)
    assert full["sampled"] is False and full["sample_size"] == 14
    assert first["evaluated_leads"] <= 7
    assert first["changed"] == 2 * len(first["changed_leads"])  # scaled by 14 / 7
    assert sum(row["current"] for row in first["distribution"]) == 14
    assert {k: v for k, v in first.items() if k != "as_of"} == {k: v for k, v in second.items() if k != "as_of"}
    assert 0 < first["changed"] <= 14 and full["changed"] == 9


def test_preview_api(api, staff_user, client, django_capture_on_commit_callbacks):
    data_set(django_capture_on_commit_callbacks)
    ScoringRule.objects.filter(event_type="EMAIL_OPEN").update(points=11)
    response = api.get("/api/rule-sets/draft/preview")
    assert response.status_code == 200, response.content
    assert response.json()["changed"] == 1 and response.json()["affected_event_types"] == ["EMAIL_OPEN"]
    sampled = api.get("/api/rule-sets/draft/preview?sample_limit=3").json()
    assert sampled["sampled"] is True and sampled["sample_size"] == 3
    bad = api.get("/api/rule-sets/draft/preview?sample_limit=zero")
    assert bad.status_code == 400 and "sample_limit" in bad.content.decode()
    assert client.get("/api/rule-sets/draft/preview").status_code in (401, 403)


def test_stale_decaying_leads_count_as_the_rescore_counts_them(django_capture_on_commit_callbacks, publish):
    # Given page views under a 30-day half-life, and the leads' stored scores as a refresh long ago
    # left them (higher than today's decayed value),
    ScoringRule.objects.filter(event_type="PAGE_VIEW").update(points=100, half_life_days=30)
    publish()
    ingest(django_capture_on_commit_callbacks, [ev("d1", "decay@example.com", url="/x"), ev("o1", "open@example.com", "EMAIL_OPEN")])
    decaying = Lead.objects.get(email="decay@example.com")
    assert decaying.decaying and decaying.current_score < 100
    Lead.objects.filter(pk=decaying.pk).update(current_score=100)
    # when a draft changing only e-mail opens is previewed and then published,
    ScoringRule.objects.filter(event_type="EMAIL_OPEN").update(points=12)
    preview = ruleset_preview()
    version = ruleset_publish(actor="test")
    job = RescoreJob.objects.get(version=version.number)
    rescore_job_run(job_id=job.pk)
    job.refresh_from_db()
    # then the decaying lead was evaluated too (the rescore re-evaluates it at its own now), and the
    # counts agree.
    assert preview["affected_event_types"] == ["EMAIL_OPEN"] and preview["evaluated_leads"] == 2
    assert preview["changed"] == job.changed == 2
    assert {lead["email"] for lead in preview["changed_leads"]} == {"decay@example.com", "open@example.com"}
