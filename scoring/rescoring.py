"""Publishing a rule set and rescoring every lead under it, in the background, resumably.

``RescoreJob`` is the source of truth: its cursor (the last lead pk done) and counters are
committed in the same transaction as the batch they describe, so a crashed job resumes exactly
where it stopped and its progress only grows. The queue message is only a wake-up; the periodic
``scoring.rescore_resume`` re-sends jobs that stopped moving.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import transport
from config.retry import run_with_retries
from leads.models import Lead

from .models import RescoreJob, RescoreStatus, RuleSetVersion, ScoringSettings
from .rulesets import current_version_number, draft_snapshot, snapshot_diff, version_snapshot
from .services import _rescore_locked

logger = logging.getLogger(__name__)


class NothingToPublish(Exception):
    """The draft equals the current version."""


def ruleset_publish(*, actor: str = "", note: str = "", allow_unchanged: bool = False) -> RuleSetVersion:
    """Publish the draft as the next immutable version and start rescoring every lead under it.

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
        rescore_job_start(version=version.number, actor=actor)
    logger.info("rules v%d published by %s (%d changes)", version.number, actor or "-", len(changes))
    return version


def rescore_job_start(*, version: int, actor: str = "", lead_id=None) -> RescoreJob:
    """Create a rescore job to ``version`` (supersedes older unfinished ones) and send it after commit."""
    with transaction.atomic():
        RescoreJob.objects.filter(
            status__in=[RescoreStatus.QUEUED, RescoreStatus.RUNNING], version__lt=version, lead_id__isnull=True
        ).update(status=RescoreStatus.SUPERSEDED, finished_at=timezone.now())
        total = 1 if lead_id is not None else Lead.objects.count()
        job = RescoreJob.objects.create(version=version, total=total, created_by=actor, lead_id=lead_id)
        transport.publish_on_commit("scoring.rescore_run", job.pk)
    return job


def rescore_job_run(*, job_id: int) -> RescoreJob | None:
    """Run (or resume) a rescore job: leads in pk order after the cursor, ``TARGETGRID_RESCORE_BATCH``
    per transaction, each batch and the job's progress committed together."""
    job = RescoreJob.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return job
    RescoreJob.objects.filter(pk=job.pk, status=RescoreStatus.QUEUED).update(
        status=RescoreStatus.RUNNING, started_at=timezone.now()
    )
    batch_size = settings.TARGETGRID_RESCORE_BATCH
    while True:
        finished = False
        for attempt in run_with_retries():
            with attempt, transaction.atomic():
                job = RescoreJob.objects.select_for_update().get(pk=job_id)
                if job.finished:
                    return job
                if current_version_number() > job.version:
                    job.status, job.finished_at = RescoreStatus.SUPERSEDED, timezone.now()
                    job.save(update_fields=["status", "finished_at", "updated_at"])
                    return job
                query = Lead.objects.order_by("pk")
                if job.lead_id is not None:
                    query = query.filter(pk=job.lead_id)
                if job.cursor:
                    query = query.filter(pk__gt=uuid.UUID(job.cursor))
                ids = list(query.values_list("pk", flat=True)[:batch_size])
                changes = []
                if ids:
                    changed, changes = _rescore_locked(ids, actor=job.created_by, only_outdated=job.lead_id is None)
                    job.done += len(ids)
                    job.changed += changed
                    job.cursor = str(ids[-1])
                    job.total = max(job.total, job.done)
                if len(ids) < batch_size or job.lead_id is not None:
                    job.status, job.finished_at = RescoreStatus.COMPLETED, timezone.now()
                    job.total = job.done
                    finished = True
                job.save(update_fields=["done", "changed", "cursor", "total", "status", "finished_at", "updated_at"])
                if changes:
                    transport.notify_on_commit("score.changes", changes)
                transport.notify_on_commit("rescore.progress", rescore_job_payload(job))
        if finished:
            logger.info("rescore to v%d done: %d leads, %d changed", job.version, job.done, job.changed)
            return job


def rescore_job_payload(job: RescoreJob) -> dict:
    return {
        "id": job.pk,
        "version": job.version,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "changed": job.changed,
        "percent": round(100 * job.done / job.total, 1) if job.total else 100.0,
    }


def rescore_jobs_resume(*, older_than_seconds: int = 60) -> int:
    """Re-send unfinished jobs that have not moved for a while (a killed worker)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(
        RescoreJob.objects.filter(
            status__in=[RescoreStatus.QUEUED, RescoreStatus.RUNNING], updated_at__lte=cutoff
        ).values_list("pk", flat=True)[:20]
    )
    for job_id in ids:
        logger.info("rescore job %s stalled; resuming after its cursor", job_id)
        transport.publish("scoring.rescore_run", job_id)
    return len(ids)
