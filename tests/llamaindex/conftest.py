"""Fixtures of the LlamaIndex adapter tests: fresh agentsession state, our handlers on the root
dispatcher, and proof after each test that no span or call is left in the adapter's maps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentsession
import agentsession_llamaindex
from agentsession import MemoryBackend
from agentsession_llamaindex import SessionSpanHandler


@pytest.fixture(autouse=True)
def _fresh_process_state(isolated: MemoryBackend) -> None:
    """Each test gets fresh agentsession state (the root conftest.py)."""


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
