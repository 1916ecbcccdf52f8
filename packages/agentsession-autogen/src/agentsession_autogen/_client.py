"""``SessionChatCompletionClient``: a model client that records each call of the one it wraps."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from autogen_core import CancellationToken, Component, ComponentModel
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,  # deprecated, but still part of the interface
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel
from typing_extensions import Self

from agentsession import SessionTracker, validate_session_id

from ._recording import SessionRef, is_recording, record_create, record_stream

__all__ = ["SessionChatCompletionClient", "SessionChatCompletionClientConfig"]


class SessionChatCompletionClientConfig(BaseModel):
    """The declarative form of :class:`SessionChatCompletionClient`."""

    client: ComponentModel
    """The wrapped client's own component configuration."""
    session_id: str | None = None
    """The session its calls are recorded in; None for the session in force at each call."""


class SessionChatCompletionClient(
    ChatCompletionClient, Component[SessionChatCompletionClientConfig]
):
    """Wrap any AutoGen ``ChatCompletionClient`` so that each of its calls is a session step.

    ``session`` is a :class:`~agentsession.SessionTracker`, a session id (the same id always
    records into the same session), or None for the session in force at each call
    (``using_session``, ``with tracker:``; when ``AGENTSESSION_AUTO_SESSION_ID`` is on and
    there is none, a new one per agent or team run). Give it to an agent or a team as
    you would the wrapped client: every other member is the wrapped client's, and the wrapper
    dumps and loads as a component (a tracker is dumped as its session id).
    """

    component_type = "model"
    component_config_schema = SessionChatCompletionClientConfig
    component_provider_override = "agentsession_autogen.SessionChatCompletionClient"

    def __init__(self, client: ChatCompletionClient, session: SessionRef = None) -> None:
        if isinstance(session, str):
            validate_session_id(session)
        elif not (session is None or isinstance(session, SessionTracker)):
            raise TypeError(
                f"session must be a SessionTracker, a session id or None, "
                f"not {type(session).__name__}"
            )
        # Named _client like the clients AutoGen ships, so that
        # agentsession.instrument_http_client finds the HTTP client through the wrapper.
        self._client = client
        self._session = session

    @property
    def client(self) -> ChatCompletionClient:
        """The wrapped client."""
        return self._client

    @property
    def session(self) -> SessionRef:
        """The tracker or session id calls are recorded in (None: the session in force)."""
        return self._session

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],  # the interface's own defaults
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """The wrapped client's ``create()``, recorded as one step."""
        options: dict[str, Any] = {
            "tools": tools,
            "json_output": json_output,
            "extra_create_args": extra_create_args,
            "cancellation_token": cancellation_token,
        }
        if tool_choice != "auto":  # clients from before autogen-core 0.6 do not take it
            options["tool_choice"] = tool_choice
        if is_recording():
            return await self._client.create(messages, **options)
        return await record_create(
            self._client,
            lambda: self._client.create(messages, **options),
            messages,
            options,
            self._session,
        )

    def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """The wrapped client's ``create_stream()``, recorded as one step when it ends."""
        options: dict[str, Any] = {
            "tools": tools,
            "json_output": json_output,
            "extra_create_args": extra_create_args,
            "cancellation_token": cancellation_token,
        }
        if tool_choice != "auto":
            options["tool_choice"] = tool_choice
        if is_recording():
            return self._client.create_stream(messages, **options)
        return record_stream(
            self._client,
            lambda: self._client.create_stream(messages, **options),
            messages,
            options,
            self._session,
        )

    async def close(self) -> None:
        await self._client.close()

    def actual_usage(self) -> RequestUsage:
        return self._client.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self._client.total_usage()

    def count_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        return self._client.count_tokens(messages, tools=tools)

    def remaining_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        return self._client.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self._client.model_info

    def _to_config(self) -> SessionChatCompletionClientConfig:
        session = self._session
        return SessionChatCompletionClientConfig(
            client=self._client.dump_component(),
            session_id=session.session_id if isinstance(session, SessionTracker) else session,
        )

    @classmethod
    def _from_config(cls, config: SessionChatCompletionClientConfig) -> Self:
        client = ChatCompletionClient.load_component(config.client)
        return cls(client, config.session_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client!r}, session={self._session!r})"
