"""The background writer: batching, retries, drops, flush and shutdown, never raising."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

import agentsession
from agentsession import (
    MemoryBackend,
    SessionEvent,
    SessionStarted,
    SessionTracker,
    _emitter,
    _health,
    _ids,
    _worker,
    configure,
    get_stats,
    set_default_backend,
    using_session,
)
from agentsession._context import live_sessions
from agentsession._emitter import Emitter
from agentsession.testing import FailingBackend

FAST_RETRIES = (0.001, 0.002)


def _event(n: int) -> SessionStarted:
    return SessionStarted(session_id=f"wrk-event-{n:05d}", started_at=datetime.now(timezone.utc))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class GatedBackend(MemoryBackend):
    """A backend whose writes wait until the test opens the gate (a stuck disk or network)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.writer: threading.Thread | None = None
        self.closed = 0

    def write(self, events: Sequence[SessionEvent]) -> None:
        self.writer = threading.current_thread()
        self.writing.set()
        assert self.gate.wait(10)
        super().write(events)

    def close(self) -> None:
        self.closed += 1


class RecordingBackend(MemoryBackend):
    """A backend that notes each batch's size, the writing thread, and how often it was closed."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []
        self.threads: set[int] = set()
        self.writers: list[threading.Thread] = []  # ids are reused; thread objects are not
        self.closed = 0

    def write(self, events: Sequence[SessionEvent]) -> None:
        time.sleep(self.delay_s)
        self.batch_sizes.append(len(events))
        self.threads.add(threading.get_ident())
        if threading.current_thread() not in self.writers:
            self.writers.append(threading.current_thread())
        super().write(events)

    def close(self) -> None:
        self.closed += 1


def test_emit_is_written_by_the_background_thread() -> None:
    """Events are written by the worker thread, not the caller's, and appear after flush."""
    backend = RecordingBackend()
    emitter = Emitter(backend)
    emitter.emit(_event(1))
    assert emitter.flush(5.0)
    assert [e.session_id for e in backend.events] == ["wrk-event-00001"]
    assert threading.get_ident() not in backend.threads


def test_flush_returns_only_when_everything_is_written() -> None:
    """flush() returns once every event emitted before it is in the backend, in order."""
    backend = RecordingBackend(delay_s=0.005)
    emitter = Emitter(backend, batch_size=10, flush_interval_s=0.5)
    for n in range(100):
        emitter.emit(_event(n))
    assert emitter.flush(10.0)
    assert [e.session_id for e in backend.events] == [f"wrk-event-{n:05d}" for n in range(100)]
    assert max(backend.batch_sizes) <= 10


def test_flush_with_nothing_emitted_returns_at_once() -> None:
    """Flushing an idle emitter succeeds without starting a thread."""
    assert Emitter(MemoryBackend()).flush(1.0)


def test_flush_times_out_while_the_backend_is_stuck() -> None:
    """flush(timeout) returns False while the backend hangs, and True once it recovers."""
    backend = GatedBackend()
    emitter = Emitter(backend)
    emitter.emit(_event(1))
    assert not emitter.flush(0.05)
    backend.gate.set()
    assert emitter.flush(5.0)
    assert len(backend.events) == 1


