"""examples/langchain_chat.py: three turns recorded as one session, runnable offline."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import agentsession
from agentsession import SessionSummary, Step

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_chat.py"


@pytest.fixture
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langchain_chat_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_records_the_conversation_as_one_session(
    example: ModuleType,
    steps_of: Callable[[str], list[Step]],
    summary_of: Callable[[str], SessionSummary],
) -> None:
    """run() records 4 steps (3 turns, one with a tool) in the default backend, one session."""
    session_id = example.run("lc-example-0001")
    assert session_id == "lc-example-0001"
    steps = steps_of(session_id)
    assert [s.step_index for s in steps] == [0, 1, 2, 3]
    assert [c.name for c in steps[2].tool_calls] == ["order_status"]
    assert [s.state["turn"] for s in steps] == [1, 2, 2, 3]
    summary = summary_of(session_id)
    assert (summary.status, summary.total_tokens, summary.user_ids) == (
        "completed",
        365,
        ["user-a"],
    )


def test_run_makes_a_new_session_id_when_given_none(example: ModuleType) -> None:
    """run() with no id returns the generated one; two runs are two sessions."""
    assert example.run() != example.run()


def test_main_prints_the_timeline(
    example: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """main() flushes and prints the session's timeline from the default store."""
    monkeypatch.setattr(sys, "argv", ["langchain_chat.py"])
    example.main()
    printed = capsys.readouterr().out
    assert "4 recorded, 0 failed" in printed
    assert "order_status" in printed
    assert agentsession.flush(5.0)
