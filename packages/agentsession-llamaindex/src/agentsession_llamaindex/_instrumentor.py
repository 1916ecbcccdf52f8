"""``instrument()`` for LlamaIndex: our handler pair on the root instrumentation dispatcher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentsession import SessionTracker
from agentsession.instrumentation import Instrumentor

from ._package import _instruments

if TYPE_CHECKING:
    from ._handlers import SessionSpanHandler

__all__ = ["LlamaIndexInstrumentor"]


class LlamaIndexInstrumentor(Instrumentor):
    """Adds a :class:`SessionSpanHandler` and its event handler to LlamaIndex's root dispatcher.

    Every dispatcher propagates to the root, so every LLM call, retrieval, embedding and tool
    call of the process is seen; each is routed to the session of the context it runs in.
    ``instrument(tracker=t)`` sends every step to ``t`` instead. ``uninstrument()`` removes
    exactly the handlers ``instrument()`` added.
    """

    instruments = _instruments

    def __init__(self) -> None:
        super().__init__()
        self._handler: SessionSpanHandler | None = None

    @property
    def span_handler(self) -> SessionSpanHandler | None:
        """The span handler on the root dispatcher while instrumented, else None."""
        return self._handler

    def _instrument(self, **options: Any) -> None:
        tracker = options.pop("tracker", None)
        if options:
            raise TypeError(f"unexpected option(s): {', '.join(sorted(options))}")
        if tracker is not None and not isinstance(tracker, SessionTracker):
            raise TypeError(f"tracker must be a SessionTracker, not {type(tracker).__name__}")
        from ._handlers import SessionSpanHandler, root_dispatcher

        handler = SessionSpanHandler(tracker)
        handler.attach(root_dispatcher())
        self._handler = handler

    def _uninstrument(self) -> None:
        from ._handlers import root_dispatcher

        if self._handler is not None:
            self._handler.detach(root_dispatcher())
            self._handler = None
