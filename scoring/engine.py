"""The scoring engine: a pure fold over a lead's events in event-time order.

No Django, no clock, no I/O. The stored score of a lead always equals ``fold`` over its processed
events sorted by ``(timestamp, event_id)``; a :class:`LeadTimeline` applies new events to the end
of that fold (the common case) or, for a late event, re-folds from the event's position using the
``score_after`` checkpoint stored with each event.

Rules (docs/scoring-model.md is the definition): a :class:`RuleSet` (one published version) holds
behaviour rules with metadata/source conditions, priorities, frequency caps and decay, fit rules on
the lead's profile, and grade thresholds. :func:`evaluate` is the whole definition — every event of a
lead, matched, capped, decayed at ``as_of`` and clamped in event-time order; :class:`LeadTimeline`
is its incremental form for rule sets without caps or decay (and for in-order events with caps).
"""

from __future__ import annotations

import bisect
import enum
import math
import re

import regex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class EventKey(NamedTuple):
    """The position of an event in its lead's fold (a tuple: built and compared in C, which matters
    on the hot path, where a frozen ordered dataclass costs several times more)."""

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


# --- Rules --------------------------------------------------------------------------------------

OPERATORS = ("equals", "not_equals", "contains", "starts_with", "regex", "in", "greater", "less", "exists")
FIT_FIELDS = ("email", "email_domain", "free_mail", "first_name", "last_name", "company", "job_title", "phone")
# The lead profile fields fit rules read (``email_domain`` and ``free_mail`` derive from ``email``).
PROFILE_FIELDS = ("email", "first_name", "last_name", "company", "job_title", "phone")


def profile_of(lead) -> dict:
    """The fit rules' view of a lead (any object with the profile attributes)."""
    return {name: getattr(lead, name) for name in PROFILE_FIELDS}
MAX_REGEX_LENGTH = 500
_MISSING = object()

# Domains of free e-mail providers (a fit rule's ``free_mail`` field).
FREE_MAIL_DOMAINS = frozenset(
    """aol.com gmail.com googlemail.com gmx.com gmx.de gmx.net hotmail.com hotmail.co.uk hotmail.fr icloud.com
    live.com mac.com mail.com mail.ru me.com msn.com outlook.com outlook.fr proton.me protonmail.com qq.com
    rediffmail.com t-online.de web.de yahoo.com yahoo.co.uk yahoo.fr yandex.com yandex.ru ymail.com zoho.com
    163.com 126.com naver.com laposte.net orange.fr free.fr libero.it""".split()
)


class RuleError(ValueError):
    """A rule or condition that cannot be evaluated (the message names the field)."""


class RegexTimeout(RuleError):
    """A regex condition ran longer than ``REGEX_TIMEOUT_SECONDS`` on one value (catastrophic
    backtracking): the event fails with this reason, visible and retryable, instead of a scoring
    worker spinning on it forever."""


