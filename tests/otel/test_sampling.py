"""Sampling by session: a session is kept or dropped whole, the same way in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import agentsession
from agentsession import SessionTracker, get_stats, using_session
from agentsession.otel import OTelBackend, SessionSampler, is_session_sampled

Spans = Callable[[], list[ReadableSpan]]

SESSION_IDS = [f"user_{n}_conv_{n * 7}" for n in range(400)]


def test_the_decision_is_a_documented_hash_of_the_session_id() -> None:
    """The first 8 bytes of SHA-256 of the id, against rate x 2^64 (pinned on known ids)."""
    # sha256("conv-1") starts 36524fd8f6747fc2 (0.2122 of 2^64), "conv-2" 1eef1854fea7188b (0.1208).
    assert is_session_sampled("conv-1", 0.213)
    assert not is_session_sampled("conv-1", 0.212)
    assert is_session_sampled("conv-2", 0.121)
    assert not is_session_sampled("conv-2", 0.120)


def test_rate_one_keeps_all_and_zero_keeps_none() -> None:
    """1.0 keeps every session, 0.0 none."""
    assert all(is_session_sampled(s, 1.0) for s in SESSION_IDS)
    assert not any(is_session_sampled(s, 0.0) for s in SESSION_IDS)


def test_the_kept_share_follows_the_rate() -> None:
    """About ``rate`` of many sessions are kept, and a higher rate keeps a superset."""
    kept_quarter = {s for s in SESSION_IDS if is_session_sampled(s, 0.25)}
    kept_half = {s for s in SESSION_IDS if is_session_sampled(s, 0.5)}
    assert 60 <= len(kept_quarter) <= 140
    assert 150 <= len(kept_half) <= 250
    assert kept_quarter <= kept_half


def test_every_process_decides_the_same() -> None:
    """Another interpreter, with another hash seed, keeps exactly the same sessions."""
    script = (
        "import json, sys\n"
        "from agentsession.otel import is_session_sampled\n"
        "ids = json.loads(sys.stdin.read())\n"
        "print(json.dumps([is_session_sampled(i, 0.3) for i in ids]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(SESSION_IDS),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
    )
    assert json.loads(result.stdout) == [is_session_sampled(s, 0.3) for s in SESSION_IDS]


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_a_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    """sample_rate must be from 0 to 1; the error names it."""
    with pytest.raises(ValueError, match="sample_rate"):
        SessionSampler(rate)
    with pytest.raises(ValueError, match="sample_rate"):
        OTelBackend(exporter=InMemorySpanExporter(), sample_rate=rate)


def test_backend_keeps_or_drops_whole_sessions_and_counts(
    provider: TracerProvider, spans: Spans
) -> None:
    """At rate 0.5 a session's steps are all exported or none; drops are counted per step."""
    agentsession.set_default_backend(OTelBackend(tracer_provider=provider, sample_rate=0.5))
    session_ids = SESSION_IDS[:20]
    for session_id in session_ids:
        with SessionTracker(session_id) as session:
            for _ in range(3):
                with session.begin_step(model="m") as step:
                    step.end("ok")

    exported: dict[str, int] = {}
    for span in spans():
        assert span.attributes is not None
        session_id = str(span.attributes["session.id"])
        exported[session_id] = exported.get(session_id, 0) + 1
    expected = {s for s in session_ids if is_session_sampled(s, 0.5)}
    assert set(exported) == expected
    assert 0 < len(expected) < len(session_ids)
    assert all(n == 3 for n in exported.values())
    assert get_stats()["dropped.otel_sampled"] == 3 * (len(session_ids) - len(expected))


def test_sampler_drops_other_instrumentations_spans_of_dropped_sessions() -> None:
    """SessionSampler on a provider keeps spans of kept sessions only, counting the others."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=SessionSampler(0.5))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("some.instrumentation")
    session_ids = SESSION_IDS[:20]
    for session_id in session_ids:
        with (
            using_session(session_id),
            tracer.start_as_current_span("root"),
            tracer.start_as_current_span("child"),
        ):
            pass
    with tracer.start_as_current_span("no session", attributes={"k": "v"}):
        pass
    with tracer.start_as_current_span("tagged", attributes={"session.id": SESSION_IDS[0]}):
        pass

    finished = exporter.get_finished_spans()
    kept = [s for s in session_ids if is_session_sampled(s, 0.5)]
    by_name = [s.name for s in finished]
    assert by_name.count("root") == by_name.count("child") == len(kept)
    assert "no session" in by_name  # left to the fallback sampler, which keeps roots
    assert ("tagged" in by_name) == is_session_sampled(SESSION_IDS[0], 0.5)
    no_session = next(s for s in finished if s.name == "no session")
    assert no_session.attributes is not None
    assert no_session.attributes["k"] == "v"
    dropped = 2 * (len(session_ids) - len(kept)) + ("tagged" not in by_name)
    assert get_stats()["dropped.otel_sampled_spans"] == dropped
    provider.shutdown()


def test_sampler_fallback_decides_spans_outside_sessions() -> None:
    """A span with no session follows the fallback sampler given."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=SessionSampler(1.0, fallback=ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outside"):
        pass
    with using_session("conv-fallback-1"), tracer.start_as_current_span("inside"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["inside"]
    assert "SessionSampler" in SessionSampler(0.5).get_description()
    provider.shutdown()
