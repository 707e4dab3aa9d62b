"""Logging a dependency outage (Redis, the broker, the database) without flooding the log.

During an outage every request or commit hits the same error: the first one in each window is
logged with its traceback, the rest are counted and the count is reported with the next entry.
One instance per place that can see an outage; thread-safe enough for counting (a lost increment
only changes a number in the log).
"""

from __future__ import annotations

import logging
import time


class OutageLog:
    def __init__(self, logger: logging.Logger, *, seconds: float = 30.0) -> None:
        self.logger = logger
        self.seconds = seconds
        self._last = float("-inf")
        self._suppressed = 0

    def reset(self) -> None:
        self._last, self._suppressed = float("-inf"), 0

    def warning(self, message: str, *args, exc: BaseException | None = None, level: int = logging.WARNING) -> bool:
        """Log ``message % args`` (with ``exc``'s traceback) unless one was logged less than
        ``seconds`` ago; returns True if it was logged."""
        now = time.monotonic()
        if now - self._last < self.seconds:
            self._suppressed += 1
            return False
        suppressed, self._last, self._suppressed = self._suppressed, now, 0
        if suppressed:
            message += f" ({suppressed} more like it in the last window were not logged)"
        self.logger.log(level, message, *args, exc_info=exc)
        return True
