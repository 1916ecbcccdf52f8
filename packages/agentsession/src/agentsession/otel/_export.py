"""Getting spans out of the process without ever waiting long on a collector.

The spans of a provider we build go through :class:`GuardedExporter`: it counts what was sent
and what was lost, and after a failed export stops trying for a while, so that a collector
that is down or hanging costs one export timeout, not one per batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._health import count, warn_once
from . import INSTALL_HINT

__all__ = [
    "GRPC_INSTALL_HINT",
    "GuardedExporter",
    "Protocol",
    "otlp_exporter",
    "run_bounded",
]

Protocol = Literal["http/protobuf", "grpc"]

GRPC_INSTALL_HINT = "pip install 'agentsession[otel-grpc]'"


class GuardedExporter(SpanExporter):
    """Wraps an exporter: counts spans sent (``written.otel_spans``) and lost
    (``dropped.otel_export``), pauses after a failure, and tracks the spans waiting in the
    batch processor so that new ones are refused (``dropped.otel_queue_full``) before its
    queue overflows, which it would do silently.
    """

    def __init__(
        self, exporter: SpanExporter, *, max_queue_size: int, pause_after_failure_s: float = 5.0
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.pause_after_failure_s = pause_after_failure_s
        self._lock = threading.Lock()
        self._waiting = 0
        self._paused_until = 0.0

    def reserve(self, spans: int) -> bool:
        """Take room for ``spans`` in the processor's queue; False (nothing taken) when full."""
        with self._lock:
            if self._waiting + spans > self.max_queue_size:
                return False
            self._waiting += spans
            return True

    def release(self, spans: int) -> None:
        """Give back room taken for spans that never reached the processor."""
        with self._lock:
            self._waiting = max(0, self._waiting - spans)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        sent = len(spans)
        self.release(sent)  # they left the processor's queue
        if time.monotonic() < self._paused_until:
            count("dropped.otel_export", sent)
            return SpanExportResult.FAILURE
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # an exporter should not raise; one that does loses the batch
            self._failed(sent, repr(exc))
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            count("written.otel_spans", sent)
            return result
        self._failed(sent, "the exporter reported a failure")
        return result

    def _failed(self, spans: int, reason: str) -> None:
        count("dropped.otel_export", spans)
        self._paused_until = time.monotonic() + self.pause_after_failure_s
        warn_once(
            f"otel_export:{id(self)}",
            "agentsession: %d spans were not exported (%s); exports pause %.0f s after each "
            "failure and further drops are only counted in agentsession.get_stats()",
            spans,
            reason,
            self.pause_after_failure_s,
        )

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def otlp_exporter(
    endpoint: str | None,
    protocol: Protocol,
    headers: Mapping[str, str] | None,
    timeout_s: float,
    insecure: bool | None,
) -> SpanExporter:
    """The OTLP exporter for ``protocol``; ImportError naming the extra when it is missing.

    ``endpoint`` and ``headers`` left as None are read by the exporter from the standard
    ``OTEL_EXPORTER_OTLP_TRACES_*`` / ``OTEL_EXPORTER_OTLP_*`` variables.
    """
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ImportError(
                f"OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc: {GRPC_INSTALL_HINT}"
            ) from exc
        return GrpcExporter(
            endpoint=endpoint,
            insecure=insecure,
            headers=dict(headers) if headers is not None else None,
            timeout=timeout_s,
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )
    except ImportError as exc:
        raise ImportError(
            f"OTLP over HTTP needs opentelemetry-exporter-otlp-proto-http: {INSTALL_HINT}"
        ) from exc
    return HttpExporter(
        endpoint=endpoint, headers=dict(headers) if headers is not None else None, timeout=timeout_s
    )


def run_bounded(work: Callable[[], object], timeout_s: float, what: str) -> bool:
    """Run ``work`` on a helper thread and wait at most ``timeout_s``; True if it finished.

    The SDK's batch processor ignores the timeout of its ``force_flush`` and ``shutdown``
    waits on its worker for up to 30 s: our writer thread must not hang on either.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except Exception as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"agentsession-otel-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        count(f"otel.{what}_timed_out")
        warn_once(
            f"otel_{what}_timeout",
            "agentsession: OpenTelemetry %s did not finish within %.1f s; it goes on in the "
            "background (further timeouts are only counted in agentsession.get_stats())",
            what,
            timeout_s,
        )
        return False
    if failure:
        warn_once(
            f"otel_{what}_error",
            "agentsession: OpenTelemetry %s failed: %r",
            what,
            failure[0],
            exc=failure[0],
        )
        return False
    return True
