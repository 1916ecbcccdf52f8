"""Fixtures of the OpenTelemetry tests: fresh agentsession state per test, and an OTelBackend
exporting through a TracerProvider into an in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import agentsession
from agentsession import MemoryBackend
from agentsession.otel import OTelBackend, SessionSpanProcessor


@pytest.fixture(autouse=True)
def _fresh_process_state(isolated: MemoryBackend) -> None:
    """Each test gets fresh agentsession state (the root conftest.py)."""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where every span of the test's provider ends up."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider as an application sets one up: our span processor, then its exporter."""
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def otel(provider: TracerProvider) -> OTelBackend:
    """An OTelBackend on the test's provider, made the default backend."""
    backend = OTelBackend(tracer_provider=provider)
    agentsession.set_default_backend(backend)
    return backend


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    """Flush agentsession's writer, then return every span finished so far, in end order."""

    def read() -> list[ReadableSpan]:
        assert agentsession.flush(10.0)
        return list(exporter.get_finished_spans())

    return read
