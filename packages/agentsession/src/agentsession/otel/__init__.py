"""Sessions in OpenTelemetry: each step a span, grouped by ``session.id`` in Phoenix or Langfuse.

    import agentsession
    from agentsession.otel import OTelBackend

    agentsession.set_default_backend(OTelBackend("http://127.0.0.1:6006/v1/traces"))
    # or AGENTSESSION_BACKEND_URL=otlp+http://127.0.0.1:6006/v1/traces

:class:`OTelBackend` exports steps; :class:`SessionSpanProcessor` puts other
instrumentations' spans (OpenInference, OpenLLMetry...) into the session in force;
:class:`SessionSampler` and :func:`is_session_sampled` keep or drop sessions whole.

It needs the ``otel`` extra (``pip install 'agentsession[otel]'``: the OpenTelemetry SDK and the
OTLP/HTTP exporter; ``otel-grpc`` for OTLP/gRPC). This package imports them only when one of
its classes is asked for, and ``import agentsession`` never imports OpenTelemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_exports, missing_modules
from ._ids import is_session_sampled

if TYPE_CHECKING:
    from ._backend import OTelBackend
    from ._processor import SessionSampler, SessionSpanProcessor

__all__ = [
    "INSTALL_HINT",
    "OTelBackend",
    "SessionSampler",
    "SessionSpanProcessor",
    "is_session_sampled",
    "missing_dependencies",
]

INSTALL_HINT = "pip install 'agentsession[otel]'"


def missing_dependencies() -> list[str]:
    """The distributions of the ``otel`` extra that are not installed."""
    return missing_modules("opentelemetry.sdk")


__getattr__ = lazy_exports(
    __name__,
    {
        "OTelBackend": "._backend",
        "SessionSampler": "._processor",
        "SessionSpanProcessor": "._processor",
    },
    missing_dependencies,
    INSTALL_HINT,
)
