"""Choosing a backend by URL: ``memory://``, ``jsonl:///path``, ``sqlite:///path``,
``otlp+http://host:port/v1/traces`` (and ``otlp+https``, ``otlp+grpc``, ``otlp+grpcs``) or a
plug-in."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._base import SessionWriter

__all__ = ["ENTRY_POINT_GROUP", "backend_from_url", "path_of_url"]

ENTRY_POINT_GROUP = "agentsession.backends"
"""Plug-ins register ``scheme = "package.module:factory"`` here; the factory gets the URL."""


def path_of_url(url: str) -> Path:
    """File-URL rules: ``sqlite:///abs/x.db`` is absolute, ``sqlite://x.db`` relative to the cwd."""
    parts = urlsplit(url)
    raw = unquote(parts.netloc + parts.path)
    if not raw:
        raise ValueError(f"backend URL {url!r} names no file")
    return Path(raw).expanduser()


def _memory(url: str) -> SessionWriter:
    from ._memory import MemoryBackend

    return MemoryBackend()


def _jsonl(url: str) -> SessionWriter:
    from ._jsonl import JsonlBackend

    return JsonlBackend(path_of_url(url))


def _sqlite(url: str) -> SessionWriter:
    from ._sqlite import SQLiteBackend

    return SQLiteBackend(path_of_url(url))


def _otlp(url: str) -> SessionWriter:
    # ImportError naming the ``otel`` extra when OpenTelemetry is not installed.
    from ..otel import OTelBackend

    return OTelBackend.from_url(url)


_BUILT_IN: dict[str, Callable[[str], SessionWriter]] = {
    "memory": _memory,
    "jsonl": _jsonl,
    "sqlite": _sqlite,
    "otlp+http": _otlp,
    "otlp+https": _otlp,
    "otlp+grpc": _otlp,
    "otlp+grpcs": _otlp,
}


def backend_from_url(url: str) -> SessionWriter:
    """Build the backend a URL names; raises ValueError naming the known schemes otherwise."""
    scheme = urlsplit(url).scheme.lower()
    factory = _BUILT_IN.get(scheme)
    if factory is not None:
        return factory(url)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == scheme:
            backend: SessionWriter = entry_point.load()(url)
            return backend
    known = sorted({*_BUILT_IN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
    raise ValueError(f"unknown backend URL scheme {scheme!r} in {url!r}; known: {', '.join(known)}")
