"""Stages end to end (docs/stages-and-alerts.md): every scoring transaction decides the stage of the
leads it writes (StageChange audit with its cause, one ``lead.stage_changed`` AlertEvent per actual
change, ``lead.score_crossed`` per threshold crossed); changing the stages restages the leads in the
background on the rescore machinery (kind ``restage``), resumably and exactly once.

Runs inside the test transaction (after-commit work executed by django_capture_on_commit_callbacks),
on SQLite, MariaDB and PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from conftest import event_payload, publish_draft_now
from events.models import Event
from events.services import event_ingest
from leads.models import Lead
from leads.services import lead_create, lead_profile_update
from scoring import engine
from scoring.models import (
    AlertEvent,
    AlertKind,
    FitRule,
    RescoreJob,
    RescoreKind,
    RescoreStatus,
    ScoringRule,
    Stage,
    StageCause,
    StageChange,
    StageSettings,
)
from scoring.rescoring import (
    _rescore_batch,
    rescore_job_ensure,
    rescore_job_run,
    rescore_job_start,
    rescore_jobs_resume,
    restage_job_start,
    ruleset_publish,
)
from scoring.rulesets import stageset_current
from scoring.services import StaleStages, _stages_for, events_process, leads_rescore, leads_restage
from scoring.stages import stage_delete, stage_save, stage_settings_save

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_stages")]
NO_PAUSE = override_settings(TARGETGRID_RESCORE_PAUSE_MS=0)

DEFAULT_STAGES = [("Cold", None), ("Warm", 40), ("MQL", 100), ("SQL", 300)]


@pytest.fixture
def default_stages(db):
    """Cold < 40 <= Warm < 100 <= MQL < 300 <= SQL (what migration 0009 seeds), as a fresh version."""
    Stage.objects.all().delete()
    for position, (name, threshold) in enumerate(DEFAULT_STAGES):
        Stage.objects.create(name=name, position=position * 10, min_score=threshold)
    StageSettings.objects.update_or_create(pk=1, defaults={"score_thresholds": []})
    StageSettings.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
    return stageset_current()


def ingest(capture, *payloads):
    with capture(execute=True):
        result = event_ingest(items=list(payloads), source="test")
    assert all(item.status == "accepted" for item in result.items), result.items
    return result


def negative_rule(event_type="UNSUBSCRIBE", points=-200):
    ScoringRule.objects.create(event_type=event_type, points=points, description="opt-out")
    publish_draft_now(note=f"{event_type} {points}")


def changes_of(lead):
    return list(StageChange.objects.filter(lead=lead).order_by("id").values_list("from_stage", "to_stage", "cause"))


def alerts_of(lead, kind=AlertKind.STAGE_CHANGED):
    return list(AlertEvent.objects.filter(lead=lead, kind=kind).order_by("id"))


# --- through ingest and scoring --------------------------------------------------------------------


def test_crossing_up_writes_one_audit_row_and_one_alert(django_capture_on_commit_callbacks):
    # Given a new lead whose first event leaves it Cold (its first stage: entered silently),
    ingest(django_capture_on_commit_callbacks, event_payload("pv-1", minutes=0))
    lead = Lead.objects.get()
    assert (lead.stage, lead.current_score, lead.stage_version) == ("Cold", 5, stageset_current().version)
    assert changes_of(lead) == [] and alerts_of(lead) == []

    # when a demo request takes it to 55 (Warm),
    ingest(django_capture_on_commit_callbacks, event_payload("demo-1", event_type="DEMO_REQUEST", minutes=1))

    # then one StageChange (cause event, the event's id) and one lead.stage_changed alert record it.
    lead.refresh_from_db()
    assert lead.stage == "Warm" and lead.stage_entered_at is not None
    change = StageChange.objects.get(lead=lead)
    assert (change.from_stage, change.to_stage, change.direction, change.cause) == ("Cold", "Warm", "up", "event")
    assert change.event_ref == "demo-1" and change.event_id == Event.objects.get(event_id="demo-1").id
    assert (change.score, change.created_at) == (55, lead.stage_entered_at)
    [alert] = alerts_of(lead)
    data = alert.payload["data"]
    assert (alert.stage, alert.payload["type"]) == ("Warm", "lead.stage_changed")
    assert (data["from_stage"], data["to_stage"], data["cause"], data["event_id"]) == ("Cold", "Warm", "event", "demo-1")
    assert data["lead"]["email"] == "ann@example.com" and data["lead"]["score"] == 55
    assert alert.payload["id"] == str(alert.uid)


def test_dropping_below_and_crossing_again_fires_again(django_capture_on_commit_callbacks):
    # Given an opt-out rule (-200) and a lead in MQL,
    negative_rule()
    ingest(django_capture_on_commit_callbacks, event_payload("p-1", event_type="PURCHASE", minutes=0),
           event_payload("d-1", event_type="DEMO_REQUEST", minutes=1))
    lead = Lead.objects.get()
    assert (lead.current_score, lead.stage) == (150, "MQL")

    # when it unsubscribes (down to 0: Cold), then buys again (100: MQL),
    ingest(django_capture_on_commit_callbacks, event_payload("u-1", event_type="UNSUBSCRIBE", minutes=2))
    lead.refresh_from_db()
    assert (lead.current_score, lead.stage) == (0, "Cold")
    ingest(django_capture_on_commit_callbacks, event_payload("p-2", event_type="PURCHASE", minutes=3))
    lead.refresh_from_db()

    # then each actual change is audited and alerted, the second crossing as much as the first.
    assert (lead.current_score, lead.stage) == (100, "MQL")
    assert changes_of(lead) == [("Cold", "MQL", "event"), ("MQL", "Cold", "event"), ("Cold", "MQL", "event")]
    assert [(a.payload["data"]["direction"], a.stage) for a in alerts_of(lead)] == [
        ("up", "MQL"), ("down", "Cold"), ("up", "MQL"),
    ]
    assert list(StageChange.objects.filter(lead=lead).order_by("id").values_list("event_ref", flat=True)) == [
        "d-1", "u-1", "p-2",
    ]


def test_up_and_back_down_within_one_transaction_fires_nothing(django_capture_on_commit_callbacks):
    # Given a Cold lead (5) and an opt-out rule worth -50,
    negative_rule(points=-50)
    ingest(django_capture_on_commit_callbacks, event_payload("pv-1", minutes=0))
    lead = Lead.objects.get()

    # when one batch scores a demo request (+50: Warm) and the opt-out (-50: Cold again) together,
    ingest(django_capture_on_commit_callbacks, event_payload("d-1", event_type="DEMO_REQUEST", minutes=1),
           event_payload("u-1", event_type="UNSUBSCRIBE", minutes=2))

    # then the lead ends where it started: no stage change, no alert (the stage is decided per
    # transaction, on the lead's final state).
    lead.refresh_from_db()
    assert (lead.current_score, lead.stage) == (5, "Cold")
    assert changes_of(lead) == [] and not AlertEvent.objects.exists()


def test_score_thresholds_alert_each_crossing_up_and_down(django_capture_on_commit_callbacks):
    # Given score thresholds 50, 150 and 1000 (set through the service: a new stage-settings version),
    stage_settings_save(score_thresholds=[150, 50, 1000, 50], send=False)
    assert StageSettings.objects.get(pk=1).score_thresholds == [50, 150, 1000]
    negative_rule(points=-140)
    ingest(django_capture_on_commit_callbacks, event_payload("pv-1", minutes=0))
    lead = Lead.objects.get()

    # when one jump takes the lead from 5 to 205 (over 50 and 150), then an opt-out back to 65,
    ingest(django_capture_on_commit_callbacks, event_payload("p-1", event_type="PURCHASE", minutes=1),
           event_payload("p-2", event_type="PURCHASE", minutes=2))
    ingest(django_capture_on_commit_callbacks, event_payload("u-1", event_type="UNSUBSCRIBE", minutes=3))

    # then each threshold crossed is one lead.score_crossed alert, in order, with its direction.
    crossed = [(a.payload["data"]["threshold"], a.payload["data"]["direction"], a.payload["data"]["previous_score"])
               for a in alerts_of(lead, AlertKind.SCORE_CROSSED)]
    assert crossed == [(50, "up", 5), (150, "up", 5), (150, "down", 205)]
    assert Lead.objects.get().current_score == 65


def test_a_fit_stage_is_reached_by_a_profile_change(django_capture_on_commit_callbacks, default_stages):
    # Given a hottest stage that needs a fit of 30 (any score), and a fit rule for directors,
    FitRule.objects.create(name="Director", points=40,
                           conditions=[{"field": "job_title", "op": "contains", "value": "director", "ignore_case": True}])
    publish_draft_now(note="fit")
    stage_save(name="ICP", position=100, min_fit=30, color="purple", send=False)
    with django_capture_on_commit_callbacks(execute=True):
        lead = lead_create(email="eve@acme.com", job_title="Engineer")
    lead.refresh_from_db()
    assert (lead.fit_score, lead.stage) == (0, "Cold")

    # when her profile changes to a director's,
    with django_capture_on_commit_callbacks(execute=True):
        lead_profile_update(lead_id=lead.id, job_title="Sales Director")

    # then her fit reaches the threshold and the change is audited with cause "fit".
    lead.refresh_from_db()
    assert (lead.fit_score, lead.stage) == (40, "ICP")
    change = StageChange.objects.get(lead=lead)
    assert (change.from_stage, change.to_stage, change.cause, change.fit_score) == ("Cold", "ICP", "fit", 40)
    assert [a.payload["data"]["cause"] for a in alerts_of(lead)] == ["fit"]


def test_a_lead_never_staged_enters_its_first_stage_silently(django_capture_on_commit_callbacks):
    # Given a lead with a score but no stage yet (stage_version 0: e.g. written before stages existed),
    lead = Lead.objects.create(email="old@example.com", current_score=150)
    assert (lead.stage, lead.stage_version) == ("", 0)

    # when it is staged (a restage batch),
    changed = leads_restage(lead_ids=[lead.id])

    # then it is placed in MQL without an audit row or an alert: nothing changed for anybody.
    lead.refresh_from_db()
    assert (changed, lead.stage, lead.stage_version) == (0, "MQL", stageset_current().version)
    assert lead.stage_entered_at is not None
    assert not StageChange.objects.exists() and not AlertEvent.objects.exists()


@NO_PAUSE
def test_a_rescore_moving_1000_leads_across_mql_alerts_exactly_1000_times(django_capture_on_commit_callbacks):
    # Given 1,000 Warm leads (one demo request each: 50),
    items = [event_payload(f"d-{n}", event_type="DEMO_REQUEST", email=f"l{n}@example.com") for n in range(1000)]
    for start in range(0, 1000, 500):
        ingest(django_capture_on_commit_callbacks, *items[start:start + 500])
    assert set(Lead.objects.values_list("stage", flat=True)) == {"Warm"}
    AlertEvent.objects.all().delete()
    StageChange.objects.all().delete()  # (their first event took them from Cold to Warm)

    # when a rule change (demo request: 120 points) is published and its rescore runs,
    ScoringRule.objects.filter(event_type="DEMO_REQUEST").update(points=120)
    with django_capture_on_commit_callbacks(execute=False):
        version = ruleset_publish(actor="test", send=False)
    job = RescoreJob.objects.get(kind=RescoreKind.RESCORE, version=version.number)
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_run(job_id=job.pk)

    # then every lead moved to MQL once: 1,000 audit rows and 1,000 alerts, cause rescore,
    assert (job.status, job.changed) == (RescoreStatus.COMPLETED, 1000)
    assert set(Lead.objects.values_list("stage", flat=True)) == {"MQL"}
    assert StageChange.objects.filter(cause=StageCause.RESCORE, from_stage="Warm", to_stage="MQL").count() == 1000
    assert AlertEvent.objects.filter(kind=AlertKind.STAGE_CHANGED).count() == 1000
    assert {a["data"]["cause"] for a in AlertEvent.objects.values_list("payload", flat=True)} == {"rescore"}
    assert AlertEvent.objects.values("lead").distinct().count() == 1000

    # and rescoring them all again changes nothing and alerts nobody.
    with django_capture_on_commit_callbacks(execute=True):
        leads_rescore(lead_ids=list(Lead.objects.values_list("pk", flat=True)), actor="again")
    assert AlertEvent.objects.count() == 1000 and StageChange.objects.count() == 1000


# --- changing the stages: the background restage -----------------------------------------------------


def seed_scores(*scores):
    """Leads with these scores, staged under the current settings (as scoring would have left them)."""
    stages = stageset_current()
    leads = [Lead.objects.create(email=f"s{n}@example.com", current_score=score) for n, score in enumerate(scores)]
    for lead in leads:
        Lead.objects.filter(pk=lead.pk).update(stage=stages.stage_of(score=lead.current_score, fit_score=0),
                                               stage_entered_at=timezone.now(), stage_version=stages.version)
    return leads


@NO_PAUSE
def test_changing_a_threshold_restages_the_leads_in_the_background(django_capture_on_commit_callbacks):
    # Given leads at 10, 50, 70, 150 and 400 (Cold, Warm, Warm, MQL, SQL),
    seed_scores(10, 50, 70, 150, 400)
    before = stageset_current().version

    # when an operator lowers MQL to 60,
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stage, changed = stage_save(stage=Stage.objects.get(name="MQL"), min_score=60, actor="ops")

    # then the settings version grows and a restage job is queued after commit, for every lead,
    assert changed.version == before + 1 == StageSettings.objects.get(pk=1).version
    job = changed.job
    assert (job.kind, job.version, job.status, job.total, job.created_by) == ("restage", changed.version, "queued", 5, "ops")
    assert len(callbacks) >= 1
    assert Lead.objects.filter(stage="MQL").count() == 1  # nothing moved yet: it runs in the background

    # and running it moves only the Warm lead at 70, with cause "stages", reporting its progress.
    progress = []
    with override_settings(TARGETGRID_RESCORE_BATCH=2), django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_run(job_id=job.pk, on_progress=progress.append)
    assert (job.status, job.done, job.total, job.changed) == ("completed", 5, 5, 1)
    assert [p["done"] for p in progress] == [2, 4, 5] and progress[-1]["kind"] == "restage"
    assert progress[-1]["percent"] == 100.0
    assert dict(Lead.objects.values_list("current_score", "stage")) == {10: "Cold", 50: "Warm", 70: "MQL", 150: "MQL",
                                                                        400: "SQL"}
    assert set(Lead.objects.values_list("stage_version", flat=True)) == {changed.version}
    change = StageChange.objects.get()
    assert (change.from_stage, change.to_stage, change.cause, change.stage_version) == ("Warm", "MQL", "stages",
                                                                                      changed.version)
    assert [a.payload["data"]["cause"] for a in AlertEvent.objects.all()] == ["stages"]


@NO_PAUSE
def test_a_restage_killed_midway_resumes_and_finishes_exactly_once(django_capture_on_commit_callbacks):
    # Given 7 Warm leads and a restage after MQL was lowered to 40 (every Warm lead becomes MQL),
    seed_scores(*(40 + n for n in range(7)))
    Stage.objects.filter(name="Warm").delete()
    with django_capture_on_commit_callbacks(execute=False):
        _stage, changed = stage_save(stage=Stage.objects.get(name="MQL"), min_score=40, send=False)

    # when its worker dies after one committed batch (3 leads) and the job is resumed,
    with django_capture_on_commit_callbacks(execute=True):
        job = _rescore_batch(changed.job.pk, 3)
    assert (job.status, job.done, job.cursor != "") == ("running", 3, True)
    with override_settings(TARGETGRID_RESCORE_BATCH=3), django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_run(job_id=job.pk)
        again = rescore_job_run(job_id=job.pk)  # a second runner (a re-delivered message) finds it finished

    # then every lead moved exactly once, and the job's counters say so.
    assert (job.status, job.done, job.changed) == ("completed", 7, 7) and again.status == "completed"
    assert StageChange.objects.count() == 7 == StageChange.objects.values("lead").distinct().count()
    assert AlertEvent.objects.filter(kind=AlertKind.STAGE_CHANGED).count() == 7


def test_a_newer_stage_change_supersedes_the_older_restage_but_not_a_rescore():
    # Given an unfinished rescore job and an unfinished restage job,
    rescore = rescore_job_start(version=1, send=False)
    _stage, first = stage_save(stage=Stage.objects.get(name="SQL"), min_score=250, send=False)

    # when the stages change again,
    _stage, second = stage_save(stage=Stage.objects.get(name="SQL"), min_score=260, send=False)

    # then the older restage is superseded, the rescore is untouched, the newer restage is queued.
    statuses = dict(RescoreJob.objects.values_list("pk", "status"))
    assert statuses == {rescore.pk: "queued", first.job.pk: "superseded", second.job.pk: "queued"}
    # and a restage job of a newer version never supersedes a rescore job of an older rules version
    restage_job_start(version=second.version + 50, send=False)
    assert RescoreJob.objects.get(pk=rescore.pk).status == "queued"


def test_a_running_restage_stops_when_the_settings_move_on(django_capture_on_commit_callbacks):
    # Given a queued restage to version v, and the settings then changed by someone else (v+1),
    seed_scores(50, 150)
    _stage, changed = stage_save(stage=Stage.objects.get(name="MQL"), min_score=120, send=False)
    StageSettings.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
    # when the old job runs, then it marks itself superseded and restages nobody.
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_run(job_id=changed.job.pk)
    assert (job.status, job.done) == ("superseded", 0) and not StageChange.objects.exists()


def test_the_periodic_resume_restages_leads_left_under_older_settings(django_capture_on_commit_callbacks):
    # Given a finished restage, then a lead staged by a process that still read the old settings,
    lead, fresh = seed_scores(150, 5)
    Stage.objects.filter(name="MQL").update(min_score=200)
    StageSettings.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
    Lead.objects.filter(pk=fresh.pk).update(stage_version=0, stage="")  # never staged: left to its scoring
    current = stageset_current().version

    # when the periodic resume runs (once with nothing stalled),
    with django_capture_on_commit_callbacks(execute=True):
        rescore_jobs_resume()

    # then it started a restage job to the current version, which (run inline after commit)
    # moved the outdated lead: MQL (150) is Warm now; the never-staged lead was left alone.
    job = RescoreJob.objects.get(kind=RescoreKind.RESTAGE)
    assert job.version == current and job.created_by == "periodic"
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_version) == ("Warm", current)
    assert Lead.objects.get(pk=fresh.pk).stage_version == current  # (the job passes every outdated lead)
    # and with nothing outdated left, the next resume starts nothing.
    with django_capture_on_commit_callbacks(execute=True):
        rescore_jobs_resume()
    assert RescoreJob.objects.filter(kind=RescoreKind.RESTAGE).count() == 1


def test_renaming_a_stage_keeps_its_leads_without_alerts(django_capture_on_commit_callbacks):
    # Given two MQL leads,
    seed_scores(150, 160, 20)
    # when MQL is renamed and the restage runs,
    with django_capture_on_commit_callbacks(execute=True):
        stage_save(stage=Stage.objects.get(name="MQL"), name="Marketing qualified")
    # then the leads are in the renamed stage and nobody was told anything changed.
    assert Lead.objects.filter(stage="Marketing qualified").count() == 2
    assert not Lead.objects.filter(stage="MQL").exists()
    assert not StageChange.objects.exists() and not AlertEvent.objects.exists()


def test_deleting_a_stage_restages_its_leads(django_capture_on_commit_callbacks):
    seed_scores(150, 20)
    with django_capture_on_commit_callbacks(execute=True):
        stage_delete(stage=Stage.objects.get(name="MQL"))
    assert dict(Lead.objects.values_list("current_score", "stage")) == {150: "Warm", 20: "Cold"}
    assert changes_of(Lead.objects.get(current_score=150)) == [("MQL", "Warm", "stages")]


# --- the guard against a drain racing a stage change -----------------------------------------------


def test_a_lead_staged_under_newer_settings_than_the_snapshot_is_stale():
    # Given a lead staged under version v+1 while this transaction's snapshot shows v,
    [lead] = seed_scores(50)
    snapshot = stageset_current()
    lead.stage_version = snapshot.version + 1
    # when a scoring transaction reads its stage settings, then it must retry (StaleStages).
    with mock.patch("scoring.services.stageset_current", return_value=snapshot):
        with pytest.raises(StaleStages):
            _stages_for([lead])
    lead.stage_version = snapshot.version
    assert _stages_for([lead]) is not None


def test_a_drain_racing_a_stage_change_retries_under_the_new_settings(django_capture_on_commit_callbacks):
    # Given a Warm lead (55) and new stages (MQL from 50) whose restage already moved it,
    ingest(django_capture_on_commit_callbacks, event_payload("pv-1"), event_payload("d-1", event_type="DEMO_REQUEST"))
    lead = Lead.objects.get()
    old = stageset_current()
    with django_capture_on_commit_callbacks(execute=True):
        stage_save(stage=Stage.objects.get(name="MQL"), min_score=50)
    new = stageset_current()
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_version) == ("MQL", new.version)

    # when a drain that read the old settings (its first snapshot) scores the lead's next event,
    with django_capture_on_commit_callbacks(execute=False):
        event_ingest(items=[event_payload("pv-2", minutes=5)], source="test")
    reads = iter([old])
    real = stageset_current
    with mock.patch("scoring.services.stageset_current", side_effect=lambda: next(reads, None) or real()):
        with django_capture_on_commit_callbacks(execute=True):
            result = events_process(event_ids=list(Event.objects.filter(event_id="pv-2").values_list("id", flat=True)))

    # then it retried under the new settings: the lead stays MQL, no spurious "back to Warm" change.
    lead.refresh_from_db()
    assert result.processed == 1 and (lead.current_score, lead.stage) == (60, "MQL")
    assert changes_of(lead) == [("Cold", "Warm", "event"), ("Warm", "MQL", "stages")]


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mql", "Mql ", "ＭＱＬ", "wärm"])
def test_stage_names_differing_only_in_case_accents_or_width_are_refused(name):
    with pytest.raises(ValidationError) as error:
        stage_save(name=name, min_score=500, send=False)
    assert "name" in error.value.message_dict
    assert Stage.objects.count() == 4


def test_bad_stage_values_are_refused_per_field():
    with pytest.raises(ValidationError) as error:
        stage_save(name="Hot", min_fit=101, send=False)
    assert set(error.value.message_dict) == {"min_fit"}
    with pytest.raises(ValidationError) as error:
        stage_settings_save(score_thresholds=[1, "x"], send=False)
    assert set(error.value.message_dict) == {"score_thresholds"}
    with pytest.raises(ValidationError) as error:
        stage_save(name="bad\x00name", send=False)
    assert set(error.value.message_dict) == {"name"}
    assert StageSettings.objects.get(pk=1).version == stageset_current().version  # nothing bumped


def test_the_engine_stage_set_orders_and_crosses():
    stages = engine.StageSet(version=1, stages=(engine.Stage("Cold"), engine.Stage("Warm", 40),
                                                engine.Stage("ICP", None, 30)),
                             score_thresholds=(50, 150))
    assert stages.stage_of(score=45, fit_score=0) == "Warm" and stages.stage_of(score=0, fit_score=30) == "ICP"
    assert stages.crossings(previous=160, new=10) == [(150, "down"), (50, "down")]


def test_score_changed_frames_carry_the_leads_stage_after_the_transaction(django_capture_on_commit_callbacks):
    # Given a Cold lead, when one batch takes it from 5 to 55 and then 105 (two frames),
    ingest(django_capture_on_commit_callbacks, event_payload("pv-1"))
    with django_capture_on_commit_callbacks(execute=False):
        event_ingest(items=[event_payload("d-1", event_type="DEMO_REQUEST", minutes=1),
                            event_payload("d-2", event_type="DEMO_REQUEST", minutes=2)], source="test")
    ids = list(Event.objects.filter(event_id__in=["d-1", "d-2"]).values_list("id", flat=True))
    result = events_process(event_ids=ids)
    # then every frame says the stage the lead is in once the transaction commits (the pages' badge).
    assert [(frame["new_score"], frame["stage"]) for frame in result.changes] == [(55, "MQL"), (105, "MQL")]


def test_a_restage_job_is_never_taken_for_a_rescore_of_the_same_version_number():
    # Given an unfinished restage job whose stage-settings version equals the current rules version,
    restage = restage_job_start(version=1, send=False)
    # when the rescore command asks for the job to run, then it gets a rescore job, not the restage.
    job, created = rescore_job_ensure(actor="cli")
    assert created and job.kind == RescoreKind.RESCORE and job.pk != restage.pk
    assert RescoreJob.objects.get(pk=restage.pk).status == "queued"