def test_backend_that_always_fails_is_retried_then_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A backend raising on every write is retried, then the batch is dropped, counted, and one
    warning is logged however many batches fail; nothing reaches the caller."""
    backend = FailingBackend()
    emitter = Emitter(backend, retry_delays_s=FAST_RETRIES)
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        emitter.emit(_event(1))
        assert emitter.flush(5.0)
        assert backend.attempts == len(FAST_RETRIES) + 1
        emitter.emit(_event(2))
        emitter.emit(_event(3))
        assert emitter.flush(5.0)
    stats = get_stats()
    assert stats["dropped.backend_error"] == 3
    batches, leftover = divmod(backend.attempts, len(FAST_RETRIES) + 1)
    assert leftover == 0
    assert batches >= 2
    assert stats["retries.backend_write"] == batches * len(FAST_RETRIES)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "FailingBackend" in warnings[0]


def test_backend_that_recovers_loses_nothing() -> None:
    """A backend that fails twice and then works gets every event, in order, nothing dropped."""
    backend = FailingBackend(failures=2)
    emitter = Emitter(backend, retry_delays_s=FAST_RETRIES)
    for n in range(5):
        emitter.emit(_event(n))
    assert emitter.flush(5.0)
    assert [e.session_id for e in backend.events] == [f"wrk-event-{n:05d}" for n in range(5)]
    assert get_stats().get("dropped.backend_error", 0) == 0
    assert get_stats()["retries.backend_write"] == 2


def test_full_queue_drops_and_counts_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    """With the writer stuck and the queue full, emit returns at once and drops are counted."""
    backend = GatedBackend()
    emitter = Emitter(backend, queue_size=5, flush_interval_s=0.01)
    emitter.emit(_event(0))
    assert backend.writing.wait(5.0)  # the worker now hangs inside write()
    done = threading.Event()

    def flood() -> None:
        for n in range(1, 21):
            emitter.emit(_event(n))
        done.set()

    with caplog.at_level(logging.WARNING, logger="agentsession"):
        thread = threading.Thread(target=flood)
        thread.start()
        thread.join(5.0)
        assert done.is_set(), "emit blocked on a full queue"
    assert get_stats()["dropped.queue_full"] == 15
    assert len([w for w in _warnings(caplog) if "full" in w]) == 1
    backend.gate.set()
    assert emitter.flush(5.0)
    assert [e.session_id for e in backend.events] == [f"wrk-event-{n:05d}" for n in range(6)]


def test_batches_respect_batch_size() -> None:
    """The worker hands the backend at most batch_size events at a time."""
    backend = RecordingBackend()
    emitter = Emitter(backend, batch_size=3, flush_interval_s=0.5)
    for n in range(10):
        emitter.emit(_event(n))
    assert emitter.flush(5.0)
    assert sum(backend.batch_sizes) == 10
    assert max(backend.batch_sizes) <= 3


def test_close_is_idempotent_and_later_events_are_counted() -> None:
    """close() flushes and closes the backend once; events after it are counted, not raised."""
    backend = RecordingBackend()
    emitter = Emitter(backend)
    emitter.emit(_event(1))
    emitter.close()
    emitter.close()
    assert backend.closed == 1
    assert len(backend.events) == 1
    emitter.emit(_event(2))
    assert get_stats()["dropped.after_shutdown"] == 1
    assert len(backend.events) == 1


def test_failing_close_is_counted_not_raised() -> None:
    """A backend whose close() raises does not make shutdown raise."""

    class BadClose(MemoryBackend):
        def close(self) -> None:
            raise OSError("cannot close")

    emitter = Emitter(BadClose())
    emitter.close()
    assert get_stats()["faults.backend.close"] == 1


def test_flush_after_close_returns_at_once() -> None:
    """flush() on a closed emitter answers at once instead of waiting out its timeout."""
    emitter = Emitter(MemoryBackend())
    emitter.emit(_event(1))
    emitter.close()
    started = time.monotonic()
    assert emitter.flush(3.0)
    assert time.monotonic() - started < 1.0


def test_close_leaves_a_backend_that_is_still_writing_open() -> None:
    """close() never closes the backend under a write that outlives its timeout: the timeout
    is counted, and the write completes once the backend recovers."""
    backend = GatedBackend()
    emitter = Emitter(backend)
    emitter.emit(_event(1))
    assert backend.writing.wait(5.0)
    emitter.close(timeout=0.05)
    assert backend.closed == 0
    assert get_stats()["shutdown.timed_out"] == 1
    emitter.emit(_event(2))
    assert get_stats()["dropped.after_shutdown"] == 1
    backend.gate.set()
    assert backend.writer is not None
    backend.writer.join(5.0)
    assert not backend.writer.is_alive()
    assert [e.session_id for e in backend.events] == ["wrk-event-00001"]


def test_idle_writer_thread_exits_and_the_next_event_starts_another() -> None:
    """A writer left without events for idle_exit_s ends its thread; later events still arrive,
    written by a new thread."""
    backend = RecordingBackend()
    emitter = Emitter(backend, flush_interval_s=0.001, idle_exit_s=0.05)
    emitter.emit(_event(1))
    assert emitter.flush(5.0)
    [first] = backend.writers
    first.join(5.0)
    assert not first.is_alive()
    assert emitter.flush(1.0)  # nothing queued and no thread: nothing to wait for
    emitter.emit(_event(2))
    assert emitter.flush(5.0)
    assert [e.session_id for e in backend.events] == ["wrk-event-00001", "wrk-event-00002"]
    assert len(backend.writers) == 2
    assert first not in backend.writers[1:]


def test_events_racing_the_idle_exit_are_never_stranded() -> None:
    """With the writer exiting whenever it idles for half a millisecond, every event emitted
    around its exits is still written."""
    backend = MemoryBackend()
    emitter = Emitter(backend, flush_interval_s=0.0, idle_exit_s=0.0005)
    for n in range(300):
        emitter.emit(_event(n))
        if n % 3 == 0:
            time.sleep(0.0005)  # a gap for the writer to go idle and exit in
    assert emitter.flush(5.0)
    assert len(backend.events) == 300


def test_trackers_given_one_url_share_its_backend_and_writer(tmp_path: Path) -> None:
    """Trackers naming the same backend URL write through one backend and one writer thread."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writers_before = _writer_threads()
    trackers = [SessionTracker(f"wrk-url-{n}-conv", backend=url) for n in range(5)]
    shared = trackers[0].backend
    assert all(tracker.backend is shared for tracker in trackers)
    for tracker in trackers:
        tracker.begin_step().end()
    assert agentsession.flush(5.0)
    assert len(_writer_threads() - writers_before) == 1
    assert isinstance(shared, agentsession.SQLiteBackend)
    assert [len(shared.list_steps(t.session_id)) for t in trackers] == [1] * 5


