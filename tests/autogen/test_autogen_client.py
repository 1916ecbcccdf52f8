"""SessionChatCompletionClient: a real ChatCompletionClient that records each call as a step."""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import pytest
from autogen_core import CancellationToken, ComponentModel
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import FunctionTool
from autogen_ext.models.replay import ReplayChatCompletionClient
from autogen_scripts import answer, replay, search_flights

from agentsession import InvalidSessionIdError, SessionTracker, Step, using_session
from agentsession_autogen import SessionChatCompletionClient

MESSAGES = [
    SystemMessage(content="You book flights."),
    UserMessage(content="Paris?", source="user"),
]


def test_is_a_chat_completion_client_forwarding_every_member() -> None:
    """Every member of the interface answers as the wrapped client's does."""
    inner = replay("one")
    wrapper = SessionChatCompletionClient(inner)
    assert isinstance(wrapper, ChatCompletionClient)
    assert wrapper.client is inner
    assert wrapper.model_info == inner.model_info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # capabilities is deprecated
        assert wrapper.capabilities == inner.capabilities
    assert wrapper.count_tokens(MESSAGES) == inner.count_tokens(MESSAGES)
    assert wrapper.remaining_tokens(MESSAGES) == inner.remaining_tokens(MESSAGES)
    assert wrapper.actual_usage() == inner.actual_usage()
    assert wrapper.total_usage() == inner.total_usage()


async def test_usage_and_close_reach_the_wrapped_client() -> None:
    """Usage counters move with calls made through the wrapper, and close() closes the inner one."""
    closed: list[bool] = []

    class Closing(ReplayChatCompletionClient):
        async def close(self) -> None:
            closed.append(True)

    inner = Closing([answer("hi", prompt_tokens=4, completion_tokens=2)])
    wrapper = SessionChatCompletionClient(inner, SessionTracker())
    await wrapper.create(MESSAGES)
    assert wrapper.actual_usage().completion_tokens == 2
    assert wrapper.total_usage() == inner.total_usage()
    await wrapper.close()
    assert closed == [True]


async def test_arguments_reach_the_wrapped_client_unchanged() -> None:
    """tools, json_output, extra_create_args and the cancellation token are passed through."""
    seen: list[dict[str, Any]] = []

    class Spy(ReplayChatCompletionClient):
        async def create(self, messages: Sequence[LLMMessage], **options: Any) -> CreateResult:
            seen.append({"messages": messages, **options})
            return await super().create(messages, **options)

        def create_stream(
            self, messages: Sequence[LLMMessage], **options: Any
        ) -> AsyncGenerator[str | CreateResult, None]:
            seen.append({"messages": messages, **options})
            return super().create_stream(messages, **options)

    token = CancellationToken()
    tools = [FunctionTool(search_flights, description="Search flights.")]
    wrapper = SessionChatCompletionClient(Spy(["a", "b"]), SessionTracker())
    await wrapper.create(
        MESSAGES,
        tools=tools,
        json_output=False,
        extra_create_args={"temperature": 0},
        cancellation_token=token,
    )
    async for _ in wrapper.create_stream(MESSAGES, extra_create_args={"seed": 1}):
        pass
    first, second = seen
    assert first["messages"] is MESSAGES
    assert (first["tools"], first["json_output"]) == (tools, False)
    assert (first["extra_create_args"], first["cancellation_token"]) == ({"temperature": 0}, token)
    assert second["extra_create_args"] == {"seed": 1}
    assert "tool_choice" not in first  # left to the wrapped client's default


