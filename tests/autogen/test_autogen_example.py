"""examples/autogen_team.py runs offline and records the session it describes."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from agentsession import Step

EXAMPLE = Path(__file__).parents[2] / "examples" / "autogen_team.py"


@pytest.fixture
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autogen_team_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_records_the_team_as_one_session(
    example: ModuleType, steps_of: Callable[[str], list[Step]]
) -> None:
    """run() returns the session id; its steps are the planner's two calls, then the booker's."""
    session_id = example.run("example-session-1")
    assert session_id == "example-session-1"
    steps = steps_of(session_id)
    assert [(s.step_index, s.name) for s in steps] == [
        (0, "planner"),
        (1, "planner"),
        (2, "booker"),
    ]
    assert [c.name for c in steps[1].tool_calls] == ["search_flights"]
    assert steps[1].state == {"user_query": example.TASK, "results_count": 2}


def test_main_prints_the_timeline(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """main() prints the recorded session's timeline."""
    example.main()
    out = capsys.readouterr().out
    assert "3 recorded, 0 failed" in out
    assert "booker" in out
    assert "search_flights" in out
