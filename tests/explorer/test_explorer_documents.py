"""The JSON text the explorer serves: SQLite's own projection of steps against the models,
for values that are easy to get wrong, and the step tree on long and looping parent links."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from explorer_data import T0, step

from agentsession import MemoryBackend, SQLiteBackend, Step, ToolCall
from agentsession._replay import state_diff, step_tree
from agentsession.backends._base import STEP_FIELDS, steps_as_json

AWKWARD_STEPS = [
    step("s'%\"1", 0, T0, cost_usd=0.1 + 0.2, duration_ms=1e-7),
    step("s'%\"1", 1, T0 + timedelta(microseconds=1), cost_usd=1e300, duration_ms=5e-324),
    step(
        "s'%\"1",
        2,
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
        duration_ms=-0.0,
        cost_usd=None,
        input_tokens=2**62,
        total_tokens=None,
        model=None,
    ),
    step("s'%\"1", 3, datetime(1900, 1, 1, tzinfo=timezone.utc), duration_ms=float("inf")),
    step(
        "s'%\"1",
        4,
        T0,
        error='quote " backslash \\ newline \n tab \t nul \x00 bell \x07 emoji 🦜 é',
        status="failed",
        name="%s %d %%",
        state={"ключ": ["värde", {"nested": None}], "n": 1.5},
        input="plain text",
        output=[{"content": "</script><b>not html</b>"}],
        tool_calls=(ToolCall(name="t", input={"q": 1}, started_at=T0, duration_ms=2.5),),
        tags=("a", "b"),
        metadata={"k": [1, 2]},
        user_id="u'1",
    ),
]


@pytest.fixture
def sqlite(tmp_path: Path) -> SQLiteBackend:
    backend = SQLiteBackend(tmp_path / "s.db")
    backend.write(AWKWARD_STEPS)
    return backend


def test_sqlite_json_holds_what_the_models_hold(sqlite: SQLiteBackend) -> None:
    """Floats to the last bit, times before 1970 and with microseconds, any text: all equal."""
    texts = sqlite.list_steps_json("s'%\"1")
    assert [json.loads(text) for text in texts] == [
        json.loads(s.model_dump_json()) for s in sqlite.list_steps("s'%\"1")
    ]
    assert json.loads(texts[0])["cost_usd"] == 0.1 + 0.2
    assert json.loads(texts[2])["started_at"] == "1969-12-31T23:59:59.999999Z"
    assert json.loads(texts[3])["duration_ms"] is None  # infinity, as pydantic writes it
    sqlite.close()


def test_any_key_names_and_the_session_id_can_be_projected(sqlite: SQLiteBackend) -> None:
    """Keys with quotes, percent signs or other scripts, and the session id, come out right."""
    fields = {"it's": "step_index", "100%": "model", "ключ": "session_id", '"q"': "state"}
    texts = sqlite.list_steps_json("s'%\"1", fields)
    first = json.loads(texts[0])
    assert first == {"it's": 0, "100%": "gpt-4o-mini", "ключ": "s'%\"1", '"q"': {}}
    assert sqlite.list_steps_json("s'%\"1", {}) == ["{}"] * 5
    with pytest.raises(ValueError, match="no field 'nope'"):
        sqlite.list_steps_json("s'%\"1", {"x": "nope"})
    assert sqlite.list_steps_json("unknown") == []
    sqlite.close()


def test_any_reader_gives_the_same_json_through_the_models(sqlite: SQLiteBackend) -> None:
    """steps_as_json on a MemoryBackend (models) parses to what SQLite's projection holds."""
    memory = MemoryBackend()
    memory.write(AWKWARD_STEPS)
    for fields in (None, {"a": "started_at", "b": "tool_calls", "c": "session_id"}):
        ours = [json.loads(t) for t in steps_as_json(sqlite, "s'%\"1", fields)]
        theirs = [json.loads(t) for t in steps_as_json(memory, "s'%\"1", fields)]
        assert ours == theirs
    assert list(STEP_FIELDS) == list(Step.model_fields)
    sqlite.close()


def test_step_tree_follows_a_long_chain_in_linear_time() -> None:
    """Twenty thousand steps each the child of the one before: one path, depths 0 to n-1."""
    count = 20_000
    links = [(f"t{i}", f"t{i - 1}" if i else None) for i in range(count)]
    placed, parents = step_tree(links)
    assert placed == [(i, i) for i in range(count)]
    assert parents == {i: i - 1 for i in range(1, count)}


def test_step_tree_breaks_cycles_at_their_earliest_step() -> None:
    """Looping parent links lose the link of the loop's earliest step; every step shows once."""
    links = [
        ("a", "c"),  # 0 -> 2 -> 1 -> 0: a loop of three
        ("b", "a"),
        ("c", "b"),
        ("d", "d"),  # its own parent: no link
        ("e", "b"),  # a tail hanging off the loop
        ("f", "g"),  # 5 <-> 6
        ("g", "f"),
    ]
    placed, parents = step_tree(links)
    assert sorted(position for position, _ in placed) == list(range(7))
    assert parents == {1: 0, 2: 1, 4: 1, 6: 5}
    assert placed == [(0, 0), (1, 1), (2, 2), (4, 2), (3, 0), (5, 0), (6, 1)]


def test_state_diff_names_keys_added_changed_and_removed_in_order() -> None:
    """Each list keeps its state's key order; equal values (1 == 1.0) are not changes."""
    diff = state_diff({"a": 1, "b": [1], "c": 0, "gone": 1}, {"b": [2], "a": 1.0, "new": 1, "c": 1})
    assert diff.added == ["new"]
    assert diff.changed == ["b", "c"]
    assert diff.removed == ["gone"]
