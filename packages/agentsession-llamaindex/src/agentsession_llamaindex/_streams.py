"""LLM calls in flight, and the streamed ones: a streamed call outlives the span that began it.

A streaming call's span exits as soon as it returns its generator; the call ends with the end
event that generator sends once exhausted. Two things need the generator itself. A call started
while a stream's generator runs on this thread's stack belongs to that stream (``astream_chat``
of a completion model starts ``stream_chat`` lazily, inside its generator, under no LLM span).
And a generator garbage-collected before its end event was dropped by its consumer: its call
was cancelled. Only weak references are kept, so that recording never keeps a stream alive.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import weakref
from collections import deque
from collections.abc import Iterator
from contextvars import Token
from types import AsyncGeneratorType, FrameType
from typing import TYPE_CHECKING, Any

from agentsession import StepHandle, current_step

if TYPE_CHECKING:
    from ._tree import Span

__all__ = ["Call", "Streams", "closed_early"]

_STREAM_CLOSED = "the stream was closed before its end"


class Call:
    """An LLM call being recorded as a step, from its start event to its end."""

    __slots__ = ("capture", "handle", "last", "root", "stream", "token")

    def __init__(
        self,
        handle: StepHandle,
        capture: bool,
        token: Token[StepHandle | None],
        root: Span | None,
    ) -> None:
        self.handle = handle
        self.capture = capture
        self.token = token
        self.root = root  # the span tree whose own new session this call's step is in, if any
        self.last: Any = None  # the latest streamed chunk
        self.stream: weakref.ref[Any] | None = None

    def give_back_context(self) -> None:
        """Make the step current before this call current again, where this call's step is.

        Where it is not (a stream ended in another task), that context's step is left alone.
        """
        if current_step() is self.handle:
            self.handle.deactivate(self.token)


def _collected(queue: deque[str], span_id: str, _ref: object) -> None:
    # Runs inside the garbage collector, on any thread, maybe while a lock is held: only queue.
    queue.append(span_id)


class Streams:
    """The calls whose span returned a generator, by span id, until their end event."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self._collected: deque[str] = deque()

    def add(self, span_id: str, call: Call, generator: Any) -> None:
        on_collected = functools.partial(_collected, self._collected, span_id)
        call.stream = weakref.ref(generator, on_collected)
        self.calls[span_id] = call

    def discard(self, span_id: str) -> None:
        self.calls.pop(span_id, None)

    def collected(self) -> Iterator[str]:
        """Span ids of the streams garbage-collected before their end, each given once."""
        queue = self._collected
        while queue:
            try:
                yield queue.popleft()
            except IndexError:  # another thread took the last one
                return

    @property
    def any_collected(self) -> bool:
        return bool(self._collected)

    def running_here(self) -> Call | None:
        """The streaming call whose generator is running on the caller's stack, if any."""
        if not self.calls:
            return None
        running: dict[FrameType, Call] = {}
        frame: FrameType | None
        for call in list(self.calls.values()):
            generator = None if call.stream is None else call.stream()
            if generator is None:
                continue
            if isinstance(generator, AsyncGeneratorType):
                frame = generator.ag_frame if generator.ag_running else None
            else:
                frame = generator.gi_frame if generator.gi_running else None
            if frame is not None:
                running[frame] = call
        if not running:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            outer = running.get(frame)
            if outer is not None:
                return outer
            frame = frame.f_back
        return None

    def clear(self) -> None:
        self.calls.clear()
        self._collected.clear()


def closed_early() -> asyncio.CancelledError:
    # The consumer stopped reading: the call was cancelled, not failed (a cancellation's status).
    return asyncio.CancelledError(_STREAM_CLOSED)
