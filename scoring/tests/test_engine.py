"""The pure engine: no database. Given a stream of events, when it is applied in any order (with
duplicates), then the lead ends where the event-time fold of the unique events ends."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine
from scoring.engine import EventKey, FoldState, LatePolicy, LeadTimeline, ScoredEvent, TailEntry

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ev(event_id: str, minute: int, points: int, event_type: str = "PAGE_VIEW") -> ScoredEvent:
    return ScoredEvent(EventKey(T0 + timedelta(minutes=minute), event_id), event_type, points)


def test_step_clamps_to_zero_and_max():
    state = engine.step(FoldState(990), ev("a", 0, 50), max_score=1000)
    assert state.score == 1000
    assert engine.step(FoldState(5), ev("b", 1, -50), max_score=1000).score == 0


def test_in_order_events_append_to_the_fold():
    timeline = LeadTimeline(max_score=1000)
    first = timeline.apply(ev("a", 0, 5))
    second = timeline.apply(ev("b", 1, 10))
    assert (first.previous_score, first.new_score, first.late) == (0, 5, False)
    assert (second.previous_score, second.new_score) == (5, 15)
    assert second.reason == "PAGE_VIEW +10"


def test_late_event_refolds_from_its_position_and_says_so():
    # Given scores near the cap, a late event changes how later events clamp.
    timeline = LeadTimeline(max_score=100)
    timeline.apply(ev("b", 2, 60))
    timeline.apply(ev("c", 3, -30))
    assert timeline.state.score == 30
    late = timeline.apply(ev("a", 1, 60))
    # fold: 60 -> 100 (capped) -> 70
    assert late.late and late.refolded == 2
    assert (late.previous_score, late.new_score) == (30, 70)
    assert "late" in late.reason and "2 later events" in late.reason
    assert [entry.score_after for entry in timeline.tail] == [60, 100, 70]


def test_duplicate_is_ignored():
    timeline = LeadTimeline(max_score=1000)
    timeline.apply(ev("a", 0, 5))
    assert timeline.apply(ev("a", 0, 5)) is None
    assert timeline.state.score == 5


def test_drop_policy_skips_late_events():
    timeline = LeadTimeline(max_score=1000, late_policy=LatePolicy.DROP)
    timeline.apply(ev("b", 2, 10))
    step = timeline.apply(ev("a", 1, 50))
    assert step.skipped and step.late and step.delta == 0
    assert timeline.state.score == 10


def test_refold_from_a_loaded_checkpoint_marks_only_changed_entries():
    # Given a checkpoint (state before the tail) and stored tail entries,
    base = FoldState(40, EventKey(T0, "x"))
    tail = [
        TailEntry(ev("b", 2, 10), score_after=50, loaded_score_after=50),
        TailEntry(ev("c", 3, 5), score_after=55, loaded_score_after=55),
    ]
    timeline = LeadTimeline(max_score=1000, base=base, tail=tail)
    # when a late event lands between them,
    timeline.apply(ev("a", 1, 20))
    # then the later entries are re-folded and flagged as changed.
    assert [(e.event.key.event_id, e.score_after) for e in timeline.tail] == [("a", 60), ("b", 70), ("c", 75)]
    assert {e.event.key.event_id for e in timeline.changed_entries()} == {"a", "b", "c"}


def test_late_event_before_the_checkpoint_is_refused():
    timeline = LeadTimeline(max_score=1000, base=FoldState(10, EventKey(T0 + timedelta(minutes=5), "z")))
    try:
        timeline.apply(ev("a", 1, 5))
    except engine.LateEventBeforeCheckpoint:
        pass
    else:
        raise AssertionError("expected LateEventBeforeCheckpoint")


events_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),  # minute (ties on purpose)
        st.integers(min_value=-60, max_value=120),  # points (negative too)
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(raw=events_strategy, data=st.data(), max_score=st.integers(min_value=0, max_value=300))
def test_any_shuffle_and_duplication_gives_the_sorted_fold(raw, data, max_score):
    events = [ev(f"e{i:03d}", minute, points) for i, (minute, points) in enumerate(raw)]
    arrivals = data.draw(st.lists(st.sampled_from(events), min_size=0, max_size=20)) + events
    arrivals = data.draw(st.permutations(arrivals))

    timeline = LeadTimeline(max_score=max_score)
    steps = [s for s in (timeline.apply(e) for e in arrivals) if s is not None]

    expected = engine.fold(events, max_score=max_score)
    assert timeline.state.score == expected.score
    assert timeline.state.last_key == expected.last_key
    # one step per unique event, and the audit deltas add up to the score
    assert sorted(s.event.key.event_id for s in steps) == sorted(e.key.event_id for e in events)
    assert sum(s.delta for s in steps) == timeline.state.score
    # every checkpoint equals the fold of the prefix
    prefix = FoldState()
    for entry in timeline.tail:
        prefix = engine.step(prefix, entry.event, max_score=max_score)
        assert entry.score_after == prefix.score
