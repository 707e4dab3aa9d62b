"""Retrying a whole transaction when the database chose it as a deadlock victim.

MySQL/MariaDB answer "try restarting transaction" (1213 deadlock, 1205 lock wait timeout); SQLite
says "database is locked". Only idempotent units of work are retried.
"""

from __future__ import annotations

import logging
import random
import time

from django.db import OperationalError

logger = logging.getLogger(__name__)

RETRYABLE_MYSQL_CODES = {1205, 1213}


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, OperationalError):
        return False
    code = exc.args[0] if exc.args else None
    return code in RETRYABLE_MYSQL_CODES or "database is locked" in str(exc)


class _Attempt:
    def __init__(self, number: int, last: bool):
        self.number, self.last, self.succeeded = number, last, False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            self.succeeded = True
            return False
        if self.last or not is_retryable(exc):
            return False
        logger.info("retrying after %s (attempt %d)", exc, self.number)
        time.sleep(random.uniform(0.01, 0.05) * 2**self.number)
        return True  # swallow and go again


def run_with_retries(attempts: int = 5):
    """``for attempt in run_with_retries(): with attempt: <one transaction>``"""
    for number in range(1, attempts + 1):
        attempt = _Attempt(number, last=number == attempts)
        yield attempt
        if attempt.succeeded:
            return
