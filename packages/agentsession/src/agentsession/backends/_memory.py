"""An in-process backend: for tests, notebooks and short scripts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timezone

from .._models import SessionEvent, SessionFilter, SessionPage, SessionSummary, Step
from ._base import SummaryBuilder, event_time, page_of_steps, paginate

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Keeps every event in memory; reads answer from what has been written so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._summaries: dict[str, SummaryBuilder] = {}
        self._steps: dict[str, list[Step]] = {}
        self.events: list[SessionEvent] = []
        """Every event received, in order; handy in tests."""

    def write(self, events: Sequence[SessionEvent]) -> None:
        with self._lock:
            for event in events:
                self.events.append(event)
                builder = self._summaries.get(event.session_id)
                if builder is None:
                    builder = SummaryBuilder(event.session_id, event_time(event))
                    self._summaries[event.session_id] = builder
                builder.apply(event)
                if isinstance(event, Step):
                    self._steps.setdefault(event.session_id, []).append(event)

    def flush(self) -> None:
        """Nothing to do: every write is already visible."""

    def close(self) -> None:
        """Nothing to release; the data stays readable."""

    def list_sessions(
        self,
        filters: SessionFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        now = datetime.now(timezone.utc)
        with self._lock:
            summaries = [b.summary(now) for b in self._summaries.values()]
        return paginate(summaries, filters, limit, cursor)

    def get_session(self, session_id: str) -> SessionSummary | None:
        with self._lock:
            builder = self._summaries.get(session_id)
            return None if builder is None else builder.summary()

    def list_steps(
        self, session_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        with self._lock:
            steps = list(self._steps.get(session_id, ()))
        steps.sort(key=lambda s: s.step_index)
        return page_of_steps(steps, after, limit)

    @property
    def steps(self) -> list[Step]:
        """Every step received, in the order the worker delivered them."""
        with self._lock:
            return [e for e in self.events if isinstance(e, Step)]
