"""Helpers for testing code that records sessions, for agentsession's users and its own tests.

from agentsession.testing import capture_steps

def test_agent_records_three_steps():
    with capture_steps() as captured:
        run_my_agent()
    assert [s.step_index for s in captured.steps] == [0, 1, 2]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ._config import ENV_PREFIX, reset_settings
from ._context import live_sessions
from ._emitter import Emitter, live_emitters
from ._fake_openai import FakeOpenAIServer, FakeReply, RecordedRequest
from ._health import reset_stats
from ._models import SessionEvent, SessionSummary, Step
from ._pricing import get_price_table, set_price_table
from ._worker import emitter_for, forget_closed_emitters, swap_default_emitter
from .backends._memory import MemoryBackend

__all__ = [
    "CapturedSessions",
    "FailingBackend",
    "FakeOpenAIServer",
    "FakeReply",
    "RecordedRequest",
    "capture_steps",
    "isolated",
]


class CapturedSessions(MemoryBackend):
    """What :func:`capture_steps` collected: a MemoryBackend with shortcuts for assertions."""

    def steps_of(self, session_id: str) -> list[Step]:
        """The steps of one session in step order."""
        return self.list_steps(session_id)

    @property
    def session_ids(self) -> list[str]:
        """Every session id seen, in the order first seen."""
        return list(dict.fromkeys(event.session_id for event in self.events))

    def only_session(self) -> SessionSummary:
        """The summary of the single session recorded; AssertionError if there were others."""
        ids = self.session_ids
        assert len(ids) == 1, f"expected one session, got {len(ids)}: {ids}"
        summary = self.get_session(ids[0])
        assert summary is not None
        return summary


@contextmanager
def capture_steps() -> Iterator[CapturedSessions]:
    """Record into memory, synchronously, every session whose tracker names no backend.

    Inside the block steps appear in ``captured`` as soon as they end (no background worker).
    The previous default backend is put back afterwards.
    """
    captured = CapturedSessions()
    with swap_default_emitter(Emitter(captured, sync=True)):
        yield captured


@contextmanager
def isolated() -> Iterator[CapturedSessions]:
    """Run a block as if agentsession had just been imported, then put everything back.

    Inside: no ``AGENTSESSION_*`` variable is set (the backend URL is ``memory://``), settings
    are read anew, counters are zero, no session is known by id, the default price table is in
    force and the default backend is a fresh in-memory one (yielded), written by the background
    worker as in production. Emitters made inside are closed on the way out, and the default
    backend in force before the block is put back. Meant for an autouse fixture, so that tests
    cannot leak sessions or settings into each other.
    """
    saved_environment = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for name in saved_environment:
        del os.environ[name]
    os.environ[f"{ENV_PREFIX}BACKEND_URL"] = "memory://"
    price_table = get_price_table()
    emitters_before = set(live_emitters.snapshot())
    _reset_process_state()
    captured = CapturedSessions()
    emitter = emitter_for(captured)
    try:
        with swap_default_emitter(emitter):
            yield captured
    finally:
        emitter.close(timeout=5.0)
        for other in live_emitters.snapshot():
            if other not in emitters_before:
                other.close(timeout=5.0)
        forget_closed_emitters()
        del os.environ[f"{ENV_PREFIX}BACKEND_URL"]
        os.environ.update(saved_environment)
        set_price_table(price_table)
        _reset_process_state()


def _reset_process_state() -> None:
    reset_settings()
    reset_stats()
    live_sessions.clear()


class FailingBackend(MemoryBackend):
    """A backend whose writes raise, to check that recording faults never reach your code."""

    def __init__(self, error: Exception | None = None, *, failures: int | None = None) -> None:
        super().__init__()
        self.error = error or OSError("disk full (FailingBackend)")
        self.failures_left = failures
        self.attempts = 0

    def write(self, events: Sequence[SessionEvent]) -> None:
        self.attempts += 1
        if self.failures_left is None or self.failures_left > 0:
            if self.failures_left is not None:
                self.failures_left -= 1
            raise self.error
        super().write(events)
