"""Fixtures of the explorer tests: a real SQLite store of generated sessions, and isolation of
agentsession's process-wide state (default backend, settings, counters) around each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from explorer_data import build_store

from agentsession import MemoryBackend, SQLiteBackend, testing


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Fresh process-wide state around each test, with a MemoryBackend as the default backend."""
    monkeypatch.chdir(tmp_path)
    with testing.isolated() as backend:
        yield backend


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
