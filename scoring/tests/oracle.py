"""An independent fold of docs/scoring-model.md, written from that text alone.

It imports nothing from ``scoring``: the tests compare its results with ``scoring.engine`` (and with
the stored scores), so a shared helper would hide the very mistakes they look for. It is written
for clarity, not speed: plain loops, exact datetime arithmetic for ages and cap windows.

Input: a rule-set snapshot (the JSON shape of ``RuleSetVersion.rules`` / ``match_mode``: ``{"match_mode":
"all"|"first", "rules": [{"key": "r<pk>", "event_type", "points", "priority", "enabled",
"conditions", "cap_count", "cap_window_seconds", "half_life_days", "expire_after_days"}, ...]}``),
a lead's events (mappings with ``event_id``, ``event_type``, ``timestamp`` (aware datetime),
``metadata``, ``source``), ``max_score`` and ``as_of``.

Readings of the text where it leaves a choice (each noted in the report of the change that added
this file) are marked ``READING:``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MISSING = object()
NULL_IS_MISSING = True
DAY = 86_400.0

# READING: what a "numeric string" is, the text does not say. "float": what Python's float()
# accepts after stripping blanks (" 2", "1_000", "1e3"), but not nan/inf — the engine's reading;
# "strict": a plain decimal literal only. The tests use "float" and pin the difference.
NUMERIC_STRINGS = "float"
STRICT_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def rule_id(key: str) -> int:
    """``r17`` -> 17: "ties by rule id" is the rule's primary key, compared as a number."""
    return int(key[1:])


def lookup(field_name: str, event) -> object:
    if field_name == "source":
        return event.get("source", MISSING)
    head, _, path = field_name.partition(".")
    if head != "metadata" or not path:
        raise ValueError(f"not a field: {field_name!r}")
    value = event.get("metadata") or {}
    for segment in path.split("."):
        if isinstance(value, dict):
            if segment not in value:
                return MISSING
            value = value[segment]
        elif isinstance(value, list):
            # READING: a "numeric segment" is non-negative decimal digits (no "-1" from the end;
            # "²" is a digit to str.isdigit but not a decimal: not numeric).
            if not segment.isdecimal() or int(segment) >= len(value):
                return MISSING
            value = value[int(segment)]
        else:
            return MISSING
    # READING: a JSON null is "missing" (the text does not say; the engine reads it so: a key with
    # null fails `exists: true` and passes `not_equals`). Set NULL_IS_MISSING = False for the
    # other reading.
    if value is None and NULL_IS_MISSING:
        return MISSING
    return value


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_number(value):
    """A number, a numeric string's value, or None (booleans are not numbers)."""
    if is_number(value):
        return value
    if not isinstance(value, str):
        return None
    if NUMERIC_STRINGS == "strict":
        if not STRICT_NUMBER.fullmatch(value):
            return None
        return int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
    if re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)  # "F > V" for integers means exactly, whatever their length
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def fold_case(text: str, ignore_case: bool) -> str:
    return text.casefold() if ignore_case else text


