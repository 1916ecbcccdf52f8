"""One step per LLM call, whatever the entry point: chat, complete, their async and streaming
forms, and the wrappers LlamaIndex nests inside each other."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from llamaindex_scripted import Reply, ScriptedLLM

from agentsession import SessionTracker, Step, current_step, using_session
from agentsession_llamaindex import SessionSpanHandler

MESSAGES = [ChatMessage(role="user", content="Where is Paris?")]


async def consume(stream: Any) -> Any:
    chunks = [chunk async for chunk in stream]
    return chunks[-1] if chunks else None


def run_sync(method: str, llm: Any) -> None:
    if method == "chat":
        llm.chat(MESSAGES)
    elif method == "complete":
        llm.complete("Where is Paris?")
    elif method == "stream_chat":
        list(llm.stream_chat(MESSAGES))
    else:
        list(llm.stream_complete("Where is Paris?"))


async def run_async(method: str, llm: Any) -> None:
    if method == "achat":
        await llm.achat(MESSAGES)
    elif method == "acomplete":
        await llm.acomplete("Where is Paris?")
    elif method == "astream_chat":
        await consume(await llm.astream_chat(MESSAGES))
    else:
        await consume(await llm.astream_complete("Where is Paris?"))


SYNC = ["chat", "complete", "stream_chat", "stream_complete"]
ASYNC = ["achat", "acomplete", "astream_chat", "astream_complete"]


@pytest.mark.parametrize("method", SYNC)
def test_mock_llm_sync_call_is_one_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]], method: str
) -> None:
    """MockLLM's sync methods nest chat in complete: each call is exactly one completed step."""
    with using_session("li-sync") as session:
        run_sync(method, MockLLM(max_tokens=3))
        run_sync(method, MockLLM(max_tokens=3))
    steps = steps_of(session.session_id)
    assert [(s.step_index, s.name, s.status) for s in steps] == [
        (0, f"MockLLM.{method}", "completed"),
        (1, f"MockLLM.{method}", "completed"),
    ]
    assert all(s.framework == "llamaindex" for s in steps)


@pytest.mark.parametrize("method", ASYNC)
async def test_mock_llm_async_call_is_one_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]], method: str
) -> None:
    """achat emits two start events and astream_chat starts stream_chat inside its generator:
    still one step per call."""
    async with using_session("li-async") as session:
        await run_async(method, MockLLM(max_tokens=3))
        await run_async(method, MockLLM(max_tokens=3))
    steps = steps_of(session.session_id)
    assert [(s.step_index, s.name, s.status) for s in steps] == [
        (0, f"MockLLM.{method}", "completed"),
        (1, f"MockLLM.{method}", "completed"),
    ]


