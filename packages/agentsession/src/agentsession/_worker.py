"""Which writer an event goes to: the default backend's, one per backend object or URL.

Also ``flush()`` and ``shutdown()`` over every writer (shutdown also runs at interpreter exit),
and resetting the writers in a forked child.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ._config import get_settings
from ._emitter import DroppedByBackend, Emitter, live_emitters
from ._health import count, warn_once
from ._models import SessionEvent
from .backends._base import SessionWriter
from .backends._registry import backend_from_url

logger = logging.getLogger("agentsession")

__all__ = [
    "default_emitter",
    "emitter_for",
    "emitter_for_url",
    "flush_all",
    "forget_closed_emitters",
    "set_default_backend",
    "shutdown_all",
]


def flush_all(timeout: float | None = 10.0) -> bool:
    """Flush every emitter; True if all finished within ``timeout`` seconds each."""
    results = [emitter.flush(timeout) for emitter in live_emitters.snapshot()]
    return all(results)


def shutdown_all(timeout: float | None = 10.0) -> None:
    """Flush and close every emitter (also run at interpreter exit)."""
    for emitter in live_emitters.snapshot():
        emitter.close(timeout)


_registry_lock = threading.Lock()
_by_backend: dict[int, Emitter] = {}
_by_url: dict[str, Emitter] = {}
_default: Emitter | None = None
_default_url: str | None = None


def _new_emitter(backend: SessionWriter) -> Emitter:
    settings = get_settings()
    return Emitter(
        backend,
        queue_size=settings.queue_size,
        batch_size=settings.batch_size,
        flush_interval_s=settings.flush_interval_s,
        sync=settings.sync,
    )


def default_emitter() -> Emitter:
    """The emitter of the default backend (``AGENTSESSION_BACKEND_URL``), built on first use."""
    global _default, _default_url
    emitter = _default
    url = get_settings().backend_url
    if emitter is not None and not emitter._closed and _default_url in (None, url):
        return emitter
    with _registry_lock:
        if _default is None or _default._closed or _default_url not in (None, url):
            _default = _new_emitter(_open_default_backend(url))
            _default_url = url
        return _default


REOPEN_INTERVAL_S = 5.0
"""How often a default backend that could not be opened is tried again, at most."""


class _UnavailableBackend:
    """Stands in for a default backend that could not be opened: counts what it drops, and
    opens the backend once it can.

    The first attempt is made on the caller's thread at first use; the later ones come from
    ``write()``, so from the writer thread, at most every ``reopen_interval_s`` seconds. A
    mistake that time cannot mend (a bad URL, a missing extra) is not tried again.
    """

    def __init__(self, url: str, error: Exception, reopen_interval_s: float | None = None) -> None:
        self.url = url
        self.reopen_interval_s = (
            REOPEN_INTERVAL_S if reopen_interval_s is None else reopen_interval_s
        )
        self._retry = not isinstance(error, (ValueError, TypeError, ImportError))
        self._next_attempt = time.monotonic() + self.reopen_interval_s
        self._opened: SessionWriter | None = None

    def write(self, events: Sequence[SessionEvent]) -> None:
        backend = self._opened or self._reopen()
        if backend is None:
            count("dropped.backend_unavailable", len(events))
            raise DroppedByBackend
        backend.write(events)

    def _reopen(self) -> SessionWriter | None:
        if not self._retry or time.monotonic() < self._next_attempt:
            return None
        try:
            self._opened = backend_from_url(self.url)
        except Exception as exc:
            count("faults.backend.open")
            logger.debug("agentsession: backend %r still cannot be opened: %r", self.url, exc)
            self._next_attempt = time.monotonic() + self.reopen_interval_s
            return None
        logger.info("agentsession: backend %r opened; recording resumes", self.url)
        return self._opened

    def flush(self) -> None:
        if self._opened is not None:
            self._opened.flush()

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


def _open_default_backend(url: str) -> SessionWriter:
    try:
        return backend_from_url(url)
    except Exception as exc:
        # A bad AGENTSESSION_BACKEND_URL or an unwritable directory must not break the app.
        count("faults.backend.open")
        warn_once(
            f"backend_open:{url}",
            "agentsession: cannot open backend %r: %s; steps are dropped and counted in "
            "agentsession.get_stats()['dropped.backend_unavailable'] until it opens",
            url,
            exc,
            exc=exc,
        )
        return _UnavailableBackend(url, exc)


def set_default_backend(backend: SessionWriter | str | None) -> SessionWriter | None:
    """Send the steps of trackers that name no backend to ``backend`` (an object or a URL).

    ``None`` goes back to ``AGENTSESSION_BACKEND_URL``. The previous default is flushed (not
    closed) and returned, so tests can put it back.
    """
    global _default, _default_url
    if isinstance(backend, str):
        emitter: Emitter | None = emitter_for_url(backend)
    else:
        # The backend's one emitter: a tracker naming it must not get a second writer.
        emitter = None if backend is None else emitter_for(backend)
    with _registry_lock:
        previous = _default
        _default, _default_url = emitter, None
    if previous is not None:
        previous.flush()
        return previous.backend
    return None


@contextmanager
def swap_default_emitter(emitter: Emitter) -> Iterator[Emitter]:
    """Make ``emitter`` the default for the duration of the block, then put the old one back."""
    global _default, _default_url
    with _registry_lock:
        previous, previous_url = _default, _default_url
        _default, _default_url = emitter, None
    try:
        yield emitter
    finally:
        with _registry_lock:
            _default, _default_url = previous, previous_url
        live_emitters.discard(emitter)


def emitter_for(backend: SessionWriter | None) -> Emitter:
    """The emitter that writes to ``backend`` (one per backend object), or the default one."""
    if backend is None:
        return default_emitter()
    emitter = _by_backend.get(id(backend))
    if emitter is None or emitter.backend is not backend or emitter._closed:
        with _registry_lock:
            emitter = _by_backend.get(id(backend))
            if emitter is None or emitter.backend is not backend or emitter._closed:
                emitter = _new_emitter(backend)
                _by_backend[id(backend)] = emitter
    return emitter


def emitter_for_url(url: str) -> Emitter:
    """The emitter of the backend ``url`` names, opened on first use and shared afterwards.

    Raises ValueError for an unknown scheme, like ``backend_from_url``.
    """
    emitter = _by_url.get(url)
    if emitter is None or emitter._closed:
        with _registry_lock:
            emitter = _by_url.get(url)
            if emitter is None or emitter._closed:
                backend = backend_from_url(url)
                emitter = _by_url[url] = _by_backend[id(backend)] = _new_emitter(backend)
    return emitter


def forget_closed_emitters() -> None:
    """Drop closed emitters from the registries (they would be replaced on next use anyway)."""
    with _registry_lock:
        for key in [key for key, emitter in _by_backend.items() if emitter._closed]:
            del _by_backend[key]
        for url in [url for url, emitter in _by_url.items() if emitter._closed]:
            del _by_url[url]


def _reset_after_fork() -> None:
    # The child has only the thread that forked: a lock another thread held stays held forever.
    global _registry_lock
    _registry_lock = threading.Lock()
    live_emitters._lock = threading.Lock()
    # The child's emitters share the parent's backends, e.g. an SQLite connection opened before
    # the fork: a known limitation (open backends after forking).
    for emitter in live_emitters.snapshot():
        emitter._after_fork_in_child()


atexit.register(shutdown_all, 5.0)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
