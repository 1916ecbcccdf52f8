"""instrument()/uninstrument(): every model client recorded with no wrapper, then put back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from autogen_scripts import answer, replay, search_flights, tool_call

import agentsession
from agentsession import SessionTracker, Step, using_session
from agentsession_autogen import AutoGenInstrumentor, SessionChatCompletionClient
from agentsession_autogen import instrument as instrument_autogen
from agentsession_autogen import uninstrument as uninstrument_autogen
from agentsession_autogen._instrumentor import ORIGINAL

MESSAGES = [UserMessage(content="Paris?", source="user")]


def methods_of_every_client() -> dict[tuple[type, str], Any]:
    """create/create_stream as each ChatCompletionClient subclass defines them, by identity."""
    found: dict[tuple[type, str], Any] = {}
    pending: list[type] = [ChatCompletionClient]
    while pending:
        for cls in type.__subclasses__(pending.pop()):
            pending.append(cls)
            for name in ("create", "create_stream"):
                if name in cls.__dict__:
                    found[(cls, name)] = cls.__dict__[name]
    return found


async def test_calls_inside_using_session_are_recorded_without_a_wrapper(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """After instrument(), a plain client's calls in a session are steps, with the agent's name."""
    assert instrument_autogen() is True
    planner = AssistantAgent("planner", replay("first", "second"))
    async with using_session("conv-7", user_id="user-a"):
        await planner.run(task="Paris?")
        await planner.run(task="And Lyon?")
    steps = steps_of("conv-7")
    assert [(s.step_index, s.name, s.user_id) for s in steps] == [
        (0, "planner", "user-a"),
        (1, "planner", "user-a"),
    ]


async def test_streams_are_recorded_too(steps_of: Callable[[str], list[Step]]) -> None:
    """create_stream() of an instrumented client is one step that relays every chunk."""
    instrument_autogen()
    with using_session("conv-stream"):
        items = [item async for item in replay("hello there").create_stream(MESSAGES)]
    assert isinstance(items[-1], CreateResult)
    (step,) = steps_of("conv-stream")
    assert (step.output, step.metadata["stream"]) == ("hello there", True)


async def test_outside_any_session_each_agent_run_is_one_new_session(
    backend: agentsession.MemoryBackend,
) -> None:
    """Auto ids on, no session in force: an agent's tool call and reflection share one new
    session, and two agents run in two tasks get one each."""
    instrument_autogen()

    async def run_agent() -> None:
        model = replay(tool_call("search_flights", "call-1", destination="Paris"), answer("AF1481"))
        agent = AssistantAgent("booker", model, tools=[search_flights], reflect_on_tool_use=True)
        await agent.run(task="Flights to Paris?")

    await asyncio.gather(run_agent(), run_agent())
    assert agentsession.flush(5.0)
    sessions = backend.list_sessions().sessions
    assert sorted(s.total_steps for s in sessions) == [2, 2]
    for session in sessions:
        _, second = backend.list_steps(session.session_id)
        assert [c.name for c in second.tool_calls] == ["search_flights"]


async def test_outside_any_session_a_team_run_is_one_new_session(
    backend: agentsession.MemoryBackend,
) -> None:
    """Auto ids on, no session in force: every turn of a team, whichever agent speaks (each in
    its own runtime task), is a step of one new session."""
    instrument_autogen()
    planner = AssistantAgent("planner", replay("plan A", "plan B"))
    critic = AssistantAgent("critic", replay("looks good"))
    await RoundRobinGroupChat([planner, critic], max_turns=3).run(task="Plan a trip")
    assert agentsession.flush(5.0)
    (session,) = backend.list_sessions().sessions
    steps = backend.list_steps(session.session_id)
    assert [s.name for s in steps] == ["planner", "critic", "planner"]


async def test_no_session_and_no_auto_ids_records_nothing(
    monkeypatch: pytest.MonkeyPatch, backend: agentsession.MemoryBackend
) -> None:
    """AGENTSESSION_AUTO_SESSION_ID=false: a call in no session is not recorded, and works."""
    monkeypatch.setenv("AGENTSESSION_AUTO_SESSION_ID", "false")
    agentsession.configure(auto_session_id=False)
    instrument_autogen()
    result = await replay("hi").create(MESSAGES)
    assert result.content == "hi"
    assert agentsession.flush(5.0)
    assert backend.list_sessions().sessions == []


def test_instrument_is_idempotent_and_uninstrument_restores_every_original() -> None:
    """Twice instrument() wraps once; uninstrument() puts back the very same functions."""
    before = methods_of_every_client()
    assert instrument_autogen() is True
    assert instrument_autogen() is False
    during = methods_of_every_client()
    wrapped = {key for key, method in during.items() if hasattr(method, ORIGINAL)}
    assert (ReplayChatCompletionClient, "create") in wrapped
    assert (ReplayChatCompletionClient, "create_stream") in wrapped
    assert all(during[key].__agentsession_original__ is before[key] for key in wrapped)
    assert not any(cls is SessionChatCompletionClient for cls, _ in wrapped)
    assert uninstrument_autogen() is True
    assert uninstrument_autogen() is False
    assert methods_of_every_client() == before
    assert "__init_subclass__" not in ChatCompletionClient.__dict__


async def test_instrument_uninstrument_cycles_record_only_while_on(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """Recording follows the switch through several cycles."""
    session = SessionTracker()
    client = replay(*["x"] * 4)
    with using_session(session):
        for _ in range(2):
            instrument_autogen()
            await client.create(MESSAGES)
            uninstrument_autogen()
            await client.create(MESSAGES)
    assert len(steps_of(session.session_id)) == 2


class LateClient(ChatCompletionClient):
    """Stands for a client class defined after instrument() (a module imported later)."""

    def __init__(self) -> None:
        self.inner = replay(*["late"] * 4)

    async def create(self, messages: Sequence[LLMMessage], **options: Any) -> CreateResult:
        return await self.inner.create(messages, **options)

    def create_stream(
        self, messages: Sequence[LLMMessage], **options: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        return self.inner.create_stream(messages, **options)

    async def close(self) -> None:
        pass

    def actual_usage(self) -> Any:
        return self.inner.actual_usage()

    def total_usage(self) -> Any:
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], **options: Any) -> int:
        return 0

    def remaining_tokens(self, messages: Sequence[LLMMessage], **options: Any) -> int:
        return 0

    @property
    def capabilities(self) -> Any:
        return self.inner.model_info

    @property
    def model_info(self) -> Any:
        return self.inner.model_info


async def test_classes_defined_while_instrumented_are_recorded_then_restored(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A subclass defined after instrument() records one step per call, then is unwrapped."""
    instrument_autogen()

    class Delegating(LateClient):
        async def create(self, messages: Sequence[LLMMessage], **options: Any) -> CreateResult:
            return await super().create(messages, **options)

    original = Delegating.__dict__["create"].__agentsession_original__
    with using_session("late") as session:
        await Delegating().create(MESSAGES)
    assert len(steps_of(session.session_id)) == 1  # Delegating, LateClient, Replay: one step
    uninstrument_autogen()
    assert Delegating.__dict__["create"] is original

    class AfterUninstrument(LateClient):
        async def create(self, messages: Sequence[LLMMessage], **options: Any) -> CreateResult:
            return await super().create(messages, **options)

    assert not hasattr(AfterUninstrument.__dict__["create"], ORIGINAL)


