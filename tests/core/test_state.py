"""The capped state snapshot: size rule, truncation, the error mode and immutability."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentsession import SessionTracker, StateNotSerializableError, StateTooLargeError, Step
from agentsession._state import TRUNCATED_MARKER_KEY, StateStore, truncation_marker


def compact(value: Any) -> bytes:
    """The reference encoding the cap applies to: compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_snapshot_is_compact_utf8_json_of_the_state() -> None:
    """The snapshot's bytes are the compact UTF-8 JSON of the state, and its size their length."""
    store = StateStore(10_240, "truncate", owner="s")
    state = {"plan": ["search", "answer"], "city": "Z\u00fcrich \U0001f600", "n": 3, "ok": True}
    store.update(state)
    assert store.snapshot.json == compact(state)
    assert store.snapshot.size == len(compact(state))
    assert store.snapshot.to_dict() == state


@pytest.mark.parametrize("value", [1e-05, 1.25e-07, 1e16, -2.5e-300, 0.1, 10**30])
def test_snapshot_size_counts_numbers_as_compact_json_writes_them(value: Any) -> None:
    """Numbers are written as Python's compact JSON writes them, so sizes match that encoding."""
    store = StateStore(10_240, "truncate", owner="s")
    store.set("n", value)
    assert store.snapshot.json == compact({"n": value})


def test_state_at_exactly_the_limit_is_kept_whole() -> None:
    """A state whose JSON is exactly state_limit_bytes long is not truncated."""
    state = {"k": "x" * 50}
    limit = len(compact(state))
    store = StateStore(limit, "truncate", owner="s")
    store.update(state)
    assert store.snapshot.to_dict() == state
    assert store.snapshot.truncated_keys == ()


def test_truncate_replaces_largest_values_with_size_markers() -> None:
    """Over the limit, the largest values become markers recording their original size."""
    big, medium, small = "b" * 3000, "m" * 2000, "s" * 10
    store = StateStore(1500, "truncate", owner="s")
    store.update({"big": big, "medium": medium, "small": small})
    snapshot = store.snapshot.to_dict()
    assert snapshot["big"] == truncation_marker(len(compact(big)))
    assert snapshot["medium"] == truncation_marker(len(compact(medium)))
    assert snapshot["small"] == small
    assert set(store.snapshot.truncated_keys) == {"big", "medium"}
    assert store.snapshot.size <= 1500


def test_truncate_stops_once_the_state_fits() -> None:
    """Only as many values are truncated as needed: the largest goes first, the rest stay."""
    store = StateStore(1500, "truncate", owner="s")
    store.update({"a": "a" * 1000, "b": "b" * 900, "c": "c" * 100})
    snapshot = store.snapshot.to_dict()
    assert snapshot["a"][TRUNCATED_MARKER_KEY] is True
    assert snapshot["b"] == "b" * 900
    assert snapshot["c"] == "c" * 100


def test_truncation_warns_once_per_session(caplog: pytest.LogCaptureFixture) -> None:
    """Truncation logs one warning per session, however often the state overflows again."""
    first = SessionTracker("state-warn-once-1", state_limit_bytes=100)
    second = SessionTracker("state-warn-once-2", state_limit_bytes=100)
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        for n in range(5):
            first.set_state("blob", "x" * (200 + n))
        second.set_state("blob", "y" * 300)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in messages if "state-warn-once-1" in m]) == 1
    assert len([m for m in messages if "state-warn-once-2" in m]) == 1


def test_truncate_raises_when_even_markers_do_not_fit() -> None:
    """If the keys alone are over the limit, truncate mode refuses and keeps the old state."""
    store = StateStore(50, "truncate", owner="s")
    store.update({"kept": 1})
    before = store.snapshot
    with pytest.raises(StateTooLargeError):
        store.update({f"key_number_{i}": i for i in range(20)})
    assert store.snapshot is before
    assert store.snapshot.to_dict() == {"kept": 1}


def test_error_mode_raises_naming_key_and_sizes_and_keeps_state() -> None:
    """overflow="error" raises StateTooLargeError naming the key, the size and the limit."""
    tracker = SessionTracker("state-error-mode", state_limit_bytes=200, state_overflow="error")
    tracker.set_state("small", "fine")
    with pytest.raises(StateTooLargeError) as excinfo:
        tracker.set_state("huge", "h" * 500)
    error = excinfo.value
    expected_size = len(compact({"small": "fine", "huge": "h" * 500}))
    assert error.key == "huge"
    assert error.size == expected_size
    assert error.limit == 200
    assert "'huge'" in str(error)
    assert str(expected_size) in str(error)
    assert "200" in str(error)
    assert dict(tracker.state) == {"small": "fine"}


