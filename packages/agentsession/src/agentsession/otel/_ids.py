"""Our ids as OpenTelemetry ids, and the hash that samples whole sessions.

Everything here is a pure function of the ids a step carries, so every process (and every
language: it is SHA-256 throughout) maps the same step to the same span and keeps or drops the
same sessions.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["is_session_sampled", "otel_trace_id", "span_id_of", "trace_span_id"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_MAX_64 = 1 << 64


def _digest(kind: bytes, value: str, size: int) -> int:
    raw = hashlib.sha256(kind + b"\x00" + value.encode("utf-8", "surrogatepass")).digest()
    # Zero is the invalid id in OpenTelemetry; a digest of zeros is not worth a branch more.
    return int.from_bytes(raw[:size], "big") or 1


def otel_trace_id(trace_id: str) -> int:
    """The OpenTelemetry trace id of one of our trace ids.

    Ours are W3C trace ids already (32 lowercase hex digits) and are taken as they are, so a
    trace id a proxy returned finds the same trace in the collector; anything else (an id an
    adapter took from its framework) is hashed to 128 bits.
    """
    if _TRACE_ID.fullmatch(trace_id) and trace_id != "0" * 32:
        return int(trace_id, 16)
    return _digest(b"agentsession.trace", trace_id, 16)


def trace_span_id(trace_id: str) -> int:
    """The span id of the step that owns ``trace_id``: what a ``parent_trace_id`` points at.

    A step's span id is derived from its trace id, not drawn at random, so that a step in
    another process or session that names it as parent links to the right span without
    having seen it.
    """
    return _digest(b"agentsession.span", trace_id, 8)


def span_id_of(*parts: str) -> int:
    """A span id for a span that no ``parent_trace_id`` can name (tool calls, a second step
    sharing a trace id), derived from what identifies it."""
    return _digest(b"agentsession.span", "\x00".join(parts), 8)


def is_session_sampled(session_id: str, rate: float) -> bool:
    """Whether a session is kept at sample ``rate`` (0 to 1): the same answer in every process.

    The first 8 bytes of SHA-256 of the UTF-8 session id, read as a big-endian number, are
    compared with ``rate`` x 2^64: a session is kept or dropped whole.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") < int(rate * _MAX_64)