# The `regex` package (a drop-in for `re`) takes a timeout; Python's `re` cannot be interrupted.
REGEX_TIMEOUT_SECONDS = 0.25
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _number(value):
    """``value`` as a number for greater/less (numbers and numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    if isinstance(value, str):
        if _INTEGER.fullmatch(value) and len(value) <= 4300:
            return int(value)  # exact, however long (a float keeps 15-17 digits)
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return None if math.isnan(number) or math.isinf(number) else number
    return None


def _same(actual, expected, fold_case: bool) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return actual == expected
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold() if fold_case else actual == expected
    return actual == expected


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object = None
    ignore_case: bool = False
    path: tuple = ()
    pattern: object = None  # a compiled `regex` pattern
    # The common cases compiled to one closure over the looked-up value (None: the generic path).
    fast: object = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Mapping, *, fields: Sequence[str] | None = None) -> Condition:
        """Validate one condition (``{"field", "op", "value", "ignore_case"}``); raises RuleError."""
        if not isinstance(data, Mapping):
            raise RuleError("a condition is an object with field, op and value")
        unknown = set(data) - {"field", "op", "value", "ignore_case"}
        if unknown:
            raise RuleError(f"unknown condition keys: {', '.join(sorted(map(str, unknown)))}")
        name, op, value = data.get("field"), data.get("op"), data.get("value")
        ignore_case = data.get("ignore_case", False)
        if not isinstance(name, str) or not name:
            raise RuleError("field: required (source, metadata.<path> or a profile field)")
        if fields is not None:
            if name not in fields:
                raise RuleError(f"field: {name!r} is not one of {', '.join(fields)}")
            path = (name,)
        elif name == "source":
            path = ("source",)
        elif name.startswith("metadata.") and all(name.split(".")[1:]):
            path = ("metadata", *name.split(".")[1:])
        else:
            raise RuleError(f"field: {name!r} must be 'source' or 'metadata.<path>' (e.g. metadata.url)")
        if op not in OPERATORS:
            raise RuleError(f"op: {op!r} is not one of {', '.join(OPERATORS)}")
        if not isinstance(ignore_case, bool):
            raise RuleError("ignore_case: must be true or false")
        pattern = None
        if op in ("contains", "starts_with") and not isinstance(value, str) and not (
            op == "contains" and isinstance(value, (int, float, bool))
        ):
            raise RuleError(f"value: {op} needs a string")
        if op == "regex":
            if not isinstance(value, str) or len(value) > MAX_REGEX_LENGTH:
                raise RuleError(f"value: regex needs a pattern of at most {MAX_REGEX_LENGTH} characters")
            try:
                pattern = regex.compile(value, regex.IGNORECASE if ignore_case else 0)
            except (regex.error, ValueError, OverflowError) as exc:
                raise RuleError(f"value: invalid regular expression ({exc})") from None
        if op == "in" and not (isinstance(value, list) and value):
            raise RuleError("value: in needs a non-empty list")
        if op in ("greater", "less") and _number(value) is None:
            raise RuleError(f"value: {op} needs a number")
        if op == "exists":
            value = True if value is None else value
            if not isinstance(value, bool):
                raise RuleError("value: exists takes true or false")
        scalar = (str, int, float)  # bool is an int
        if op in ("equals", "not_equals") and not isinstance(value, scalar):
            raise RuleError(f"value: {op} compares with a string, number or boolean")
        if op == "in" and not all(isinstance(item, scalar) for item in value):
            raise RuleError("value: in takes a list of strings, numbers or booleans")
        return cls(name, op, value, ignore_case, path, pattern, _fast_test(op, value, ignore_case))

    def as_dict(self) -> dict:
        data = {"field": self.field, "op": self.op, "value": self.value}
        if self.ignore_case:
            data["ignore_case"] = True
        return data

    def lookup(self, subject: Mapping):
        value = subject
        for part in self.path:
            if isinstance(value, dict) or isinstance(value, Mapping):
                value = value.get(part, _MISSING)
            elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):  # "²".isdigit(); int() refuses it
                value = value[int(part)]
            else:
                return _MISSING
            if value is _MISSING:
                return _MISSING
        return value

    def holds(self, subject: Mapping) -> bool:
        actual = self.lookup(subject)
        if actual is None:  # a JSON null is a missing field, for every operator
            actual = _MISSING
        if self.fast is not None:
            return self.fast(actual)
        op, expected, fold_case = self.op, self.value, self.ignore_case
        if op == "exists":
            return (actual is not _MISSING) is expected
        if actual is _MISSING:
            return op == "not_equals"
        if op == "equals":
            return _same(actual, expected, fold_case)
        if op == "not_equals":
            return not _same(actual, expected, fold_case)
        if op == "in":
            return any(_same(actual, item, fold_case) for item in expected)
        if op == "contains":
            if isinstance(actual, list):
                return any(_same(item, expected, fold_case) for item in actual)
            if isinstance(actual, str) and isinstance(expected, str):
                return expected.casefold() in actual.casefold() if fold_case else expected in actual
            return False
        if op == "starts_with":
            if not isinstance(actual, str):
                return False
            return actual.casefold().startswith(expected.casefold()) if fold_case else actual.startswith(expected)
        if op == "regex":
            if not isinstance(actual, str):
                return False
            try:
                return self.pattern.search(actual, timeout=REGEX_TIMEOUT_SECONDS) is not None
            except TimeoutError:
                raise RegexTimeout(
                    f"regex {self.value!r} on {self.field} ran over {REGEX_TIMEOUT_SECONDS}s (catastrophic "
                    "backtracking?): simplify the pattern, then retry the event"
                ) from None
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            return False
        return left > right if op == "greater" else left < right


def _fast_test(op: str, expected, fold_case: bool):
    """A closure equal to ``Condition.holds``'s generic path for the frequent cases (string values
    compared as they are, numbers): the hot path of conditional rules. None for the rest."""
    if fold_case:
        return None
    missing = _MISSING
    if op == "exists":
        return lambda actual: (actual is not missing) is expected
    if isinstance(expected, str):
        if op == "equals":
            return lambda actual: actual.__class__ is str and actual == expected
        if op == "not_equals":
            return lambda actual: not (actual.__class__ is str and actual == expected)
        if op == "starts_with":
            return lambda actual: actual.__class__ is str and actual.startswith(expected)
        if op == "contains":
            def contains(actual):
                if actual.__class__ is str:
                    return expected in actual
                return isinstance(actual, list) and any(_same(item, expected, False) for item in actual)
            return contains
    if op == "in" and all(item.__class__ is str for item in expected):
        choices = frozenset(expected)
        return lambda actual: actual.__class__ is str and actual in choices
    if op in ("greater", "less"):
        right = _number(expected)
        if op == "greater":
            return lambda actual: actual is not missing and (left := _number(actual)) is not None and left > right
        return lambda actual: actual is not missing and (left := _number(actual)) is not None and left < right
    return None


def conditions_parse(data, *, fields: Sequence[str] | None = None) -> tuple[Condition, ...]:
    if data in (None, ""):
        return ()
    if not isinstance(data, list):
        raise RuleError("conditions: a list of {field, op, value} objects")
    out = []
    for index, item in enumerate(data):
        try:
            out.append(Condition.parse(item, fields=fields))
        except RuleError as exc:
            raise RuleError(f"conditions[{index}].{exc}") from None
    return tuple(out)


DAY = 86_400.0


@dataclass(frozen=True)
class Rule:
    """A behaviour rule of one published version (``key`` is stable across versions)."""

    key: str
    event_type: str
    points: int
    name: str = ""
    priority: int = 100
    conditions: tuple[Condition, ...] = ()
    cap_count: int | None = None
    cap_window_seconds: int | None = None
    half_life_days: float | None = None
    expire_after_days: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.event_type

    @property
    def capped(self) -> bool:
        return self.cap_count is not None

    @property
    def decays(self) -> bool:
        return self.half_life_days is not None or self.expire_after_days is not None

    def matches(self, subject: Mapping) -> bool:
        return all(condition.holds(subject) for condition in self.conditions)

    def factor(self, age_seconds: float) -> float:
        """The decay factor of a contribution of this age (docs/scoring-model.md)."""
        age = max(0.0, age_seconds)
        if self.expire_after_days is not None and age >= self.expire_after_days * DAY:
            return 0.0
        if self.half_life_days is not None:
            return 0.5 ** (age / (self.half_life_days * DAY))
        return 1.0


@dataclass(frozen=True)
class FitRule:
    key: str
    points: int
    name: str = ""
    priority: int = 100
    conditions: tuple[Condition, ...] = ()

    @property
    def label(self) -> str:
        return self.name or "fit rule"


@dataclass(frozen=True)
class Grades:
    fit_a: int = 60
    fit_b: int = 40
    fit_c: int = 20
    score_1: int = 300
    score_2: int = 100
    score_3: int = 40

    def grade(self, *, fit_score: int, score: int) -> str:
        letter = "A" if fit_score >= self.fit_a else "B" if fit_score >= self.fit_b else "C" if fit_score >= self.fit_c else "D"
        digit = "1" if score >= self.score_1 else "2" if score >= self.score_2 else "3" if score >= self.score_3 else "4"
        return letter + digit


@dataclass(frozen=True)
class RuleSet:
    """One published version: what every score under it is a fold of."""

    version: int
    rules: tuple[Rule, ...] = ()
    match_mode: str = "all"
    fit_rules: tuple[FitRule, ...] = ()
    grades: Grades = Grades()

    def __post_init__(self) -> None:
        if self.match_mode not in ("all", "first"):
            raise RuleError(f"match_mode: {self.match_mode!r} is not 'all' or 'first'")
        by_type: dict[str, list[Rule]] = {}
        for rule in sorted(self.rules, key=lambda r: (r.priority, _key_order(r.key))):
            by_type.setdefault(rule.event_type, []).append(rule)
        object.__setattr__(self, "_by_type", {t: tuple(rules) for t, rules in by_type.items()})
        object.__setattr__(self, "_unconditional", {
            t: rules[0].points for t, rules in by_type.items()
            if len(rules) == 1 and not rules[0].conditions and not rules[0].capped and not rules[0].decays
        })
        object.__setattr__(self, "stateful", any(rule.capped for rule in self.rules))
        # Whether any rule reads the event's metadata or source (else scoring need not load them).
        object.__setattr__(self, "reads_event", any(rule.conditions for rule in self.rules))
        object.__setattr__(self, "decays", any(rule.decays for rule in self.rules))

    def unconditional_points(self, event_type: str) -> int | None:
        """The points of an event type scored by one rule without conditions, cap or decay (the
        common case: no matching, no state), else None."""
        return self._unconditional.get(event_type)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    def rules_for(self, event_type: str) -> tuple[Rule, ...]:
        return self._by_type.get(event_type, ())

    def matching(self, event: EngineEvent) -> tuple[Rule, ...]:
        """The rules whose conditions hold for the event (before caps): all, or the first one."""
        rules = self._by_type.get(event.event_type, ())
        if not rules:
            return ()
        subject = {"source": event.source, "metadata": event.metadata}
        if self.match_mode == "first":
            for rule in rules:
                if rule.matches(subject):
                    return (rule,)
            return ()
        return tuple(rule for rule in rules if rule.matches(subject))

    def fit(self, profile: Mapping) -> tuple[int, tuple[FitRule, ...]]:
        """The fit score of a profile (clamped to [0, 100]) and the fit rules that matched."""
        subject = fit_subject(profile)
        matched = tuple(rule for rule in self.fit_rules if all(c.holds(subject) for c in rule.conditions))
        return max(0, min(100, sum(rule.points for rule in matched))), matched

    def grade(self, *, fit_score: int, score: int) -> str:
        return self.grades.grade(fit_score=fit_score, score=score)


def _key_order(key: str):
    return (0, int(key[1:]), key) if key[1:].isdigit() else (1, 0, key)


def fit_subject(profile: Mapping) -> dict:
    email = str(profile.get("email") or "")
    domain = email.rpartition("@")[2].lower() if "@" in email else ""
    subject = {name: profile.get(name) or "" for name in PROFILE_FIELDS if name != "email"}
    # An empty profile field counts as absent ("company exists" means a company is filled in).
    subject = {name: value for name, value in subject.items() if value != ""}
    subject.update(email=email, email_domain=domain, free_mail=domain in FREE_MAIL_DOMAINS)
    return subject


# --- Evaluation: the whole definition ---------------------------------------------------------


@dataclass(frozen=True)
class EngineEvent:
    """An event as the rule set sees it."""

    key: EventKey
    event_type: str
    metadata: Mapping = field(default_factory=dict)
    source: str = ""

    @classmethod
    def of(cls, *, event_id: str, event_type: str, timestamp: datetime, metadata=None, source=None) -> EngineEvent:
        """From a stored event's values (metadata that is not an object reads as empty)."""
        return cls(EventKey(timestamp, event_id), event_type, metadata if isinstance(metadata, dict) else {}, source or "")


