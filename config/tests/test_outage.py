"""An outage is logged once per window with its traceback; the rest are counted, not lost."""

import logging

from config.outage import OutageLog


def test_an_outage_is_logged_once_per_window_and_the_rest_are_counted(caplog, monkeypatch):
    # given a clock we control and an outage seen by many calls
    now = [1000.0]
    monkeypatch.setattr("config.outage.time.monotonic", lambda: now[0])
    log = OutageLog(logging.getLogger("test.outage"), seconds=30)
    error = ConnectionError("refused")

    with caplog.at_level(logging.WARNING, logger="test.outage"):
        # when 10 calls fail within one window, then one more after it
        logged = [log.warning("could not reach %s", "redis", exc=error) for _ in range(10)]
        now[0] += 31
        logged.append(log.warning("could not reach %s", "redis", exc=error))

    # then the first and the one after the window are logged (with the traceback), 9 are counted
    assert logged == [True] + [False] * 9 + [True]
    records = [r for r in caplog.records if r.name == "test.outage"]
    assert len(records) == 2
    assert records[0].exc_info[1] is error
    assert "(9 more like it in the last window were not logged)" in records[1].getMessage()
