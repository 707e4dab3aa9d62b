"""A transaction chosen as a deadlock victim is retried; anything else is raised at once."""

import pytest
from django.db import OperationalError

from config.retry import run_with_retries


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