@dataclass(frozen=True)
class Contribution:
    rule: Rule
    points: int  # 0 when capped
    capped: bool = False


def _epoch(timestamp: datetime) -> float:
    return timestamp.timestamp()


class CapCounter:
    """Per-rule cap state: the event times (epoch seconds) of a rule's counted contributions
    within its window (at most ``cap_count``), or a plain count for a cap without a window."""

    __slots__ = ("counts", "recent")

    def __init__(self, data: Mapping | None = None):
        data = data or {}
        self.counts: dict[str, int] = dict(data.get("counts", {}))
        self.recent: dict[str, list[float]] = {k: list(v) for k, v in data.get("recent", {}).items()}

    def copy(self) -> CapCounter:
        return CapCounter(self.as_dict())

    def as_dict(self) -> dict:
        out = {}
        if self.counts:
            out["counts"] = dict(self.counts)
        if self.recent:
            out["recent"] = {k: list(v) for k, v in self.recent.items()}
        return out

    def take(self, rule: Rule, at: float) -> bool:
        """Count one contribution of ``rule`` at ``at`` if its cap allows; False when capped."""
        if rule.cap_count is None:
            return True
        if rule.cap_window_seconds is None:
            used = self.counts.get(rule.key, 0)
            if used >= rule.cap_count:
                return False
            self.counts[rule.key] = used + 1
            return True
        recent = [t for t in self.recent.get(rule.key, ()) if t > at - rule.cap_window_seconds]
        if len(recent) >= rule.cap_count:
            self.recent[rule.key] = recent
            return False
        recent.append(at)
        self.recent[rule.key] = recent[-rule.cap_count:]
        return True


