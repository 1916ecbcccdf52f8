"""examples/llamaindex_rag.py runs offline and records one session into the default backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import agentsession
import agentsession_llamaindex
from agentsession import MemoryBackend

EXAMPLE = Path(__file__).parents[2] / "examples" / "llamaindex_rag.py"


@pytest.fixture
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llamaindex_rag_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_records_the_query_and_the_chat_turn(
    example: ModuleType, backend: MemoryBackend
) -> None:
    """run("id") records steps 0 (query) and 1 (chat turn) of that session, with retrievals."""
    try:
        assert example.run("llamaindex-example-0001") == "llamaindex-example-0001"
    finally:
        agentsession_llamaindex.uninstrument()
    assert agentsession.flush(5.0)
    steps = backend.list_steps("llamaindex-example-0001")
    assert [s.step_index for s in steps] == [0, 1]
    for step in steps:
        assert "VectorIndexRetriever.retrieve" in [call.name for call in step.tool_calls]
    assert steps[1].state["sources"] == 2


def test_main_prints_the_timeline(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """main() prints the session's timeline and where it is stored."""
    try:
        example.main()
    finally:
        agentsession_llamaindex.uninstrument()
    out = capsys.readouterr().out
    assert "VectorIndexRetriever.retrieve" in out
    assert "Replay it with: agentsession sessions show" in out