def test_chat_step_has_model_tokens_input_output_and_latency(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A chat step keeps the provider's model, the raw usage's tokens, the messages and reply."""
    llm = ScriptedLLM([Reply("Paris is in France.", usage=(12, 5))])
    with using_session("li-fields") as session:
        llm.chat(MESSAGES)
    (step,) = steps_of(session.session_id)
    assert step.model == "scripted-model-2025"  # raw.model, more precise than the configured
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (12, 5, 17)
    assert step.input == [{"role": "user", "content": "Where is Paris?"}]
    assert step.output == {"role": "assistant", "content": "Paris is in France."}
    assert step.duration_ms >= 0
    assert (step.kind, step.error) == ("llm", None)


def test_model_comes_from_the_llm_metadata_without_a_raw_model(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """Without raw.model the step's model is the LLM's own model name; MockLLM has none."""
    with using_session("li-model") as session:
        ScriptedLLM([Reply("ok", usage=None)], model="my-model").chat(MESSAGES)
        MockLLM(max_tokens=2).chat(MESSAGES)
    first, second = steps_of(session.session_id)
    assert (first.model, first.input_tokens) == ("my-model", None)
    assert second.model is None


@pytest.mark.parametrize(
    ("raw", "extra", "expected"),
    [
        ({"usage": {"input_tokens": 3, "output_tokens": 4}}, {}, (3, 4, 7)),  # Anthropic
        ({"prompt_eval_count": 5, "eval_count": 6}, {}, (5, 6, 11)),  # Ollama
        (None, {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17}, (8, 9, 17)),
    ],
    ids=["anthropic-usage", "ollama-raw", "additional-kwargs"],
)
def test_tokens_from_other_usage_shapes(
    handler: SessionSpanHandler,
    steps_of: Callable[[str], list[Step]],
    raw: Any,
    extra: dict[str, int],
    expected: tuple[int, int, int],
) -> None:
    """Token counts are read from the usage shapes LlamaIndex integrations put in raw or kwargs."""
    from llama_index.core.llms import ChatResponse

    class ShapedLLM(ScriptedLLM):
        def _response(self, reply: Reply, delta: str | None = None) -> ChatResponse:
            message = ChatMessage(role="assistant", content=reply.text)
            return ChatResponse(message=message, raw=raw, additional_kwargs=extra)

    with using_session("li-usage") as session:
        ShapedLLM(["ok"]).chat(MESSAGES)
    (step,) = steps_of(session.session_id)
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == expected


def test_failed_call_is_a_failed_step_and_the_error_reaches_the_caller(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A dropped LLM span is a failed step with the error; the user's exception is unchanged."""
    llm = ScriptedLLM([Reply(error=TimeoutError("model timed out")), Reply("ok")])
    with using_session("li-error") as session:
        with pytest.raises(TimeoutError, match="model timed out"):
            llm.chat(MESSAGES)
        llm.chat(MESSAGES)
    failed, ok = steps_of(session.session_id)
    assert (failed.status, failed.error) == ("failed", "TimeoutError: model timed out")
    assert ok.status == "completed"


async def test_async_failed_call_is_a_failed_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """achat raising: a failed step, the same exception for the caller."""
    llm = ScriptedLLM([Reply(error=ValueError("bad request"))])
    async with using_session("li-aerror") as session:
        with pytest.raises(ValueError, match="bad request"):
            await llm.achat(MESSAGES)
    (step,) = steps_of(session.session_id)
    assert (step.status, step.error) == ("failed", "ValueError: bad request")


def test_stream_step_spans_the_whole_stream_and_keeps_the_last_chunk(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A stream's step ends when the generator is exhausted, with the full text and usage."""
    llm = ScriptedLLM([Reply("Paris is in France.", usage=(10, 4))])
    with using_session("li-stream") as session:
        stream = llm.stream_chat(MESSAGES)
        assert steps_of(session.session_id) == []  # the span has exited, the call has not
        chunks = list(stream)
    assert chunks[-1].message.content == "Paris is in France."
    (step,) = steps_of(session.session_id)
    assert step.status == "completed"
    assert step.output == {"role": "assistant", "content": "Paris is in France."}
    assert (step.input_tokens, step.output_tokens) == (10, 4)
    assert step.metadata["time_to_first_chunk_ms"] >= 0


def test_stream_closed_early_is_cancelled_with_the_partial_output(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A consumer that stops reading cancels the step; what it read is kept."""
    llm = ScriptedLLM([Reply("one two three four")])
    with using_session("li-stream-closed") as session:
        stream = llm.stream_chat(MESSAGES)
        next(stream)
        stream.close()
    (step,) = steps_of(session.session_id)
    assert step.status == "cancelled"
    assert step.error == "CancelledError: the stream was closed before its end"
    assert step.output == {"role": "assistant", "content": "one"}


def test_stream_never_read_is_cancelled_once_collected(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A stream dropped unread leaves no call behind: the next span ends it as cancelled."""
    with using_session("li-stream-dropped") as session:
        stream = MockLLM(max_tokens=2).stream_chat(MESSAGES)
        del stream
        gc.collect()
        MockLLM(max_tokens=2).chat(MESSAGES)
    steps = steps_of(session.session_id)
    assert [(s.name, s.status) for s in steps] == [
        ("MockLLM.stream_chat", "cancelled"),
        ("MockLLM.chat", "completed"),
    ]


async def test_async_stream_failing_midway_is_a_failed_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """An async stream raising while read: a failed step, the error reaches the consumer."""

    class Resetting(ScriptedLLM):
        @llm_chat_callback()
        async def astream_chat(self, messages: Any, **kwargs: Any) -> Any:
            async def chunks() -> Any:
                yield self._response(Reply("partial"), delta="partial")
                raise ConnectionError("stream reset")

            return chunks()

    async with using_session("li-stream-error") as session:
        with pytest.raises(ConnectionError, match="stream reset"):
            await consume(await Resetting().astream_chat(MESSAGES))
    (step,) = steps_of(session.session_id)
    assert (step.status, step.error) == ("failed", "ConnectionError: stream reset")
    assert step.output == {"role": "assistant", "content": "partial"}


def test_capture_off_keeps_no_content_but_everything_else(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """SessionTracker(capture_content=False): no input or output, tokens and model still kept."""
    tracker = SessionTracker(capture_content=False)
    with using_session(tracker):
        ScriptedLLM([Reply("secret answer")]).chat(MESSAGES)
    (step,) = steps_of(tracker.session_id)
    assert (step.input, step.output) == (None, None)
    assert step.input_tokens == 11


def test_mask_applies_to_captured_messages(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """The tracker's mask sees the captured messages as plain data before they are stored."""

    def mask(value: Any) -> Any:
        return "[masked]" if isinstance(value, list) else value

    tracker = SessionTracker(mask=mask)
    with using_session(tracker):
        ScriptedLLM([Reply("ok")]).chat(MESSAGES)
    (step,) = steps_of(tracker.session_id)
    assert step.input == "[masked]"
    assert step.output == {"role": "assistant", "content": "ok"}


def test_tool_call_requests_are_part_of_the_output(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A reply that asks for tools records their names and arguments in the step's output."""
    llm = ScriptedLLM([Reply("", tool_calls=[("lookup", {"city": "Paris"})])])
    with using_session("li-tool-request") as session:
        llm.chat(MESSAGES)
    (step,) = steps_of(session.session_id)
    assert step.output["tool_calls"] == [
        {"id": "call-0", "name": "lookup", "arguments": {"city": "Paris"}}
    ]


@pytest.mark.parametrize("method", ["chat", "stream_chat"])
def test_the_step_current_before_a_call_is_current_after_it(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]], method: str
) -> None:
    """A call's step is current only while the call runs: the enclosing step is current again
    after it (an HTTP hook made later must not see the call's ended step, nor no step)."""
    tracker = SessionTracker()
    with tracker, tracker.begin_step(name="outer") as outer:
        run_sync(method, MockLLM(max_tokens=1))
        assert current_step() is outer
    assert [s.name for s in steps_of(tracker.session_id)] == ["outer", f"MockLLM.{method}"]