def contributions(ruleset: RuleSet, event: EngineEvent, caps: CapCounter) -> tuple[Contribution, ...]:
    """The event's contributions under the rule set, counting them against (and updating) ``caps``."""
    simple = ruleset._unconditional.get(event.event_type)
    if simple is not None:
        return (Contribution(ruleset._by_type[event.event_type][0], simple),)
    out = []
    for rule in ruleset.matching(event):
        if caps.take(rule, _epoch(event.key.timestamp)):
            out.append(Contribution(rule, rule.points))
        else:
            out.append(Contribution(rule, 0, capped=True))
    return tuple(out)


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass
class EvaluatedEvent:
    event: EngineEvent
    contributions: tuple[Contribution, ...]
    points: int  # undecayed sum of the contributions (what ``Event.points`` stores)
    score_after: int  # rounded running score right after this event, at ``as_of``

    @property
    def decaying(self) -> bool:
        return any(c.points and c.rule.decays for c in self.contributions)


@dataclass
class RuleBreakdown:
    rule: Rule
    matched: int = 0
    counted: int = 0
    capped: int = 0
    raw_points: int = 0
    effective: float = 0.0

    @property
    def points(self) -> int:
        return round_half_up(self.effective)

    @property
    def decayed(self) -> int:
        return self.raw_points - self.points


