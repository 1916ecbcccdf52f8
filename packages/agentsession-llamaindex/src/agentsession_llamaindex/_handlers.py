"""The handlers LlamaIndex's instrumentation dispatcher calls: one span handler, one event handler.

Both are thin: they hand every notification to the :class:`Recorder` they share, which keeps the
span tree and the calls in flight. A handler must be fast (it runs on every span of every query)
and must never raise (the dispatcher would swallow it silently).
"""

from __future__ import annotations

import inspect
from typing import Any

from llama_index.core.bridge.pydantic import BaseModel, Field

# The documented import path. Since 0.13 it re-exports llama-index-instrumentation's names
# without declaring them, which strict mypy reports.
from llama_index.core.instrumentation import (  # type: ignore[attr-defined]
    Dispatcher,
    get_dispatcher,
)
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from agentsession import SessionTracker

from ._recorder import Recorder

__all__ = ["SessionEventHandler", "SessionSpanHandler", "root_dispatcher"]


def root_dispatcher() -> Dispatcher:
    """LlamaIndex's root dispatcher: every other dispatcher propagates its events to it."""
    return get_dispatcher()


class SessionEventHandler(BaseEventHandler):
    """Records LLM calls, retrievals and embeddings from LlamaIndex events as session steps.

    Get it from :attr:`SessionSpanHandler.event_handler`: it needs the span tree that handler
    keeps, and is useless alone.
    """

    recorder: Recorder = Field(exclude=True, repr=False)

    @classmethod
    def class_name(cls) -> str:
        return "SessionEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.recorder.handle(event)


class SessionSpanHandler(BaseSpanHandler[Any]):
    """Keeps LlamaIndex's span tree so that each LLM call becomes exactly one session step.

    Add it and its :attr:`event_handler` to a dispatcher (:meth:`attach` does both), or let
    ``agentsession_llamaindex.instrument()`` add them to the root dispatcher. Steps go to
    ``tracker`` when given, else to the session of the ``instrument_tags({"session_id": ...})``
    or ``using_session`` block the call runs in, else (with auto session ids on) to a new
    session per LlamaIndex trace, ended when the trace's root span and its streams end.

    ``open_spans`` holds our own span records rather than LlamaIndex ``BaseSpan`` objects.
    """

    recorder: Recorder = Field(exclude=True, repr=False)
    event_handler: SessionEventHandler = Field(exclude=True, repr=False)

    def __init__(self, tracker: SessionTracker | None = None) -> None:
        recorder = Recorder(tracker)
        # Not BaseSpanHandler.__init__: it cannot pass our fields on.
        BaseModel.__init__(
            self, recorder=recorder, event_handler=SessionEventHandler(recorder=recorder)
        )
        self._lock = None  # as BaseSpanHandler.__init__ leaves it: its ``lock`` makes one lazily
        recorder.spans = self.open_spans  # the dispatcher's shutdown() drops what is listed here

    @classmethod
    def class_name(cls) -> str:
        return "SessionSpanHandler"

    @property
    def tracker(self) -> SessionTracker | None:
        """The session every step goes to, or None to follow the context."""
        return self.recorder.tracker

    def attach(self, dispatcher: Dispatcher) -> None:
        """Add this span handler and its event handler to ``dispatcher`` (once)."""
        if not any(handler is self for handler in dispatcher.span_handlers):
            dispatcher.add_span_handler(self)
        events = self.event_handler
        if not any(handler is events for handler in dispatcher.event_handlers):
            dispatcher.add_event_handler(events)

    def detach(self, dispatcher: Dispatcher) -> None:
        """Remove exactly this handler pair from ``dispatcher`` and forget the calls in flight."""
        events = self.event_handler
        # New lists rather than in-place removal: another thread may be iterating the old ones.
        dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not self]
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not events]
        self.recorder.close()

    # The dispatcher calls these three; they replace the base class's versions, which would
    # take a lock and build a span object per span for nothing (LlamaIndex's NullSpanHandler
    # overrides them the same way).
    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder.span_enter(id_, bound_args, instance, parent_id, tags)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder.span_exit(id_, result)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder.span_drop(id_, err)

    def close(self) -> None:
        """Called by ``Dispatcher.shutdown()`` once every open span was dropped."""
        self.recorder.close()

    # Required by BaseSpanHandler, never called: span_enter/exit/drop above do the work.
    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        return None
