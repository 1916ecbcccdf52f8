"""Fixtures of the explorer tests: a real SQLite store of generated sessions, and isolation of
agentsession's process-wide state (default backend, settings, counters) around each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from explorer_data import build_store

from agentsession import MemoryBackend, SQLiteBackend


@pytest.fixture(autouse=True)
def _fresh_process_state(isolated: MemoryBackend) -> None:
    """Each test gets fresh agentsession state (the root conftest.py)."""


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
