"""Celery tasks of the events app: thin, named, idempotent."""

from celery import shared_task
from django.db import OperationalError

from .imports import import_job_run, imports_resume_stalled


@shared_task(
    name="events.import_file",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def import_file(job_id: int) -> None:
    # Resumes from the job's last committed chunk; a finished job is a no-op.
    import_job_run(job_id=job_id)


@shared_task(name="events.imports_resume_stalled", ignore_result=True, acks_late=True)
def resume_stalled_imports() -> int:
    return imports_resume_stalled()
