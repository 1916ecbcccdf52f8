"""LangChain and LangGraph adapter for agentsession: every chat-model and LLM call a step.

from agentsession import SessionTracker
from agentsession_langchain import SessionCallbackHandler, instrument

with SessionTracker(user_id="u-42") as session:  # explicit: pass the handler
    chain.invoke(inputs, config={"callbacks": [SessionCallbackHandler(session)]})

instrument()  # or record every run, in the session in force (using_session, thread_id)
"""

from __future__ import annotations

from ._handler import SessionCallbackHandler
from ._instrumentor import LangChainInstrumentor

__version__ = "0.1.0"

__all__ = [
    "LangChainInstrumentor",
    "SessionCallbackHandler",
    "instrument",
    "uninstrument",
]

_instrumentor = LangChainInstrumentor()


def instrument() -> bool:
    """Record every LangChain run of this process; False if already on or LangChain is absent."""
    return _instrumentor.instrument()


def uninstrument() -> bool:
    """Stop recording new runs (runs under way finish recording); False if it was off."""
    return _instrumentor.uninstrument()
