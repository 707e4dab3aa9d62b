"""The Celery application (config/transport.py is the only module that publishes through it)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("targetgrid")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The options of every task that does work recorded in a database row: delivered at least once
# (acked after it ran, re-queued if the worker dies), no result stored, and bounded retries with
# back-off when the database chose it as a deadlock victim or went away for a moment
# (config.transport.task(..., reliable=True) adds autoretry_for=OperationalError).
RELIABLE_TASK = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 8,
}
