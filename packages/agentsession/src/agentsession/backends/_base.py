"""The plug-in points every backend implements, and the aggregation they share."""

from __future__ import annotations

import base64
import bisect
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from pydantic_core import to_json

from .._models import (
    ModelUsage,
    Score,
    SessionEnded,
    SessionEvent,
    SessionFilter,
    SessionPage,
    SessionStarted,
    SessionStatus,
    SessionSummary,
    Step,
)

__all__ = [
    "STEP_FIELDS",
    "Backend",
    "SessionReader",
    "SessionWriter",
    "StepJsonReader",
    "SummaryBuilder",
    "decode_cursor",
    "encode_cursor",
    "effective_status",
    "event_time",
    "check_step_limit",
    "page_of_steps",
    "step_json",
    "steps_as_json",
]

STEP_FIELDS: Mapping[str, str] = {name: name for name in Step.model_fields}
"""Every field of a step under its own name: the default shape of :func:`steps_as_json`."""


@runtime_checkable
class SessionWriter(Protocol):
    """The write side. Called from agentsession's background worker only, never concurrently."""

    def write(self, events: Sequence[SessionEvent]) -> None:
        """Persist a batch of events, in order. Raising makes the worker retry the batch."""

    def flush(self) -> None:
        """Make everything written so far durable."""

    def close(self) -> None:
        """Release resources; safe to call twice."""


