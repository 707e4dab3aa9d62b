"""Preview before publishing: what publishing the draft would do to the stored leads.

The draft (``rulesets.ruleset_draft()``) is evaluated with the engine at ``now`` against the stored
processed events, exactly as the rescore after publishing will (``services._lead_apply_full``): a
lead's behaviour score "changes" when the draft's evaluation differs from its stored
``current_score``, which is what ``RescoreJob.changed`` counts.

Only the leads whose score can differ have their events read and evaluated: leads with an event of
a type whose rules differ (``rulesets.affected_event_types``; every lead with events when the match
mode changed), leads holding a decaying contribution (the rescore re-evaluates them at its own
``now``), and leads not yet scored under the current version (an unfinished earlier rescore). Every
other lead keeps its behaviour score; its fit score and grade are recomputed from its profile
(cheap). Events are read per chunk of leads as plain rows, never model instances.

Above ``sample_limit`` leads, a deterministic random sample of that many leads is evaluated and
the counts are scaled to the whole population (``sampled: true``).
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections import Counter, defaultdict
from datetime import datetime

from django.db import connections
from django.utils import timezone

from events.models import Event, EventStatus
from leads.models import Lead

from . import engine
from .rulesets import affected_event_types, current_version_number, ruleset_current, ruleset_draft, stageset_current

LEAD_CHUNK = 500
SAMPLE_SEED = 20261129
CHANGED_LEADS_SHOWN = 50
_LEAD_COLUMNS = ("id", "current_score", "max_score", "fit_score", "grade", "rule_version", "decaying",
                 "last_processed_event_time", *engine.PROFILE_FIELDS)


def stage_of(score: int, stages: engine.StageSet | None = None, *, fit_score: int = 0) -> str | None:
    """The stage (the operators' stages, ``rulesets.stageset_current``) a lead with this score and
    fit would be in, else None."""
    stages = stageset_current() if stages is None else stages
    return stages.stage_of(score=score, fit_score=fit_score) or None


def _nice_width(largest: int, buckets: int = 10) -> int:
    """The smallest 1/2/2.5/5 x 10^k width that covers ``0..largest`` in at most ``buckets`` buckets."""
    magnitude = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            width = int(factor * magnitude)
            if width >= 1 and factor * magnitude == width and (largest // width) + 1 <= buckets:
                return width
        magnitude *= 10


def distribution(current: Counter, new: Counter, *, scale: float = 1.0) -> list[dict]:
    """Both score distributions over the same buckets ``[low, high)``."""
    largest = max([0, *current, *new])
    width = _nice_width(largest)
    rows = [{"low": low, "high": low + width, "current": 0, "new": 0} for low in range(0, largest + 1, width)]
    for key, counter in (("current", current), ("new", new)):
        for score, count in counter.items():
            rows[max(0, score) // width][key] += count
    if scale != 1.0:
        for row in rows:
            row["current"], row["new"] = round(row["current"] * scale), round(row["new"] * scale)
    return rows


def _raw_rows(queryset):
    """A ``values_list`` query's rows as the driver returns them, without Django's per-value
    converters (a UUID, an aware datetime and a JSON parse per value were most of the time on
    100,000 leads). Ids stay in the database's form (hex text, or UUID on PostgreSQL) on both
    sides of every lookup here; timestamps and metadata are converted below, as Django would."""
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(5000):
            yield from rows


def _aware(value, tz) -> datetime:
    """A stored datetime as Django converts it: text (SQLite) parsed, naive ones in the connection's zone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _metadata(value) -> dict:
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _lead_ids_with_types(event_types: frozenset[str] | None) -> set:
    query = Event.objects.filter(status=EventStatus.PROCESSED)
    if event_types is not None:
        if not event_types:
            return set()
        query = query.filter(event_type__in=sorted(event_types))
    return {row[0] for row in _raw_rows(query.values_list("lead_id").distinct())}


def _events_by_lead(lead_ids: list, ruleset: engine.RuleSet) -> dict:
    """Every processed event of the given leads (raw ids) that the rule set can score, as engine
    events, read as plain rows. Metadata is parsed only for event types with a conditional rule
    (nothing else reads it)."""
    tz = connections[Event.objects.db].timezone
    conditional = {t for t in ruleset.event_types if any(rule.conditions for rule in ruleset.rules_for(t))}
    out: dict = defaultdict(list)
    # An event of a type without a rule contributes nothing to any step of the fold: not read.
    query = Event.objects.filter(lead_id__in=lead_ids, status=EventStatus.PROCESSED, event_type__in=sorted(ruleset.event_types))
    rows = _raw_rows(query.values_list("event_id", "lead_id", "event_type", "timestamp", "metadata", "source"))
    for event_id, lead_id, event_type, timestamp, metadata, source in rows:
        out[lead_id].append(
            engine.EngineEvent(
                engine.EventKey(_aware(timestamp, tz), event_id),
                event_type,
                _metadata(metadata) if event_type in conditional else {},
                source or "",
            )
        )
    return out


def _lead_uuid(raw) -> str:
    return str(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))