def test_unserializable_value_raises_naming_key_and_keeps_state() -> None:
    """A value JSON cannot encode raises StateNotSerializableError naming the key; no change."""
    tracker = SessionTracker("state-unserializable")
    tracker.set_state("a", 1)
    with pytest.raises(StateNotSerializableError) as excinfo:
        tracker.set_state("handle", object())
    assert excinfo.value.key == "handle"
    assert "'handle'" in str(excinfo.value)
    assert dict(tracker.state) == {"a": 1}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"score": float("-inf")}])
def test_nan_and_infinity_are_refused_naming_the_key(value: Any) -> None:
    """NaN and Infinity are not JSON: refused with the key named, state unchanged."""
    tracker = SessionTracker("nan-state-session")
    tracker.set_state("kept", 1)
    with pytest.raises(StateNotSerializableError, match="'metric'"):
        tracker.set_state("metric", value)
    assert dict(tracker.state) == {"kept": 1}


def test_circular_value_is_not_serializable() -> None:
    """A self-referencing value is refused as not serializable rather than crashing."""
    loop: list[Any] = []
    loop.append(loop)
    store = StateStore(10_240, "truncate", owner="s")
    with pytest.raises(StateNotSerializableError):
        store.set("loop", loop)
    assert store.snapshot.to_dict() == {}


@pytest.mark.parametrize("key", ["", 3, None, "half \ud800 surrogate"])
def test_keys_must_be_non_empty_text(key: Any) -> None:
    """A state key that is not a non-empty, UTF-8-encodable string is refused; nothing changes."""
    store = StateStore(10_240, "truncate", owner="s")
    store.set("kept", 1)
    with pytest.raises(StateNotSerializableError):
        store.update({key: 1})
    assert store.snapshot.to_dict() == {"kept": 1}


def test_text_that_is_not_unicode_is_not_serializable() -> None:
    """A value holding a lone surrogate cannot be UTF-8 JSON and is refused, naming the key."""
    store = StateStore(10_240, "truncate", owner="s")
    with pytest.raises(StateNotSerializableError, match="'note'"):
        store.set("note", "broken \udc80 text")


def test_update_state_is_all_or_nothing() -> None:
    """update_state applies every key or, if one is refused, none of them."""
    tracker = SessionTracker("state-all-or-nothing", state_limit_bytes=300, state_overflow="error")
    tracker.update_state({"a": 1})
    with pytest.raises(StateNotSerializableError):
        tracker.update_state({"b": 2, "c": object(), "d": 4})
    assert dict(tracker.state) == {"a": 1}
    with pytest.raises(StateTooLargeError):
        tracker.update_state({"b": 2, "e": "e" * 400})
    assert dict(tracker.state) == {"a": 1}
    tracker.update_state({"b": 2, "c": 3})
    assert dict(tracker.state) == {"a": 1, "b": 2, "c": 3}


def test_delete_and_clear_state() -> None:
    """delete_state removes one key (a missing key is fine) and clear_state empties the state."""
    tracker = SessionTracker("state-delete-clear")
    tracker.update_state({"a": 1, "b": 2})
    tracker.delete_state("a")
    tracker.delete_state("missing")
    assert dict(tracker.state) == {"b": 2}
    tracker.clear_state()
    assert dict(tracker.state) == {}


