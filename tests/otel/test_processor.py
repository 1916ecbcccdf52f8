"""SessionSpanProcessor: spans other code starts inside a session carry that session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from agentsession import SessionTracker, get_stats, using_session
from agentsession.otel import SessionSpanProcessor

Spans = Callable[[], list[ReadableSpan]]


def _attributes_of(spans: list[ReadableSpan], name: str) -> dict[str, object]:
    (span,) = [s for s in spans if s.name == name]
    return dict(span.attributes or {})


def test_third_party_spans_inside_a_session_get_its_ids(
    provider: TracerProvider, spans: Spans
) -> None:
    """A span started by any tracer inside using_session carries session.id and user.id."""
    tracer = provider.get_tracer("some.instrumentation")
    with using_session("conv-stamp-1", user_id="user-a"), tracer.start_as_current_span("inside"):
        pass
    with tracer.start_as_current_span("outside"):
        pass

    finished = spans()
    inside = _attributes_of(finished, "inside")
    assert inside["session.id"] == "conv-stamp-1"
    assert inside["user.id"] == "user-a"
    outside = _attributes_of(finished, "outside")
    assert "session.id" not in outside
    assert "user.id" not in outside


def test_the_trackers_user_is_used_when_the_block_names_none(
    provider: TracerProvider, spans: Spans
) -> None:
    """Inside ``with tracker:`` the tracker's own user_id is stamped."""
    tracer = provider.get_tracer("some.instrumentation")
    with SessionTracker("conv-stamp-2", user_id="user-t"), tracer.start_as_current_span("s"):
        pass
    assert _attributes_of(spans(), "s")["user.id"] == "user-t"


def test_ids_the_span_already_has_are_kept(provider: TracerProvider, spans: Spans) -> None:
    """An instrumentation that set session.id itself keeps its value."""
    tracer = provider.get_tracer("some.instrumentation")
    with (
        using_session("conv-stamp-3", user_id="user-a"),
        tracer.start_as_current_span("own", attributes={"session.id": "theirs"}),
    ):
        pass
    attributes = _attributes_of(spans(), "own")
    assert attributes["session.id"] == "theirs"
    assert attributes["user.id"] == "user-a"


def test_a_span_inside_a_step_gets_the_step_index(provider: TracerProvider, spans: Spans) -> None:
    """Inside ``with step:`` (an adapter's LLM call) the span also gets the step's index."""
    tracer = provider.get_tracer("some.instrumentation")
    with SessionTracker("conv-stamp-4") as session:
        with session.begin_step() as first:
            first.end("x")
        with session.begin_step() as step, tracer.start_as_current_span("llm call"):
            step.end("y")
    assert _attributes_of(spans(), "llm call")["agentsession.step.index"] == 1


async def test_concurrent_tasks_stamp_their_own_session(
    provider: TracerProvider, spans: Spans
) -> None:
    """Spans of two sessions running in concurrent asyncio tasks never swap ids."""
    tracer = provider.get_tracer("some.instrumentation")

    async def conversation(session_id: str) -> None:
        async with using_session(session_id):
            for turn in range(3):
                with tracer.start_as_current_span(f"{session_id} turn {turn}"):
                    await asyncio.sleep(0.001)

    await asyncio.gather(conversation("conv-task-a"), conversation("conv-task-b"))
    finished = spans()
    assert len(finished) == 6
    for span in finished:
        assert span.attributes is not None
        assert span.name.startswith(str(span.attributes["session.id"]))


def test_a_fault_in_the_processor_is_counted_never_raised(
    provider: TracerProvider, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If stamping fails, the span still starts and ends and the fault is counted."""

    def broken() -> object:
        raise RuntimeError("bug of ours")

    monkeypatch.setattr("agentsession.otel._processor.current_scope", broken)
    tracer = provider.get_tracer("some.instrumentation")
    with using_session("conv-stamp-5"), tracer.start_as_current_span("survives"):
        pass
    assert [s.name for s in spans()] == ["survives"]
    assert get_stats()["faults.otel.span_processor"] == 1


def test_processor_is_a_no_op_for_flush_and_shutdown() -> None:
    """It buffers nothing: force_flush succeeds at once and shutdown is harmless."""
    processor = SessionSpanProcessor()
    assert processor.force_flush(1) is True
    processor.shutdown()
