"""Fixtures for the AutoGen adapter's tests: fresh process state per test, steps recorded into
memory, scripted models (AutoGen's ReplayChatCompletionClient) and a fake OpenAI server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agentsession
from agentsession import MemoryBackend, SessionSummary, Step, testing
from agentsession.testing import FakeOpenAIServer

# The whole suite is about AutoGen: without it there is nothing here to run.
pytest.importorskip("autogen_agentchat")

import agentsession_autogen


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Fresh process-wide state around each test, with a MemoryBackend as the default backend.

    Also leaves AutoGen as it was found: instrumentation a test forgot to undo is undone.
    """
    monkeypatch.chdir(tmp_path)
    with testing.isolated() as backend:
        yield backend
    agentsession_autogen.uninstrument()


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


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """An OpenAI-compatible server on 127.0.0.1 that records every request it receives."""
    with FakeOpenAIServer() as fake:
        yield fake
