"""Rule sets the bench publishes before a run (``--rules``), and the engine fold it verifies with.

Since issue #10 a rule edited through ``/api/scoring-rules`` only changes the draft: nothing scores
differently until the draft is published. So the bench publishes its rules itself, in the stack's
database (``python bench/rules.py publish <preset>`` with the stack's environment: the service's own
``scoring.rescoring.ruleset_publish``), and checks every lead against ``scoring.engine.evaluate``
under the snapshot it published.

Presets:

* ``default``: the rules the migrations create (PAGE_VIEW 5, EMAIL_OPEN 10, FORM_SUBMIT 20,
  DEMO_REQUEST 50, PURCHASE 100) plus UNSUBSCRIBE -30 (so scores hit the floor as well as the cap).
* ``conditional10``: the same plus 10 conditional rules over the event types the bench sends
  (url contains / starts_with / regex, source equals, numeric greater, in-lists, ignore_case, a
  negative one), match mode ``all``; the workload then carries metadata for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scoring import engine  # noqa: E402  (pure: no Django)

BASE = [{"event_type": "UNSUBSCRIBE", "points": -30, "description": "bench"}]

CONDITIONAL10 = [
    {"name": "pricing page", "event_type": "PAGE_VIEW", "points": 15, "priority": 10,
     "conditions": [{"field": "metadata.url", "op": "contains", "value": "/pricing"}]},
    {"name": "docs", "event_type": "PAGE_VIEW", "points": 3, "priority": 20,
     "conditions": [{"field": "metadata.url", "op": "starts_with", "value": "/docs/"}]},
    {"name": "blog article", "event_type": "PAGE_VIEW", "points": 2, "priority": 30,
     "conditions": [{"field": "metadata.url", "op": "regex", "value": r"^/(blog|news)/\d{4}/[a-z-]+$"}]},
    {"name": "long read", "event_type": "PAGE_VIEW", "points": 5, "priority": 40,
     "conditions": [{"field": "metadata.duration_s", "op": "greater", "value": 60}]},
    {"name": "careers visitor", "event_type": "PAGE_VIEW", "points": -5, "priority": 50,
     "conditions": [{"field": "metadata.url", "op": "contains", "value": "/careers", "ignore_case": True}]},
    {"name": "campaign open", "event_type": "EMAIL_OPEN", "points": 5, "priority": 10,
     "conditions": [{"field": "metadata.campaign", "op": "in", "value": ["launch", "webinar", "pricing-update"]}]},
    # source: "batch" for /api/events/batch, "api" for /api/events
    {"name": "contact form in a batch", "event_type": "FORM_SUBMIT", "points": 20, "priority": 10,
     "conditions": [{"field": "source", "op": "equals", "value": "batch"},
                    {"field": "metadata.form", "op": "equals", "value": "CONTACT", "ignore_case": True}]},
    {"name": "big company demo", "event_type": "DEMO_REQUEST", "points": 30, "priority": 10,
     "conditions": [{"field": "metadata.company_size", "op": "greater", "value": 200}]},
    {"name": "large order", "event_type": "PURCHASE", "points": 50, "priority": 10,
     "conditions": [{"field": "metadata.items.0.amount", "op": "greater", "value": "1000"}]},
    {"name": "hard unsubscribe", "event_type": "UNSUBSCRIBE", "points": -20, "priority": 10,
     "conditions": [{"field": "metadata.reason", "op": "in", "value": ["spam", "not_interested"]}]},
]

PRESETS = {"default": [], "conditional10": CONDITIONAL10}


def metadata_for(event_type: str, rng) -> dict:
    """Realistic metadata for the conditional rules (some hold, most do not)."""
    if event_type == "PAGE_VIEW":
        url = rng.choice(["/", "/pricing", "/pricing/enterprise", "/docs/api/events", "/docs/", "/blog/2026/scoring-101",
                          "/news/2025/launch", "/blog/about", "/Careers/engineering", "/features", "/product/tour"])
        return {"url": url, "duration_s": rng.choice([3, 12, 45, 61, 120, 300]), "referrer": "https://example.org/"}
    if event_type == "EMAIL_OPEN":
        return {"campaign": rng.choice(["launch", "newsletter", "webinar", "digest", "pricing-update"])}
    if event_type == "FORM_SUBMIT":
        return {"form": rng.choice(["contact", "Contact", "newsletter", "ebook"])}
    if event_type == "DEMO_REQUEST":
        return {"company_size": rng.choice([5, 50, 201, 1000, 5000])}
    if event_type == "PURCHASE":
        return {"items": [{"sku": "pro", "amount": rng.choice([99, 499, 1500, 12000])}], "currency": "EUR"}
    if event_type == "UNSUBSCRIBE":
        return {"reason": rng.choice(["spam", "too_many", "not_interested", "other"])}
    return {}


def publish(env: dict[str, str], preset: str) -> dict:
    """Add the preset's rules to the stack's draft, publish it, return the current version's snapshot."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "publish", preset], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"publishing rules {preset!r} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ruleset(snapshot: dict) -> engine.RuleSet:
    """``scoring.rulesets.compile_snapshot`` without Django (the bench process does not set it up):
    the same fields, disabled rules left out."""
    rules = tuple(
        engine.Rule(
            key=item["key"], event_type=item["event_type"], points=int(item["points"]), name=item.get("name") or "",
            priority=int(item.get("priority", 100)), conditions=engine.conditions_parse(item.get("conditions") or []),
            cap_count=item.get("cap_count"), cap_window_seconds=item.get("cap_window_seconds"),
            half_life_days=item.get("half_life_days"), expire_after_days=item.get("expire_after_days"),
        )
        for item in snapshot.get("rules", [])
        if item.get("enabled", True)
    )
    return engine.RuleSet(version=snapshot.get("number", 0), rules=rules, match_mode=snapshot.get("match_mode", "all"))


def _publish_in_django(preset: str) -> None:
    import django

    django.setup()
    from scoring.models import RuleSetVersion, ScoringRule
    from scoring.rescoring import NothingToPublish, ruleset_publish
    from scoring.rulesets import version_snapshot

    for item in BASE:
        if not ScoringRule.objects.filter(event_type=item["event_type"]).exists():
            rule = ScoringRule(**item)
            rule.full_clean()
            rule.save()
    for item in PRESETS[preset]:
        if not ScoringRule.objects.filter(name=item["name"], event_type=item["event_type"]).exists():
            rule = ScoringRule(**item)
            rule.full_clean()
            rule.save()
    try:
        ruleset_publish(actor="bench", note=f"bench --rules {preset}")
    except NothingToPublish:
        pass
    version = RuleSetVersion.objects.order_by("-number").first()
    print(json.dumps({"number": version.number, **version_snapshot(version)}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "publish" or sys.argv[2] not in PRESETS:
        raise SystemExit(f"usage: rules.py publish {{{'|'.join(PRESETS)}}}")
    _publish_in_django(sys.argv[2])
