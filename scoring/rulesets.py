"""Rule sets: the draft's snapshot, published versions compiled for the engine, and their diff.

A published ``RuleSetVersion`` is immutable, so its compiled ``engine.RuleSet`` is remembered per
process by version number; finding the current version costs one indexed query per transaction.
"""

from __future__ import annotations

from functools import lru_cache

from . import engine
from .models import FitRule, RuleSetVersion, ScoringRule, ScoringSettings, Stage, StageSettings

RULE_FIELDS = (
    "name",
    "event_type",
    "points",
    "priority",
    "enabled",
    "conditions",
    "cap_count",
    "cap_window_seconds",
    "half_life_days",
    "expire_after_days",
)
FIT_RULE_FIELDS = ("name", "points", "priority", "enabled", "conditions")
GRADE_FIELDS = ("grade_fit_a", "grade_fit_b", "grade_fit_c", "grade_score_1", "grade_score_2", "grade_score_3")


def rule_key(pk: int) -> str:
    return f"r{pk}"


def fit_rule_key(pk: int) -> str:
    return f"f{pk}"


def settings_draft() -> ScoringSettings:
    draft, _ = ScoringSettings.objects.get_or_create(pk=1)
    return draft


def draft_snapshot() -> dict:
    """The draft as a version's content: ``{match_mode, rules, fit_rules, grades}``."""
    draft = settings_draft()
    return {
        "match_mode": draft.match_mode,
        "rules": [
            {"key": rule_key(rule.pk), **{name: getattr(rule, name) for name in RULE_FIELDS}}
            for rule in ScoringRule.objects.order_by("pk")
        ],
        "fit_rules": [
            {"key": fit_rule_key(rule.pk), **{name: getattr(rule, name) for name in FIT_RULE_FIELDS}}
            for rule in FitRule.objects.order_by("pk")
        ],
        "grades": {name.removeprefix("grade_"): getattr(draft, name) for name in GRADE_FIELDS},
    }


def version_snapshot(version: RuleSetVersion | None) -> dict:
    if version is None:
        return {"match_mode": "all", "rules": [], "fit_rules": [], "grades": {}}
    return {
        "match_mode": version.match_mode,
        "rules": version.rules,
        "fit_rules": version.fit_rules,
        "grades": version.grades,
    }


def compile_snapshot(number: int, snapshot: dict) -> engine.RuleSet:
    """An ``engine.RuleSet`` from a snapshot (disabled rules left out: they score nothing)."""
    rules = tuple(
        engine.Rule(
            key=item["key"],
            event_type=item["event_type"],
            points=int(item["points"]),
            name=item.get("name") or "",
            priority=int(item.get("priority", 100)),
            conditions=engine.conditions_parse(item.get("conditions") or []),
            cap_count=item.get("cap_count"),
            cap_window_seconds=item.get("cap_window_seconds"),
            half_life_days=item.get("half_life_days"),
            expire_after_days=item.get("expire_after_days"),
        )
        for item in snapshot.get("rules", [])
        if item.get("enabled", True)
    )
    fit_rules = tuple(
        engine.FitRule(
            key=item["key"],
            points=int(item["points"]),
            name=item.get("name") or "",
            priority=int(item.get("priority", 100)),
            conditions=engine.conditions_parse(item.get("conditions") or [], fields=engine.FIT_FIELDS),
        )
        for item in sorted(snapshot.get("fit_rules", []), key=lambda r: (r.get("priority", 100), r["key"]))
        if item.get("enabled", True)
    )
    grades = engine.Grades(**{k: int(v) for k, v in (snapshot.get("grades") or {}).items()})
    return engine.RuleSet(
        version=number, rules=rules, match_mode=snapshot.get("match_mode", "all"), fit_rules=fit_rules, grades=grades
    )


@lru_cache(maxsize=16)
def _compiled(number: int, pk: int, published_at) -> engine.RuleSet:
    # Keyed by the row's identity too, not the number alone: a test database that is flushed or
    # rolled back can hold a different "v1" later in the same process.
    return compile_snapshot(number, version_snapshot(RuleSetVersion.objects.get(pk=pk)))


def current_version_number() -> int:
    """The newest published version (0 before the first publish)."""
    return RuleSetVersion.objects.order_by("-number").values_list("number", flat=True).first() or 0


def ruleset_current() -> engine.RuleSet:
    """The current version, compiled (one indexed query; the compile is cached per version)."""
    row = RuleSetVersion.objects.order_by("-number").values_list("number", "pk", "published_at").first()
    return _compiled(*row) if row else engine.RuleSet(version=0)