def _writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "agentsession-writer" and t.is_alive()}


def test_default_backend_and_trackers_naming_it_share_one_writer() -> None:
    """After set_default_backend(b), trackers with no backend and trackers given b write
    through one writer thread: the backend is never written from two threads."""
    backend = RecordingBackend()
    set_default_backend(backend)
    SessionTracker("wrk-default-named", backend=backend).begin_step().end()
    SessionTracker("wrk-default-unnamed").begin_step().end()
    assert agentsession.flush(5.0)
    assert len(backend.list_steps("wrk-default-named")) == 1
    assert len(backend.list_steps("wrk-default-unnamed")) == 1
    assert len(backend.writers) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_records_even_if_locks_were_held_at_fork() -> None:
    """A child forked while the registry, session, id and counter locks were held records
    steps without deadlocking: it gets fresh locks."""
    locks = [
        _worker._registry_lock,
        _emitter.live_emitters._lock,
        _health._lock,
        _ids._uuid7_lock,
        live_sessions._lock,
    ]
    for lock in locks:
        assert lock.acquire(timeout=5.0)
    pid = -1
    try:
        pid = os.fork()
    finally:
        if pid != 0:
            for lock in locks:
                lock.release()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns to pytest
        code = 1
        try:
            code = 0 if _record_in_forked_child() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20.0
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child deadlocked")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status[1]) == 0


def _record_in_forked_child() -> bool:  # pragma: no cover - runs in a forked child
    with using_session("wrk-fork-live-conv") as live:
        live.begin_step().end()
    by_url = SessionTracker(backend="memory://")
    by_url.begin_step().end()
    ok = agentsession.flush(5.0)
    assert isinstance(by_url.backend, MemoryBackend)
    return ok and len(by_url.backend.list_steps(by_url.session_id)) == 1 and live.step_index == 1


