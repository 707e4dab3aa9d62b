"""Publishing a rule set and rescoring every lead under it, in the background, resumably.

``RescoreJob`` is the source of truth: its cursor (the last lead pk done) and counters are
committed in the same transaction as the batch they describe, so a crashed job resumes exactly
where it stopped and its progress only grows. The queue message is only a wake-up; the periodic
``scoring.rescore_resume`` re-sends jobs that stopped moving.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import transport
from config.retry import is_transient, run_with_retries
from leads.models import Lead

from .models import RescoreJob, RescoreKind, RescoreStatus, RuleSetVersion, ScoringSettings, StageSettings
from .rulesets import current_version_number, draft_snapshot, snapshot_diff, version_snapshot
from .services import _rescore_locked, leads_restage

logger = logging.getLogger(__name__)


class NothingToPublish(Exception):
    """The draft equals the current version."""


def ruleset_publish(*, actor: str = "", note: str = "", allow_unchanged: bool = False,
                    send: bool = True) -> RuleSetVersion:
    """Publish the draft as the next immutable version and start rescoring every lead under it
    (``send=False``: the job is created but not sent; whoever runs it calls ``rescore_job_run``, and
    the periodic resume sends it if nobody does).

    Serialised by locking the draft's settings row: two operators publishing at once get versions
    n and n+1, each a snapshot of the draft at its own moment."""
    with transaction.atomic(durable=True):
        ScoringSettings.objects.get_or_create(pk=1)
        ScoringSettings.objects.select_for_update().get(pk=1)
        previous = RuleSetVersion.objects.order_by("-number").first()
        snapshot = draft_snapshot()
        changes = snapshot_diff(version_snapshot(previous), snapshot)
        if previous is not None and not changes and not allow_unchanged:
            raise NothingToPublish(f"the draft equals rules v{previous.number}")
        version = RuleSetVersion.objects.create(
            number=(previous.number if previous else 0) + 1,
            match_mode=snapshot["match_mode"],
            rules=snapshot["rules"],
            fit_rules=snapshot["fit_rules"],
            grades=snapshot["grades"],
            changes=changes,
            note=note,
            published_by=actor,
            published_at=timezone.now(),
        )
        rescore_job_start(version=version.number, actor=actor, send=send)
    logger.info("rules v%d published by %s (%d changes)", version.number, actor or "-", len(changes))
    return version


class RescoreRefused(Exception):
    """A rescore cannot start as asked (nothing published, not the current version, no such lead)."""


UNFINISHED = (RescoreStatus.QUEUED, RescoreStatus.RUNNING)


def rescore_job_start(*, version: int, actor: str = "", lead_id=None, send: bool = True) -> RescoreJob:
    """Create a rescore job to ``version`` (supersedes older unfinished ones) and, unless ``send`` is
    False (the caller runs it in the foreground), send it after commit."""
    with transaction.atomic():
        now = timezone.now()
        older = list(
            RescoreJob.objects.select_for_update()
            .filter(kind=RescoreKind.RESCORE, status__in=UNFINISHED, version__lt=version, lead_id__isnull=True)
            .order_by("pk")
        )
        for job in older:
            job.status, job.finished_at = RescoreStatus.SUPERSEDED, now
            job.save(update_fields=["status", "finished_at", "updated_at"])
            transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
        total = 1 if lead_id is not None else Lead.objects.count()
        job = RescoreJob.objects.create(version=version, total=total, created_by=actor, lead_id=lead_id)
        if send:
            transport.publish_on_commit("scoring.rescore_run", job.pk)
    return job


def rescore_job_ensure(*, actor: str = "", lead_id=None, version: int | None = None) -> tuple[RescoreJob, bool]:
    """The job a caller that runs rescoring in the foreground (``manage.py rescore``) should run or
    follow: for every lead, the unfinished job to the current version if there is one, else a new
    one; for one lead, a new job. Nothing is sent: the caller runs it (if it dies, the periodic
    resume sends it). Serialised with publishing by the draft settings' lock.

    ``version``: refuse unless it is the current version (rescoring always goes to the current one).
    Returns ``(job, created)``; raises :class:`RescoreRefused`."""
    with transaction.atomic(durable=True):
        ScoringSettings.objects.get_or_create(pk=1)
        ScoringSettings.objects.select_for_update().get(pk=1)
        current = current_version_number()
        if current == 0:
            raise RescoreRefused("no rule set is published yet: publish the draft first")
        if version is not None and version != current:
            raise RescoreRefused(
                f"rules v{version} is not the current version (v{current}); a rescore always goes to the current "
                "version (publish again to bring back older rules)"
            )
        if lead_id is not None:
            if not Lead.objects.filter(pk=lead_id).exists():
                raise RescoreRefused(f"no lead {lead_id}")
            return rescore_job_start(version=current, actor=actor, lead_id=lead_id, send=False), True
        existing = (
            RescoreJob.objects.filter(kind=RescoreKind.RESCORE, version=current, lead_id__isnull=True,
                                      status__in=UNFINISHED).order_by("pk").first()
        )
        if existing is not None:
            return existing, False
        return rescore_job_start(version=current, actor=actor, send=False), True


def rescore_job_run(*, job_id: int, on_progress: Callable[[dict], None] | None = None) -> RescoreJob | None:
    """Run (or resume) a rescore job: leads in pk order after the cursor, ``TARGETGRID_RESCORE_BATCH``
    per transaction, each batch and the job's progress committed together (so ``done`` only grows
    and a resumed job never rescores a lead twice). Safe to run twice at once: every batch starts by
    locking the job row and reading its cursor, so two runners take turns, never the same leads.

    ``on_progress(payload)`` is called after each committed batch (a progress bar). Between batches
    the job sleeps ``TARGETGRID_RESCORE_PAUSE_MS`` (a throttle: live scoring gets the database).
    A non-transient error marks the job ``failed`` with its reason (logged) and returns it; a
    transient one (the database went away) propagates and leaves the job running, for the task's
    retry or the periodic resume."""
    job = RescoreJob.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return job
    RescoreJob.objects.filter(pk=job.pk, status=RescoreStatus.QUEUED).update(
        status=RescoreStatus.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    batch_size = max(1, settings.TARGETGRID_RESCORE_BATCH)
    pause = settings.TARGETGRID_RESCORE_PAUSE_MS / 1000
    while True:
        try:
            job = _rescore_batch(job_id, batch_size)
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.exception("rescore job %s failed", job_id)
            return _rescore_job_fail(job_id, exc)
        if on_progress is not None:
            on_progress(rescore_job_payload(job))
        if job.finished:
            if job.status == RescoreStatus.COMPLETED:
                logger.info("%s to v%d done: %d leads, %d changed", job.kind, job.version, job.done, job.changed)
            return job
        if pause > 0:
            time.sleep(pause)


def _rescore_batch(job_id: int, batch_size: int) -> RescoreJob:
    """One batch in one transaction (retried as a whole on a deadlock): the job row locked first,
    then its next leads; the job is returned as committed."""
    for attempt in run_with_retries():
        with attempt, transaction.atomic():
            job = RescoreJob.objects.select_for_update().get(pk=job_id)
            if job.finished:
                continue
            if job.kind == RescoreKind.RESTAGE:
                _restage_batch(job, batch_size)
                continue
            if current_version_number() > job.version:
                job.status, job.finished_at = RescoreStatus.SUPERSEDED, timezone.now()
                job.save(update_fields=["status", "finished_at", "updated_at"])
                transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
                continue
            if job.status == RescoreStatus.QUEUED:
                job.status, job.started_at = RescoreStatus.RUNNING, timezone.now()
            query = Lead.objects.order_by("pk")
            if job.lead_id is not None:
                query = query.filter(pk=job.lead_id)
            if job.cursor:
                query = query.filter(pk__gt=uuid.UUID(job.cursor))
            ids = list(query.values_list("pk", flat=True)[:batch_size])
            if ids:
                changed, changes = _rescore_locked(ids, actor=job.created_by, only_outdated=job.lead_id is None)
                job.done += len(ids)
                job.changed += changed
                job.cursor = str(ids[-1])
                job.total = max(job.total, job.done)
                if changes:
                    transport.notify_on_commit("score.changes", changes)
            if len(ids) < batch_size or job.lead_id is not None:
                job.status, job.finished_at = RescoreStatus.COMPLETED, timezone.now()
                job.total = job.done
            job.save(update_fields=["done", "changed", "cursor", "total", "status", "started_at", "finished_at",
                                    "updated_at"])
            transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
    return job


def stage_version_current() -> int:
    """The version of the stage settings (0: none yet): one primary-key read, not cached."""
    return StageSettings.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def _restage_batch(job: RescoreJob, batch_size: int) -> None:
    """One batch of a restage job, inside ``_rescore_batch``'s transaction with the job row locked:
    the next leads after the cursor (pk order) still staged under older settings than the job's
    (``lead_stage_version_idx``), decided again by ``services.leads_restage``."""
    if stage_version_current() > job.version:
        job.status, job.finished_at = RescoreStatus.SUPERSEDED, timezone.now()
        job.save(update_fields=["status", "finished_at", "updated_at"])
        transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
        return
    if job.status == RescoreStatus.QUEUED:
        job.status, job.started_at = RescoreStatus.RUNNING, timezone.now()
    query = Lead.objects.filter(stage_version__lt=job.version).order_by("pk")
    if job.cursor:
        query = query.filter(pk__gt=uuid.UUID(job.cursor))
    ids = list(query.values_list("pk", flat=True)[:batch_size])
    if ids:
        job.changed += leads_restage(lead_ids=ids)
        job.done += len(ids)
        job.cursor = str(ids[-1])
        job.total = max(job.total, job.done)
    if len(ids) < batch_size:
        job.status, job.finished_at = RescoreStatus.COMPLETED, timezone.now()
        job.total = job.done
    job.save(update_fields=["done", "changed", "cursor", "total", "status", "started_at", "finished_at", "updated_at"])
    transport.notify_on_commit("rescore.progress", rescore_job_payload(job))


def restage_job_start(*, version: int, actor: str = "", send: bool = True) -> RescoreJob:
    """Create a restage job to stage-settings ``version`` (supersedes older unfinished restage jobs)
    and, unless ``send`` is False, send it after commit (``scoring.rescore_run`` runs both kinds)."""
    with transaction.atomic():
        now = timezone.now()
        older = list(
            RescoreJob.objects.select_for_update()
            .filter(kind=RescoreKind.RESTAGE, status__in=UNFINISHED, version__lt=version)
            .order_by("pk")
        )
        for job in older:
            job.status, job.finished_at = RescoreStatus.SUPERSEDED, now
            job.save(update_fields=["status", "finished_at", "updated_at"])
            transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
        total = Lead.objects.filter(stage_version__lt=version).count()
        job = RescoreJob.objects.create(kind=RescoreKind.RESTAGE, version=version, total=total, created_by=actor)
        if send:
            transport.publish_on_commit("scoring.rescore_run", job.pk)
    return job


def restage_outdated_ensure(*, actor: str = "periodic") -> RescoreJob | None:
    """Start a restage job when leads staged under older stage settings remain and no unfinished
    restage job to the current version exists (a process that read the old settings staged them
    after the job passed them). Cheap: one indexed existence query (``lead_stage_version_idx``).
    Leads never staged (version 0) are left to their first scoring."""
    current = stage_version_current()
    if not current or not Lead.objects.filter(stage_version__gte=1, stage_version__lt=current).exists():
        return None
    with transaction.atomic():
        row = StageSettings.objects.select_for_update().filter(pk=1).first()
        if RescoreJob.objects.filter(kind=RescoreKind.RESTAGE, version=row.version, status__in=UNFINISHED).exists():
            return None
        logger.info("leads staged under stage settings older than v%d remain; restaging them", row.version)
        return restage_job_start(version=row.version, actor=actor)


def _rescore_job_fail(job_id: int, error: BaseException) -> RescoreJob | None:
    reason = f"{type(error).__name__}: {error}".encode("utf-8", "backslashreplace").decode("utf-8")[:2000]
    with transaction.atomic():
        job = RescoreJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.finished:
            return job
        job.status, job.error, job.finished_at = RescoreStatus.FAILED, reason, timezone.now()
        job.save(update_fields=["status", "error", "finished_at", "updated_at"])
        transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
    return job


def rescore_job_payload(job: RescoreJob) -> dict:
    return {
        "id": job.pk,
        "kind": job.kind,
        "version": job.version,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "changed": job.changed,
        "percent": round(100 * job.done / job.total, 1) if job.total else 100.0,
        "error": job.error,
    }


def rescore_jobs_resume(*, older_than_seconds: int = 60) -> int:
    """Re-send unfinished jobs that have not moved for a while (a killed worker)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(
        RescoreJob.objects.filter(
            status__in=UNFINISHED, updated_at__lte=cutoff
        ).order_by("pk").values_list("pk", flat=True)[:20]
    )
    for job_id in ids:
        logger.info("rescore job %s stalled; resuming after its cursor", job_id)
        transport.publish("scoring.rescore_run", job_id)
    restage_outdated_ensure()
    return len(ids)
