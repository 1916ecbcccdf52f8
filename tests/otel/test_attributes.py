"""What a step's span says: OpenInference, GenAI and agentsession attributes, times, status."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import agentsession
from agentsession import SessionTracker, Step, using_session
from agentsession.otel import OTelBackend
from agentsession.otel._attributes import MAX_MESSAGES, step_attributes, time_ns

Spans = Callable[[], list[ReadableSpan]]

pytestmark = pytest.mark.usefixtures("otel")


def _one_llm_span(spans: Spans) -> ReadableSpan:
    found = [
        s for s in spans() if s.attributes and s.attributes["openinference.span.kind"] == "LLM"
    ]
    assert len(found) == 1, found
    return found[0]


def test_llm_step_carries_session_model_tokens_and_content(spans: Spans) -> None:
    """A completed step is one LLM span with session, user, model, tokens, cost and content."""
    with SessionTracker("conv-attributes-1", user_id="user-a", tags=["travel"]) as session:
        session.set_state("user_query", "Paris")
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        with session.begin_step(
            name="plan", framework="langchain", provider="openai", model="gpt-4o-mini",
            input=messages, metadata={"run": "r1"},
        ) as step:  # fmt: skip
            step.end("hello!", input_tokens=12, output_tokens=3, cost_usd=0.25)

    span = _one_llm_span(spans)
    attributes = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["session.id"] == attributes["gen_ai.conversation.id"] == "conv-attributes-1"
    assert attributes["user.id"] == "user-a"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == attributes["llm.model_name"] == "gpt-4o-mini"
    assert attributes["gen_ai.provider.name"] == attributes["llm.provider"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == attributes["llm.token_count.prompt"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == attributes["llm.token_count.completion"] == 3
    assert attributes["llm.token_count.total"] == 15
    assert attributes["llm.cost.total"] == 0.25
    assert json.loads(str(attributes["input.value"])) == messages
    assert attributes["input.mime_type"] == "application/json"
    assert attributes["output.value"] == "hello!"
    assert attributes["output.mime_type"] == "text/plain"
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.input_messages.1.message.content"] == "hi"
    assert attributes["llm.output_messages.0.message.content"] == "hello!"
    assert attributes["agentsession.step.index"] == 0
    assert attributes["agentsession.step.name"] == "plan"
    assert attributes["agentsession.framework"] == "langchain"
    assert json.loads(str(attributes["agentsession.state"])) == {"user_query": "Paris"}
    assert json.loads(str(attributes["metadata"])) == {"run": "r1"}
    assert tuple(attributes["tag.tags"]) == ("travel",)  # type: ignore[arg-type]


def test_span_times_are_the_steps_own(isolated: agentsession.MemoryBackend, spans: Spans) -> None:
    """The span starts and ends when the step did, not when the writer exported it."""
    provider_backend = agentsession.set_default_backend(None)  # the fixture's OTel backend
    assert isinstance(provider_backend, OTelBackend)
    memory = agentsession.MemoryBackend()
    with SessionTracker("conv-times-1", backend=memory) as session, session.begin_step() as step:
        step.end("x")
    assert agentsession.flush(5.0)
    recorded = memory.list_steps("conv-times-1")[0]
    provider_backend.write([recorded])

    span = _one_llm_span(spans)
    assert span.start_time == time_ns(recorded.started_at)
    assert span.end_time == time_ns(recorded.ended_at)


def test_nanoseconds_are_exact_to_the_microsecond() -> None:
    """Converting a step time loses nothing (a float timestamp would round)."""
    moment = datetime(2031, 5, 17, 9, 30, 1, 123_457, tzinfo=timezone.utc)
    exact = calendar.timegm(moment.utctimetuple()) * 10**9 + 123_457_000
    assert int(moment.timestamp() * 1e9) != exact  # what a float would give
    assert time_ns(moment) == exact


def test_failed_step_is_an_error_span(spans: Spans) -> None:
    """A failed step's span has status ERROR with the error, and error.type its exception."""
    with (
        pytest.raises(TimeoutError),
        SessionTracker("conv-failed-1") as session,
        session.begin_step(model="m"),
    ):
        raise TimeoutError("upstream took too long")

    span = _one_llm_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "TimeoutError: upstream took too long"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "TimeoutError"
    assert span.attributes["agentsession.step.status"] == "failed"


