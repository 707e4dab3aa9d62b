"""Celery tasks of the events app: thin, named, idempotent."""

from celery import shared_task

from config.celery import reliable_task

from .imports import import_job_run, imports_resume_stalled


@reliable_task("events.import_file")
def import_file(job_id: int) -> None:
    # Resumes from the job's last committed chunk; a finished job is a no-op.
    import_job_run(job_id=job_id)


@shared_task(name="events.imports_resume_stalled", ignore_result=True, acks_late=True)
def resume_stalled_imports() -> int:
    return imports_resume_stalled()
