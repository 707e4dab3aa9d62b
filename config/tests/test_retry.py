"""A transaction chosen as a deadlock victim is retried; anything else is raised at once."""

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError

from config.retry import is_transient, run_with_retries


def test_deadlock_is_retried_until_it_succeeds():
    calls = []
    for attempt in run_with_retries(attempts=4):
        with attempt:
            calls.append(1)
            if len(calls) < 3:
                raise OperationalError(1213, "Deadlock found when trying to get lock")
    assert len(calls) == 3


def test_gives_up_after_the_last_attempt():
    with pytest.raises(OperationalError):
        for attempt in run_with_retries(attempts=2):
            with attempt:
                raise OperationalError(1205, "Lock wait timeout exceeded")


def test_other_errors_are_not_retried():
    calls = []
    with pytest.raises(OperationalError):
        for attempt in run_with_retries(attempts=5):
            with attempt:
                calls.append(1)
                raise OperationalError(2006, "MySQL server has gone away")
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error, transient",
    [
        (OperationalError(2006, "MySQL server has gone away"), True),
        (OperationalError(2013, "Lost connection to server during query"), True),
        (OperationalError(1213, "Deadlock found when trying to get lock"), True),
        (OperationalError(1205, "Lock wait timeout exceeded"), True),
        (InterfaceError(0, ""), True),
        (OperationalError("database is locked"), True),
        (OperationalError("server closed the connection unexpectedly"), True),  # psycopg
        # mysqlclient raises these data problems as OperationalError: they belong to a row
        (OperationalError(1366, "Incorrect string value"), False),
        (OperationalError(4025, "CONSTRAINT `event.metadata` failed"), False),
        (IntegrityError(1062, "Duplicate entry"), False),
        (ValueError("bad"), False),
    ],
)
def test_transient_means_the_database_or_connection_not_the_rows(error, transient):
    assert is_transient(error) is transient


def test_a_sqlite_error_other_than_locked_is_not_transient():
    import sqlite3

    try:
        try:
            raise sqlite3.OperationalError("no such column: x")
        except sqlite3.OperationalError as exc:
            raise OperationalError(*exc.args) from exc
    except OperationalError as exc:
        assert not is_transient(exc)
