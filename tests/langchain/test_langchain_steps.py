"""One step per chat-model or LLM call, whichever way LangChain makes the call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    FakeMessagesListChatModel,
)
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_fakes import MODEL, UsageStreamingChatModel, reply, scripted

from agentsession import SessionTracker, Step, current_step
from agentsession_langchain import SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]


def config(session: SessionTracker, **extra: Any) -> dict[str, Any]:
    return {"callbacks": [SessionCallbackHandler(session)], **extra}


def prompt_chain(model: Any) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one word."), ("user", "{question}")]
    )
    return prompt | model | StrOutputParser()


def test_model_alone_is_one_step(steps_of: StepsOf) -> None:
    """model.invoke records one step with model, provider, tokens, input and output."""
    model = scripted(reply("Paris", input_tokens=9, output_tokens=2))
    with SessionTracker("lc-alone-0001") as session:
        answer = model.invoke("Capital of France?", config(session))
    assert answer.content == "Paris"
    (step,) = steps_of("lc-alone-0001")
    assert (step.step_index, step.kind, step.framework, step.status) == (
        0,
        "llm",
        "langchain",
        "completed",
    )
    assert step.name == "ScriptedChatModel"
    assert step.model == "gpt-4o-mini-2024-07-18"  # the model that answered, over the one asked
    assert step.provider == "scriptedchatmodel"  # LangChain's ls_provider
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (9, 2, 11)
    assert step.input == [{"role": "user", "content": "Capital of France?"}]
    assert step.output == {"role": "assistant", "content": "Paris"}
    assert step.duration_ms is not None
    assert step.duration_ms >= 0


def test_model_asked_is_recorded_when_the_answer_names_none(steps_of: StepsOf) -> None:
    """Without a model in the response, the step keeps the model from the invocation."""
    model = scripted("plain text, no metadata")
    with SessionTracker("lc-asked-0001") as session:
        model.invoke("hi", config(session))
    assert steps_of("lc-asked-0001")[0].model == MODEL


def test_prompt_model_parser_chain_is_one_step(steps_of: StepsOf) -> None:
    """A prompt | model | parser chain is one step: chain runs are not steps."""
    chain = prompt_chain(FakeListChatModel(responses=["Paris"]))
    with SessionTracker("lc-chain-0001") as session:
        assert chain.invoke({"question": "Capital of France?"}, config(session)) == "Paris"
    (step,) = steps_of("lc-chain-0001")
    assert step.input == [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert step.output == {"role": "assistant", "content": "Paris"}
    assert step.parent_trace_id is None


def test_successive_calls_are_numbered_in_order(steps_of: StepsOf) -> None:
    """Each call is the next step; every step has its own trace id."""
    model = FakeListChatModel(responses=["a", "b", "c"])
    with SessionTracker("lc-order-0001") as session:
        handler = SessionCallbackHandler(session)
        for _ in range(3):
            model.invoke("next", {"callbacks": [handler]})
    steps = steps_of("lc-order-0001")
    assert [(s.step_index, s.output["content"]) for s in steps] == [(0, "a"), (1, "b"), (2, "c")]
    assert len({s.trace_id for s in steps}) == 3


def test_batch_in_a_thread_pool_gives_unique_gap_free_indexes(steps_of: StepsOf) -> None:
    """batch() with max_concurrency > 1 calls the handler from worker threads: 0..n-1, once each."""
    chain = prompt_chain(FakeListChatModel(responses=["x"], sleep=0.002))
    inputs = [{"question": f"q{n}"} for n in range(24)]
    with SessionTracker("lc-batch-0001") as session:
        handler = SessionCallbackHandler(session)
        answers = chain.batch(inputs, {"callbacks": [handler], "max_concurrency": 6})
    assert answers == ["x"] * 24
    steps = steps_of("lc-batch-0001")
    assert sorted(s.step_index for s in steps) == list(range(24))
    assert sorted(s.input[1]["content"] for s in steps) == sorted(f"q{n}" for n in range(24))
    assert handler.open_runs == 0


async def test_ainvoke_and_abatch(steps_of: StepsOf) -> None:
    """ainvoke and abatch record one step per call, with gap-free indexes."""
    chain = prompt_chain(FakeListChatModel(responses=["y"]))
    with SessionTracker("lc-async-0001") as session:
        handler = SessionCallbackHandler(session)
        assert await chain.ainvoke({"question": "first"}, {"callbacks": [handler]}) == "y"
        inputs = [{"question": f"q{n}"} for n in range(10)]
        await chain.abatch(inputs, {"callbacks": [handler], "max_concurrency": 4})
    steps = steps_of("lc-async-0001")
    assert [s.step_index for s in steps] == list(range(11))
    assert steps[0].input[1]["content"] == "first"
    assert handler.open_runs == 0


async def test_concurrent_tasks_share_one_session(steps_of: StepsOf) -> None:
    """asyncio.gather of many ainvoke calls: every index once, in start order."""
    model = FakeListChatModel(responses=["z"])
    with SessionTracker("lc-gather-0001") as session:
        handler = SessionCallbackHandler(session)
        await asyncio.gather(*(model.ainvoke(f"m{n}", {"callbacks": [handler]}) for n in range(30)))
    assert sorted(s.step_index for s in steps_of("lc-gather-0001")) == list(range(30))


def test_stream_is_one_step_with_the_whole_answer(steps_of: StepsOf) -> None:
    """A sync stream is one step whose output is the concatenated answer."""
    model = FakeListChatModel(responses=["streamed"])
    with SessionTracker("lc-stream-0001") as session:
        chunks = [chunk.content for chunk in model.stream("go", config(session))]
    assert "".join(map(str, chunks)) == "streamed"
    (step,) = steps_of("lc-stream-0001")
    assert step.output["content"] == "streamed"
    assert 0 <= step.metadata["time_to_first_chunk_ms"] <= step.duration_ms


def test_a_call_that_is_not_streamed_has_no_first_chunk_time(steps_of: StepsOf) -> None:
    """invoke() records no time to first chunk."""
    with SessionTracker("lc-no-stream-0001") as session:
        FakeListChatModel(responses=["whole"]).invoke("go", config(session))
    (step,) = steps_of("lc-no-stream-0001")
    assert "time_to_first_chunk_ms" not in step.metadata


async def test_astream_reports_tokens_when_the_model_does(steps_of: StepsOf) -> None:
    """astream is one step, with the token counts of the stream's usage chunk."""
    model = UsageStreamingChatModel(
        messages=iter([reply("three word answer", input_tokens=20, output_tokens=3)])
    )
    with SessionTracker("lc-astream-0001") as session:
        text = "".join([str(c.content) async for c in model.astream("go", config(session))])
    assert text.split() == ["three", "word", "answer"]
    (step,) = steps_of("lc-astream-0001")
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (20, 3, 23)
    assert step.output["content"].split() == ["three", "word", "answer"]


