"""agentsession for LlamaIndex: every LLM call of a query engine, chat engine or agent is a step.

    from agentsession import using_session
    from agentsession_llamaindex import instrument

    instrument()  # our handlers on LlamaIndex's root instrumentation dispatcher
    with using_session("conv-456", user_id="user-a"):
        query_engine.query("...")  # each LLM call is the next step of conv-456

Retrievals, embeddings and tool calls between two LLM calls are listed in the next step's
``tool_calls``. ``SessionSpanHandler`` (with its ``event_handler``) is the same recording for
dispatchers you manage yourself. The handlers need ``llama-index-core``; importing this package
does not, so that ``instrument()`` can report a missing framework instead of failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentsession import SessionTracker

from ._instrumentor import LlamaIndexInstrumentor

if TYPE_CHECKING:
    from ._handlers import SessionEventHandler, SessionSpanHandler

__all__ = [
    "LlamaIndexInstrumentor",
    "SessionEventHandler",
    "SessionSpanHandler",
    "instrument",
    "uninstrument",
]

_instrumentor = LlamaIndexInstrumentor()


def instrument(*, tracker: SessionTracker | None = None) -> bool:
    """Record LlamaIndex's LLM calls as session steps; False if already on or LlamaIndex is absent.

    ``tracker`` sends every step to one session instead of the session in force.
    """
    options: dict[str, Any] = {} if tracker is None else {"tracker": tracker}
    return _instrumentor.instrument(**options)


def uninstrument() -> bool:
    """Remove our handlers from the root dispatcher; False if they were not there."""
    return _instrumentor.uninstrument()


def __getattr__(name: str) -> Any:
    # The handlers subclass llama-index-core classes: import them only when asked for.
    if name in ("SessionEventHandler", "SessionSpanHandler"):
        from . import _handlers

        return getattr(_handlers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
