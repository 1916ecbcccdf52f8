"""How steps become traces: one trace per top-level step, nested steps as child spans, links
across sessions, and ids derived from ours so that every process agrees."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsession import SessionTracker, Step
from agentsession.otel import OTelBackend
from agentsession.otel._ids import otel_trace_id, trace_span_id

Spans = Callable[[], list[ReadableSpan]]

pytestmark = pytest.mark.usefixtures("otel")


def _by_index(spans: list[ReadableSpan], session_id: str) -> dict[int, ReadableSpan]:
    found = {}
    for span in spans:
        attributes = span.attributes or {}
        if (
            attributes.get("session.id") == session_id
            and attributes.get("openinference.span.kind") == "LLM"
        ):
            index = attributes["agentsession.step.index"]
            assert isinstance(index, int)
            found[index] = span
    return found


def test_each_top_level_step_is_its_own_trace_with_our_ids(spans: Spans) -> None:
    """A conversation of three steps is three traces: trace id ours, span id derived from it."""
    with SessionTracker("conv-traces-1") as session:
        handles = []
        for turn in range(3):
            with session.begin_step(model="m", input=f"turn {turn}") as step:
                step.end("ok")
            handles.append(step)

    steps = _by_index(spans(), "conv-traces-1")
    assert sorted(steps) == [0, 1, 2]
    assert len({span.context.trace_id for span in steps.values()}) == 3
    for index, handle in enumerate(handles):
        span = steps[index]
        assert span.parent is None
        assert span.context.trace_id == int(handle.trace_id, 16)
        assert span.context.span_id == trace_span_id(handle.trace_id)


def test_a_step_nested_in_a_step_of_its_session_is_its_child_span(spans: Spans) -> None:
    """A step whose parent_trace_id is an earlier step of the session joins that step's trace."""
    with SessionTracker("conv-nested-1") as session:
        with session.begin_step(model="outer") as outer:
            outer.end("call the sub-agent")
        with session.begin_step(model="inner", parent_trace_id=outer.trace_id) as inner:
            inner.end("sub-answer")
        with session.begin_step(model="innermost", parent_trace_id=inner.trace_id) as deepest:
            deepest.end("deep")

    steps = _by_index(spans(), "conv-nested-1")
    root, child, grandchild = steps[0], steps[1], steps[2]
    assert child.context.trace_id == grandchild.context.trace_id == root.context.trace_id
    assert child.parent is not None
    assert child.parent.span_id == root.context.span_id
    assert grandchild.parent is not None
    assert grandchild.parent.span_id == child.context.span_id
    assert child.context.span_id == trace_span_id(inner.trace_id)


def test_a_child_session_links_to_the_parent_step_instead(spans: Spans) -> None:
    """A child() session's steps are their own traces, linked to the parent session's step."""
    with SessionTracker("conv-parent-1") as parent:
        with parent.begin_step(model="planner") as planner:
            planner.end("delegate")
        with parent.child(session_id="conv-child-1") as child, child.begin_step(model="w") as s:
            s.end("done")

    finished = spans()
    parent_span = _by_index(finished, "conv-parent-1")[0]
    child_span = _by_index(finished, "conv-child-1")[0]
    assert child_span.parent is None
    assert child_span.context.trace_id != parent_span.context.trace_id
    assert [link.context.span_id for link in child_span.links] == [parent_span.context.span_id]
    assert child_span.links[0].context.trace_id == parent_span.context.trace_id
    assert child_span.attributes is not None
    assert child_span.attributes["agentsession.parent_trace_id"] == planner.trace_id


def test_a_parent_never_seen_here_is_linked_where_its_span_would_be(spans: Spans) -> None:
    """A parent trace from another process becomes a link to the span its owner step has."""
    foreign_trace = "0af7651916cd43dd8448eb211c80319c"
    with (
        SessionTracker("conv-remote-child-1", parent_trace_id=foreign_trace) as session,
        session.begin_step(model="m") as step,
    ):
        step.end("ok")

    (span,) = _by_index(spans(), "conv-remote-child-1").values()
    assert span.parent is None
    (link,) = span.links
    assert link.context.trace_id == int(foreign_trace, 16)
    assert link.context.span_id == trace_span_id(foreign_trace)


def test_steps_sharing_a_trace_id_are_one_trace_rooted_at_the_first(spans: Spans) -> None:
    """Steps an adapter gave one trace id form one trace; later ones are children of the first."""
    shared = "run-7f3e"  # not a W3C id: it is hashed
    with SessionTracker("conv-shared-1") as session:
        for _ in range(3):
            with session.begin_step(model="m", trace_id=shared) as step:
                step.end("ok")

    steps = _by_index(spans(), "conv-shared-1")
    assert {span.context.trace_id for span in steps.values()} == {otel_trace_id(shared)}
    assert steps[0].parent is None
    assert steps[0].context.span_id == trace_span_id(shared)
    for index in (1, 2):
        assert steps[index].parent is not None
        assert steps[index].parent.span_id == steps[0].context.span_id
    assert len({span.context.span_id for span in steps.values()}) == 3


def test_two_processes_give_the_same_step_the_same_span() -> None:
    """Exporting one step from two backends (two processes) yields the same trace and span ids."""
    now = datetime.now(timezone.utc)
    step = Step(
        session_id="conv-twice-1", step_index=4, step_id="00f067aa0ba902b7",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", started_at=now, ended_at=now,
        duration_ms=0.0,
    )  # fmt: skip
    contexts = []
    for _ in range(2):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        OTelBackend(tracer_provider=provider).write([step])
        (span,) = exporter.get_finished_spans()
        contexts.append((span.context.trace_id, span.context.span_id))
        provider.shutdown()
    assert contexts[0] == contexts[1]
    assert contexts[0] == (int(step.trace_id, 16), trace_span_id(step.trace_id))


def test_trace_ids_that_are_not_w3c_are_hashed_to_valid_ones() -> None:
    """Zero, upper-case or foreign trace ids map to a non-zero 128-bit id, stably."""
    for foreign in ("0" * 32, "4BF92F3577B34DA6A3CE929D0E0E4736", "lc-run-1", ""):
        mapped = otel_trace_id(foreign)
        assert 0 < mapped < 1 << 128
        assert mapped == otel_trace_id(foreign)
    assert otel_trace_id("4bf92f3577b34da6a3ce929d0e0e4736") == 0x4BF92F3577B34DA6A3CE929D0E0E4736