@dataclass
class Evaluation:
    score: int
    last_key: EventKey | None
    events: list[EvaluatedEvent]
    caps: CapCounter
    decaying: bool
    breakdown: dict[str, RuleBreakdown]
    clamp_adjustment: float
    unrounded: float

    @property
    def state(self) -> FoldState:
        return FoldState(self.score, self.last_key)

    def explain(self) -> dict:
        """Per rule (matched/counted/capped/raw/decayed/points) plus the clamp and rounding
        adjustments; the items' points plus the adjustments equal ``score``."""
        items = sorted(self.breakdown.values(), key=lambda b: (b.rule.event_type, b.rule.priority, _key_order(b.rule.key)))
        clamp_points = round_half_up(self.clamp_adjustment)
        rounding = self.score - sum(b.points for b in items) - clamp_points
        return {
            "score": self.score,
            "rules": [
                {
                    "rule": b.rule.key,
                    "name": b.rule.label,
                    "event_type": b.rule.event_type,
                    "events_matched": b.matched,
                    "events_counted": b.counted,
                    "events_capped": b.capped,
                    "raw_points": b.raw_points,
                    "decayed": b.decayed,
                    "points": b.points,
                }
                for b in items
            ],
            "clamp_adjustment": clamp_points,
            "rounding_adjustment": rounding,
        }


