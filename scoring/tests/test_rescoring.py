"""Rescoring under a new rule-set version (issue #10, acceptance 2), against a real database: a job
killed mid-run resumes from its committed cursor; events arriving during a rescore are scored once,
under the new version; a newer publish supersedes a running job; ``manage.py rescore``.

Every final state is checked against an independent fold: each lead's processed events evaluated
from scratch by ``engine.evaluate`` under the version, and the audit log summed per lead."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.utils import timezone

from conftest import T0, event_payload, subprocess_database_url
from events.models import Event, EventStatus
from events.services import event_ingest
from leads.models import Lead
from scoring import engine
from scoring.models import RescoreJob, RescoreStatus, ScoreChange, ScoringRule
from scoring.rescoring import rescore_job_start, rescore_jobs_resume, rescore_job_run, ruleset_publish
from scoring.rulesets import ruleset_of
from scoring.services import events_requeue_pending, rule_save

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


# --- helpers ---------------------------------------------------------------------------------


def seed(leads: int, *, per_lead: int = 4, prefix: str = "seed") -> list[str]:
    """``leads`` leads with a mix of events, scored under the current version; returns the e-mails."""
    rng = random.Random(leads)
    emails = [f"{prefix}{n}@example.com" for n in range(leads)]
    items = []
    for n, email in enumerate(emails):
        for k in range(per_lead):
            kind = rng.choice(["PAGE_VIEW", "PAGE_VIEW", "EMAIL_OPEN", "FORM_SUBMIT"])
            extra = {"metadata": {"url": rng.choice(["/pricing", "/blog", "/pricing/enterprise"])}} if kind == "PAGE_VIEW" else {}
            items.append(event_payload(f"{prefix}-{n}-{k}", event_type=kind, minutes=rng.randrange(0, 600), email=email,
                                       **extra))
    for start in range(0, len(items), 500):
        result = event_ingest(items=items[start:start + 500], source="test")
        assert all(r.status == "accepted" for r in result.items), [r for r in result.items if r.status != "accepted"][:3]
    assert not Event.objects.exclude(status=EventStatus.PROCESSED).exists()
    return emails


def change_draft() -> None:
    """v2: page views worth more, a conditional +15 for /pricing, e-mail opens capped at 2 per lead."""
    rule_save(rule=ScoringRule.objects.get(event_type="PAGE_VIEW"), points=7)
    rule_save(name="Pricing page", event_type="PAGE_VIEW", points=15,
              conditions=[{"field": "metadata.url", "op": "starts_with", "value": "/pricing"}])
    rule_save(rule=ScoringRule.objects.get(event_type="EMAIL_OPEN"), cap_count=2)


def change_draft_again() -> None:
    """v3: form submissions worth 40, the /pricing bonus down to 5."""
    rule_save(rule=ScoringRule.objects.get(event_type="FORM_SUBMIT"), points=40)
    rule_save(rule=ScoringRule.objects.get(name="Pricing page"), points=5)


def independent_score(lead: Lead, version: int) -> int:
    events = [
        engine.EngineEvent(engine.EventKey(ts, event_id), event_type, metadata if isinstance(metadata, dict) else {},
                           source)
        for ts, event_id, event_type, metadata, source in Event.objects.filter(
            lead_id=lead.id, status=EventStatus.PROCESSED
        ).values_list("timestamp", "event_id", "event_type", "metadata", "source")
    ]
    return engine.evaluate(ruleset_of(version), events, max_score=lead.max_score, as_of=lead.score_as_of).score


def scores_before(version: int) -> dict:
    """Each lead's score under ``version`` as stored now, and under it from scratch (equal)."""
    out = {}
    for lead in Lead.objects.all():
        assert lead.current_score == independent_score(lead, version), lead.email
        out[lead.id] = lead.current_score
    return out