@runtime_checkable
class SessionReader(Protocol):
    """The read side, for the CLI, the explorer and tests."""

    def list_sessions(
        self,
        filters: SessionFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """Sessions newest first (by start time), ``limit`` at a time."""

    def get_session(self, session_id: str) -> SessionSummary | None:
        """One session's summary, or None if it is unknown."""

    def list_steps(
        self, session_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        """A session's steps in step order; [] for a session it does not know.

        A page of them for a long session: only the steps whose ``step_index`` is greater than
        ``after`` (all when None), at most ``limit`` of them (all when None; ValueError when
        under 1). The next page starts after the last step's index.
        """


@runtime_checkable
class Backend(SessionWriter, SessionReader, Protocol):
    """A backend that can both store and answer queries (all built-in ones do)."""


@runtime_checkable
class StepJsonReader(Protocol):
    """An optional fast path of the read side: a session's steps as JSON text, not models.

    A server that only passes steps on (the explorer) then skips building a Step per step,
    which is most of the cost of reading a long session.
    """

    def list_steps_json(
        self,
        session_id: str,
        fields: Mapping[str, str] | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Each step of a session as one JSON object, in step order.

        ``after`` and ``limit`` select a page of the steps, as in ``SessionReader.list_steps``.
        ``fields`` maps each key of the objects to the Step field it holds (default:
        :data:`STEP_FIELDS`). Each object parses to the values ``Step.model_dump(mode="json")``
        holds (an infinite number as null, as ``model_dump_json`` writes it); numbers may be
        spelled differently.
        """


def steps_as_json(
    reader: SessionReader,
    session_id: str,
    fields: Mapping[str, str] | None = None,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> list[str]:
    """A session's steps as JSON objects (see :class:`StepJsonReader`), from any reader."""
    if isinstance(reader, StepJsonReader):
        if after is None and limit is None:  # the call a reader written before paging takes
            return reader.list_steps_json(session_id, fields)
        return reader.list_steps_json(session_id, fields, after=after, limit=limit)
    selected = check_step_fields(fields)
    steps = reader.list_steps(session_id, after=after, limit=limit)
    return [step_json(step, selected) for step in steps]


def check_step_limit(limit: int | None) -> None:
    """ValueError for a page size of steps under 1 (None: no limit)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def page_of_steps(steps: Sequence[Step], after: int | None, limit: int | None) -> list[Step]:
    """The steps past ``after``, at most ``limit`` of them, from ``steps`` in step order: the
    in-process backends' page of :meth:`SessionReader.list_steps`."""
    check_step_limit(limit)
    start = 0 if after is None else bisect.bisect_right(steps, after, key=_step_index)
    return list(steps[start:] if limit is None else steps[start : start + limit])


def _step_index(step: Step) -> int:
    return step.step_index


def step_json(step: Step, fields: Mapping[str, str]) -> str:
    """One step as a JSON object with ``fields`` (checked), as :func:`steps_as_json` gives it."""
    values = {}
    for key, name in fields.items():
        value = getattr(step, name)
        if isinstance(value, float) and not math.isfinite(value):
            value = None  # JSON has no infinity; model_dump_json writes null too
        values[key] = value
    return to_json(values, serialize_unknown=True).decode()


def check_step_fields(fields: Mapping[str, str] | None) -> Mapping[str, str]:
    """``fields``, or every field when None; ValueError naming a field a step does not have."""
    if fields is None:
        return STEP_FIELDS
    unknown = sorted(set(fields.values()) - set(STEP_FIELDS))
    if unknown:
        raise ValueError(f"steps have no field {unknown[0]!r}; known: {', '.join(STEP_FIELDS)}")
    return fields


def event_time(event: SessionEvent) -> datetime:
    """When an event happened: what a session first seen through it starts at."""
    if isinstance(event, SessionEnded):
        return event.ended_at
    if isinstance(event, Score):
        return event.created_at
    return event.started_at


def effective_status(
    status: SessionStatus, last_activity_at: datetime, timeout_s: float | None, now: datetime
) -> SessionStatus:
    """A session never ended reads as ``timed_out`` once idle for longer than its timeout."""
    idle = now - last_activity_at
    if status == "in_progress" and timeout_s is not None and idle > timedelta(seconds=timeout_s):
        return "timed_out"
    return status


def encode_cursor(started_at: datetime, session_id: str) -> str:
    """An opaque keyset cursor: the sort key of the last session of a page."""
    raw = json.dumps([started_at.isoformat(), session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; raises ValueError for a cursor it did not make."""
    try:
        started, session_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        started_at = datetime.fromisoformat(started)
        if started_at.utcoffset() is None:  # not ours, and not comparable with stored times
            raise ValueError("cursor time has no time zone")
        return started_at, str(session_id)
    except Exception as exc:
        raise ValueError(f"invalid cursor {cursor[:40]!r}") from exc


class SummaryBuilder:
    """Folds session events into a :class:`SessionSummary`; shared by the in-process backends."""

    def __init__(self, session_id: str, first_seen: datetime) -> None:
        self.session_id = session_id
        self.status: SessionStatus = "in_progress"
        self.started_at = first_seen
        self.ended_at: datetime | None = None
        self.last_activity_at = first_seen
        self.timeout_s: float | None = None
        self.total_steps = 0
        self.error_count = 0
        self.dropped_steps = 0
        self.usage: dict[str, ModelUsage] = {}
        self.user_ids: list[str] = []
        self.tags: list[str] = []
        self.environment: str | None = None
        self.parent_session_id: str | None = None
        self.parent_trace_id: str | None = None
        self.end_reason: str | None = None
        self.metadata: dict[str, object] = {}
        self.scores: dict[str, Score] = {}

    def apply(self, event: SessionEvent) -> None:
        if isinstance(event, Step):
            self._apply_step(event)
        elif isinstance(event, Score):
            # One score per name, the latest given; a score is no activity of the session.
            previous = self.scores.get(event.name)
            if previous is None or event.created_at >= previous.created_at:
                self.scores[event.name] = event
        elif isinstance(event, SessionStarted):
            self.started_at = event.started_at
            self.last_activity_at = max(self.last_activity_at, event.started_at)
            self.timeout_s = event.timeout_s
            self.environment = event.environment
            self.parent_session_id = event.parent_session_id
            self.parent_trace_id = event.parent_trace_id
            self.metadata = dict(event.metadata)
            self._add_unique(self.tags, event.tags)
            if event.user_id is not None:
                self._add_unique(self.user_ids, (event.user_id,))
        elif isinstance(event, SessionEnded):
            self.status = event.status
            self.ended_at = event.ended_at
            self.end_reason = event.reason
            self.dropped_steps = event.dropped_steps
            self.last_activity_at = max(self.last_activity_at, event.ended_at)

    def _apply_step(self, step: Step) -> None:
        self.total_steps += 1
        if step.status == "failed":
            self.error_count += 1
        self.last_activity_at = max(self.last_activity_at, step.ended_at)
        if step.started_at < self.started_at:
            self.started_at = step.started_at
        usage = self.usage.setdefault(step.model or "unknown", ModelUsage())
        usage.steps += 1
        usage.input_tokens += step.input_tokens or 0
        usage.output_tokens += step.output_tokens or 0
        usage.total_tokens += step.total_tokens or 0
        usage.cost_usd += step.cost_usd or 0.0
        if step.user_id is not None:
            self._add_unique(self.user_ids, (step.user_id,))

    @staticmethod
    def _add_unique(target: list[str], values: Sequence[str]) -> None:
        for value in values:
            if value not in target:
                target.append(value)

    def summary(self, now: datetime | None = None) -> SessionSummary:
        now = now or datetime.now(timezone.utc)
        usage = {model: u.model_copy() for model, u in self.usage.items()}
        duration = None
        if self.ended_at is not None:
            duration = (self.ended_at - self.started_at).total_seconds() * 1000
        return SessionSummary(
            session_id=self.session_id,
            status=effective_status(self.status, self.last_activity_at, self.timeout_s, now),
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_ms=duration,
            last_activity_at=self.last_activity_at,
            total_steps=self.total_steps,
            error_count=self.error_count,
            dropped_steps=self.dropped_steps,
            input_tokens=sum(u.input_tokens for u in usage.values()),
            output_tokens=sum(u.output_tokens for u in usage.values()),
            total_tokens=sum(u.total_tokens for u in usage.values()),
            cost_usd=sum(u.cost_usd for u in usage.values()),
            usage=usage,
            user_ids=list(self.user_ids),
            tags=list(self.tags),
            environment=self.environment,
            parent_session_id=self.parent_session_id,
            parent_trace_id=self.parent_trace_id,
            end_reason=self.end_reason,
            metadata=dict(self.metadata),
            scores=[self.scores[name] for name in sorted(self.scores)],
        )


def matches(summary: SessionSummary, filters: SessionFilter) -> bool:
    """True when ``summary`` passes every filter that is set."""
    if filters.user_id is not None and filters.user_id not in summary.user_ids:
        return False
    if filters.status is not None and summary.status != filters.status:
        return False
    if filters.tag is not None and filters.tag not in summary.tags:
        return False
    if filters.since is not None and summary.started_at < filters.since:
        return False
    if filters.until is not None and summary.started_at >= filters.until:
        return False
    if filters.q is not None and not summary.session_id.startswith(filters.q):
        return False
    if filters.score_name is None and filters.min_score is None:
        return True
    return any(_score_matches(score, filters) for score in summary.scores)


def _score_matches(score: Score, filters: SessionFilter) -> bool:
    if filters.score_name is not None and score.name != filters.score_name:
        return False
    if filters.min_score is None:
        return True
    number = score.number
    return number is not None and number >= filters.min_score


def paginate(
    summaries: list[SessionSummary], filters: SessionFilter | None, limit: int, cursor: str | None
) -> SessionPage:
    """Filter, sort newest first and cut one keyset page: the in-process backends' list_sessions."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    selected = [s for s in summaries if filters is None or matches(s, filters)]
    selected.sort(key=lambda s: (s.started_at, s.session_id), reverse=True)
    total = len(selected)
    if cursor is not None:
        after = decode_cursor(cursor)
        selected = [s for s in selected if (s.started_at, s.session_id) < after]
    page = selected[:limit]
    next_cursor = None
    if len(selected) > limit:
        next_cursor = encode_cursor(page[-1].started_at, page[-1].session_id)
    return SessionPage(sessions=page, total=total, next_cursor=next_cursor)
