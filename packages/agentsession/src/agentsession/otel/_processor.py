"""Spans that other instrumentations start inside a session join that session.

:class:`SessionSpanProcessor` stamps the session in force on every span as it starts;
:class:`SessionSampler` keeps or drops every span of a session together.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .._context import current_scope, current_step
from .._health import count, record_fault
from ._attributes import SESSION_ID, USER_ID
from ._ids import is_session_sampled

__all__ = ["SessionSampler", "SessionSpanProcessor", "check_rate"]

_STEP_INDEX = "agentsession.step.index"


def check_rate(rate: float) -> float:
    """``rate`` if it is a number from 0 to 1; ValueError naming it otherwise."""
    if not 0.0 <= rate <= 1.0:  # also refuses NaN
        raise ValueError(f"sample_rate must be from 0 to 1, got {rate!r}")
    return float(rate)


class SessionSpanProcessor(SpanProcessor):
    """Adds ``session.id`` and ``user.id`` of the current ``using_session`` to every span.

    Whoever starts the span (OpenInference, OpenLLMetry, autogen-core's own tracing), it then
    groups into the same session as our steps in Phoenix or Langfuse. Attributes the span
    already has are kept; inside ``with step:`` the span also gets
    ``agentsession.step.index``. Add it to the TracerProvider those instrumentations use::

        provider.add_span_processor(SessionSpanProcessor())
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            scope = current_scope()
            if scope is None:
                return
            tracker = scope.tracker
            present = span.attributes or {}
            if SESSION_ID not in present:
                span.set_attribute(SESSION_ID, tracker.session_id)
            user_id = scope.user_id or tracker.user_id
            if user_id is not None and USER_ID not in present:
                span.set_attribute(USER_ID, user_id)
            step = current_step()
            if (
                step is not None
                and step.session_id == tracker.session_id
                and _STEP_INDEX not in present
            ):
                span.set_attribute(_STEP_INDEX, step.step_index)
        except Exception as exc:  # a span without our attributes beats a broken app
            record_fault("otel.span_processor", exc)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SessionSampler(Sampler):
    """Samples by session: a span of a session is kept when the session is, at ``rate``.

    The session is the span's ``session.id`` attribute, else the current ``using_session``;
    the decision is :func:`is_session_sampled`, the same in every process and the same as
    ``OTelBackend(sample_rate=...)`` makes for our steps, so a session is kept or dropped
    whole across services. Spans outside any session are left to ``fallback`` (by default:
    follow the parent, keep roots). Dropped spans are counted (``dropped.otel_sampled_spans``).
    """

    def __init__(self, rate: float, *, fallback: Sampler | None = None) -> None:
        self.rate = check_rate(rate)
        self.fallback = fallback if fallback is not None else ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        session_id = self._session_of(attributes)
        if session_id is None:
            return self.fallback.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        if not is_session_sampled(session_id, self.rate):
            count("dropped.otel_sampled_spans")
            return SamplingResult(Decision.DROP)
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent_state)

    @staticmethod
    def _session_of(attributes: Attributes) -> str | None:
        if attributes:
            value = attributes.get(SESSION_ID)
            if isinstance(value, str):
                return value
        scope = current_scope()
        return None if scope is None else scope.tracker.session_id

    def get_description(self) -> str:
        return f"SessionSampler{{{self.rate}}}"