async def test_create_is_one_step_with_tokens_and_finish_reason(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """create() records a step: messages in, answer out, tokens, finish reason, latency."""
    session = SessionTracker()
    wrapper = SessionChatCompletionClient(replay(answer("Fly AF1481.", 12, 3)), session)
    result = await wrapper.create(MESSAGES)
    assert result.content == "Fly AF1481."
    (step,) = steps_of(session.session_id)
    assert (step.step_index, step.kind, step.status, step.framework) == (
        0,
        "llm",
        "completed",
        "autogen",
    )
    assert step.provider == "replay"
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (12, 3, 15)
    assert step.metadata["finish_reason"] == "stop"
    assert step.duration_ms >= 0
    assert step.input == [
        {"role": "system", "content": "You book flights."},
        {"role": "user", "source": "user", "content": "Paris?"},
    ]
    assert step.output == "Fly AF1481."


async def test_create_stream_is_one_step_relaying_every_chunk(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """create_stream() yields the wrapped stream unchanged and records one step at its end."""
    session = SessionTracker()
    wrapper = SessionChatCompletionClient(replay("Paris is lovely"), session)
    items = [item async for item in wrapper.create_stream(MESSAGES)]
    direct = [item async for item in replay("Paris is lovely").create_stream(MESSAGES)]
    assert [i for i in items if isinstance(i, str)] == [i for i in direct if isinstance(i, str)]
    assert isinstance(items[-1], CreateResult)
    (step,) = steps_of(session.session_id)
    assert step.status == "completed"
    assert step.output == "Paris is lovely"
    assert step.metadata["stream"] is True
    assert step.metadata["time_to_first_chunk_ms"] >= 0


async def test_explicit_tracker_wins_over_the_session_in_force(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A wrapper bound to a tracker records there even inside another using_session block."""
    mine = SessionTracker()
    wrapper = SessionChatCompletionClient(replay("hi"), mine)
    with using_session("conversation-elsewhere") as other:
        await wrapper.create(MESSAGES)
    assert len(steps_of(mine.session_id)) == 1
    assert steps_of(other.session_id) == []


async def test_unbound_wrapper_records_in_the_session_in_force(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """With no tracker, each call takes the session of the using_session block around it."""
    wrapper = SessionChatCompletionClient(replay("one", "two"))
    async with using_session("conversation-42") as first:
        await wrapper.create(MESSAGES)
    async with using_session("conversation-42"):  # the same id: the same session, next step
        await wrapper.create(MESSAGES)
    assert [s.step_index for s in steps_of(first.session_id)] == [0, 1]


async def test_session_id_wrapper_records_into_that_session(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A wrapper given a session id records every call there, with no block around it."""
    wrapper = SessionChatCompletionClient(replay("one", "two"), "ticket-2611")
    await wrapper.create(MESSAGES)
    await wrapper.create(MESSAGES)
    assert [s.step_index for s in steps_of("ticket-2611")] == [0, 1]


def test_bad_sessions_are_refused_at_construction() -> None:
    """An invalid session id or a wrong type raises where the wrapper is built."""
    with pytest.raises(InvalidSessionIdError):
        SessionChatCompletionClient(replay(), " padded ")
    with pytest.raises(TypeError, match="session must be a SessionTracker"):
        SessionChatCompletionClient(replay(), 42)  # type: ignore[arg-type]


async def test_dump_and_load_component_round_trip(steps_of: Callable[[str], list[Step]]) -> None:
    """The component config round-trips, the tracker as its id, and the loaded one records."""
    session = SessionTracker()
    wrapper = SessionChatCompletionClient(ReplayChatCompletionClient(["first", "second"]), session)
    dumped = wrapper.dump_component()
    assert dumped.provider == "agentsession_autogen.SessionChatCompletionClient"
    assert dumped.component_type == "model"
    assert dumped.config["session_id"] == session.session_id

    as_json = ComponentModel.model_validate_json(dumped.model_dump_json())
    loaded = ChatCompletionClient.load_component(as_json)
    assert isinstance(loaded, SessionChatCompletionClient)
    assert isinstance(loaded.client, ReplayChatCompletionClient)
    assert loaded.session == session.session_id
    assert loaded.dump_component() == dumped
    result = await loaded.create(MESSAGES)
    assert result.content == "first"
    assert len(steps_of(session.session_id)) == 1


def test_an_unbound_wrapper_dumps_without_a_session() -> None:
    """No tracker, no id: the config says none and the loaded wrapper takes the session in force."""
    dumped = SessionChatCompletionClient(replay("x")).dump_component()
    assert "session_id" not in dumped.config
    loaded = SessionChatCompletionClient.load_component(dumped)
    assert loaded.session is None