def test_public_flush_and_shutdown() -> None:
    """agentsession.flush() writes every tracker's steps; shutdown() is safe to call twice and
    steps after it are counted, not raised."""
    backend = MemoryBackend()
    tracker = SessionTracker("wrk-shutdown-conv", backend=backend)
    for _ in range(3):
        tracker.begin_step().end()
    assert agentsession.flush(5.0)
    assert len(backend.list_steps("wrk-shutdown-conv")) == 3
    agentsession.shutdown()
    agentsession.shutdown()
    tracker.begin_step().end()
    assert get_stats()["dropped.after_shutdown"] == 1
    assert len(backend.list_steps("wrk-shutdown-conv")) == 3


def test_sync_mode_writes_on_the_callers_thread() -> None:
    """With sync=True each event is written before the call returns, on the caller's thread."""
    configure(sync=True)
    backend = RecordingBackend()
    tracker = SessionTracker("wrk-sync-conv", backend=backend)
    step = tracker.begin_step(input="hi")
    assert len(backend.events) == 1  # the session start
    step.end("hello")
    assert [s.output for s in backend.list_steps("wrk-sync-conv")] == ["hello"]
    assert backend.threads == {threading.get_ident()}


def test_sync_mode_backend_failure_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    """In sync mode a failing backend is counted and logged once, never raised to the caller."""
    configure(sync=True)
    tracker = SessionTracker("wrk-sync-failing", backend=FailingBackend())
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        for _ in range(3):
            tracker.begin_step().end()
        tracker.end()
    assert get_stats()["dropped.backend_error"] == 5  # start, three steps, end
    assert len(_warnings(caplog)) == 1


def test_event_that_cannot_be_built_is_counted() -> None:
    """A pending step whose conversion raises is dropped and counted; the rest are written."""

    class Broken:
        def to_event(self) -> SessionEvent:
            raise RuntimeError("bug while building the step")

    backend = MemoryBackend()
    emitter = Emitter(backend)
    emitter.emit(Broken())
    emitter.emit(_event(1))
    assert emitter.flush(5.0)
    assert len(backend.events) == 1
    assert get_stats()["dropped.conversion_error"] == 1


def test_raising_mask_does_not_leak_or_raise(backend: MemoryBackend) -> None:
    """A mask hook that raises stores no input, output or tool-call content, and raises nothing."""

    def broken_mask(value: object) -> object:
        raise RuntimeError("mask bug")

    tracker = SessionTracker("wrk-broken-mask", mask=broken_mask)
    tracker.record_tool_call("lookup", "secret-tool-input", "secret-tool-output")
    tracker.begin_step(input="secret-input").end("secret-output")
    assert agentsession.flush(5.0)
    [step] = backend.list_steps("wrk-broken-mask")
    assert step.input is None
    assert step.output is None
    assert [(c.name, c.input, c.output) for c in step.tool_calls] == [("lookup", None, None)]
    assert "secret" not in step.model_dump_json()
    assert get_stats()["capture.errors"] == 1


def test_set_default_backend_redirects_and_returns_the_previous(backend: MemoryBackend) -> None:
    """set_default_backend sends later steps elsewhere and hands back the previous backend."""
    replacement = MemoryBackend()
    assert set_default_backend(replacement) is backend
    tracker = SessionTracker("wrk-default-swap")
    tracker.begin_step().end()
    assert agentsession.flush(5.0)
    assert len(replacement.list_steps("wrk-default-swap")) == 1
    assert backend.list_steps("wrk-default-swap") == []


def test_default_backend_comes_from_the_url_setting() -> None:
    """With no default set, trackers write to the backend AGENTSESSION_BACKEND_URL names."""
    set_default_backend(None)
    configure(backend_url="memory://")
    assert isinstance(SessionTracker("wrk-default-url").backend, MemoryBackend)


