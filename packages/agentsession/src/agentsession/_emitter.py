"""One background writer per backend: the caller appends, a daemon thread writes.

Callers only append to a bounded deque (microseconds, never blocking). The thread batches
events, turns finished step handles into ``Step`` models, retries a failing backend with
backoff, and drops, counts and warns once when it must. It exits when idle and the next event
starts another.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._health import count, record_fault, warn_once
from ._models import SessionEvent
from .backends._base import SessionWriter

logger = logging.getLogger("agentsession")

__all__ = [
    "IDLE_EXIT_S",
    "RETRY_DELAYS_S",
    "DroppedByBackend",
    "Emitter",
    "PendingEvent",
    "live_emitters",
]


RETRY_DELAYS_S = (0.05, 0.25, 1.0, 2.5)
"""Waits between attempts at one batch: about four seconds in all before it is dropped."""

IDLE_EXIT_S = 30.0
"""A writer thread with no event for this long exits; the next event starts a new one."""


class DroppedByBackend(Exception):
    """Raised by a backend that dropped a batch on purpose and counted it: not retried, and
    not counted as written."""


class PendingEvent(Protocol):
    """A finished step recorded on the caller's thread, turned into a Step in the worker."""

    def to_event(self) -> SessionEvent: ...


class _FlushRequest:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Emitter:
    """Queues events for one backend and writes them from a background thread (or inline).

    The thread is started by the first event and exits after ``idle_exit_s`` seconds without
    any, so that an emitter nobody writes to any more holds no thread.
    """

    def __init__(
        self,
        backend: SessionWriter,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        sync: bool = False,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        self.backend = backend
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.sync = sync
        self.retry_delays_s = tuple(retry_delays_s)
        self.idle_exit_s = idle_exit_s
        self._queue: deque[Any] = deque()
        self._wakeup = threading.Event()
        self._urgent = threading.Event()
        self._start_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        live_emitters.add(self)

    # -- caller's thread -------------------------------------------------------------------
    def emit(self, item: SessionEvent | PendingEvent) -> None:
        """Queue one event; never blocks and never raises. Drops (and counts) when full."""
        if self._closed:
            count("dropped.after_shutdown")
            warn_once(f"closed:{id(self)}", "agentsession: an event arrived after shutdown()")
            return
        if self.sync:
            self._write_inline(item)
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
        # Append, then look for the thread: see _retire_if_idle for why this order.
        queue.append(item)
        if self._thread is None:
            self._start()
        if not self._wakeup.is_set():
            self._wakeup.set()
        if len(queue) >= self.batch_size:
            self._urgent.set()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything emitted so far is written and the backend flushed.

        Returns False if ``timeout`` seconds passed first (the events stay queued). Returns at
        once after :meth:`close`: True if nothing is left unwritten.
        """
        if self._closed:
            return not self._queue
        if self.sync:
            with self._sync_lock:
                self._flush_backend()
            return True
        thread = self._thread
        if thread is None:
            if not self._queue:
                return True  # an idle writer flushed the backend before it exited
        elif not thread.is_alive() and thread is self._thread:
            return not self._queue  # the writer died (a retiring one unsets _thread first)
        request = _FlushRequest()
        self._queue.append(request)
        if self._thread is None:
            self._start()
        self._wakeup.set()
        self._urgent.set()
        return request.done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, stop the worker and close the backend; safe to call twice.

        If the worker is still writing after ``timeout`` seconds the backend is left open (it
        is in use) and the worker finishes on its own.
        """
        with self._start_lock:
            if self._closed:
                return
            # First: from here on emit() drops and counts, so nothing arrives unseen behind
            # the last batch.
            self._closed = True
            self._stopping = True
        live_emitters.discard(self)
        if self.sync:
            with self._sync_lock:
                self._flush_backend()
                self._close_backend()
            return
        self._queue.append(_FlushRequest())
        if self._thread is None:
            self._start()
        thread = self._thread
        self._wakeup.set()
        self._urgent.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                count("shutdown.timed_out")
                warn_once(
                    f"close_timeout:{id(self)}",
                    "agentsession: %s was still writing %s s after shutdown began; it is left "
                    "open and %d queued events may be lost at exit",
                    type(self.backend).__name__,
                    timeout,
                    self._queued_events(),
                )
                return
        left = self._queued_events()
        if left:
            count("dropped.after_shutdown", left)
        self._close_backend()

    # -- worker thread ---------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="agentsession-writer", daemon=True)
            thread.start()
            self._thread = thread

    def _run(self) -> None:
        queue = self._queue
        while True:
            if not self._wakeup.wait(self.idle_exit_s) and self._retire_if_idle():
                return
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

    def _retire_if_idle(self) -> bool:
        """End this thread if nothing is queued; the next emit() starts another."""
        self._flush_backend()  # so that flush() on an emitter with no thread has nothing to do
        with self._start_lock:
            current = self._thread
            # None before looking at the queue: an emit() that appends after the look below
            # then finds no thread and starts one; one that appended before it is seen here.
            self._thread = None
            if self._queue or self._stopping:
                self._thread = current
                return False
            return True

    def _queued_events(self) -> int:
        return sum(1 for item in list(self._queue) if not isinstance(item, _FlushRequest))

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
            except DroppedByBackend:
                return
            except Exception as exc:
                if _is_bad_data(exc):
                    self._isolate_bad_events(batch, exc)
                    return
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

    def _isolate_bad_events(self, batch: list[SessionEvent], exc: Exception) -> None:
        """Write the halves of a batch the backend refused for its content, down to the events
        it cannot store, which are dropped: one bad value must not cost other sessions' steps.
        """
        if len(batch) > 1:
            middle = len(batch) // 2
            self._write_batch(batch[:middle])
            self._write_batch(batch[middle:])
            return
        event = batch[0]
        count("dropped.unstorable")
        warn_once(
            f"unstorable:{id(self)}",
            "agentsession: %s cannot store a %s of session %r (step %s): %r; it is dropped "
            "(further ones are only counted in agentsession.get_stats()['dropped.unstorable'])",
            type(self.backend).__name__,
            type(event).__name__,
            getattr(event, "session_id", None),
            getattr(event, "step_index", "-"),
            exc,
            exc=exc,
        )

    def _flush_backend(self) -> None:
        try:
            self.backend.flush()
        except Exception as exc:
            record_fault("backend.flush", exc)

    def _close_backend(self) -> None:
        try:
            self.backend.close()
        except Exception as exc:
            record_fault("backend.close", exc)

    def _write_inline(self, item: SessionEvent | PendingEvent) -> None:
        event = _to_event(item)
        if event is None:
            return
        with self._sync_lock:
            try:
                self.backend.write([event])
            except DroppedByBackend:
                pass
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


_BAD_DATA_ERRORS = (
    ValueError,  # also UnicodeEncodeError (a lone surrogate) and pydantic's serialization errors
    TypeError,
    OverflowError,  # an int too large for the store
    sqlite3.InterfaceError,
    sqlite3.IntegrityError,
)


def _is_bad_data(exc: Exception) -> bool:
    """True for errors about what a batch holds, which waiting will not mend."""
    return isinstance(exc, _BAD_DATA_ERRORS)


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


live_emitters = _EmitterSet()