def evaluate(
    ruleset: RuleSet,
    events: Iterable[EngineEvent],
    *,
    max_score: int,
    as_of: datetime | None,
    detail: bool = True,
) -> Evaluation:
    """The definition: every event of a lead, in ``(timestamp, event_id)`` order, duplicates once,
    matched under ``ruleset``, capped in event time, decayed at ``as_of`` and clamped per step.

    ``detail=False``: the same fold without the per-event results and the per-rule breakdown
    (``events`` and ``breakdown`` empty) -- for callers that only need the score (the preview)."""
    ordered, seen = [], set()
    for event in sorted(events, key=lambda e: e.key):
        if event.key.event_id in seen:
            continue
        seen.add(event.key.event_id)
        ordered.append(event)
    now = _epoch(as_of) if as_of is not None else None
    decays = ruleset.decays
    caps = CapCounter()
    score = 0.0
    adjustment = 0.0
    out: list[EvaluatedEvent] = []
    breakdown: dict[str, RuleBreakdown] = {}
    decaying = False
    ceiling = float(max_score)
    for event in ordered:
        contribs = contributions(ruleset, event, caps)
        at = _epoch(event.key.timestamp) if decays else 0.0
        delta = 0.0
        for contribution in contribs:
            rule = contribution.rule
            if detail:
                item = breakdown.get(rule.key)
                if item is None:
                    item = breakdown[rule.key] = RuleBreakdown(rule)
                item.matched += 1
                if contribution.capped:
                    item.capped += 1
                    continue
                item.counted += 1
                item.raw_points += contribution.points
            elif contribution.capped:
                continue
            value = float(contribution.points)
            if decays and rule.decays and contribution.points:
                age = (now - at) if now is not None else 0.0
                factor = rule.factor(age)
                value *= factor
                # Still changing with time: not yet expired, and not yet faded below a hundredth.
                decaying = decaying or (
                    factor > 0 and abs(value) >= 0.01
                    if rule.half_life_days is not None
                    else age < rule.expire_after_days * DAY
                )
            if detail:
                item.effective += value
            delta += value
        unclamped = score + delta
        score = ceiling if unclamped > ceiling else 0.0 if unclamped < 0.0 else unclamped
        adjustment += score - unclamped
        if detail:
            out.append(EvaluatedEvent(event, contribs, sum(c.points for c in contribs), round_half_up(score)))
    return Evaluation(
        score=round_half_up(score),
        last_key=ordered[-1].key if ordered else None,
        events=out,
        caps=caps,
        decaying=decaying,
        breakdown=breakdown,
        clamp_adjustment=adjustment,
        unrounded=score,
    )


# --- Stages and score-crossing alerts (docs/stages-and-alerts.md) ---------------------------------


@dataclass(frozen=True)
class Stage:
    """A stage a lead is in while its score is at least ``min_score`` and its fit at least
    ``min_fit`` (None: no condition on that measure)."""

    name: str
    min_score: int | None = None
    min_fit: int | None = None

    def holds(self, *, score: int, fit_score: int) -> bool:
        return (self.min_score is None or score >= self.min_score) and (
            self.min_fit is None or fit_score >= self.min_fit
        )


@dataclass(frozen=True)
class StageSet:
    """The operators' stages, coldest first, and the score thresholds whose crossing is an alert.

    A lead is in the *last* (hottest) stage whose thresholds it meets, or in no stage ("") when it
    meets none. ``version`` grows with every change of the stage settings."""

    version: int = 0
    stages: tuple[Stage, ...] = ()
    score_thresholds: tuple[int, ...] = ()

    def stage_of(self, *, score: int, fit_score: int) -> str:
        for stage in reversed(self.stages):
            if stage.holds(score=score, fit_score=fit_score):
                return stage.name
        return ""

    def rank(self, name: str) -> int:
        """Position of stage ``name`` (coldest 0); -1 for no stage or a stage that no longer exists."""
        for index, stage in enumerate(self.stages):
            if stage.name == name:
                return index
        return -1

    def direction(self, before: str, after: str) -> str:
        """``"up"`` when ``after`` is a hotter stage than ``before``, else ``"down"``."""
        return "up" if self.rank(after) > self.rank(before) else "down"

    def crossings(self, *, previous: int, new: int) -> list[tuple[int, str]]:
        """The score thresholds crossed going from ``previous`` to ``new``: ``(threshold, "up")`` for
        each ``t`` with ``previous < t <= new``, ``(threshold, "down")`` for ``new < t <= previous``."""
        if new > previous:
            return [(t, "up") for t in self.score_thresholds if previous < t <= new]
        if new < previous:
            return [(t, "down") for t in reversed(self.score_thresholds) if new < t <= previous]
        return []
