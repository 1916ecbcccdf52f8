"""A collector that hangs never holds the application past its export timeout: not at exit,
and not over gRPC (test_export.py covers flush() and close() over HTTP)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from otel_collectors import closed_port, hanging_collector

import agentsession
from agentsession import SessionTracker, backend_from_url, get_stats
from agentsession.otel import OTelBackend

TIMEOUT_S = 0.5
BOUND_S = TIMEOUT_S + 2.5
"""How long a flush, a close or the exit may take: the backend gives a shutdown
``timeout_s + 2`` seconds, and the test half a second of slack on top."""

_RECORD_THEN_EXIT = textwrap.dedent(
    """
    import sys, time
    import agentsession
    agentsession.configure(backend_url=sys.argv[1])
    with agentsession.SessionTracker("conv-exit-hang") as session:
        for _ in range(20):
            with session.begin_step(model="m") as step:
                step.end("ok")
    print(time.monotonic(), flush=True)
    """
)


def test_a_process_whose_collector_hangs_exits_within_the_export_timeout() -> None:
    """No flush() in the application: the exit hook hands the steps over and the process ends
    about one export timeout later, although the collector never answers."""
    with hanging_collector() as port:
        url = f"otlp+http://127.0.0.1:{port}/v1/traces?timeout_s={TIMEOUT_S}"
        result = subprocess.run(
            [sys.executable, "-c", _RECORD_THEN_EXIT, url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        exited = time.monotonic()
    assert result.returncode == 0, result.stderr
    assert exited - float(result.stdout) < BOUND_S, result.stderr


@pytest.mark.parametrize("collector", ["hanging", "down"])
def test_a_grpc_collector_that_hangs_or_is_down_costs_one_timeout(collector: str) -> None:
    """Over OTLP/gRPC too: recording only queues, flush() and close() return within about one
    export timeout, and the lost steps are counted (or the shutdown that gave up on them)."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="otel-grpc extra")
    with hanging_collector() as hanging_port:
        port = hanging_port if collector == "hanging" else closed_port()
        backend = backend_from_url(f"otlp+grpc://127.0.0.1:{port}?timeout_s={TIMEOUT_S}")
        assert isinstance(backend, OTelBackend)
        agentsession.set_default_backend(backend)
        started = time.perf_counter()
        with SessionTracker(f"conv-grpc-{collector}") as session:
            for _ in range(20):
                with session.begin_step(model="m") as step:
                    step.end("ok")
        assert time.perf_counter() - started < 0.5

        started = time.perf_counter()
        assert agentsession.flush(10.0)
        assert time.perf_counter() - started < BOUND_S
        started = time.perf_counter()
        backend.close()
        assert time.perf_counter() - started < BOUND_S
    stats = get_stats()
    lost = stats.get("dropped.otel_queue_full", 0) + stats.get("dropped.otel_export", 0)
    # Before SDK 1.28 the gRPC exporter retries for up to 64 s whatever its timeout: close()
    # then leaves it to finish in the background and counts that, rather than waiting.
    assert lost == 20 or (lost == 0 and stats["otel.shutdown_timed_out"] == 1), stats
    assert "written.otel_spans" not in stats
