"""The background writer: takes events off the caller's thread and hands them to a backend.

Callers only append to a bounded deque (microseconds, never blocking). One daemon thread per
backend batches events, turns finished step handles into ``Step`` models, retries a failing
backend with backoff and drops, counts and warns once when it must.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from ._config import get_settings
from ._health import count, record_fault, warn_once
from ._models import SessionEvent
from .backends._base import SessionWriter
from .backends._registry import backend_from_url

logger = logging.getLogger("agentsession")

__all__ = [
    "Emitter",
    "PendingEvent",
    "default_emitter",
    "emitter_for",
    "flush_all",
    "set_default_backend",
    "shutdown_all",
]

RETRY_DELAYS_S = (0.05, 0.25, 1.0, 2.5)
"""Waits between attempts at one batch: about four seconds in all before it is dropped."""


class PendingEvent(Protocol):
    """A finished step recorded on the caller's thread, turned into a Step in the worker."""

    def to_event(self) -> SessionEvent: ...


class _FlushRequest:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Emitter:
    """Queues events for one backend and writes them from a background thread (or inline)."""

    def __init__(
        self,
        backend: SessionWriter,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        sync: bool = False,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.backend = backend
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.sync = sync
        self.retry_delays_s = tuple(retry_delays_s)
        self._queue: deque[Any] = deque()
        self._wakeup = threading.Event()
        self._urgent = threading.Event()
        self._start_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        _live_emitters.add(self)

    # -- caller's thread -------------------------------------------------------------------
    def emit(self, item: SessionEvent | PendingEvent) -> None:
        """Queue one event; never blocks and never raises. Drops (and counts) when full."""
        if self.sync:
            self._write_inline(item)
            return
        if self._closed:
            count("dropped.after_shutdown")
            warn_once(f"closed:{id(self)}", "agentsession: an event arrived after shutdown()")
            return
        queue = self._queue
        if len(queue) >= self.queue_size:
            count("dropped.queue_full")
            warn_once(
                f"queue_full:{id(self)}",
                "agentsession: the event queue is full (%d events); new events are dropped and "
                "counted in agentsession.get_stats()['dropped.queue_full']",
                self.queue_size,
            )
            return
        queue.append(item)
        if self._thread is None:
            self._start()
        if not self._wakeup.is_set():
            self._wakeup.set()
        if len(queue) >= self.batch_size:
            self._urgent.set()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything emitted so far is written and the backend flushed.

        Returns False if ``timeout`` seconds passed first (the events stay queued).
        """
        if self.sync:
            with self._sync_lock:
                self._flush_backend()
            return True
        if self._thread is None:
            if not self._queue:
                with self._sync_lock:
                    self._flush_backend()
                return True
            self._start()
        request = _FlushRequest()
        self._queue.append(request)
        self._wakeup.set()
        self._urgent.set()
        return request.done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush, stop the worker and close the backend; safe to call twice."""
        if self._closed:
            return
        self.flush(timeout)
        self._stopping = True
        self._wakeup.set()
        self._urgent.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._closed = True
        try:
            self.backend.close()
        except Exception as exc:
            record_fault("backend.close", exc)
        _live_emitters.discard(self)

    # -- worker thread ---------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._stopping = False
            thread = threading.Thread(target=self._run, name="agentsession-writer", daemon=True)
            thread.start()
            self._thread = thread

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            if len(queue) < self.batch_size and not self._stopping:
                # Linger so that a burst of steps is written as one transaction.
                self._urgent.wait(self.flush_interval_s)
            self._urgent.clear()
            try:
                self._drain()
            except Exception as exc:  # pragma: no cover - a bug of ours; keep the thread alive
                record_fault("worker", exc)
            if self._stopping and not queue:
                return

    def _drain(self) -> None:
        queue = self._queue
        batch: list[SessionEvent] = []
        while queue:
            item = queue.popleft()
            if isinstance(item, _FlushRequest):
                self._write_batch(batch)
                batch = []
                self._flush_backend()
                item.done.set()
                continue
            event = _to_event(item)
            if event is not None:
                batch.append(event)
            if len(batch) >= self.batch_size:
                self._write_batch(batch)
                batch = []
        self._write_batch(batch)

    def _write_batch(self, batch: list[SessionEvent]) -> None:
        if not batch:
            return
        delays = self.retry_delays_s
        for attempt in range(len(delays) + 1):
            try:
                self.backend.write(batch)
            except Exception as exc:
                if attempt == len(delays):
                    count("dropped.backend_error", len(batch))
                    count("faults.backend.write")
                    # One warning per backend: an outage must not flood the host's logs.
                    warn_once(
                        f"backend_error:{id(self)}",
                        "agentsession: dropped %d events after %d failed writes to %s: %r "
                        "(further drops are only counted in agentsession.get_stats())",
                        len(batch),
                        attempt + 1,
                        type(self.backend).__name__,
                        exc,
                        exc=exc,
                    )
                    logger.debug("agentsession: dropped %d events: %r", len(batch), exc)
                    return
                count("retries.backend_write")
                time.sleep(delays[attempt])
            else:
                count("written.events", len(batch))
                return

    def _flush_backend(self) -> None:
        try:
            self.backend.flush()
        except Exception as exc:
            record_fault("backend.flush", exc)

    def _write_inline(self, item: SessionEvent | PendingEvent) -> None:
        event = _to_event(item)
        if event is None:
            return
        with self._sync_lock:
            try:
                self.backend.write([event])
            except Exception as exc:
                count("dropped.backend_error")
                record_fault("backend.write", exc)
            else:
                count("written.events")

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and the parent writes its own queue.
        self._queue.clear()
        self._thread = None
        self._wakeup = threading.Event()
        self._urgent = threading.Event()
        self._start_lock = threading.Lock()
        self._sync_lock = threading.Lock()


def _to_event(item: SessionEvent | PendingEvent) -> SessionEvent | None:
    to_event: Callable[[], SessionEvent] | None = getattr(item, "to_event", None)
    if to_event is None:
        return item  # type: ignore[return-value]
    try:
        return to_event()
    except Exception as exc:
        count("dropped.conversion_error")
        record_fault("worker.to_event", exc)
        return None


class _EmitterSet:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Emitter] = []

    def add(self, emitter: Emitter) -> None:
        with self._lock:
            self._items.append(emitter)

    def discard(self, emitter: Emitter) -> None:
        with self._lock:
            if emitter in self._items:
                self._items.remove(emitter)

    def snapshot(self) -> list[Emitter]:
        with self._lock:
            return list(self._items)


