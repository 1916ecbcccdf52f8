"""Session headers on every request of AutoGen's OpenAI clients, for proxies that read them.

``OpenAIChatCompletionClient(default_headers=session.get_headers())`` computes the headers once,
so every request says step 0 with the state of that moment; and AutoGen refuses per-call
``extra_headers``. The request hooks of :func:`agentsession.instrument_http_client`, added to the
HTTP client AutoGen built, replace those headers on each request as it leaves.
"""

from __future__ import annotations

from typing import TypeVar

from autogen_core.models import ChatCompletionClient

from agentsession import SessionTracker, instrument_http_client, uninstrument_http_client

from ._client import SessionChatCompletionClient

__all__ = ["add_session_headers", "remove_session_headers"]

ClientT = TypeVar("ClientT", bound=ChatCompletionClient)


def add_session_headers(model_client: ClientT, session: SessionTracker | None = None) -> ClientT:
    """Send the current session headers with every request ``model_client`` makes; return it.

    ``model_client`` is an ``OpenAIChatCompletionClient`` or ``AzureOpenAIChatCompletionClient``
    (``default_headers`` or not), or a :class:`SessionChatCompletionClient` around one. Each
    request carries the session's id, its step index, the state as it is now and the parent
    trace id. Inside a recorded call (the wrapper, or ``instrument()``) that is the recorded
    step's index, so the proxy's steps and ours agree; otherwise each request takes the next
    index. The session is ``session``, else the wrapper's tracker, else the session in force at
    each request. Idempotent; raises TypeError for a client without an HTTP client to hook.
    """
    inner: ChatCompletionClient = model_client
    if isinstance(model_client, SessionChatCompletionClient):
        inner = model_client.client
        if session is None and isinstance(model_client.session, SessionTracker):
            session = model_client.session
    instrument_http_client(inner, session)
    return model_client


def remove_session_headers(model_client: ClientT) -> ClientT:
    """Undo :func:`add_session_headers`; return ``model_client``."""
    inner: ChatCompletionClient = model_client
    if isinstance(model_client, SessionChatCompletionClient):
        inner = model_client.client
    uninstrument_http_client(inner)
    return model_client
