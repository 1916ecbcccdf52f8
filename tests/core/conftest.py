"""Fixtures shared by the core tests: every test starts from default settings and empty counters,
and records into memory, so no test writes ``.agentsession/`` into the repository."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agentsession
from agentsession import MemoryBackend, SessionSummary, Step
from agentsession._config import ENV_PREFIX, reset_settings
from agentsession._context import live_sessions
from agentsession._health import reset_stats
from agentsession._pricing import get_price_table, set_price_table
from agentsession._worker import _by_backend, _live_emitters, set_default_backend


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Reset process-wide state around each test and make a MemoryBackend the default backend."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    # Should anything rebuild the default backend from the URL, it still stays in memory.
    monkeypatch.setenv(f"{ENV_PREFIX}BACKEND_URL", "memory://")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    reset_stats()
    live_sessions.clear()
    price_table = get_price_table()
    emitters_before = set(_live_emitters.snapshot())
    backend = MemoryBackend()
    set_default_backend(backend)
    yield backend
    set_default_backend(None)
    set_price_table(price_table)
    for emitter in _live_emitters.snapshot():
        if emitter not in emitters_before:
            emitter.close(timeout=5.0)
    for key, emitter in list(_by_backend.items()):
        if emitter._closed:
            _by_backend.pop(key, None)
    live_sessions.clear()
    reset_settings()
    reset_stats()


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