def test_tokens_from_llm_output_token_usage(steps_of: StepsOf) -> None:
    """A model that reports usage only in llm_output["token_usage"] still gets its tokens."""

    class LegacyUsageModel(FakeMessagesListChatModel):
        def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
            result = super()._generate(messages, stop, **kwargs)
            usage = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
            return ChatResult(
                generations=result.generations,
                llm_output={"token_usage": usage, "model_name": "legacy-1"},
            )

    legacy = reply("ok").model_copy(update={"usage_metadata": None, "response_metadata": {}})
    model = LegacyUsageModel(responses=[legacy])
    with SessionTracker("lc-legacy-0001") as session:
        model.invoke("hi", config(session))
    (step,) = steps_of("lc-legacy-0001")
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (30, 4, 34)
    assert step.model == "legacy-1"


def test_text_llm_uses_on_llm_start(steps_of: StepsOf) -> None:
    """A completion LLM (not a chat model) is a step whose input is the prompt string."""
    llm = FakeListLLM(responses=["forty-two"])
    with SessionTracker("lc-llm-0001") as session:
        assert llm.invoke("The answer?", config(session)) == "forty-two"
    (step,) = steps_of("lc-llm-0001")
    assert (step.input, step.output, step.name) == ("The answer?", "forty-two", "FakeListLLM")


