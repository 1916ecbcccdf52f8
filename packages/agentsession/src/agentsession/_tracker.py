"""SessionTracker: one session's id, step counter, state, parent links and headers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import Any, get_args

from ._capture import CapturePolicy, Mask
from ._config import get_settings
from ._context import Scope, current_scope, enter_scope, exit_scope
from ._dialects import Dialect, build_session_headers, parse_dialects
from ._emitter import Emitter
from ._headers import check_header_value
from ._health import count, warn_once
from ._ids import (
    new_session_id,
    new_span_id,
    new_trace_id,
    validate_session_id,
    validate_user_id,
)
from ._indexes import TakenIndexes
from ._models import Score, SessionEnded, SessionStarted, SessionStatus
from ._scores import new_score
from ._state import StateOverflow, StateSnapshot, StateStore, compact_json
from ._step import StepHandle, ToolCallRecord, describe_error
from ._worker import emitter_for, emitter_for_url
from .backends._base import SessionWriter

__all__ = ["SessionTracker"]

_END_STATUSES = frozenset(get_args(SessionStatus)) - {"in_progress"}


class SessionTracker:
    """Records the LLM calls of one session as numbered steps.

    Adapters open a step per LLM call with :meth:`begin_step`; header-only users send
    :meth:`get_headers` to a proxy and call :meth:`next_step` after each call. ``with tracker:``
    starts the session, makes it the current one (see ``using_session``) and ends it, as
    ``failed`` if the block raised. Arguments left as None take their ``AGENTSESSION_*`` default.
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        parent_trace_id: str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        environment: str | None = None,
        backend: SessionWriter | str | None = None,
        state_limit_bytes: int | None = None,
        state_overflow: StateOverflow | None = None,
        max_steps: int | None = None,
        timeout_s: float | None = None,
        header_prefix: str | None = None,
        header_dialects: str | Iterable[Dialect] | None = None,
        header_budget_bytes: int | None = None,
        capture_content: bool | None = None,
        mask: Mask | None = None,
        parent_session_id: str | None = None,
    ) -> None:
        settings = get_settings()
        self._session_id = (
            new_session_id() if session_id is None else validate_session_id(session_id)
        )
        self.user_id = validate_user_id(user_id)
        self.tags = tuple(tags)
        self.metadata = dict(metadata or {})
        self.environment = environment
        self.parent_session_id = parent_session_id
        self._parent_trace_id = (
            None
            if parent_trace_id is None
            else check_header_value("parent_trace_id", parent_trace_id)
        )
        self._emitter: Emitter | None
        if isinstance(backend, str):
            # One backend and writer per URL: a tracker per conversation must not open a
            # connection and a thread each.
            self._emitter = emitter_for_url(backend)
            self._backend: SessionWriter | None = self._emitter.backend
        else:
            self._emitter = None if backend is None else emitter_for(backend)
            self._backend = backend
        self.max_steps = settings.max_steps if max_steps is None else max_steps
        self.timeout_s = settings.timeout_s if timeout_s is None else timeout_s
        self.header_prefix = header_prefix or settings.header_prefix
        self.header_dialects = parse_dialects(
            settings.header_dialects if header_dialects is None else header_dialects
        )
        self.header_budget_bytes = header_budget_bytes or settings.header_budget_bytes
        if header_budget_bytes is not None and header_budget_bytes < 1:
            raise ValueError(f"header_budget_bytes must be positive, got {header_budget_bytes}")
        # The chain of sessions down to this one (Helicone-Session-Path); child() extends it.
        self._session_path = (
            *((parent_session_id,) if parent_session_id else ()),
            self._session_id,
        )
        self.capture = CapturePolicy(
            enabled=settings.capture_content if capture_content is None else capture_content,
            limit_bytes=settings.content_limit_bytes,
            mask=mask,
        )
        self._state = StateStore(
            settings.state_limit_bytes if state_limit_bytes is None else state_limit_bytes,
            state_overflow or settings.state_overflow,
            owner=self._session_id,
        )
        self._lock = threading.Lock()
        self._next_index = 0
        self._pending_tool_calls: list[ToolCallRecord] = []
        self._local_steps = 0
        # Made on the first index handed in from outside (a proxy reading headers): from then on
        # every recorded index is taken here, so a reused one is caught.
        self._taken: TakenIndexes | None = None
        self._latest_trace_id: str | None = None
        self._started = False
        self._end_status: SessionStatus | None = None
        self._last_activity = time.monotonic()
        self.dropped_steps = 0
        """Steps not recorded because ``max_steps`` was reached or the session had ended."""

    # -- identity and lifecycle --------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def step_index(self) -> int:
        """The index the next step will get (0 before the first step)."""
        return self._next_index

    @property
    def status(self) -> SessionStatus:
        if self._end_status is not None:
            return self._end_status
        if self.timeout_s is not None and time.monotonic() - self._last_activity > self.timeout_s:
            return "timed_out"
        return "in_progress"

    @property
    def session_path(self) -> tuple[str, ...]:
        """Session ids from the root session down to this one (``child()`` sessions)."""
        return self._session_path

    @property
    def latest_trace_id(self) -> str | None:
        """Trace id of the latest step begun (a child session links to it)."""
        return self._latest_trace_id

    @property
    def backend(self) -> SessionWriter:
        """Where this session's events go (the default backend unless one was given)."""
        return self._sink().backend

    def start(self) -> SessionTracker:
        """Record the session's start; called for you by ``with`` and by the first step."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        self._sink().emit(
            SessionStarted(
                session_id=self._session_id,
                started_at=datetime.now(timezone.utc),
                user_id=self.user_id,
                parent_session_id=self.parent_session_id,
                parent_trace_id=self._parent_trace_id,
                tags=self.tags,
                metadata=self.metadata,
                environment=self.environment,
                timeout_s=self.timeout_s,
                max_steps=self.max_steps,
            )
        )
        return self

    def end(self, status: SessionStatus = "completed", reason: str | None = None) -> None:
        """Record the session's end. Only the first call counts."""
        if status not in _END_STATUSES:
            raise ValueError(f"status must be one of {sorted(_END_STATUSES)}, got {status!r}")
        self.start()
        with self._lock:
            if self._end_status is not None:
                return
            self._end_status = status
            lost_tool_calls = len(self._pending_tool_calls)
            self._pending_tool_calls = []
        if lost_tool_calls:
            self._count_lost_tool_calls(lost_tool_calls)
        self._sink().emit(
            SessionEnded(
                session_id=self._session_id,
                ended_at=datetime.now(timezone.utc),
                status=status,
                reason=None if reason is None else reason[:2000],
                dropped_steps=self.dropped_steps,
            )
        )

    def score(
        self,
        name: str,
        value: float | bool | str,
        comment: str | None = None,
        *,
        source: str | None = None,
    ) -> Score:
        """Judge the whole session: a number, a boolean or a short label, also after ``end()``.

        A later score with the same name replaces this one. Raises InvalidScoreError for a
        name, label or comment over its limit; returns the score recorded.
        """
        score = new_score(self._session_id, name, value, comment, source=source)
        self.start()
        self._sink().emit(score)
        return score

    def __enter__(self) -> SessionTracker:
        self.start()
        enter_scope(self, Scope(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        exit_scope(self)
        if exc is None:
            self.end()
        elif isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
            self.end("cancelled", f"{type(exc).__name__}")
        else:
            self.end("failed", describe_error(exc))

    async def __aenter__(self) -> SessionTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> Mapping[str, Any]:
        """A read-only copy of the snapshot the next step records (after the size cap)."""
        return MappingProxyType(self._state.snapshot.to_dict())

    def set_state(self, key: str, value: Any) -> None:
        """Set one key; may raise StateNotSerializableError or StateTooLargeError."""
        with self._lock:
            self._state.set(key, value)

    def update_state(self, mapping: Mapping[str, Any]) -> None:
        """Set several keys at once, all or none."""
        with self._lock:
            self._state.update(mapping)

    def delete_state(self, key: str) -> None:
        with self._lock:
            self._state.delete(key)

    def clear_state(self) -> None:
        with self._lock:
            self._state.clear()

    # -- links and headers ---------------------------------------------------------------------
    def set_parent_trace_id(self, trace_id: str | None) -> None:
        """Link the following steps to ``trace_id``: the trace of the call that spawned them."""
        self._parent_trace_id = (
            None if trace_id is None else check_header_value("parent_trace_id", trace_id)
        )

    @property
    def parent_trace_id(self) -> str | None:
        return self._parent_trace_id

    def get_headers(
        self, step: StepHandle | None = None, *, step_index: int | None = None
    ) -> dict[str, str]:
        """Headers for a proxy, in every one of ``header_dialects``.

        For ``step``; else for ``step_index`` (default: the next index) with the state and the
        parent trace as they are now.
        """
        if step is None:
            index = self._next_index if step_index is None else step_index
            parent, snapshot, user_id = self._parent_trace_id, self._state.snapshot, self.user_id
        else:
            index, parent, snapshot = step.step_index, step.parent_trace_id, step.state
            user_id = step.user_id
        return build_session_headers(
            self.header_dialects,
            prefix=self.header_prefix,
            session_id=self._session_id,
            session_path=self._session_path,
            session_name=self.metadata.get("session_name"),
            user_id=user_id,
            step_index=index,
            parent_trace_id=parent,
            state=snapshot,
            budget_bytes=self.header_budget_bytes,
            overflow=self._state.overflow,
        )

    @property
    def header_only(self) -> bool:
        """True while no step was recorded here: a proxy reading the headers records them."""
        return self._local_steps == 0

    def allocate_step_index(self) -> int:
        """Take the next index for a call recorded elsewhere (e.g. by a proxy) and return it."""
        with self._lock:
            index = self._next_index
            self._next_index = index + 1
            self._last_activity = time.monotonic()
            return index

    def observe_trace_id(self, trace_id: str, next_step: int | None = None) -> None:
        """Take in what a proxy answered: its trace id for the call, and its next step index.

        The trace id becomes :attr:`latest_trace_id` (a child session links to it). The next
        step index is honoured only while the tracker is header-only, and never moves back.
        """
        self._latest_trace_id = check_header_value("trace_id", trace_id)
        if next_step is not None and self.header_only:
            with self._lock:
                self._next_index = max(self._next_index, next_step)

    def next_step(self) -> int:
        """Mark the current index as used by a call made without ``begin_step``; return the next."""
        with self._lock:
            self._next_index += 1
            self._last_activity = time.monotonic()
            return self._next_index

    def child(self, **kwargs: Any) -> SessionTracker:
        """A sub-agent's session, linked to this session and to its latest step's trace."""
        kwargs.setdefault("user_id", self.user_id)
        kwargs.setdefault("tags", self.tags)
        kwargs.setdefault("environment", self.environment)
        kwargs.setdefault("backend", self._backend)
        kwargs.setdefault("parent_session_id", self._session_id)
        kwargs.setdefault("parent_trace_id", self._latest_trace_id or self._parent_trace_id)
        kwargs.setdefault("state_limit_bytes", self._state.limit_bytes)
        kwargs.setdefault("state_overflow", self._state.overflow)
        kwargs.setdefault("header_prefix", self.header_prefix)
        kwargs.setdefault("header_dialects", self.header_dialects)
        kwargs.setdefault("header_budget_bytes", self.header_budget_bytes)
        kwargs.setdefault("capture_content", self.capture.enabled)
        kwargs.setdefault("mask", self.capture.mask)
        child = SessionTracker(**kwargs)
        if child.parent_session_id == self._session_id:
            child._session_path = (*self._session_path, child.session_id)
        return child

    # -- steps ---------------------------------------------------------------------------------
    def record_tool_call(
        self,
        name: str,
        input: Any = None,
        output: Any = None,
        *,
        error: str | None = None,
        started_ns: int | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Note a tool, retrieval or embedding call; it is listed in the next step's tool_calls."""
        record = ToolCallRecord(name, input, output, error, started_ns, duration_ms)
        with self._lock:
            self._pending_tool_calls.append(record)

    def begin_step(
        self,
        *,
        kind: str = "llm",
        name: str | None = None,
        framework: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        input: Any = None,
        trace_id: str | None = None,
        parent_trace_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        step_index: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> StepHandle:
        """Open the next step: its index, the state as it is now, and the clock start.

        Thread-safe: concurrent calls get unique, gap-free indexes in start order. Past
        ``max_steps`` or after ``end()`` the handle is inert and the step is only counted.
        A receiving server that read ``step_index`` and ``state`` from a request's headers
        passes them; the counter then moves past that index. An index already recorded in this
        session is not used twice: the step gets the next one (compare the handle's
        ``step_index`` with the one you asked for).
        """
        if not self._started:
            self.start()
        scope = current_scope()
        user_id, tags = self.user_id, self.tags
        if scope is not None and scope.tracker is self:
            user_id = scope.user_id or user_id
            if scope.tags:
                # A using_session("id", tags=...) tracker already carries the block's tags.
                tags = tags + tuple(tag for tag in scope.tags if tag not in tags)
            if scope.metadata:
                metadata = {**scope.metadata, **metadata} if metadata else dict(scope.metadata)
        trace_id = trace_id or new_trace_id()
        with self._lock:
            recorded = self._end_status is None and (
                self.max_steps is None or self._next_index < self.max_steps
            )
            if recorded:
                index = self._claim_index(step_index)
                self._local_steps += 1
                tool_calls = self._pending_tool_calls
                self._pending_tool_calls = []
                self._latest_trace_id = trace_id
            else:
                index, tool_calls = self._next_index, []
                self.dropped_steps += 1
            snapshot = self._state.snapshot
            self._last_activity = time.monotonic()
        if state is not None:
            snapshot = StateSnapshot(compact_json(dict(state)))
        if not recorded:
            self._warn_dropped()
        return StepHandle(
            self,
            index,
            trace_id,
            new_span_id(),
            parent_trace_id or self._parent_trace_id,
            snapshot,
            tool_calls,
            kind=kind,
            name=name,
            framework=framework,
            provider=provider,
            model=model,
            input=input,
            user_id=user_id,
            tags=tags,
            metadata=metadata,
            recorded=recorded,
        )

    def _claim_index(self, requested: int | None) -> int:
        """The index a new step gets (under the lock): ``requested`` unless already taken."""
        if requested is not None and self._taken is None:
            self._taken = TakenIndexes(self._next_index)
        taken = self._taken
        if taken is None:
            index = self._next_index
        elif requested is not None and taken.take(requested):
            index = requested
        else:  # no index given, or one already recorded (headers computed once and resent)
            index = self._next_index
            taken.take(index)
        self._next_index = max(self._next_index, index + 1)
        return index

    def _finish_step(self, handle: StepHandle) -> None:
        self._last_activity = time.monotonic()
        self._sink().emit(handle)

    def _warn_dropped(self) -> None:
        count("dropped.max_steps" if self._end_status is None else "dropped.after_end")
        if self._end_status is not None:
            reason = f"the session ended ({self._end_status})"
        else:
            reason = f"max_steps={self.max_steps} was reached"
        warn_once(
            f"dropped:{self._session_id}",
            "agentsession: session %r records no more steps: %s (counted in dropped_steps)",
            self._session_id,
            reason,
        )

    def _count_lost_tool_calls(self, lost: int) -> None:
        count("dropped.tool_calls", lost)
        warn_once(
            "dropped.tool_calls",
            "agentsession: session %r ended with %d tool call(s) recorded after its last step; "
            "they belong to no step and are not stored (counted in "
            "agentsession.get_stats()['dropped.tool_calls'])",
            self._session_id,
            lost,
            level=logging.INFO,
        )

    def _sink(self) -> Emitter:
        return self._emitter or emitter_for(None)

    def _resume(self, next_index: int) -> None:
        """Continue a session already stored: no second start event, indexes after the last."""
        with self._lock:
            self._started = True
            self._next_index = max(self._next_index, next_index)

    def __repr__(self) -> str:
        return (
            f"SessionTracker(session_id={self._session_id!r}, step_index={self._next_index}, "
            f"status={self.status!r})"
        )
