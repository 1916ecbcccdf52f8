"""Never break the agent: our faults are counted, the model's errors and results pass unchanged."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_core.models import CreateResult, LLMMessage, UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from autogen_scripts import MODEL_INFO, answer, replay

import agentsession
from agentsession import SessionTracker, Step, get_stats
from agentsession.testing import FailingBackend
from agentsession_autogen import SessionChatCompletionClient, _recording

MESSAGES = [UserMessage(content="Paris?", source="user")]


class ModelDown(Exception):
    """The model provider's own error, as a client would raise it."""


class Broken(ReplayChatCompletionClient):
    """A model whose calls raise (create) or break off after one chunk (create_stream)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(["never"], model_info=MODEL_INFO)
        self.error = error

    async def create(self, messages: Sequence[LLMMessage], **options: Any) -> CreateResult:
        raise self.error

    async def create_stream(  # type: ignore[override]
        self, messages: Sequence[LLMMessage], **options: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        yield "partial"
        raise self.error


async def test_model_exception_propagates_unchanged_and_fails_the_step(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """The very exception the model raised reaches the caller; the step says failed and why."""
    error = ModelDown("quota exceeded")
    session = SessionTracker()
    model = SessionChatCompletionClient(Broken(error), session)
    with pytest.raises(ModelDown) as raised:
        await AssistantAgent("planner", model_client=model).run(task="hi")
    assert raised.value is error
    (step,) = steps_of(session.session_id)
    assert (step.status, step.error, step.name) == (
        "failed",
        "ModelDown: quota exceeded",
        "planner",
    )


async def test_stream_exception_propagates_after_the_chunks_and_fails_the_step(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A stream that breaks off: the chunks before it arrive, then its exception; step failed."""
    error = ModelDown("connection reset")
    session = SessionTracker()
    model = SessionChatCompletionClient(Broken(error), session)
    received: list[Any] = []

    async def consume() -> None:
        async for item in model.create_stream(MESSAGES):
            received.append(item)

    with pytest.raises(ModelDown) as raised:
        await consume()
    assert raised.value is error
    assert received == ["partial"]
    (step,) = steps_of(session.session_id)
    assert step.status == "failed"


async def test_a_stream_closed_early_is_a_cancelled_step(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A consumer that stops reading before the result leaves a cancelled step, not an open one."""
    session = SessionTracker()
    model = SessionChatCompletionClient(replay("a long answer in many chunks"), session)
    stream = model.create_stream(MESSAGES)
    assert isinstance(await stream.__anext__(), str)
    await stream.aclose()
    (step,) = steps_of(session.session_id)
    assert step.status == "cancelled"


async def test_our_fault_when_opening_a_step_is_counted_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch, steps_of: Callable[[str], list[Step]]
) -> None:
    """A bug of ours before the call: the answer comes back unrecorded, faults.autogen counted."""

    def broken(messages: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(_recording, "messages_data", broken)
    session = SessionTracker()
    model = SessionChatCompletionClient(replay(answer("still works")), session)
    result = await AssistantAgent("planner", model_client=model).run(task="hi")
    assert result.messages[-1].content == "still works"
    assert steps_of(session.session_id) == []
    assert get_stats()["faults.autogen"] == 1


async def test_our_fault_when_closing_a_step_still_closes_it(
    monkeypatch: pytest.MonkeyPatch, steps_of: Callable[[str], list[Step]]
) -> None:
    """A bug of ours reading the answer: the step ends completed without output, and is counted."""

    def broken(result: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(_recording, "result_data", broken)
    session = SessionTracker()
    model = SessionChatCompletionClient(replay(answer("fine", 5, 2)), session)
    assert (await model.create(MESSAGES)).content == "fine"
    (step,) = steps_of(session.session_id)
    assert (step.status, step.output, step.output_tokens) == ("completed", None, 2)
    assert get_stats()["faults.autogen"] == 1


async def test_a_raising_backend_never_reaches_the_agent() -> None:
    """FailingBackend: the team runs to its answer; the lost writes are only counted."""
    agentsession.configure(sync=True)  # a failed write is dropped and counted at once
    session = SessionTracker(backend=FailingBackend())
    model = SessionChatCompletionClient(replay("one", "two"), session)
    planner = AssistantAgent("planner", model_client=model)
    assert (await planner.run(task="hi")).messages[-1].content == "one"
    assert (await planner.run(task="again")).messages[-1].content == "two"
    assert get_stats().get("dropped.backend_error", 0) > 0
    assert not any(name.startswith("faults.autogen") for name in get_stats())