def equal(actual, expected, ignore_case: bool) -> bool:
    """"strings compare as strings; numbers as numbers, 1 == 1.0; booleans only equal booleans"."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if is_number(actual) or is_number(expected):
        return is_number(actual) and is_number(expected) and actual == expected
    if isinstance(actual, str) or isinstance(expected, str):
        return (
            isinstance(actual, str)
            and isinstance(expected, str)
            and fold_case(actual, ignore_case) == fold_case(expected, ignore_case)
        )
    # READING: null equals null; lists/objects compare structurally (the text is silent).
    return actual == expected


def holds(condition: dict, event) -> bool:
    op = condition["op"]
    expected = condition.get("value")
    ignore_case = bool(condition.get("ignore_case", False))
    actual = lookup(condition["field"], event)
    if op == "exists":
        return (actual is not MISSING) == bool(expected)
    if actual is MISSING:
        return op == "not_equals"
    if op == "equals":
        return equal(actual, expected, ignore_case)
    if op == "not_equals":
        return not equal(actual, expected, ignore_case)
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(expected, str) and fold_case(expected, ignore_case) in fold_case(actual, ignore_case)
        if isinstance(actual, list):
            return any(equal(item, expected, ignore_case) for item in actual)
        return False
    if op == "starts_with":
        return (
            isinstance(actual, str)
            and isinstance(expected, str)
            and fold_case(actual, ignore_case).startswith(fold_case(expected, ignore_case))
        )
    if op == "regex":
        # READING: ignore_case on a regex is re.IGNORECASE (casefolding a pattern would turn \D
        # into \d); the property tests keep to patterns where both readings agree.
        return isinstance(actual, str) and re.search(expected, actual, re.IGNORECASE if ignore_case else 0) is not None
    if op == "in":
        return isinstance(expected, list) and any(equal(actual, item, ignore_case) for item in expected)
    if op in ("greater", "less"):
        left, right = as_number(actual), as_number(expected)
        if left is None or right is None:
            return False
        return left > right if op == "greater" else left < right
    raise ValueError(f"unknown op {op!r}")


def matches(rule: dict, event) -> bool:
    return rule["event_type"] == event["event_type"] and all(holds(c, event) for c in rule.get("conditions") or [])


def factor(rule: dict, age: timedelta) -> float:
    days = max(age, timedelta(0)) / timedelta(days=1)
    half_life, expire = rule.get("half_life_days"), rule.get("expire_after_days")
    value = 0.5 ** (days / half_life) if half_life else 1.0
    if expire is not None and days >= expire:
        value = 0.0
    return value


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass
class RuleTotals:
    matched: int = 0  # events whose conditions held and that the rule was chosen for
    counted: int = 0  # of those, contributed (not capped)
    capped: int = 0
    raw: int = 0  # points before decay
    points: float = 0.0  # points after decay (before the clamp)


@dataclass
class Result:
    score: int
    exact: float  # s_n before rounding
    rules: dict[str, RuleTotals] = field(default_factory=dict)
    steps: list[tuple[str, float]] = field(default_factory=list)  # (event_id, s_i)

    @property
    def clamp_adjustment(self) -> float:
        return self.exact - sum(t.points for t in self.rules.values())

    @property
    def rounding_adjustment(self) -> float:
        return self.score - self.exact


def evaluate(snapshot: dict, events, *, max_score: int, as_of: datetime) -> Result:
    mode = snapshot.get("match_mode", "all")
    rules = sorted(
        (r for r in snapshot.get("rules", []) if r.get("enabled", True)),
        key=lambda r: (r.get("priority", 100), rule_id(r["key"])),
    )
    unique: dict[str, dict] = {}
    for event in events:
        unique.setdefault(event["event_id"], event)  # duplicates by event_id count once
    ordered = sorted(unique.values(), key=lambda e: (e["timestamp"], e["event_id"]))

    contributed_at: dict[str, list[datetime]] = {r["key"]: [] for r in rules}
    totals = {r["key"]: RuleTotals() for r in rules}

    def cap_allows(rule: dict, at: datetime) -> bool:
        cap = rule.get("cap_count")
        if cap is None:
            return True
        window = rule.get("cap_window_seconds")
        times = contributed_at[rule["key"]]
        if window is None:
            return len(times) < cap
        start = at - timedelta(seconds=window)
        return sum(1 for t in times if start < t <= at) < cap

    s = 0.0
    result = Result(score=0, exact=0.0, rules=totals)
    for event in ordered:
        chosen = [r for r in rules if matches(r, event)]
        if mode == "first":
            chosen = chosen[:1]  # a capped first match does not fall through
        step = 0.0
        for rule in chosen:
            item = totals[rule["key"]]
            item.matched += 1
            if not cap_allows(rule, event["timestamp"]):
                item.capped += 1
                continue
            contributed_at[rule["key"]].append(event["timestamp"])
            item.counted += 1
            item.raw += rule["points"]
            points = rule["points"] * factor(rule, as_of - event["timestamp"])
            item.points += points
            step += points
        s = min(max_score, max(0.0, s + step))
        result.steps.append((event["event_id"], s))
    result.exact = s
    result.score = round_half_up(s)
    return result


def score(snapshot: dict, events, *, max_score: int, as_of: datetime) -> int:
    return evaluate(snapshot, events, max_score=max_score, as_of=as_of).score
