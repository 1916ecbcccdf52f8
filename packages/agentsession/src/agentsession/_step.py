"""A step in flight: opened by an adapter when an LLM call starts, closed when it ends."""

from __future__ import annotations

import asyncio
import time
from contextvars import Token
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._context import _current_step
from ._health import count, record_fault
from ._models import Step, StepStatus, ToolCall
from ._pricing import get_price_table

if TYPE_CHECKING:
    from ._capture import CapturePolicy
    from ._state import StateSnapshot
    from ._tracker import SessionTracker

__all__ = ["FIRST_CHUNK_KEY", "StepHandle", "ToolCallRecord", "describe_error"]

_MAX_ERROR_CHARS = 4_000
FIRST_CHUNK_KEY = "time_to_first_chunk_ms"
"""Step metadata: milliseconds from a streamed call's start to its first chunk."""


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def describe_error(error: BaseException) -> str:
    """``Type: message``, or the type's name alone when the message is empty or unreadable.

    An exception whose ``__str__`` raises must not replace the one being recorded.
    """
    name = type(error).__name__
    try:
        message = str(error)
    except Exception:
        return name
    return f"{name}: {message}" if message else name


class ToolCallRecord:
    """A tool call waiting to be attached to the session's next step."""

    __slots__ = ("duration_ms", "error", "input", "name", "output", "started_ns")

    def __init__(
        self,
        name: str,
        input: Any,
        output: Any,
        error: str | None,
        started_ns: int | None,
        duration_ms: float | None,
    ) -> None:
        self.name = name
        self.input = input
        self.output = output
        self.error = error
        self.started_ns = started_ns
        self.duration_ms = duration_ms

    def redacted(self) -> ToolCallRecord:
        """The same call without its input and output."""
        return ToolCallRecord(self.name, None, None, self.error, self.started_ns, self.duration_ms)

    def to_model(self, capture: CapturePolicy) -> ToolCall:
        return ToolCall(
            name=self.name[:256],
            input=capture.apply(self.input),
            output=capture.apply(self.output),
            error=None if self.error is None else self.error[:_MAX_ERROR_CHARS],
            started_at=None if self.started_ns is None else _utc(self.started_ns),
            duration_ms=self.duration_ms,
        )


