"""The scoring engine: a pure fold over a lead's events in event-time order.

No Django, no clock, no I/O. The stored score of a lead always equals ``fold`` over its processed
events sorted by ``(timestamp, event_id)``; a :class:`LeadTimeline` applies new events to the end
of that fold (the common case) or, for a late event, re-folds from the event's position using the
``score_after`` checkpoint stored with each event.

The fold state is explicit (:class:`FoldState`) so that later rules (metadata conditions, frequency
caps, decay) can extend it without changing the callers.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, order=True)
class EventKey:
    """The position of an event in its lead's fold."""

    timestamp: datetime
    event_id: str


@dataclass(frozen=True)
class ScoredEvent:
    key: EventKey
    event_type: str
    points: int


@dataclass(frozen=True)
class FoldState:
    score: int = 0
    last_key: EventKey | None = None


class LatePolicy(enum.Enum):
    REFOLD = "refold"
    DROP = "drop"


def clamp(value: int, max_score: int) -> int:
    return max(0, min(max_score, value))


def step(state: FoldState, event: ScoredEvent, *, max_score: int) -> FoldState:
    """One step of the fold: add the event's points, clamp to ``[0, max_score]``."""
    return FoldState(score=clamp(state.score + event.points, max_score), last_key=event.key)


def fold(events, *, max_score: int, initial: FoldState = FoldState()) -> FoldState:
    """Fold events in event-time order (the definition every stored score must equal)."""
    state = initial
    seen: set[str] = set()
    for event in sorted(events, key=lambda e: e.key):
        if event.key.event_id in seen:
            continue
        seen.add(event.key.event_id)
        state = step(state, event, max_score=max_score)
    return state


@dataclass
class TailEntry:
    event: ScoredEvent
    score_after: int
    loaded_score_after: int | None = None  # as stored before this batch; None for new events

    @property
    def changed(self) -> bool:
        return self.loaded_score_after != self.score_after


@dataclass(frozen=True)
class Step:
    """The effect of applying one event to a lead."""

    event: ScoredEvent
    previous_score: int
    new_score: int
    late: bool = False
    skipped: bool = False
    refolded: int = 0  # how many later events were re-folded after a late event
    reason: str = ""

    @property
    def delta(self) -> int:
        return self.new_score - self.previous_score


class LateEventBeforeCheckpoint(ValueError):
    """The timeline was not loaded far enough back for this late event."""


@dataclass
class LeadTimeline:
    """The end of one lead's fold: ``base`` (state before ``tail``) plus the events in ``tail``.

    For in-order events ``tail`` starts empty and ``base`` is the lead's stored state. To apply a
    late event the caller loads ``base`` = the state right before the event's position (the
    ``score_after`` of its predecessor) and ``tail`` = every processed event after it.
    """

    max_score: int
    base: FoldState = field(default_factory=FoldState)
    tail: list[TailEntry] = field(default_factory=list)
    late_policy: LatePolicy = LatePolicy.REFOLD

    def __post_init__(self) -> None:
        self.tail.sort(key=lambda entry: entry.event.key)
        self._ids = {entry.event.key.event_id for entry in self.tail}
        if self.base.last_key is not None:
            self._ids.add(self.base.last_key.event_id)

    @property
    def state(self) -> FoldState:
        if self.tail:
            last = self.tail[-1]
            return FoldState(score=last.score_after, last_key=last.event.key)
        return self.base

    def apply(self, event: ScoredEvent) -> Step | None:
        """Apply one event; ``None`` if it is already part of the fold (a duplicate)."""
        if event.key.event_id in self._ids:
            return None
        current = self.state
        if current.last_key is None or event.key > current.last_key:
            new = step(current, event, max_score=self.max_score)
            self.tail.append(TailEntry(event=event, score_after=new.score))
            self._ids.add(event.key.event_id)
            return Step(event, current.score, new.score, reason=self._reason(event, current.score, new.score))
        if self.late_policy is LatePolicy.DROP:
            return Step(
                event,
                current.score,
                current.score,
                late=True,
                skipped=True,
                reason=f"late {event.event_type} dropped (older than the last processed event)",
            )
        if self.base.last_key is not None and event.key < self.base.last_key:
            raise LateEventBeforeCheckpoint(event.key)
        tail, max_score = self.tail, self.max_score
        position = bisect.bisect_left(tail, event.key, key=lambda entry: entry.event.key)
        tail.insert(position, TailEntry(event=event, score_after=0))
        self._ids.add(event.key.event_id)
        score = tail[position - 1].score_after if position else self.base.score
        # Re-fold what follows. Once a later event's new score equals its previous one, every event
        # after it folds exactly as before (same state, same points): stop there. A late event
        # absorbed by the cap or the floor (a hot lead at 1,000) costs a few steps, not the tail.
        for index in range(position, len(tail)):
            entry = tail[index]
            score += entry.event.points
            if score > max_score:
                score = max_score
            elif score < 0:
                score = 0
            if index > position and entry.score_after == score:
                break
            entry.score_after = score
        refolded = len(tail) - position - 1
        new_score = self.tail[-1].score_after
        return Step(
            event,
            current.score,
            new_score,
            late=True,
            refolded=refolded,
            reason=self._reason(event, current.score, new_score, late=True, refolded=refolded),
        )

    def changed_entries(self) -> list[TailEntry]:
        return [entry for entry in self.tail if entry.changed]

    def _reason(self, event: ScoredEvent, previous: int, new: int, *, late: bool = False, refolded: int = 0) -> str:
        text = f"{event.event_type} {event.points:+d}"
        if late:
            text = f"late {text}: re-folded from its event time ({refolded} later event{'s' if refolded != 1 else ''})"
        unclamped = previous + event.points
        if not late and new != unclamped:
            text += f" (capped at {self.max_score})" if unclamped > new else " (floored at 0)"
        return text
