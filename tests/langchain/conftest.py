"""The LangChain adapter's tests: fresh agentsession state per test (the ``isolated`` fixture of
the root conftest.py), no LangSmith tracing, instrument() off after every test, and no run left in
the registries handlers share, nor a tool in the context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentsession_langchain
from agentsession import MemoryBackend
from agentsession_langchain import _runs

_TRACING_VARIABLES = (
    "LANGCHAIN_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_API_KEY",
)


@pytest.fixture(autouse=True)
def _langchain_test_state(
    isolated: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fresh agentsession state and no LangSmith tracing; afterwards instrument() is off and
    every run a handler saw has been released."""
    for variable in _TRACING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    yield
    agentsession_langchain.uninstrument()
    assert _runs.recording == {}
    assert _runs.claimed == {}
    assert _runs._inside_tool.get() is None