def test_tool_calls_are_child_tool_spans_ending_where_the_step_begins(spans: Spans) -> None:
    """Tool calls listed by a step are TOOL spans under it, with their input, output and error."""
    with SessionTracker("conv-tools-1", user_id="user-b") as session:
        with session.begin_step(model="m") as first:
            first.end("call search")
        session.record_tool_call("search", {"q": "flights"}, ["AF1"], duration_ms=20.0)
        session.record_tool_call("book", {"id": "AF1"}, None, error="ValueError: sold out")
        with session.begin_step(model="m") as second:
            second.end("done")

    finished = spans()
    step_span = next(
        s for s in finished if s.attributes and s.attributes.get("agentsession.step.index") == 1
    )
    tools = [
        s for s in finished if s.attributes and s.attributes["openinference.span.kind"] == "TOOL"
    ]
    assert [s.name for s in tools] == ["search", "book"]
    for tool in tools:
        assert tool.parent is not None
        assert tool.parent.span_id == step_span.context.span_id
        assert tool.context.trace_id == step_span.context.trace_id
        assert tool.attributes is not None
        assert tool.attributes["session.id"] == "conv-tools-1"
        assert tool.attributes["user.id"] == "user-b"
    search, book = tools
    assert search.attributes is not None
    assert book.attributes is not None
    assert json.loads(str(search.attributes["input.value"])) == {"q": "flights"}
    assert json.loads(str(search.attributes["output.value"])) == ["AF1"]
    assert search.end_time == step_span.start_time
    assert search.start_time == step_span.start_time - 20_000_000
    assert book.status.status_code is StatusCode.ERROR
    assert book.attributes["error.type"] == "ValueError"
    assert step_span.attributes is not None
    assert tuple(step_span.attributes["agentsession.tool_calls"]) == ("search", "book")  # type: ignore[arg-type]


def test_using_session_user_and_tags_reach_the_span(spans: Spans) -> None:
    """user_id and tags given to using_session are on the steps recorded inside it."""
    with using_session("conv-scope-1", user_id="user-c", tags=["beta"]):
        session = agentsession.current_session()
        assert session is not None
        with session.begin_step(model="m") as step:
            step.end("ok")

    span = _one_llm_span(spans)
    assert span.attributes is not None
    assert span.attributes["user.id"] == "user-c"
    assert "beta" in tuple(span.attributes["tag.tags"])  # type: ignore[arg-type]


def _step(**changes: object) -> Step:
    now = datetime.now(timezone.utc)
    fields: dict[str, object] = {
        "session_id": "conv-unit-1", "step_index": 0, "step_id": "00f067aa0ba902b7",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "started_at": now, "ended_at": now,
        "duration_ms": 0.0,
    }  # fmt: skip
    fields.update(changes)
    return Step.model_validate(fields)


def test_long_chats_keep_the_latest_messages_within_the_attribute_budget() -> None:
    """Only the latest MAX_MESSAGES messages are flattened; input.value keeps them all."""
    chat = [{"role": "user", "content": f"m{i}"} for i in range(MAX_MESSAGES + 10)]
    attributes = step_attributes(_step(input=chat))
    assert attributes["llm.input_messages.0.message.content"] == "m10"
    assert f"llm.input_messages.{MAX_MESSAGES}.message.role" not in attributes
    assert len(json.loads(str(attributes["input.value"]))) == MAX_MESSAGES + 10
    assert len(attributes) < 128  # the SDK's default attribute limit


def test_messages_given_as_langchain_types_or_a_messages_key_are_flattened() -> None:
    """{"type": "human"} messages and {"messages": [...]} inputs are read as chats too."""
    attributes = step_attributes(
        _step(input={"messages": [{"type": "human", "content": [{"text": "hi"}]}]})
    )
    assert attributes["llm.input_messages.0.message.role"] == "human"
    assert json.loads(str(attributes["llm.input_messages.0.message.content"])) == [{"text": "hi"}]


def test_values_that_are_not_chats_only_fill_input_value() -> None:
    """A plain string or number input is input.value alone, with its mime type."""
    attributes = step_attributes(_step(input="What is 2+2?", output=4))
    assert attributes["input.value"] == "What is 2+2?"
    assert attributes["input.mime_type"] == "text/plain"
    assert attributes["output.value"] == "4"
    assert not any(key.startswith("llm.input_messages") for key in attributes)


def test_capture_off_leaves_no_content_on_the_span(spans: Spans) -> None:
    """With capture off, the span has no input or output values (only counts and ids)."""
    with (
        SessionTracker("conv-nocapture-1", capture_content=False) as session,
        session.begin_step(model="m", input="secret prompt") as step,
    ):
        step.end("secret answer", input_tokens=1, output_tokens=1)

    span = _one_llm_span(spans)
    assert span.attributes is not None
    text = json.dumps(dict(span.attributes), default=str)
    assert "secret" not in text
    assert span.attributes["llm.token_count.total"] == 2
