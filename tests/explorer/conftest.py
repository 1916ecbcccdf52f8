"""Fixtures of the explorer tests: a real SQLite store of generated sessions, and isolation of
agentsession's process-wide state (default backend, settings, counters) around each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from explorer_data import build_store

from agentsession import MemoryBackend, SQLiteBackend
from agentsession._config import ENV_PREFIX, reset_settings
from agentsession._context import live_sessions
from agentsession._health import reset_stats
from agentsession._worker import _live_emitters, set_default_backend


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Default settings, empty counters and a MemoryBackend as the default backend."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv(f"{ENV_PREFIX}BACKEND_URL", "memory://")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    reset_stats()
    live_sessions.clear()
    emitters_before = set(_live_emitters.snapshot())
    backend = MemoryBackend()
    set_default_backend(backend)
    yield backend
    set_default_backend(None)
    for emitter in _live_emitters.snapshot():
        if emitter not in emitters_before:
            emitter.close(timeout=5.0)
    live_sessions.clear()
    reset_settings()
    reset_stats()


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file of generated sessions (see explorer_data), written once for all tests."""
    path = tmp_path_factory.mktemp("explorer") / "sessions.db"
    build_store(path)
    return path


@pytest.fixture
def store(store_path: Path) -> Iterator[SQLiteBackend]:
    """The generated store, opened for one test (tests that write use their own copy)."""
    backend = SQLiteBackend(store_path)
    yield backend
    backend.close()
