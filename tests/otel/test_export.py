"""Getting spans to a collector: real OTLP over HTTP and gRPC, and a collector that is down,
hanging or overwhelmed, which never blocks or breaks the application and whose drops count."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_collectors import closed_port, grpc_collector, hanging_collector, http_collector

import agentsession
from agentsession import SessionTracker, backend_from_url, get_stats
from agentsession.otel import OTelBackend

TIMEOUT_S = 0.5


def _record(session_id: str, steps: int) -> float:
    """Record ``steps`` steps of one session on this thread; return the seconds it took."""
    started = time.perf_counter()
    with SessionTracker(session_id, user_id="user-a") as session:
        for turn in range(steps):
            with session.begin_step(model="m", input=f"turn {turn}") as step:
                step.end("ok", input_tokens=2, output_tokens=1)
    return time.perf_counter() - started


def test_steps_reach_a_real_otlp_http_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over OTLP/HTTP the collector gets every step with our ids, attributes and resource."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=proof")
    with http_collector() as (endpoint, received):
        backend = OTelBackend(endpoint, headers={"authorization": "Bearer t0ken"})
        agentsession.set_default_backend(backend)
        _record("conv-http-1", 3)
        assert agentsession.flush(10.0)

        assert [s.attributes["agentsession.step.index"] for s in received.spans] == [0, 1, 2]
        for span in received.spans:
            assert span.attributes["session.id"] == "conv-http-1"
            assert span.attributes["user.id"] == "user-a"
            assert span.attributes["llm.token_count.total"] == 3
            assert span.attributes["agentsession.trace_id"] == span.trace_id
            assert span.parent_span_id == ""
            assert span.resource["service.name"] == "agentsession"
            assert span.resource["openinference.project.name"] == "proof"
        assert received.headers[0]["authorization"] == "Bearer t0ken"
    assert get_stats()["written.otel_spans"] == 3


def test_the_backend_url_setting_can_name_a_collector() -> None:
    """AGENTSESSION_BACKEND_URL=otlp+http://... sends the default backend's steps there."""
    with http_collector() as (endpoint, received):
        url = endpoint.replace("http://", "otlp+http://").removesuffix("/v1/traces")
        agentsession.configure(backend_url=url)  # as AGENTSESSION_BACKEND_URL; path defaults
        agentsession.set_default_backend(None)
        _record("conv-url-1", 2)
        assert agentsession.flush(10.0)
        assert [s.attributes["session.id"] for s in received.spans] == ["conv-url-1"] * 2


def test_steps_reach_a_real_otlp_grpc_collector() -> None:
    """otlp+grpc://host:port sends over OTLP/gRPC (the otel-grpc extra)."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="otel-grpc extra")
    with grpc_collector() as (port, received):
        backend = backend_from_url(f"otlp+grpc://127.0.0.1:{port}?timeout_s=5")
        assert isinstance(backend, OTelBackend)
        agentsession.set_default_backend(backend)
        _record("conv-grpc-1", 2)
        assert agentsession.flush(10.0)
        assert sorted(s.attributes["agentsession.step.index"] for s in received.spans) == [0, 1]
        backend.close()


def test_a_collector_that_is_down_costs_the_application_nothing() -> None:
    """Nothing listening: recording stays fast, flush is bounded, lost spans are counted."""
    backend = OTelBackend(f"http://127.0.0.1:{closed_port()}/v1/traces", timeout_s=TIMEOUT_S)
    agentsession.set_default_backend(backend)
    elapsed = _record("conv-down-1", 50)
    assert elapsed < 0.5  # the application thread only queues

    started = time.perf_counter()
    assert agentsession.flush(10.0)
    assert time.perf_counter() - started < TIMEOUT_S + 2.0
    stats = get_stats()
    assert stats["dropped.otel_export"] == 50
    assert "written.otel_spans" not in stats
    backend.close()


def test_a_hanging_collector_costs_one_timeout_not_one_per_batch() -> None:
    """A collector that never answers: flush and close return within about one export timeout."""
    with hanging_collector() as port:
        backend = OTelBackend(
            f"http://127.0.0.1:{port}/v1/traces", timeout_s=TIMEOUT_S, max_queue_size=64
        )
        agentsession.set_default_backend(backend)
        elapsed = _record("conv-hang-1", 200)
        assert elapsed < 1.0

        started = time.perf_counter()
        agentsession.flush(10.0)
        assert time.perf_counter() - started < TIMEOUT_S + 2.0
        started = time.perf_counter()
        backend.close()
        assert time.perf_counter() - started < TIMEOUT_S + 3.0
    stats = get_stats()
    # All 200 are accounted for: refused while the queue was full, or lost by the exports.
    assert stats.get("dropped.otel_queue_full", 0) + stats["dropped.otel_export"] == 200
    assert stats.get("dropped.otel_queue_full", 0) > 0


class _BlockingExporter(SpanExporter):
    """An exporter stuck until released, then successful."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def test_a_full_export_queue_refuses_new_spans_and_counts_them() -> None:
    """While exports are stuck, spans past the queue size are refused and counted, none silently
    lost: every span is either exported or counted as dropped."""
    exporter = _BlockingExporter()
    backend = OTelBackend(exporter=exporter, max_queue_size=4, schedule_delay_s=0.01)
    agentsession.set_default_backend(backend)
    _record("conv-full-1", 20)
    exporter.release.set()
    assert agentsession.flush(10.0)
    stats = get_stats()
    assert stats["dropped.otel_queue_full"] > 0
    assert exporter.exported + stats["dropped.otel_queue_full"] == 20
    assert stats["written.otel_spans"] == exporter.exported
    backend.close()