def test_messages_keep_roles_names_and_tool_calls(steps_of: StepsOf) -> None:
    """System, named user and AI messages with tool calls are recorded role by role."""
    model = FakeMessagesListChatModel(
        responses=[reply("", tool_calls=[{"name": "lookup", "args": {"q": "x"}}])]
    )
    messages = [SystemMessage("Be brief."), HumanMessage("hi", name="alice")]
    with SessionTracker("lc-roles-0001") as session:
        model.invoke(messages, config(session))
    (step,) = steps_of("lc-roles-0001")
    assert step.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi", "name": "alice"},
    ]
    call = step.output["tool_calls"][0]
    assert (call["name"], call["args"], call["id"]) == ("lookup", {"q": "x"}, "call_0")


def test_model_error_is_a_failed_step_and_propagates_unchanged(steps_of: StepsOf) -> None:
    """A model that raises: the same exception reaches the caller, the step is failed."""

    class Boom(RuntimeError):
        pass

    error = Boom("rate limited")

    class FailingModel(FakeListChatModel):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            raise error

    with SessionTracker("lc-error-0001") as session:
        handler = SessionCallbackHandler(session)
        with pytest.raises(Boom) as raised:
            prompt_chain(FailingModel(responses=["never"])).invoke(
                {"question": "q"}, {"callbacks": [handler]}
            )
    assert raised.value is error
    (step,) = steps_of("lc-error-0001")
    assert (step.status, step.error) == ("failed", "Boom: rate limited")
    assert handler.open_runs == 0


async def test_cancelled_call_is_a_cancelled_step(steps_of: StepsOf) -> None:
    """A task cancelled during the model call: CancelledError propagates, the step is cancelled."""

    class SlowModel(FakeListChatModel):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
            await asyncio.sleep(5)
            raise AssertionError("cancelled before")

    model = SlowModel(responses=["never"])
    with SessionTracker("lc-cancel-0001") as session:
        handler = SessionCallbackHandler(session)
        task = asyncio.create_task(model.ainvoke("wait", {"callbacks": [handler]}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (step,) = steps_of("lc-cancel-0001")
    assert step.status == "cancelled"


def test_run_name_from_config_names_the_step(steps_of: StepsOf) -> None:
    """config run_name becomes the step's name."""
    with SessionTracker("lc-name-0001") as session:
        FakeListChatModel(responses=["ok"]).invoke("hi", config(session, run_name="planner"))
    assert steps_of("lc-name-0001")[0].name == "planner"


def test_generation_without_message_has_text_output() -> None:
    """A ChatGeneration is read through its message; the reader copes with the odd cases."""
    from langchain_core.outputs import Generation, LLMResult

    from agentsession_langchain._extract import read_response

    several = LLMResult(generations=[[Generation(text="a"), Generation(text="b")]])
    assert read_response(several) == (["a", "b"], None, None, None, None)
    empty = LLMResult(generations=[])
    assert read_response(empty) == (None, None, None, None, None)
    chat = LLMResult(generations=[[ChatGeneration(message=reply("hi", input_tokens=1))]])
    assert read_response(chat)[2:] == (1, 5, 6)


def test_stream_closed_early_is_a_cancelled_step(steps_of: StepsOf) -> None:
    """A caller that stops reading a stream: the step is cancelled and nothing stays open."""
    model = FakeListChatModel(responses=["a long streamed answer"])
    with SessionTracker("lc-stream-0002") as session:
        handler = SessionCallbackHandler(session)
        for _ in model.stream("go", {"callbacks": [handler]}):
            break
    (step,) = steps_of("lc-stream-0002")
    assert step.status == "cancelled"
    assert handler.open_runs == 0


async def test_async_stream_closed_early_is_a_cancelled_step(steps_of: StepsOf) -> None:
    """The same for astream closed with aclose()."""
    model = FakeListChatModel(responses=["a long streamed answer"])
    with SessionTracker("lc-stream-0003") as session:
        handler = SessionCallbackHandler(session)
        stream = model.astream("go", {"callbacks": [handler]})
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
    (step,) = steps_of("lc-stream-0003")
    assert step.status == "cancelled"
    assert handler.open_runs == 0


def test_the_step_current_before_a_call_is_current_after_it() -> None:
    """A model call lends its step to HTTP hooks while it runs, then gives the context back."""
    with SessionTracker() as session:
        outer = session.begin_step(name="outer")
        with outer:
            FakeListChatModel(responses=["hi"]).invoke("x", config=config(session))
            assert current_step() is outer
