"""Helpers for testing code that records sessions, for agentsession's users and its own tests.

from agentsession.testing import capture_steps

def test_agent_records_three_steps():
    with capture_steps() as captured:
        run_my_agent()
    assert [s.step_index for s in captured.steps] == [0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ._fake_openai import FakeOpenAIServer, FakeReply, RecordedRequest
from ._models import SessionEvent, SessionSummary, Step
from ._worker import Emitter, swap_default_emitter
from .backends._memory import MemoryBackend

__all__ = [
    "CapturedSessions",
    "FailingBackend",
    "FakeOpenAIServer",
    "FakeReply",
    "RecordedRequest",
    "capture_steps",
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
