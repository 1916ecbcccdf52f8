"""AutoGen adapter for agentsession: every model call of AgentChat agents and teams is a step.

from agentsession import SessionTracker
from agentsession_autogen import SessionChatCompletionClient, instrument

with SessionTracker(user_id="user-a") as session:  # explicit: wrap the model client
    agent = AssistantAgent("planner", SessionChatCompletionClient(model_client, session))

instrument()  # or record every model client's calls in the session in force (using_session)
"""

from __future__ import annotations

from ._client import SessionChatCompletionClient, SessionChatCompletionClientConfig
from ._headers import add_session_headers, remove_session_headers
from ._instrumentor import AutoGenInstrumentor

__version__ = "0.1.0"

__all__ = [
    "AutoGenInstrumentor",
    "SessionChatCompletionClient",
    "SessionChatCompletionClientConfig",
    "add_session_headers",
    "instrument",
    "remove_session_headers",
    "uninstrument",
]

_instrumentor = AutoGenInstrumentor()


def instrument() -> bool:
    """Record every AutoGen model call of this process; False if already on or AutoGen is absent."""
    return _instrumentor.instrument()


def uninstrument() -> bool:
    """Put AutoGen's model clients back as they were; False if recording was off."""
    return _instrumentor.uninstrument()
