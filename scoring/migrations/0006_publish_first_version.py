"""Publish the existing rules as version 1: the scores already stored are folds of exactly these
rules, so every existing lead is marked as scored under v1 (nothing to rescore on upgrade)."""

from django.db import migrations
from django.utils import timezone

RULE_FIELDS = ("name", "event_type", "points", "priority", "enabled", "conditions", "cap_count",
               "cap_window_seconds", "half_life_days", "expire_after_days")
GRADES = {"fit_a": 60, "fit_b": 40, "fit_c": 20, "score_1": 300, "score_2": 100, "score_3": 40}


def publish_v1(apps, schema_editor):
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    ScoringSettings = apps.get_model("scoring", "ScoringSettings")
    RuleSetVersion = apps.get_model("scoring", "RuleSetVersion")
    Lead = apps.get_model("leads", "Lead")
    ScoringSettings.objects.get_or_create(pk=1)
    if RuleSetVersion.objects.exists():
        return
    rules = [{"key": f"r{rule.pk}", **{name: getattr(rule, name) for name in RULE_FIELDS}}
             for rule in ScoringRule.objects.order_by("pk")]
    RuleSetVersion.objects.create(
        number=1, match_mode="all", rules=rules, fit_rules=[], grades=GRADES,
        changes=[{"kind": "rule", "change": "added", "key": r["key"], "label": r["event_type"],
                  "fields": {"points": [None, r["points"]]}} for r in rules],
        note="The rules in place when versioned rule sets arrived.", published_by="migration",
        published_at=timezone.now(),
    )
    Lead.objects.update(rule_version=1)
    for digit, low, high in (("1", 300, None), ("2", 100, 300), ("3", 40, 100)):
        query = Lead.objects.filter(current_score__gte=low)
        if high is not None:
            query = query.filter(current_score__lt=high)
        query.update(grade=f"D{digit}")


class Migration(migrations.Migration):
    dependencies = [("scoring", "0005_rule_sets"), ("leads", "0004_lead_fit_grade_rule_version")]
    operations = [migrations.RunPython(publish_v1, migrations.RunPython.noop)]