def ruleset_preview(*, sample_limit: int = 100_000, now=None) -> dict:
    """What publishing the draft would change (see the module docstring). Counts are of leads."""
    if sample_limit < 1:
        raise ValueError("sample_limit must be at least 1")
    now = now or timezone.now()
    current, draft = ruleset_current(), ruleset_draft()
    version = current_version_number()
    affected = affected_event_types(current, draft)

    total = Lead.objects.count()
    sampled = total > sample_limit
    lead_query = Lead.objects.order_by("pk")
    if sampled:
        all_ids = [row[0] for row in _raw_rows(lead_query.values_list("pk"))]
        sample = sorted(random.Random(SAMPLE_SEED).sample(all_ids, sample_limit))
        rows = []
        for start in range(0, len(sample), LEAD_CHUNK):
            rows.extend(_raw_rows(lead_query.filter(pk__in=sample[start:start + LEAD_CHUNK]).values_list(*_LEAD_COLUMNS)))
    else:
        rows = list(_raw_rows(lead_query.values_list(*_LEAD_COLUMNS)))
    size = len(rows)
    scale = total / size if sampled and size else 1.0

    # Which leads the draft can score differently: the rest keep their stored behaviour score.
    with_types = _lead_ids_with_types(affected)
    max_scores = {}
    for lead_id, _score, max_score, _fit, _grade, rule_version, decaying, last_time, *_ in rows:
        if lead_id in with_types or decaying or (rule_version != version and last_time is not None):
            max_scores[lead_id] = max_score
    to_evaluate = list(max_scores)
    new_score_of: dict = {}
    for start in range(0, len(to_evaluate), LEAD_CHUNK):
        chunk = to_evaluate[start:start + LEAD_CHUNK]
        events = _events_by_lead(chunk, draft)
        for lead_id in chunk:
            new_score_of[lead_id] = engine.evaluate(
                draft, events.get(lead_id, ()), max_score=max_scores[lead_id], as_of=now, detail=False
            ).score

    stages = stageset_current()
    changed = fit_changed = grade_changed = 0
    moves: Counter = Counter()
    current_scores: Counter = Counter()
    new_scores: Counter = Counter()
    changed_leads: list[tuple] = []  # (-|delta|, lead, ...): the largest changes are listed
    for lead_id, score, _max, fit_score, grade, _version, _decaying, _last, *profile in rows:
        new_score = new_score_of.get(lead_id, score)
        new_fit = draft.fit(dict(zip(engine.PROFILE_FIELDS, profile)))[0]
        new_grade = draft.grade(fit_score=new_fit, score=new_score)
        current_scores[score] += 1
        new_scores[new_score] += 1
        fit_changed += new_fit != fit_score
        grade_changed += new_grade != grade
        # (a stage may have a fit threshold: a fit change alone can move a lead)
        before = stage_of(score, stages, fit_score=fit_score)
        after = stage_of(new_score, stages, fit_score=new_fit)
        if before != after:
            moves[(before, after)] += 1
        if new_score == score:
            continue
        changed += 1
        changed_leads.append((-abs(new_score - score), str(lead_id), lead_id, profile[0], score, new_score,
                              before, after, grade, new_grade))
    shown = [
        {"lead_id": _lead_uuid(raw_id), "email": email, "current_score": score, "new_score": new_score,
         "current_stage": before, "new_stage": after, "current_grade": grade, "new_grade": new_grade}
        for _delta, _key, raw_id, email, score, new_score, before, after, grade, new_grade
        in heapq.nsmallest(CHANGED_LEADS_SHOWN, changed_leads)
    ]

    def scaled(count: int) -> int:
        return round(count * scale)

    return {
        "current_version": version,
        "draft_version": draft.version,
        "as_of": now.isoformat(),
        "affected_event_types": None if affected is None else sorted(affected),
        "total_leads": total,
        "sampled": sampled,
        "sample_size": size,
        "evaluated_leads": len(to_evaluate),
        "changed": scaled(changed),
        "fit_changed": scaled(fit_changed),
        "grade_changed": scaled(grade_changed),
        "stages": [{"name": stage.name, "threshold": stage.min_score, "min_fit": stage.min_fit}
                   for stage in stages.stages],
        "stage_moves": [
            {"from": before, "to": after, "count": scaled(count)}
            for (before, after), count in sorted(moves.items(), key=lambda item: (-item[1], str(item[0])))
        ],
        "distribution": distribution(current_scores, new_scores, scale=scale),
        "changed_leads": shown,
    }
