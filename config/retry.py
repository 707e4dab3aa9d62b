"""Retrying a whole transaction when the database chose it as a deadlock victim.

MySQL/MariaDB answer "try restarting transaction" (1213 deadlock, 1205 lock wait timeout); SQLite
says "database is locked". Only idempotent units of work are retried.
"""

from __future__ import annotations

import logging
import random
import time

from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

RETRYABLE_MYSQL_CODES = {1205, 1213}
# The server or the connection, not the data: too many connections, shutdown in progress, lock wait
# timeout, deadlock, connection killed, can't connect, gone away, lost during query, lost (read),
# disconnected for inactivity. mysqlclient raises most *data* problems (1366 incorrect string
# value, 1292, 4025 CHECK constraint) as OperationalError too, so the code decides, not the class.
TRANSIENT_MYSQL_CODES = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


class RetryTransaction(Exception):
    """Raised by a unit of work that found, under its locks, state newer than the snapshot it read
    before them (MariaDB's REPEATABLE READ): run the whole transaction again, with a new snapshot."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if not isinstance(exc, OperationalError):
        return False
    code = exc.args[0] if exc.args else None
    return code in RETRYABLE_MYSQL_CODES or "database is locked" in str(exc)


def is_transient(exc: BaseException) -> bool:
    """A failure of the database or the connection, not of the rows at hand: the unit of work
    must be retried as a whole later (a Celery retry, the sweep), never blamed on one of its rows.

    InterfaceError (the connection is closed); a MySQL/MariaDB OperationalError with a server or
    connection code; SQLite's "database is locked"; any PostgreSQL OperationalError (psycopg raises
    data problems as DataError/IntegrityError, and OperationalError for connection loss, deadlock,
    serialization failure, lock timeout, shutdown).
    """
    if isinstance(exc, (InterfaceError, RetryTransaction)):
        return True
    if not isinstance(exc, OperationalError):
        return False
    code = exc.args[0] if exc.args else None
    if isinstance(code, int):
        return code in TRANSIENT_MYSQL_CODES
    if "database is locked" in str(exc) or "database table is locked" in str(exc):
        return True
    cause = type(exc.__cause__)
    return not (cause.__module__ == "sqlite3" or cause.__module__.startswith("_sqlite3"))


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