class StepHandle:
    """One LLM call being recorded. End it with :meth:`end` or :meth:`fail` (or use ``with``).

    Everything the caller hands over (input, output) is serialized later, in the background
    writer: pass values that will not be mutated afterwards.
    """

    __slots__ = (
        "_context_token",
        "_perf_start",
        "_tracker",
        "cost_usd",
        "duration_ms",
        "ended",
        "error",
        "first_chunk_ns",
        "framework",
        "input",
        "input_tokens",
        "kind",
        "metadata",
        "model",
        "name",
        "output",
        "output_tokens",
        "parent_trace_id",
        "provider",
        "recorded",
        "started_ns",
        "state",
        "status",
        "step_id",
        "step_index",
        "tags",
        "tool_calls",
        "total_tokens",
        "trace_id",
        "user_id",
    )

    def __init__(
        self,
        tracker: SessionTracker,
        step_index: int,
        trace_id: str,
        step_id: str,
        parent_trace_id: str | None,
        state: StateSnapshot,
        tool_calls: list[ToolCallRecord],
        *,
        kind: str,
        name: str | None,
        framework: str | None,
        provider: str | None,
        model: str | None,
        input: Any,
        user_id: str | None,
        tags: tuple[str, ...],
        metadata: dict[str, Any] | None,
        recorded: bool = True,
    ) -> None:
        self._tracker = tracker
        self.step_index = step_index
        self.trace_id = trace_id
        self.step_id = step_id
        self.parent_trace_id = parent_trace_id
        self.state = state
        self.tool_calls = tool_calls
        self.kind = kind
        self.name = name
        self.framework = framework
        self.provider = provider
        self.model = model
        self.input = input
        self.user_id = user_id
        self.tags = tags
        self.metadata = metadata
        self.recorded = recorded
        self.output: Any = None
        self.status: StepStatus = "completed"
        self.error: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.total_tokens: int | None = None
        self.cost_usd: float | None = None
        self.duration_ms = 0.0
        self.ended = False
        self.first_chunk_ns: int | None = None
        self._context_token: Token[StepHandle | None] | None = None
        self.started_ns = time.time_ns()
        self._perf_start = time.perf_counter_ns()

    @property
    def session_id(self) -> str:
        return self._tracker.session_id

    def end(
        self,
        output: Any = None,
        *,
        model: str | None = None,
        provider: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Close the step as completed; only the first call to end or fail counts."""
        if self.ended:
            return
        if model is not None:
            self.model = model
        if provider is not None:
            self.provider = provider
        self.total_tokens = total_tokens
        self.cost_usd = cost_usd
        self._close("completed", None, output, input_tokens, output_tokens, metadata)

    def fail(
        self,
        error: BaseException | str,
        *,
        output: Any = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Close the step as failed, or cancelled when ``error`` is a cancellation."""
        if self.ended:
            return
        if isinstance(error, BaseException):
            cancelled = isinstance(error, (asyncio.CancelledError, KeyboardInterrupt))
            text = describe_error(error)
        else:
            cancelled = False
            text = str(error)
        status: StepStatus = "cancelled" if cancelled else "failed"
        self._close(status, text[:_MAX_ERROR_CHARS], output, input_tokens, output_tokens, metadata)

    def _close(
        self,
        status: StepStatus,
        error: str | None,
        output: Any,
        input_tokens: int | None,
        output_tokens: int | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.duration_ms = (time.perf_counter_ns() - self._perf_start) / 1e6
        self.ended = True
        self.status = status
        self.error = error
        self.output = output
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        if metadata:
            self.metadata = {**self.metadata, **metadata} if self.metadata else metadata
        if self.recorded:
            self._tracker._finish_step(self)

    def chunk_arrived(self) -> None:
        """Note a streamed chunk; the first one's delay is stored as ``time_to_first_chunk_ms``.

        Cheap enough to call for every chunk: only the first one is timed.
        """
        if self.first_chunk_ns is None:
            self.first_chunk_ns = time.perf_counter_ns()

    def activate(self) -> Token[StepHandle | None]:
        """Make this step :func:`current_step` in this context until it ends.

        What ``with step:`` does on entry, for adapters whose framework reports a call's start
        and end as separate callbacks. Pass the token to :meth:`deactivate` to give the
        context back its previous step sooner (e.g. between the chunks of a stream).
        """
        return _current_step.set(self)

    @staticmethod
    def deactivate(token: Token[StepHandle | None]) -> None:
        """Undo :meth:`activate`; in another context than it ran in, clear the current step."""
        try:
            _current_step.reset(token)
        except ValueError:
            _current_step.set(None)

    def __enter__(self) -> StepHandle:
        self._context_token = self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._context_token is not None:
            self.deactivate(self._context_token)
            self._context_token = None
        if exc is not None:
            self.fail(exc)
        else:
            self.end(self.output)

    def to_event(self) -> Step:
        """Build the Step model (runs in the background writer)."""
        tracker = self._tracker
        capture = tracker.capture
        cost = self.cost_usd
        if cost is None:
            cost = get_price_table().cost(self.model, self.input_tokens, self.output_tokens)
        total = self.total_tokens
        if total is None and (self.input_tokens is not None or self.output_tokens is not None):
            total = (self.input_tokens or 0) + (self.output_tokens or 0)
        try:
            captured_input = capture.apply(self.input)
            captured_output = capture.apply(self.output)
            tool_calls = tuple(call.to_model(capture) for call in self.tool_calls)
        except Exception as exc:  # a mask hook that raises must not let raw content through
            record_fault("capture", exc)
            count("capture.errors")
            captured_input = captured_output = None
            tool_calls = tuple(call.redacted().to_model(capture) for call in self.tool_calls)
        return Step(
            session_id=tracker.session_id,
            step_index=self.step_index,
            step_id=self.step_id,
            trace_id=self.trace_id,
            parent_trace_id=self.parent_trace_id,
            kind=self.kind,
            name=self.name,
            framework=self.framework,
            provider=self.provider,
            model=self.model,
            started_at=_utc(self.started_ns),
            ended_at=_utc(self.started_ns + int(self.duration_ms * 1e6)),
            duration_ms=self.duration_ms,
            status=self.status,
            error=self.error,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=total,
            cost_usd=cost,
            state=self.state.to_dict(),
            tool_calls=tool_calls,
            input=captured_input,
            output=captured_output,
            user_id=self.user_id,
            tags=self.tags,
            metadata=self._metadata_with_timings(),
        )

    def _metadata_with_timings(self) -> dict[str, Any]:
        if self.first_chunk_ns is None:
            return self.metadata or {}
        delay_ms = round((self.first_chunk_ns - self._perf_start) / 1e6, 3)
        return {**(self.metadata or {}), FIRST_CHUNK_KEY: delay_ms}
