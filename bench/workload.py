"""Workloads (leads, events, type mix, duplicates, late events, a hot lead) and the expected fold.

The expected score of a lead is computed here, independently of the service: the unique events
(by event_id) sorted by (timestamp, event_id), rule points added, clamped to [0, max_score] after
every step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

DEFAULT_MIX = "PAGE_VIEW:50,EMAIL_OPEN:20,FORM_SUBMIT:10,DEMO_REQUEST:5,PURCHASE:5,UNSUBSCRIBE:10"


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        if name:
            mix[name.strip().upper()] = float(weight or 1)
    return mix


@dataclass
class Workload:
    tag: str
    sent: list[dict]  # payloads in sending order (duplicates included)
    unique: dict[str, dict] = field(default_factory=dict)  # event_id -> payload
    timestamps: dict[str, datetime] = field(default_factory=dict)
    late: int = 0

    @property
    def emails(self) -> set[str]:
        return {p["email"] for p in self.unique.values()}

    def batches(self, size: int) -> list[list[dict]]:
        return [self.sent[i : i + size] for i in range(0, len(self.sent), size)]


def build(
    tag: str,
    *,
    events: int,
    leads: int,
    mix: dict[str, float],
    dup_share: float,
    late_share: float,
    hot_share: float = 0.0,
    seed: int = 1,
    spacing_ms: int = 10,
    late_max_s: int = 300,
    metadata=None,
) -> Workload:
    """``events`` payloads to send, of which a ``dup_share`` repeat an earlier one (same body).
    ``metadata(event_type, rng)``, when given, adds each payload's metadata (from its own random
    stream: the rest of the workload is the same with or without it)."""
    rng = random.Random(seed)
    meta_rng = random.Random(seed + 1_000_003)
    n_unique = max(1, round(events * (1 - dup_share)))
    n_dups = events - n_unique
    types, weights = list(mix), list(mix.values())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    base = now - timedelta(days=1, milliseconds=spacing_ms * n_unique, seconds=late_max_s)
    used: set[int] = set()
    uniques: list[dict] = []
    workload = Workload(tag=tag, sent=[])
    event_types = rng.choices(types, weights=weights, k=n_unique)
    for i in range(n_unique):
        lead = 0 if hot_share and rng.random() < hot_share else rng.randrange(leads)
        offset_us = i * spacing_ms * 1000
        if late_share and rng.random() < late_share:
            offset_us -= rng.randint(1_000_000, late_max_s * 1_000_000) + 1
            workload.late += 1
        while offset_us in used:  # distinct timestamps: the fold order never depends on collation
            offset_us += 1
        used.add(offset_us)
        ts = base + timedelta(microseconds=offset_us)
        payload = {
            "event_id": f"{tag}-{i:07d}",
            "event_type": event_types[i],
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "email": f"{tag}-{lead}@bench.example",
        }
        if metadata is not None:
            payload["metadata"] = metadata(event_types[i], meta_rng)
        uniques.append(payload)
        workload.unique[payload["event_id"]] = payload
        workload.timestamps[payload["event_id"]] = ts
    # Duplicates: re-sent a little later (the next request or a few after), same body.
    keyed = [(float(i), p) for i, p in enumerate(uniques)]
    for _ in range(n_dups):
        j = rng.randrange(n_unique)
        keyed.append((j + rng.randint(1, 3000) + 0.5, uniques[j]))
    keyed.sort(key=lambda kv: kv[0])
    workload.sent = [p for _, p in keyed]
    return workload


def expected_scores(workload: Workload, points: dict[str, int], max_score: int = 1000) -> dict[str, int]:
    by_email: dict[str, list[tuple[datetime, str, int]]] = {}
    for event_id, payload in workload.unique.items():
        by_email.setdefault(payload["email"], []).append(
            (workload.timestamps[event_id], event_id, points.get(payload["event_type"], 0))
        )
    scores = {}
    for email, items in by_email.items():
        score = 0
        for _, _, pts in sorted(items):
            score = max(0, min(max_score, score + pts))
        scores[email] = score
    return scores


def expected_scores_engine(workload: Workload, ruleset, *, source: str, max_score: int = 1000) -> dict[str, int]:
    """The expected score of every lead: ``scoring.engine.evaluate`` (the definition in
    docs/scoring-model.md) under the published rule set, over the unique events (no decay in the
    bench's presets, so no ``as_of``). ``source`` is what the service stores for the path used."""
    from scoring import engine

    by_email: dict[str, list] = {}
    for event_id, payload in workload.unique.items():
        by_email.setdefault(payload["email"], []).append(
            engine.EngineEvent(engine.EventKey(workload.timestamps[event_id], event_id), payload["event_type"],
                               payload.get("metadata") or {}, source)
        )
    return {
        email: engine.evaluate(ruleset, events, max_score=max_score, as_of=None).score
        for email, events in by_email.items()
    }