# -- many sessions at once through the real worker ---------------------------------------------

SESSIONS_PER_KIND = 100
STEPS_PER_SESSION = 20


def _thread_session(session_id: str, backend: MemoryBackend, start: threading.Barrier) -> None:
    tracker = SessionTracker(session_id, backend=backend)
    start.wait()
    for i in range(STEPS_PER_SESSION):
        step = tracker.begin_step(input={"session": session_id, "i": i})
        step.end({"session": session_id})
    tracker.end()


async def _task_session(session_id: str, backend: MemoryBackend) -> None:
    async with SessionTracker(session_id, backend=backend) as tracker:
        for i in range(STEPS_PER_SESSION):
            step = tracker.begin_step(input={"session": session_id, "i": i})
            await asyncio.sleep(0)
            step.end({"session": session_id})


def test_many_sessions_in_threads_and_tasks_lose_nothing() -> None:
    """200 concurrent sessions (100 threads, 100 asyncio tasks) through the background worker:
    every step arrives, in its own session, with gap-free indexes 0..19."""
    backend = MemoryBackend()
    thread_ids = [f"wrk-thread-{n:03d}-conv" for n in range(SESSIONS_PER_KIND)]
    task_ids = [f"wrk-task-{n:03d}-conv" for n in range(SESSIONS_PER_KIND)]
    start = threading.Barrier(SESSIONS_PER_KIND + 1)

    async def run_tasks() -> None:
        await asyncio.gather(*(_task_session(sid, backend) for sid in task_ids))

    with ThreadPoolExecutor(SESSIONS_PER_KIND) as pool:
        futures = [pool.submit(_thread_session, sid, backend, start) for sid in thread_ids]
        start.wait()
        asyncio.run(run_tasks())
        for future in futures:
            future.result()
    assert agentsession.flush(10.0)

    assert get_stats().get("dropped.queue_full", 0) == 0
    assert not SessionTracker("wrk-check-conv").begin_step().ended  # the library still works
    for session_id in thread_ids + task_ids:
        steps = backend.list_steps(session_id)
        assert [s.step_index for s in steps] == list(range(STEPS_PER_SESSION)), session_id
        for step in steps:
            assert step.session_id == session_id
            assert step.input == {"session": session_id, "i": step.step_index}
            assert step.output == {"session": session_id}
        summary = backend.get_session(session_id)
        assert summary is not None
        assert summary.status == "completed"
        assert summary.total_steps == STEPS_PER_SESSION
    assert len(backend.steps) == 2 * SESSIONS_PER_KIND * STEPS_PER_SESSION


def test_a_step_the_store_cannot_hold_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value SQLite refuses (a lone surrogate) drops its own step, not the batch around it."""
    store = agentsession.SQLiteBackend(tmp_path / "poison.db")
    good = [SessionTracker(f"wrk-poison-good-{n}", backend=store) for n in range(3)]
    bad = SessionTracker("wrk-poison-bad", backend=store)
    for turn in range(4):
        for tracker in good:
            tracker.begin_step(name=f"turn-{turn}").end("ok")
        bad.begin_step(name="\ud800" if turn == 2 else f"turn-{turn}").end("ok")
    started = time.monotonic()
    assert agentsession.flush(10)
    assert time.monotonic() - started < 2, "a content error must not wait out the retries"
    for tracker in good:
        assert [s.step_index for s in store.list_steps(tracker.session_id)] == [0, 1, 2, 3]
    assert [s.step_index for s in store.list_steps(bad.session_id)] == [0, 1, 3]
    assert get_stats()["dropped.unstorable"] == 1
    assert "dropped.backend_error" not in get_stats()
    [warning] = _warnings(caplog)
    assert "wrk-poison-bad" in warning
    assert "step 2" in warning
