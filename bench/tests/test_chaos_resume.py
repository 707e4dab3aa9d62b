"""bench/chaos.py's "scoring resumed" figure, from the samples of the database it takes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos import Sample, resumed_after  # noqa: E402


def test_resumed_is_the_first_sample_after_the_fault_with_more_processed_events():
    samples = [Sample(1.0, {"processed": 5, "pending": 3}), Sample(2.0, {"processed": 5, "pending": 3}),
               Sample(2.5, None),  # the database did not answer
               Sample(3.0, {"processed": 8, "pending": 0})]

    assert resumed_after(samples, end=1.5) == 1.5


def test_work_pending_and_nothing_processed_is_never():
    samples = [Sample(2.0, {"processed": 5, "pending": 2}), Sample(9.0, {"processed": 5, "pending": 2})]

    assert resumed_after(samples, end=1.0) is None


def test_nothing_pending_after_the_fault_is_idle_not_a_stall():
    samples = [Sample(2.0, {"processed": 5}), Sample(9.0, {"processed": 5, "pending": 0})]

    assert resumed_after(samples, end=1.0) == "idle"
