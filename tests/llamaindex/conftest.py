"""Fixtures of the LlamaIndex adapter tests: fresh agentsession state, our handlers on the root
dispatcher, and proof after each test that no span or call is left in the adapter's maps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agentsession
import agentsession_llamaindex
from agentsession import MemoryBackend, Step, testing
from agentsession_llamaindex import SessionSpanHandler


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryBackend]:
    """Fresh process-wide state around each test, with a MemoryBackend as the default backend."""
    monkeypatch.chdir(tmp_path)
    with testing.isolated() as backend:
        yield backend


@pytest.fixture
def backend(isolated: MemoryBackend) -> MemoryBackend:
    """The default backend of this test: trackers that name no backend write here."""
    return isolated


@pytest.fixture
def handler() -> Iterator[SessionSpanHandler]:
    """instrument() for the test; afterwards the adapter holds no span and no call in flight."""
    assert agentsession_llamaindex.instrument()
    span_handler = agentsession_llamaindex._instrumentor.span_handler
    assert span_handler is not None
    recorder = span_handler.recorder
    try:
        yield span_handler
        assert recorder.spans == {}, f"spans left open: {list(recorder.spans)}"
        assert recorder.calls == {}, f"calls left open: {list(recorder.calls)}"
        assert recorder.streams == {}
        assert not any(k.startswith("faults.") for k in agentsession.get_stats())
    finally:
        agentsession_llamaindex.uninstrument()


@pytest.fixture
def steps_of(backend: MemoryBackend) -> Callable[[str], list[Step]]:
    """Flush the background worker, then return one session's steps from the default backend."""

    def read(session_id: str) -> list[Step]:
        assert agentsession.flush(5.0)
        return backend.list_steps(session_id)

    return read