_live_emitters = _EmitterSet()


def flush_all(timeout: float | None = 10.0) -> bool:
    """Flush every emitter; True if all finished within ``timeout`` seconds each."""
    results = [emitter.flush(timeout) for emitter in _live_emitters.snapshot()]
    return all(results)


def shutdown_all(timeout: float | None = 10.0) -> None:
    """Flush and close every emitter (also run at interpreter exit)."""
    for emitter in _live_emitters.snapshot():
        emitter.close(timeout)


_registry_lock = threading.Lock()
_by_backend: dict[int, Emitter] = {}
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


class _UnavailableBackend:
    """Stands in for a default backend that could not be opened: counts what it drops."""

    def __init__(self, url: str) -> None:
        self.url = url

    def write(self, events: Sequence[SessionEvent]) -> None:
        count("dropped.backend_unavailable", len(events))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _open_default_backend(url: str) -> SessionWriter:
    try:
        return backend_from_url(url)
    except Exception as exc:
        # A bad AGENTSESSION_BACKEND_URL or an unwritable directory must not break the app.
        record_fault("backend.open", exc)
        logger.warning("agentsession: cannot open backend %r; steps are dropped", url)
        return _UnavailableBackend(url)


def set_default_backend(backend: SessionWriter | str | None) -> SessionWriter | None:
    """Send the steps of trackers that name no backend to ``backend`` (an object or a URL).

    ``None`` goes back to ``AGENTSESSION_BACKEND_URL``. The previous default is flushed (not
    closed) and returned, so tests can put it back.
    """
    global _default, _default_url
    if isinstance(backend, str):
        backend = backend_from_url(backend)
    with _registry_lock:
        previous = _default
        _default = None if backend is None else _new_emitter(backend)
        _default_url = None
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
        _live_emitters.discard(emitter)


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


def _reset_after_fork() -> None:
    for emitter in _live_emitters.snapshot():
        emitter._after_fork_in_child()


atexit.register(shutdown_all, 5.0)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