def ruleset_of(number: int) -> engine.RuleSet:
    row = RuleSetVersion.objects.filter(number=number).values_list("number", "pk", "published_at").first()
    return _compiled(*row) if row else engine.RuleSet(version=0)


def ruleset_draft() -> engine.RuleSet:
    """The draft compiled as the next version would be (for the preview)."""
    return compile_snapshot(current_version_number() + 1, draft_snapshot())


def _describe(item: dict) -> str:
    return item.get("name") or item.get("event_type") or item["key"]


def snapshot_diff(old: dict, new: dict) -> list[dict]:
    """What changed from ``old`` to ``new``: one entry per added, removed or changed rule or setting,
    ``{"kind": "rule"|"fit_rule"|"setting", "change": "added"|"removed"|"changed", "key", "label",
    "fields": {name: [old, new]}}``."""
    changes: list[dict] = []
    if old.get("match_mode") != new.get("match_mode"):
        changes.append(
            {"kind": "setting", "change": "changed", "key": "match_mode", "label": "match mode",
             "fields": {"match_mode": [old.get("match_mode"), new.get("match_mode")]}}
        )
    old_grades, new_grades = old.get("grades") or {}, new.get("grades") or {}
    for name in sorted(set(old_grades) | set(new_grades)):
        if old_grades.get(name) != new_grades.get(name):
            changes.append(
                {"kind": "setting", "change": "changed", "key": f"grade_{name}", "label": f"grade threshold {name}",
                 "fields": {name: [old_grades.get(name), new_grades.get(name)]}}
            )
    for kind, fields in (("rule", RULE_FIELDS), ("fit_rule", FIT_RULE_FIELDS)):
        before = {item["key"]: item for item in old.get(f"{kind}s", [])}
        after = {item["key"]: item for item in new.get(f"{kind}s", [])}
        for key in sorted(set(before) | set(after), key=engine._key_order):
            if key not in before:
                changes.append({"kind": kind, "change": "added", "key": key, "label": _describe(after[key]),
                                "fields": {name: [None, after[key].get(name)] for name in fields}})
            elif key not in after:
                changes.append({"kind": kind, "change": "removed", "key": key, "label": _describe(before[key]),
                                "fields": {name: [before[key].get(name), None] for name in fields}})
            else:
                differing = {
                    name: [before[key].get(name), after[key].get(name)]
                    for name in fields
                    if before[key].get(name) != after[key].get(name)
                }
                if differing:
                    changes.append({"kind": kind, "change": "changed", "key": key, "label": _describe(after[key]),
                                    "fields": differing})
    return changes


def affected_event_types(old: engine.RuleSet, new: engine.RuleSet) -> frozenset[str] | None:
    """Event types whose scoring differs between two versions; None when every lead may change
    (the match mode changed). Fit and grade changes are handled separately (no events needed)."""
    if old.match_mode != new.match_mode:
        return None
    types = set()
    for event_type in old.event_types | new.event_types:
        if old.rules_for(event_type) != new.rules_for(event_type):
            types.add(event_type)
    return frozenset(types)


def draft_changes() -> list[dict]:
    """What publishing the draft now would record: its diff against the current version."""
    current = RuleSetVersion.objects.order_by("-number").first()
    return snapshot_diff(version_snapshot(current), draft_snapshot())


# --- Stages (docs/stages-and-alerts.md) --------------------------------------------------------


def stageset_current() -> engine.StageSet:
    """The current stage settings, compiled: one primary-key query; the stages themselves are read
    again only when the settings' version (bumped in the transaction of every stage change) or
    their ``updated_at`` differs from what this process compiled."""
    row = StageSettings.objects.filter(pk=1).values_list("version", "updated_at").first()
    if row is None:
        return engine.StageSet(version=0)
    return _stageset_compiled(*row)


@lru_cache(maxsize=8)
def _stageset_compiled(version: int, updated_at) -> engine.StageSet:
    stages = tuple(
        engine.Stage(name=name, min_score=min_score, min_fit=min_fit)
        for name, min_score, min_fit in Stage.objects.order_by("position", "id").values_list(
            "name", "min_score", "min_fit"
        )
    )
    thresholds = StageSettings.objects.filter(pk=1).values_list("score_thresholds", flat=True).first() or []
    return engine.StageSet(version=version, stages=stages, score_thresholds=tuple(sorted(set(thresholds))))