async def test_wrapper_and_instrument_together_record_one_step(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A wrapper around an instrumented client is one step, in the wrapper's session."""
    instrument_autogen()
    mine = SessionTracker()
    wrapper = SessionChatCompletionClient(replay("hi"), mine)
    with using_session("elsewhere") as other:
        await wrapper.create(MESSAGES)
    assert len(steps_of(mine.session_id)) == 1
    assert steps_of(other.session_id) == []


async def test_a_wrapper_stacked_on_ours_stays_but_passes_calls_through(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """Another library wrapping create after us keeps its wrapper; ours then only passes through."""
    instrumentor = AutoGenInstrumentor()
    instrumentor.instrument()
    ours = ReplayChatCompletionClient.__dict__["create"]

    async def theirs(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await ours(self, *args, **kwargs)

    ReplayChatCompletionClient.create = theirs  # type: ignore[method-assign]
    try:
        instrumentor.uninstrument()
        assert ReplayChatCompletionClient.__dict__["create"] is theirs
        with using_session("stacked") as session:
            assert (await replay("hi").create(MESSAGES)).content == "hi"
        assert steps_of(session.session_id) == []
    finally:
        ReplayChatCompletionClient.create = ours.__agentsession_original__  # type: ignore[method-assign]


def test_instrument_without_autogen_installed_warns_and_returns_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A missing framework is reported once and nothing is patched."""

    class Missing(AutoGenInstrumentor):
        instruments = ("no-such-autogen-distribution >= 0.4",)

    before = methods_of_every_client()
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        assert Missing().instrument() is False
    assert "no-such-autogen-distribution is not installed" in caplog.text
    assert methods_of_every_client() == before


def test_instrument_refuses_options_it_does_not_know() -> None:
    """A misspelt option is a TypeError naming it, as with the other adapters; nothing is hooked."""
    instrumentor = AutoGenInstrumentor()
    with pytest.raises(TypeError, match="unexpected option\\(s\\): trackr"):
        instrumentor.instrument(trackr=None)
    assert not instrumentor.is_instrumented
