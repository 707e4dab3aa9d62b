"""The default stages (Cold < 40 <= Warm < 100 <= MQL < 300 <= SQL) and every existing lead placed in
its stage under them (stage settings v1; no audit rows, no alerts: nothing changed for anybody).

A deployment that had set the old ``TARGETGRID_STAGES`` environment variable ("MQL:100,SQL:300")
gets those stages instead, above a "Cold" stage for everything under the lowest threshold."""

import os

from django.db import migrations
from django.db.models import Case, Value, When
from django.utils import timezone

DEFAULT = [("Cold", None, "blue"), ("Warm", 40, "amber"), ("MQL", 100, "orange"), ("SQL", 300, "red")]


def _stages() -> list[tuple]:
    value = os.environ.get("TARGETGRID_STAGES", "").strip()
    if not value:
        return DEFAULT
    pairs = []
    for part in value.split(","):
        name, _, threshold = part.partition(":")
        if name.strip() and threshold.strip().lstrip("-").isdigit():
            pairs.append((name.strip()[:64], int(threshold)))
    pairs.sort(key=lambda pair: pair[1])
    colors = ["amber", "orange", "red", "purple", "green", "teal"]
    return [("Cold", None, "blue")] + [(name, threshold, colors[i % len(colors)]) for i, (name, threshold) in enumerate(pairs)]


def seed(apps, schema_editor):
    Stage = apps.get_model("scoring", "Stage")
    StageSettings = apps.get_model("scoring", "StageSettings")
    Lead = apps.get_model("leads", "Lead")
    if StageSettings.objects.exists():
        return
    stages = _stages()
    for position, (name, threshold, color) in enumerate(stages):
        Stage.objects.create(name=name, position=position * 10, min_score=threshold, color=color)
    StageSettings.objects.create(pk=1, version=1, score_thresholds=[])
    whens = [When(current_score__gte=threshold, then=Value(name))
             for name, threshold, _ in reversed(stages) if threshold is not None]
    lowest = stages[0][0] if stages[0][1] is None else ""
    Lead.objects.update(
        stage=Case(*whens, default=Value(lowest)) if whens else Value(lowest),
        stage_entered_at=timezone.now(), stage_version=1,
    )


class Migration(migrations.Migration):
    dependencies = [("scoring", "0008_stages_alerts")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