def assert_final_state(version: int) -> None:
    """Every lead under ``version``: its score is the fold of its events, its audit sums to it, and
    it has at most one RESCORE row of that version; every processed event has exactly one row."""
    audit = dict(ScoreChange.objects.values_list("lead_id").annotate(total=models.Sum("delta")))
    rescores = Counter(
        ScoreChange.objects.filter(event_type=ScoreChange.RESCORE, rule_version=version).values_list("lead_id", flat=True)
    )
    for lead in Lead.objects.all():
        assert lead.rule_version == version, lead.email
        assert lead.current_score == independent_score(lead, version), lead.email
        assert audit.get(lead.id, 0) == lead.current_score, lead.email
        assert rescores[lead.id] <= 1, lead.email
    assert not Event.objects.exclude(status=EventStatus.PROCESSED).exists()
    per_event = Counter(ScoreChange.objects.filter(event_id__isnull=False).values_list("event_id", flat=True))
    assert set(per_event) == set(Event.objects.values_list("id", flat=True))
    assert set(per_event.values()) == {1}


class ProgressSampler(threading.Thread):
    """Samples every job's ``(status, done)`` from its own connection, as an operator's page would."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: dict[int, list[int]] = {}
        self.stopped = threading.Event()

    def run(self):
        try:
            while True:
                last = self.stopped.is_set()  # one more sample after the stop: the final state
                for pk, done in RescoreJob.objects.values_list("pk", "done"):
                    series = self.samples.setdefault(pk, [])
                    if not series or series[-1] != done:
                        series.append(done)
                if last:
                    return
                time.sleep(0.01)
        finally:
            connection.close()

    def stop(self) -> dict[int, list[int]]:
        self.stopped.set()
        self.join(timeout=30)
        return self.samples


def assert_monotonic(samples: dict[int, list[int]]) -> None:
    for pk, series in samples.items():
        assert series == sorted(series), f"job {pk} progress went back: {series}"


# --- a. crash and resume ---------------------------------------------------------------------


def test_a_rescore_killed_mid_run_resumes_from_its_cursor_and_rescores_each_lead_once(settings, publish, tmp_path):
    # Given 120 leads scored under v1 and a changed rule set published as v2 (no job yet),
    seed(120)
    before = scores_before(1)
    change_draft()
    version = publish()
    expected_changed = {lead.id for lead in Lead.objects.all() if independent_score(lead, version) != before[lead.id]}
    assert expected_changed  # the change matters to some leads
    # when `manage.py rescore` runs it in another process, slowly (4 leads per batch, 100 ms apart),
    sampler = ProgressSampler()
    sampler.start()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": subprocess_database_url(),
           "TARGETGRID_QUEUE": "inline", "TARGETGRID_RESCORE_BATCH": "4", "TARGETGRID_RESCORE_PAUSE_MS": "100",
           "TARGETGRID_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    log = tmp_path / "rescore.log"
    proc = subprocess.Popen([sys.executable, "manage.py", "rescore", "--no-input"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not RescoreJob.objects.filter(done__gte=12).exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        # and is killed (SIGKILL: no clean-up of any kind) a few batches in,
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    job = RescoreJob.objects.get()
    assert job.status == RescoreStatus.RUNNING and 12 <= job.done < 120, (job.status, job.done, log.read_text())
    killed_at = job.done
    # then the periodic resume sends it again and it finishes from its committed cursor,
    settings.TARGETGRID_RESCORE_BATCH = 7
    assert rescore_jobs_resume(older_than_seconds=0) == 1
    samples = sampler.stop()
    job.refresh_from_db()
    assert job.status == RescoreStatus.COMPLETED
    assert job.done == job.total == 120  # no lead visited twice (a restart from 0 would count 120 + killed_at)
    assert samples[job.pk][-1] == 120 and any(0 < done <= killed_at for done in samples[job.pk])
    assert_monotonic(samples)
    # with exactly one RESCORE row per changed lead, and every lead's score the fold under v2.
    rescores = Counter(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE).values_list("lead_id", flat=True))
    assert set(rescores) == expected_changed and set(rescores.values()) == {1}
    assert job.changed == len(expected_changed)
    assert_final_state(version)


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL (a real broker and worker)")
def test_a_celery_worker_killed_mid_rescore_is_resumed_by_the_beat_task_on_another_worker(settings, publish, tmp_path):
    import redis

    from config.celery import app as celery_app

    redis.Redis.from_url(os.environ["TEST_REDIS_URL"]).flushdb()
    # Given 120 leads under v1, v2 published, and a real worker running its rescore slowly,
    seed(120)
    change_draft()
    version = publish()
    settings.TARGETGRID_QUEUE = "celery"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": subprocess_database_url(),
           "REDIS_URL": os.environ["TEST_REDIS_URL"], "TARGETGRID_QUEUE": "celery", "TARGETGRID_RESCORE_BATCH": "4",
           "TARGETGRID_RESCORE_PAUSE_MS": "100", "TARGETGRID_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    workers = []

    def worker(name):
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "-l", "info", "-c", "1",
             "-Q", "imports,scoring,celery", "-n", f"{name}-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        workers.append(proc)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        return proc, log

    sampler = ProgressSampler()
    sampler.start()
    try:
        first, log = worker("rescore1")
        job = rescore_job_start(version=version)
        deadline = time.monotonic() + 120
        while RescoreJob.objects.get(pk=job.pk).done < 12:
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        # when the worker dies with it (SIGKILL to its whole process group: parent and pool),
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        job.refresh_from_db()
        assert job.status == RescoreStatus.RUNNING and 12 <= job.done < 120, (job.status, job.done)
        killed_at = job.done
        # then the beat task `scoring.rescore_resume`, run by another worker, sends it again there,
        second, log = worker("rescore2")
        celery_app.send_task("scoring.rescore_resume", kwargs={"older_than_seconds": 0})
        deadline = time.monotonic() + 120
        while not RescoreJob.objects.get(pk=job.pk).finished:
            assert second.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    samples = sampler.stop()
    # and it finishes from its committed cursor: each lead once, progress monotonic, the fold under v2.
    job.refresh_from_db()
    assert job.status == RescoreStatus.COMPLETED and job.done == job.total == 120
    assert any(0 < done <= killed_at for done in samples[job.pk]) and samples[job.pk][-1] == 120
    assert_monotonic(samples)
    rescores = Counter(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE).values_list("lead_id", flat=True))
    assert set(rescores.values()) == {1} and len(rescores) == job.changed
    assert_final_state(version)


def test_the_beat_task_does_not_resend_a_job_that_is_moving(settings, publish):
    # Given a job that has just moved,
    seed(3)
    change_draft()
    job = rescore_job_start(version=publish(), send=False)
    # when the periodic resume looks for stalled jobs (60 s without progress), then it sends nothing.
    with mock.patch("config.transport.publish") as sent:
        assert rescore_jobs_resume(older_than_seconds=60) == 0
    sent.assert_not_called()
    # once it has not moved for that long, it is sent again.
    RescoreJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=61))
    with mock.patch("config.transport.publish") as sent:
        assert rescore_jobs_resume(older_than_seconds=60) == 1
    sent.assert_called_once_with("scoring.rescore_run", job.pk)


# --- b. events arriving during a rescore -----------------------------------------------------


class Poster(threading.Thread):
    """Posts events through the ingest service until stopped: for old leads (some in the past of
    what they have: late events) and for new leads."""

    def __init__(self, number: int, emails: list[str]):
        super().__init__(daemon=True)
        self.number, self.emails = number, emails
        self.rng = random.Random(number)
        self.posted = 0
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stopped.is_set():
                items = []
                for _ in range(self.rng.randint(1, 4)):
                    email = (self.rng.choice(self.emails) if self.rng.random() < 0.8
                             else f"new-{self.number}-{self.posted}@example.com")
                    kind = self.rng.choice(["PAGE_VIEW", "EMAIL_OPEN", "FORM_SUBMIT"])
                    # mostly after everything seeded (in order), sometimes in its past (a late event)
                    minutes = 1000 + self.posted if self.rng.random() < 0.9 else self.rng.randrange(0, 600)
                    extra = {"metadata": {"url": self.rng.choice(["/pricing", "/docs"])}} if kind == "PAGE_VIEW" else {}
                    items.append(event_payload(f"live-{self.number}-{self.posted}", event_type=kind, email=email,
                                               minutes=minutes, **extra))
                    self.posted += 1
                result = event_ingest(items=items, source="api")
                assert all(r.status == "accepted" for r in result.items), result.items
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()


def test_events_arriving_during_a_rescore_are_scored_once_under_the_new_version(settings):
    # Given 60 leads scored under v1 and a changed draft,
    emails = seed(60)
    before = scores_before(1)
    untouched = set(emails[40:])  # leads nothing is posted to while the rescore runs
    change_draft()
    settings.TARGETGRID_RESCORE_BATCH = 2
    settings.TARGETGRID_RESCORE_PAUSE_MS = 50
    sampler = ProgressSampler()
    sampler.start()
    posters = [Poster(n, emails[:40]) for n in range(3)]
    for poster in posters:
        poster.start()
    try:
        while sum(p.posted for p in posters) < 20:
            time.sleep(0.01)
        # when v2 is published while events keep arriving (its rescore runs here, batch by batch),
        version = ruleset_publish(actor="ops", note="pricing").number
        posted_at_end = sum(p.posted for p in posters)
        while sum(p.posted for p in posters) < posted_at_end + 20:
            time.sleep(0.01)
    finally:
        for poster in posters:
            poster.stopped.set()
        for poster in posters:
            poster.join(timeout=60)
    samples = sampler.stop()
    assert all(p.error is None for p in posters), [p.error for p in posters]
    events_requeue_pending(older_than_seconds=0)  # a wake-up lost to a busy database, if any
    job = RescoreJob.objects.get()
    assert job.status == RescoreStatus.COMPLETED
    # (the stream really overlapped the rescore),
    assert Event.objects.filter(received_at__gt=job.started_at, received_at__lt=job.finished_at).count() > 0
    # (and some leads got an event before the job reached them: the scoring rescored them first),
    job_rows = set(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE).values_list("lead_id", "created_at"))
    by_drain = {lead_id for lead_id, created in ScoreChange.objects.filter(event_id__isnull=False)
                .values_list("lead_id", "created_at") if (lead_id, created) in job_rows}
    print(f"{sum(p.posted for p in posters)} events posted, {len(by_drain)} leads rescored by their scoring first")
    assert by_drain
    # then every lead's score is the fold of all its events under v2, every event was scored once,
    assert_final_state(version)
    assert not ScoreChange.objects.filter(event_type=ScoreChange.DECAY).exists()  # nothing decays: no correction
    assert_monotonic(samples)
    # and each lead nothing was posted to has one RESCORE row exactly when v2 changed its score.
    rescored = set(ScoreChange.objects.filter(event_type=ScoreChange.RESCORE).values_list("lead__email", flat=True))
    for lead in Lead.objects.filter(email__in=untouched):
        assert (lead.email in rescored) == (lead.current_score != before[lead.id]), lead.email


# --- c. a newer publish supersedes a running job ---------------------------------------------


def test_a_newer_publish_supersedes_the_running_rescore(settings, publish):
    # Given 30 leads under v1, v2 published and its rescore one batch in,
    seed(30)
    change_draft()
    v2 = publish()
    settings.TARGETGRID_RESCORE_BATCH = 5
    job = rescore_job_start(version=v2, send=False)
    published = []

    def after_batch(payload):
        if not published:
            # when v3 is published meanwhile (its own rescore runs to completion here, inline),
            change_draft_again()
            published.append(ruleset_publish(actor="ops").number)

    job = rescore_job_run(job_id=job.pk, on_progress=after_batch)
    # then the v2 job stops as superseded after its first batch, the v3 job completes,
    assert job.status == RescoreStatus.SUPERSEDED and job.done == 5
    newer = RescoreJob.objects.get(version=published[0])
    assert newer.status == RescoreStatus.COMPLETED and newer.done == 30
    # and every lead ends under v3 (the leads v2 had rescored are rescored again, once each).
    assert_final_state(published[0])
    assert ScoreChange.objects.filter(event_type=ScoreChange.RESCORE, rule_version=v2).count() <= 5


def test_a_decay_refresh_reaching_an_outdated_lead_first_writes_its_rescore_row(publish):
    # Given a lead under v1 with decaying page views, and v2 published (no job yet),
    from scoring.services import leads_decay_refresh

    rule_save(rule=ScoringRule.objects.get(event_type="PAGE_VIEW"), half_life_days=30)
    publish()
    days_ago = int((timezone.now() - T0).total_seconds() // 60) - 2 * 1440
    event_ingest(items=[event_payload("pv-1", minutes=days_ago, metadata={"url": "/pricing"}),
                        event_payload("fs-1", event_type="FORM_SUBMIT", minutes=days_ago)], source="test")
    lead = Lead.objects.get()
    assert lead.decaying
    change_draft()
    version = publish()
    # when the decay refresh re-evaluates it before the rescore job does,
    leads_decay_refresh()
    # then its change is the one RESCORE row of v2 (not a DECAY row), and it is under v2.
    lead.refresh_from_db()
    rows = list(ScoreChange.objects.filter(lead=lead, event_id__isnull=True).values_list("event_type", "rule_version"))
    assert rows == [(ScoreChange.RESCORE, version)]
    assert_final_state(version)


# --- d. manage.py rescore --------------------------------------------------------------------


def test_the_command_rescores_every_lead_and_prints_its_progress(publish):
    seed(12)
    change_draft()
    version = publish()
    out = StringIO()
    call_command("rescore", "--no-input", stdout=out)
    text = out.getvalue()
    assert f"Rescoring every lead under rules v{version}" in text
    assert "12/12 leads" in text and "leads/s" in text
    job = RescoreJob.objects.get()
    assert job.status == RescoreStatus.COMPLETED
    assert f"Rescored under rules v{version}: 12 leads, {job.changed} changed" in text
    assert_final_state(version)


def test_the_command_rescores_one_lead(publish):
    emails = seed(5)
    change_draft()
    version = publish()
    lead = Lead.objects.get(email=emails[2])
    call_command("rescore", "--lead", str(lead.id), "--no-input", stdout=StringIO())
    lead.refresh_from_db()
    assert lead.rule_version == version
    assert lead.current_score == independent_score(lead, version)
    assert set(Lead.objects.exclude(pk=lead.pk).values_list("rule_version", flat=True)) == {1}


def test_the_command_takes_over_a_job_that_stopped_moving(publish):
    # Given a whole-set job to the current version that a dead process left half done,
    seed(10)
    change_draft()
    version = publish()
    job = rescore_job_start(version=version, send=False)
    RescoreJob.objects.filter(pk=job.pk).update(status=RescoreStatus.RUNNING)
    # when the command runs, then it follows that job (no second one) and runs it once it sees no progress.
    out = StringIO()
    call_command("rescore", "--no-input", "--stall-seconds", "0.2", "--poll", "0.05", stdout=out)
    assert "already running" in out.getvalue() and "running it here" in out.getvalue()
    assert list(RescoreJob.objects.values_list("pk", "status")) == [(job.pk, RescoreStatus.COMPLETED)]
    assert_final_state(version)


def test_the_command_refuses_what_it_cannot_do(publish):
    seed(1)
    with pytest.raises(CommandError, match="not the current version"):
        call_command("rescore", "--no-input", "--rules-version", "7", stdout=StringIO())
    with pytest.raises(CommandError, match="no lead"):
        call_command("rescore", "--no-input", "--lead", "00000000-0000-0000-0000-000000000000", stdout=StringIO())
    with pytest.raises(CommandError, match="not a lead id"):
        call_command("rescore", "--no-input", "--lead", "nope", stdout=StringIO())
    assert not RescoreJob.objects.exists()


def test_the_command_fails_when_its_job_is_superseded(publish, settings):
    seed(10)
    change_draft()
    publish()
    settings.TARGETGRID_RESCORE_BATCH = 2

    real_run = rescore_job_run

    def run_then_publish(*, job_id, on_progress=None):
        def progress(payload):
            on_progress(payload)
            if payload["done"] == 2 and payload["status"] == RescoreStatus.RUNNING:
                change_draft_again()
                publish_v3()

        return real_run(job_id=job_id, on_progress=progress)

    def publish_v3():
        with mock.patch("config.transport.publish"):  # v3's own rescore stays queued
            ruleset_publish(actor="ops")

    with mock.patch("scoring.management.commands.rescore.rescore_job_run", run_then_publish):
        with pytest.raises(CommandError, match="superseded"):
            call_command("rescore", "--no-input", stdout=StringIO())


def test_a_failing_batch_marks_the_job_failed_with_its_reason(publish):
    seed(3)
    change_draft()
    version = publish()
    job = rescore_job_start(version=version, send=False)
    with mock.patch("scoring.rescoring._rescore_locked", side_effect=ValueError("bad rule")):
        job = rescore_job_run(job_id=job.pk)
    assert job.status == RescoreStatus.FAILED and "ValueError: bad rule" in job.error
    assert rescore_jobs_resume(older_than_seconds=0) == 0  # a failed job is not resent forever