class _RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionResetError("exporter bug")


def test_an_exporter_that_raises_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising exporter loses its batch (counted, one warning); the application sees nothing."""
    backend = OTelBackend(exporter=_RaisingExporter())
    agentsession.set_default_backend(backend)
    _record("conv-raise-1", 3)
    assert agentsession.flush(10.0)
    _record("conv-raise-2", 2)
    assert agentsession.flush(10.0)
    assert get_stats()["dropped.otel_export"] == 5
    warnings = [r for r in caplog.records if "were not exported" in r.getMessage()]
    assert len(warnings) == 1
    backend.close()


def test_exports_resume_once_the_collector_is_back() -> None:
    """After a failure exports pause briefly, then spans flow again."""
    flaky = InMemorySpanExporter()
    failures = {"left": 1}
    original = flaky.export

    def export(spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if failures["left"]:
            failures["left"] -= 1
            return SpanExportResult.FAILURE
        return original(spans)

    flaky.export = export  # type: ignore[method-assign]
    backend = OTelBackend(exporter=flaky)
    assert backend._guard is not None
    backend._guard.pause_after_failure_s = 0.2
    agentsession.set_default_backend(backend)
    _record("conv-back-1", 2)
    assert agentsession.flush(10.0)
    assert get_stats()["dropped.otel_export"] == 2
    time.sleep(0.3)
    _record("conv-back-2", 2)
    assert agentsession.flush(10.0)
    assert [s.attributes["session.id"] for s in flaky.get_finished_spans()] == ["conv-back-2"] * 2
    backend.close()


def test_steps_written_after_close_are_counted() -> None:
    """A closed backend exports nothing more and counts what it was handed."""
    exporter = InMemorySpanExporter()
    backend = OTelBackend(exporter=exporter)
    backend.close()
    backend.close()  # twice is fine
    now = datetime.now(timezone.utc)
    step = agentsession.Step(
        session_id="conv-closed-1", step_index=0, step_id="00f067aa0ba902b7",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", started_at=now, ended_at=now,
        duration_ms=0.0,
    )  # fmt: skip
    backend.write([step])
    assert get_stats()["dropped.otel_closed"] == 1
    assert exporter.get_finished_spans() == ()


def test_a_step_that_cannot_be_exported_does_not_cost_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault while building one span is counted; the rest of the batch is still exported."""
    exporter = InMemorySpanExporter()
    backend = OTelBackend(exporter=exporter)
    agentsession.set_default_backend(backend)
    from agentsession.otel import _backend

    real = _backend.step_attributes

    def flaky(step: agentsession.Step) -> dict[str, object]:
        if step.step_index == 1:
            raise RuntimeError("bug of ours")
        return real(step)  # type: ignore[return-value]

    monkeypatch.setattr(_backend, "step_attributes", flaky)
    _record("conv-fault-1", 3)
    assert agentsession.flush(10.0)
    stats = get_stats()
    assert stats["dropped.otel_step"] == 1
    assert stats["faults.otel.write"] == 1
    indexes = [s.attributes["agentsession.step.index"] for s in exporter.get_finished_spans()]
    assert indexes == [0, 2]
    backend.close()


EXIT_SCRIPTS = {
    "built from the endpoint": """
        agentsession.set_default_backend(OTelBackend(ENDPOINT))
    """,
    "the application's provider": """
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        provider = TracerProvider()  # shuts itself down at exit
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT)))
        agentsession.set_default_backend(OTelBackend(tracer_provider=provider))
    """,
}


@pytest.mark.parametrize("provider", sorted(EXIT_SCRIPTS))
def test_steps_recorded_just_before_exit_are_exported(provider: str) -> None:
    """A process that exits without flushing still exports its last steps: the provider is not
    shut down before agentsession's writer has handed them over."""
    script = textwrap.dedent(
        """
        import agentsession
        from agentsession.otel import OTelBackend
        ENDPOINT = {endpoint!r}
        {setup}
        with agentsession.SessionTracker("conv-exit-1") as session:
            for _ in range(3):
                with session.begin_step(model="m") as step:
                    step.end("ok")
        """
    )
    with http_collector() as (endpoint, received):
        code = script.format(endpoint=endpoint, setup=textwrap.dedent(EXIT_SCRIPTS[provider]))
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        indexes = sorted(s.attributes["agentsession.step.index"] for s in received.spans)
    assert indexes == [0, 1, 2], result.stderr
