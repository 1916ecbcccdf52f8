"""OTelBackend: every step becomes a span, sent to an OTLP collector or any TracerProvider."""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from .. import __version__
from .._health import count, record_fault, warn_once
from .._models import SessionEvent, Step
from ._attributes import span_name, step_attributes, time_ns, tool_attributes
from ._export import GuardedExporter, Protocol, otlp_exporter, run_bounded
from ._ids import is_session_sampled, otel_trace_id, span_id_of, trace_span_id
from ._processor import check_rate

__all__ = ["OTelBackend"]

_SCOPE = "agentsession"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_URL_OPTIONS = ("sample_rate", "timeout_s")
_REMEMBERED_STEPS = 10_000
"""Exported steps whose span a later step can still be nested under (least recent out first)."""


class _ChosenIds(IdGenerator):
    """Hands out the ids we chose for the next span started on this thread, else random ones.

    The SDK draws span and trace ids from its tracer's generator; ours are derived from the
    step, so that links resolve across processes.
    """

    def __init__(self, fallback: IdGenerator) -> None:
        self.fallback = fallback
        self._next = threading.local()

    @contextmanager
    def chosen(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._next.ids = (trace_id, span_id)
        try:
            yield
        finally:
            self._next.ids = None

    def generate_span_id(self) -> int:
        ids: tuple[int, int] | None = getattr(self._next, "ids", None)
        return self.fallback.generate_span_id() if ids is None else ids[1]

    def generate_trace_id(self) -> int:
        ids: tuple[int, int] | None = getattr(self._next, "ids", None)
        return self.fallback.generate_trace_id() if ids is None else ids[0]


@dataclass(frozen=True)
class _Exported:
    """Where the span of a step went: what a later step naming its trace id attaches to."""

    context: SpanContext
    session_id: str


@dataclass(frozen=True)
class _Placement:
    """Where a step's span goes: its trace, its own span id, its parent span and its links."""

    trace_id: int
    span_id: int
    parent: SpanContext | None
    links: tuple[Link, ...]


class OTelBackend:
    """Sends each step to OpenTelemetry as a span; a write-only backend (``SessionWriter``).

    Give it ``tracer_provider`` (yours, with its own processors and sampler), or let it build
    one that batches spans to an OTLP ``endpoint``: ``protocol="http/protobuf"`` (e.g.
    ``http://127.0.0.1:6006/v1/traces``) or ``"grpc"`` (``http://127.0.0.1:4317``, needs the
    ``otel-grpc`` extra), each export waiting at most ``timeout_s``. ``exporter`` sends through
    any SpanExporter instead of OTLP, batched and guarded the same way. Endpoint, headers and
    resource left out are read from the standard ``OTEL_*`` variables.

    Each step is one span with its own start and end time. A step is the root of its own
    trace, unless its ``parent_trace_id`` names a step of the same session already exported
    here: it is then a child span in that step's trace. A parent in another session (a
    ``child()`` session) becomes a span link instead. Tool calls listed by a step are child
    spans of it. ``sample_rate`` keeps whole sessions, chosen by :func:`is_session_sampled`.
    Session start/end events and scores have no span and are not sent.

    Nothing here runs on the application's threads: agentsession's writer calls ``write``,
    and the spans leave from the batch processor's thread.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        exporter: SpanExporter | None = None,
        protocol: Protocol = "http/protobuf",
        headers: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        timeout_s: float = 5.0,
        sample_rate: float = 1.0,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
        max_queue_size: int = 2048,
        schedule_delay_s: float = 1.0,
    ) -> None:
        if protocol not in ("http/protobuf", "grpc"):
            raise ValueError(f"protocol must be 'http/protobuf' or 'grpc', got {protocol!r}")
        if tracer_provider is not None and (endpoint is not None or exporter is not None):
            raise ValueError("give tracer_provider, or endpoint/exporter, not both")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.sample_rate = check_rate(sample_rate)
        self.timeout_s = float(timeout_s)
        self.endpoint = endpoint
        self.protocol: Protocol = protocol
        self._exported: OrderedDict[str, _Exported] = OrderedDict()
        self._closed = False
        self._guard: GuardedExporter | None = None
        self._processor: BatchSpanProcessor | None = None
        self._owned_provider: SdkTracerProvider | None = None
        if tracer_provider is None:
            self._guard = GuardedExporter(
                exporter or otlp_exporter(endpoint, protocol, headers, self.timeout_s, insecure),
                max_queue_size=max_queue_size,
            )
            self._processor = BatchSpanProcessor(
                self._guard,
                max_queue_size=max_queue_size,
                schedule_delay_millis=schedule_delay_s * 1000,
                max_export_batch_size=min(512, max_queue_size),
                export_timeout_millis=self.timeout_s * 1000,
            )
            # Sampling is ours, by session: OTEL_TRACES_SAMPLER must not split sessions.
            # Closed by agentsession's own shutdown, after the last steps are written; the
            # SDK's exit hook would run first and drop them.
            provider = SdkTracerProvider(
                sampler=ALWAYS_ON, resource=_resource(resource_attributes), shutdown_on_exit=False
            )
            provider.add_span_processor(self._processor)
            self._owned_provider = tracer_provider = provider
        self.tracer_provider = tracer_provider
        if self._owned_provider is None:
            # Registered after the provider was made, so it runs before the provider's own exit
            # hook shuts it down (exit hooks run last in, first out): the steps still queued
            # in agentsession's writer get out first.
            atexit.register(_write_queued_steps, self.timeout_s)
        self._tracer = tracer_provider.get_tracer(_SCOPE, __version__)
        self._ids: _ChosenIds | None = None
        if isinstance(self._tracer, SdkTracer):
            # Our own instrumentation scope's tracer: no other code draws ids from it.
            self._ids = _ChosenIds(self._tracer.id_generator)
            self._tracer.id_generator = self._ids
        else:
            warn_once(
                "otel_ids",
                "agentsession: %s is not the OpenTelemetry SDK's TracerProvider; span ids are "
                "random, so parent links only resolve within this process",
                type(tracer_provider).__name__,
            )

    @classmethod
    def from_url(cls, url: str) -> OTelBackend:
        """The backend an ``AGENTSESSION_BACKEND_URL`` names.

        ``otlp+http://host:4318/v1/traces`` and ``otlp+https://...`` (HTTP/protobuf; the path
        defaults to ``/v1/traces``), ``otlp+grpc://host:4317`` (plaintext) and
        ``otlp+grpcs://host:4317`` (TLS); options in the query: ``sample_rate``, ``timeout_s``.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        transports = {"otlp+http": "http", "otlp+https": "https", "otlp+grpc": "http",
                      "otlp+grpcs": "https"}  # fmt: skip
        if scheme not in transports or not parts.netloc:
            raise ValueError(
                f"an OTLP backend URL is otlp+http://host:port/v1/traces, otlp+https://..., "
                f"otlp+grpc://host:port or otlp+grpcs://host:port; got {url!r}"
            )
        options: dict[str, float] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _URL_OPTIONS:
                known = ", ".join(_URL_OPTIONS)
                raise ValueError(f"unknown option {key!r} in backend URL {url!r}; known: {known}")
            try:
                options[key] = float(value)
            except ValueError:
                raise ValueError(
                    f"option {key!r} of {url!r} must be a number, got {value!r}"
                ) from None
        sample_rate = options.get("sample_rate", 1.0)
        timeout_s = options.get("timeout_s", 5.0)
        if scheme.startswith("otlp+grpc"):
            return cls(
                f"{transports[scheme]}://{parts.netloc}",
                protocol="grpc",
                insecure=scheme == "otlp+grpc",
                sample_rate=sample_rate,
                timeout_s=timeout_s,
            )
        path = parts.path if parts.path not in ("", "/") else "/v1/traces"
        endpoint = f"{transports[scheme]}://{parts.netloc}{path}"
        return cls(endpoint, sample_rate=sample_rate, timeout_s=timeout_s)

    # -- SessionWriter ---------------------------------------------------------------------
    def write(self, events: Sequence[SessionEvent]) -> None:
        """Start and end one span per step (tool calls: child spans); never raises."""
        for event in events:
            if not isinstance(event, Step):
                continue
            if self._closed:
                count("dropped.otel_closed")
                continue
            try:
                self._export(event)
            except Exception as exc:  # one bad step must not cost the batch (nor a retry)
                count("dropped.otel_step")
                record_fault("otel.write", exc)

    def flush(self) -> None:
        """Export what is waiting, waiting at most about ``timeout_s``."""
        if self._processor is not None:
            run_bounded(self._processor.force_flush, self.timeout_s + 1.0, "flush")
            return
        force_flush = getattr(self.tracer_provider, "force_flush", None)
        if callable(force_flush):
            timeout_ms = int(self.timeout_s * 1000)
            run_bounded(lambda: force_flush(timeout_ms), self.timeout_s + 1.0, "flush")

    def close(self) -> None:
        """Flush and, for a provider built here, shut it down. A provider given is left open."""
        if self._closed:
            return
        self._closed = True
        if self._owned_provider is None:
            self.flush()
            return
        provider = self._owned_provider
        run_bounded(provider.shutdown, self.timeout_s + 2.0, "shutdown")

    # -- spans -----------------------------------------------------------------------------
    def _export(self, step: Step) -> None:
        if not is_session_sampled(step.session_id, self.sample_rate):
            count("dropped.otel_sampled")
            return
        spans = 1 + len(step.tool_calls)
        if self._guard is not None and not self._guard.reserve(spans):
            count("dropped.otel_queue_full", spans)
            return
        try:
            self._export_spans(step)
        except BaseException:
            if self._guard is not None:
                self._guard.release(spans)
            raise

    def _export_spans(self, step: Step) -> None:
        placement = self._place(step)
        context = Context()  # never the writer thread's own context
        if placement.parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(placement.parent))
        span = self._start(
            placement.trace_id,
            placement.span_id,
            span_name(step),
            context,
            step_attributes(step),
            placement.links,
            time_ns(step.started_at),
        )
        if step.status != "completed":
            span.set_status(Status(StatusCode.ERROR, step.error or step.status))
        span.end(end_time=time_ns(step.ended_at))
        self._remember(step, span.get_span_context())
        if step.tool_calls:
            self._export_tool_calls(step, span.get_span_context())

    def _start(
        self,
        trace_id: int,
        span_id: int,
        name: str,
        context: Context,
        attributes: dict[str, AttributeValue],
        links: Sequence[Link],
        start_ns: int,
    ) -> trace.Span:
        is_model_call = attributes.get("openinference.span.kind") == "LLM"
        kind = SpanKind.CLIENT if is_model_call else SpanKind.INTERNAL
        if self._ids is None:
            return self._tracer.start_span(name, context, kind, attributes, links, start_ns)
        with self._ids.chosen(trace_id, span_id):
            return self._tracer.start_span(name, context, kind, attributes, links, start_ns)

    def _export_tool_calls(self, step: Step, parent: SpanContext) -> None:
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        step_start = time_ns(step.started_at)
        for position, call in enumerate(step.tool_calls):
            duration_ns = int((call.duration_ms or 0.0) * 1e6)
            # A call's start unknown: it ran before the step that lists it, so it ends there.
            start = (
                step_start - duration_ns if call.started_at is None else time_ns(call.started_at)
            )
            span = self._start(
                parent.trace_id,
                span_id_of(format(parent.span_id, "016x"), "tool", str(position)),
                call.name,
                context,
                tool_attributes(step, call, position),
                (),
                start,
            )
            if call.error is not None:
                span.set_status(Status(StatusCode.ERROR, call.error))
            span.end(end_time=start + duration_ns)

    def _place(self, step: Step) -> _Placement:
        """Which trace the step's span joins, its span id, its parent and its links."""
        own_trace = otel_trace_id(step.trace_id)
        earlier = self._exported.get(step.trace_id)
        if earlier is not None:
            # Steps sharing a trace id (an adapter chose it): the first one is their root.
            span_id = span_id_of(step.trace_id, step.session_id, str(step.step_index))
            if earlier.session_id == step.session_id:
                return _Placement(earlier.context.trace_id, span_id, earlier.context, ())
            return _Placement(own_trace, span_id, None, ())
        span_id = trace_span_id(step.trace_id)
        parent_trace_id = step.parent_trace_id
        if parent_trace_id is None or parent_trace_id == step.trace_id:
            return _Placement(own_trace, span_id, None, ())
        parent = self._exported.get(parent_trace_id)
        if parent is not None and parent.session_id == step.session_id:
            return _Placement(parent.context.trace_id, span_id, parent.context, ())
        if parent is not None:
            target = parent.context
        else:
            # Not seen here (another process, or long ago): where its owner's span is.
            target = SpanContext(
                otel_trace_id(parent_trace_id),
                trace_span_id(parent_trace_id),
                is_remote=True,
                trace_flags=_SAMPLED,
            )
        link = Link(target, {"agentsession.link": "parent_step"})
        return _Placement(own_trace, span_id, None, (link,))

    def _remember(self, step: Step, context: SpanContext) -> None:
        exported = self._exported
        if step.trace_id in exported:
            exported.move_to_end(step.trace_id)
            return
        exported[step.trace_id] = _Exported(context, step.session_id)
        if len(exported) > _REMEMBERED_STEPS:
            exported.popitem(last=False)

    def __repr__(self) -> str:
        if self._owned_provider is None:
            return f"OTelBackend(tracer_provider={self.tracer_provider!r})"
        return f"OTelBackend({self.endpoint!r}, protocol={self.protocol!r})"


def _write_queued_steps(timeout_s: float) -> None:
    """Exit hook: hand the steps still queued in agentsession's writer to the provider."""
    from .._worker import flush_all

    flush_all(timeout_s)


def _resource(attributes: Mapping[str, AttributeValue] | None) -> Resource:
    """``OTEL_RESOURCE_ATTRIBUTES`` / ``OTEL_SERVICE_NAME``, then ``attributes``; the service
    is ``agentsession`` unless one of them names it."""
    resource = Resource.create(dict(attributes or {}))
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "agentsession"}))
    return resource