def test_state_property_is_read_only() -> None:
    """tracker.state cannot be assigned or mutated, and editing a nested copy changes nothing."""
    tracker = SessionTracker("state-read-only")
    tracker.set_state("plan", ["a"])
    view = tracker.state
    with pytest.raises(TypeError):
        view["plan"] = ["b"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        tracker.state = {}  # type: ignore[misc]
    view["plan"].append("b")
    assert dict(tracker.state) == {"plan": ["a"]}


def test_mutating_the_users_objects_does_not_change_the_state() -> None:
    """The state holds a copy: later changes to the dict or list the user passed are not seen."""
    tracker = SessionTracker("state-copy-on-set")
    plan = ["search"]
    profile = {"name": "ada"}
    tracker.update_state({"plan": plan, "profile": profile})
    plan.append("answer")
    profile["name"] = "bob"
    assert dict(tracker.state) == {"plan": ["search"], "profile": {"name": "ada"}}


def test_each_step_records_the_state_it_began_with(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A step keeps the state as of begin_step; later set_state or mutation does not leak in."""
    tracker = SessionTracker("state-per-step")
    plan = ["search"]
    tracker.set_state("plan", plan)
    first = tracker.begin_step()
    plan.append("mutated")
    tracker.set_state("plan", ["search", "answer"])
    tracker.set_state("extra", 1)
    first.end("one")
    second = tracker.begin_step()
    tracker.clear_state()
    second.end("two")
    steps = steps_of("state-per-step")
    assert [s.state for s in steps] == [
        {"plan": ["search"]},
        {"plan": ["search", "answer"], "extra": 1},
    ]


def test_state_limit_is_read_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTSESSION_STATE_LIMIT_BYTES and _STATE_OVERFLOW set a tracker's defaults."""
    from agentsession._config import reset_settings

    monkeypatch.setenv("AGENTSESSION_STATE_LIMIT_BYTES", "120")
    monkeypatch.setenv("AGENTSESSION_STATE_OVERFLOW", "error")
    reset_settings()
    tracker = SessionTracker("state-from-env")
    tracker.set_state("ok", "x" * 50)
    with pytest.raises(StateTooLargeError):
        tracker.set_state("too_much", "y" * 100)


@pytest.mark.parametrize(("limit", "overflow"), [(1, "truncate"), (100, "clip")])
def test_bad_state_settings_raise(limit: int, overflow: Any) -> None:
    """A state limit under 2 bytes or an unknown overflow mode is refused by the tracker."""
    with pytest.raises(ValueError, match="state_"):
        SessionTracker("state-bad-settings", state_limit_bytes=limit, state_overflow=overflow)


# -- property: any state fits under the cap after truncation, or is refused --------------------

# Floats whose shortest forms differ between JSON encoders (1e-05 vs 0.00001, 1e-07 vs 1e-7).
awkward_floats = st.sampled_from([1e-05, 1.25e-07, -3.5e-08, 1e16, 2.5e22, 0.0001, 5e-324])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | awkward_floats
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
states = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=8)


def _smallest_possible_size(state: dict[str, Any]) -> int:
    """The size of the state with every value that a marker would shrink replaced by a marker."""
    entries = []
    for key, value in state.items():
        encoded = len(compact(value))
        marker = len(compact(truncation_marker(encoded)))
        entries.append(len(compact(key)) + 1 + min(encoded, marker))
    return 2 + sum(entries) + max(len(entries) - 1, 0)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(state=states, limit=st.integers(min_value=2, max_value=3000))
def test_any_state_fits_after_truncation_or_is_refused(state: dict[str, Any], limit: int) -> None:
    """Any state ends up as a snapshot of at most the limit, measured as compact UTF-8 JSON, or is
    refused with StateTooLargeError only when not even truncation could make it fit."""
    store = StateStore(limit, "truncate", owner="prop")
    try:
        store.update(state)
    except StateTooLargeError:
        assert _smallest_possible_size(state) > limit
        assert store.snapshot.to_dict() == {}
        return
    snapshot = store.snapshot
    decoded = snapshot.to_dict()
    assert snapshot.size <= limit
    assert snapshot.size == len(compact(decoded))
    assert list(decoded) == list(state)
    for key, value in state.items():
        if key in snapshot.truncated_keys:
            assert decoded[key] == truncation_marker(len(compact(value)))
        else:
            assert decoded[key] == json.loads(compact(value))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(state=states, limit=st.integers(min_value=2, max_value=3000))
def test_error_mode_accepts_exactly_the_states_that_fit(state: dict[str, Any], limit: int) -> None:
    """In error mode a state is stored as is if its JSON fits the limit, else refused."""
    store = StateStore(limit, "error", owner="prop")
    size = len(compact(json.loads(compact(state))))
    if size <= limit:
        store.update(state)
        assert store.snapshot.to_dict() == json.loads(compact(state))
        assert store.snapshot.size == size
    else:
        with pytest.raises(StateTooLargeError):
            store.update(state)
        assert store.snapshot.to_dict() == {}
