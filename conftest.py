"""Fixtures every test suite under tests/ shares. A suite opts in to fresh process state per test
with an autouse fixture that requests ``isolated`` (see tests/core/conftest.py).

It sits at the repository root, which ``python -m pytest`` puts on sys.path anyway: in tests/ it
would put tests/ there, and tests/langchain or tests/phoenix would shadow the real packages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agentsession
from agentsession import MemoryBackend, SessionSummary, Step, testing


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Fresh process-wide state around a test, with a MemoryBackend as the default backend.

    The test runs in its own temporary directory, so nothing writes ``.agentsession/`` into the
    repository.
    """
    monkeypatch.chdir(tmp_path)
    with testing.isolated() as backend:
        yield backend


@pytest.fixture
def backend(isolated: MemoryBackend) -> MemoryBackend:
    """The default backend of this test: trackers that name no backend write here."""
    return isolated


@pytest.fixture
def steps_of(backend: MemoryBackend) -> Callable[[str], list[Step]]:
    """Flush the background worker, then return one session's steps from the default backend."""

    def read(session_id: str) -> list[Step]:
        assert agentsession.flush(5.0)
        return backend.list_steps(session_id)

    return read


@pytest.fixture
def summary_of(backend: MemoryBackend) -> Callable[[str], SessionSummary]:
    """Flush the background worker, then return one session's summary from the default backend."""

    def read(session_id: str) -> SessionSummary:
        assert agentsession.flush(5.0)
        summary = backend.get_session(session_id)
        assert summary is not None, f"session {session_id!r} was never written"
        return summary

    return read
