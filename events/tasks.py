"""Celery tasks of the events app: thin, named, idempotent."""

from config.transport import task

from .imports import import_job_run, imports_resume_stalled


@task("events.import_file", reliable=True, long_running=True)
def import_file(job_id: int) -> None:
    # Resumes from the job's last committed chunk; a finished job is a no-op.
    import_job_run(job_id=job_id)


@task("events.imports_resume_stalled", acks_late=True)
def resume_stalled_imports(older_than_seconds: int = 300) -> int:
    return imports_resume_stalled(older_than_seconds=older_than_seconds)
