"""SessionTracker: lifecycle, step numbering, limits, links between sessions and tool calls."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import agentsession
from agentsession import (
    MemoryBackend,
    SessionEnded,
    SessionStarted,
    SessionSummary,
    SessionTracker,
    Step,
    _tracker,
    current_session,
    using_session,
)

StepsOf = Callable[[str], list[Step]]
SummaryOf = Callable[[str], SessionSummary]


def _events_of(backend: MemoryBackend, session_id: str, kind: type) -> list[Any]:
    assert agentsession.flush(5.0)
    return [e for e in backend.events if isinstance(e, kind) and e.session_id == session_id]


# -- lifecycle ---------------------------------------------------------------------------------


def test_start_and_end_are_idempotent(backend: MemoryBackend) -> None:
    """Calling start or end twice records one start and one end; the first end's status wins."""
    tracker = SessionTracker("trk-idempotent-1")
    tracker.start()
    tracker.start()
    tracker.end("failed", "first")
    tracker.end("completed", "second")
    assert len(_events_of(backend, "trk-idempotent-1", SessionStarted)) == 1
    [ended] = _events_of(backend, "trk-idempotent-1", SessionEnded)
    assert (ended.status, ended.reason) == ("failed", "first")
    assert tracker.status == "failed"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "timed_out"])
def test_end_records_the_given_status(status: str, summary_of: SummaryOf) -> None:
    """end(status, reason) is what the session's summary reports."""
    tracker = SessionTracker(f"trk-status-{status}")
    assert tracker.status == "in_progress"
    tracker.end(status, reason="why")  # type: ignore[arg-type]
    assert tracker.status == status
    summary = summary_of(f"trk-status-{status}")
    assert summary.status == status
    assert summary.end_reason == "why"


@pytest.mark.parametrize("status", ["in_progress", "done", ""])
def test_invalid_end_status_raises(status: str, backend: MemoryBackend) -> None:
    """end() with a status that is not a final status raises ValueError and records nothing."""
    tracker = SessionTracker("trk-bad-status")
    with pytest.raises(ValueError, match="status"):
        tracker.end(status)  # type: ignore[arg-type]
    assert tracker.status == "in_progress"
    assert _events_of(backend, "trk-bad-status", SessionEnded) == []


def test_first_step_starts_the_session(backend: MemoryBackend) -> None:
    """A tracker that was never started records its start before its first step."""
    tracker = SessionTracker("trk-implicit-start", user_id="u-1", tags=["a"])
    tracker.begin_step().end()
    assert agentsession.flush(5.0)
    kinds = [type(e) for e in backend.events if e.session_id == "trk-implicit-start"]
    assert kinds == [SessionStarted, Step]
    [started] = _events_of(backend, "trk-implicit-start", SessionStarted)
    assert started.user_id == "u-1"
    assert started.tags == ("a",)


def test_with_block_completes_and_sets_current_session(summary_of: SummaryOf) -> None:
    """``with tracker:`` makes it the current session and ends it as completed."""
    tracker = SessionTracker("trk-with-ok")
    assert current_session() is None
    with tracker as entered:
        assert entered is tracker
        assert current_session() is tracker
    assert current_session() is None
    assert summary_of("trk-with-ok").status == "completed"


def test_with_block_that_raises_ends_failed(summary_of: SummaryOf) -> None:
    """An exception inside ``with tracker:`` ends the session failed with the error as reason."""
    tracker = SessionTracker("trk-with-fail")
    with pytest.raises(RuntimeError, match="boom"), tracker:
        raise RuntimeError("boom")
    assert tracker.status == "failed"
    summary = summary_of("trk-with-fail")
    assert summary.status == "failed"
    assert summary.end_reason == "RuntimeError: boom"
    assert current_session() is None


async def test_async_with_completes(summary_of: SummaryOf) -> None:
    """``async with tracker:`` is current inside the block and ends completed."""
    tracker = SessionTracker("trk-async-ok")
    async with tracker:
        await asyncio.sleep(0)
        assert current_session() is tracker
    assert current_session() is None
    assert summary_of("trk-async-ok").status == "completed"


async def test_async_with_that_raises_ends_failed(summary_of: SummaryOf) -> None:
    """An exception inside ``async with tracker:`` ends the session failed with the reason."""
    tracker = SessionTracker("trk-async-fail")
    with pytest.raises(KeyError):
        async with tracker:
            raise KeyError("missing")
    summary = summary_of("trk-async-fail")
    assert summary.status == "failed"
    assert summary.end_reason is not None
    assert summary.end_reason.startswith("KeyError")


async def test_cancelled_task_ends_cancelled(summary_of: SummaryOf) -> None:
    """A task cancelled inside ``async with tracker:`` ends the session as cancelled."""
    tracker = SessionTracker("trk-async-cancel")
    entered = asyncio.Event()

    async def agent() -> None:
        async with tracker:
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(agent())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tracker.status == "cancelled"
    assert summary_of("trk-async-cancel").status == "cancelled"


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def test_exception_that_cannot_be_printed_still_propagates(summary_of: SummaryOf) -> None:
    """An exception whose __str__ raises leaves ``with tracker:`` unchanged; the session ends
    failed with the exception's type as reason."""
    tracker = SessionTracker("trk-unprintable")
    with pytest.raises(_UnprintableError), tracker:
        raise _UnprintableError()
    summary = summary_of("trk-unprintable")
    assert (summary.status, summary.end_reason) == ("failed", "_UnprintableError")


async def test_one_tracker_entered_by_two_tasks_restores_each_outer_session() -> None:
    """A tracker entered by two tasks at once, the first to enter leaving first, hands each
    task back its own outer session."""
    shared = SessionTracker("trk-shared-block")
    first_entered, second_entered, first_left = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> str | None:
        with using_session("trk-outer-first"):
            with shared:
                first_entered.set()
                await second_entered.wait()
            first_left.set()
            outer = current_session()
            return None if outer is None else outer.session_id

    async def second() -> str | None:
        await first_entered.wait()
        with using_session("trk-outer-second"):
            with shared:
                second_entered.set()
                await first_left.wait()
            outer = current_session()
            return None if outer is None else outer.session_id

    results = await asyncio.wait_for(asyncio.gather(first(), second()), 5.0)
    assert results == ["trk-outer-first", "trk-outer-second"]


def test_tracker_repr_names_id_index_and_status() -> None:
    """repr shows the session id, next step index and status for debugging."""
    tracker = SessionTracker("trk-repr-conv-1")
    tracker.next_step()
    assert repr(tracker) == (
        "SessionTracker(session_id='trk-repr-conv-1', step_index=1, status='in_progress')"
    )


# -- step numbering ----------------------------------------------------------------------------


def test_steps_are_numbered_from_zero(steps_of: StepsOf) -> None:
    """Steps get indexes 0, 1, 2... in the order they begin, and step_index names the next one."""
    tracker = SessionTracker("trk-numbering")
    assert tracker.step_index == 0
    for n in range(5):
        step = tracker.begin_step(input=n)
        assert step.step_index == n
        step.end()
    assert tracker.step_index == 5
    assert [(s.step_index, s.input) for s in steps_of("trk-numbering")] == [
        (n, n) for n in range(5)
    ]


def test_step_index_follows_begin_order_not_end_order(steps_of: StepsOf) -> None:
    """Indexes are given at begin_step, so steps that end out of order keep their start order."""
    tracker = SessionTracker("trk-begin-order")
    first, second, third = (tracker.begin_step(input=name) for name in ("a", "b", "c"))
    third.end()
    first.end()
    second.end()
    assert [(s.step_index, s.input) for s in steps_of("trk-begin-order")] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]


def test_parallel_threads_get_unique_gap_free_indexes(steps_of: StepsOf) -> None:
    """Steps begun from many threads at once get each index exactly once, with no gaps."""
    tracker = SessionTracker("trk-threads")
    barrier = threading.Barrier(8)

    def worker(n: int) -> list[int]:
        barrier.wait()
        indexes = []
        for i in range(50):
            step = tracker.begin_step(input={"thread": n, "i": i})
            indexes.append(step.step_index)
            step.end()
        return indexes

    with ThreadPoolExecutor(8) as pool:
        per_thread = list(pool.map(worker, range(8)))
    all_indexes = [i for indexes in per_thread for i in indexes]
    assert sorted(all_indexes) == list(range(400))
    for indexes in per_thread:  # each thread saw its own steps in increasing order
        assert indexes == sorted(indexes)
    assert [s.step_index for s in steps_of("trk-threads")] == list(range(400))


async def test_gathered_coroutines_get_indexes_in_start_order(steps_of: StepsOf) -> None:
    """Under asyncio.gather, indexes are unique, gap-free and follow the order steps began."""
    tracker = SessionTracker("trk-gather")
    began: list[int] = []

    async def call(n: int) -> None:
        await asyncio.sleep((n * 7 % 5) / 1000)
        step = tracker.begin_step(input=n)
        began.append(step.step_index)
        await asyncio.sleep((n * 3 % 4) / 1000)
        step.end()

    await asyncio.gather(*(call(n) for n in range(40)))
    assert began == list(range(40))
    assert [s.step_index for s in steps_of("trk-gather")] == list(range(40))


def test_next_step_advances_the_index_without_recording() -> None:
    """next_step marks the current index used (header-only use) and returns the next index."""
    tracker = SessionTracker("trk-next-step")
    assert tracker.next_step() == 1
    assert tracker.next_step() == 2
    assert tracker.begin_step().step_index == 2


# -- limits ------------------------------------------------------------------------------------


def test_max_steps_drops_further_steps_and_reports_them(
    caplog: pytest.LogCaptureFixture,
    steps_of: StepsOf,
    summary_of: SummaryOf,
    backend: MemoryBackend,
) -> None:
    """Past max_steps steps are not recorded, one warning is logged, and the count is reported."""
    tracker = SessionTracker("trk-max-steps", max_steps=3)
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        handles = [tracker.begin_step(input=n) for n in range(6)]
        for handle in handles:
            handle.end()
    assert [h.recorded for h in handles] == [True, True, True, False, False, False]
    assert tracker.dropped_steps == 3
    warnings = [r for r in caplog.records if "trk-max-steps" in r.getMessage()]
    assert len(warnings) == 1
    assert "max_steps=3" in warnings[0].getMessage()
    tracker.end()
    assert [s.input for s in steps_of("trk-max-steps")] == [0, 1, 2]
    [ended] = _events_of(backend, "trk-max-steps", SessionEnded)
    assert ended.dropped_steps == 3
    summary = summary_of("trk-max-steps")
    assert summary.total_steps == 3
    assert summary.dropped_steps == 3
    assert agentsession.get_stats()["dropped.max_steps"] == 3


def test_max_steps_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTSESSION_MAX_STEPS sets the default limit."""
    from agentsession._config import reset_settings

    monkeypatch.setenv("AGENTSESSION_MAX_STEPS", "2")
    reset_settings()
    tracker = SessionTracker("trk-max-steps-env")
    assert [tracker.begin_step().recorded for _ in range(3)] == [True, True, False]


def test_steps_after_end_are_counted_not_recorded(steps_of: StepsOf) -> None:
    """A step begun after end() is not recorded, and counted in dropped_steps and the stats."""
    tracker = SessionTracker("trk-after-end")
    tracker.begin_step().end()
    tracker.end()
    late = tracker.begin_step(input="late")
    late.end("late output")
    assert not late.recorded
    assert tracker.dropped_steps == 1
    assert agentsession.get_stats()["dropped.after_end"] == 1
    assert len(steps_of("trk-after-end")) == 1


class _Clock:
    """Stands in for the tracker's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """The clock SessionTracker reads idle time from, moved only by the test."""
    fake = _Clock()
    monkeypatch.setattr(_tracker, "time", fake)
    return fake


def test_idle_session_reads_timed_out(clock: _Clock) -> None:
    """A session never ended reads timed_out once idle for longer than its timeout."""
    tracker = SessionTracker("trk-timeout", timeout_s=60)
    tracker.begin_step().end()
    clock.now += 60
    assert tracker.status == "in_progress"
    clock.now += 0.5
    assert tracker.status == "timed_out"


def test_backend_reads_an_idle_session_as_timed_out(summary_of: SummaryOf) -> None:
    """The backend is told the timeout: it reads a session idle for longer as timed_out."""
    tracker = SessionTracker("trk-timeout-stored", timeout_s=0.05)
    tracker.begin_step().end()
    deadline = time.monotonic() + 5.0
    while (summary := summary_of("trk-timeout-stored")).status == "in_progress":
        assert time.monotonic() < deadline, "the stored session never timed out"
        time.sleep(0.01)
    assert summary.status == "timed_out"


def test_activity_keeps_a_session_alive(clock: _Clock) -> None:
    """Each step resets the idle clock, so a busy session does not time out."""
    tracker = SessionTracker("trk-timeout-busy", timeout_s=60)
    for _ in range(5):
        clock.now += 50
        tracker.begin_step().end()
    assert tracker.status == "in_progress"


def test_ended_session_never_times_out(clock: _Clock) -> None:
    """A session that was ended keeps its final status after the timeout passes."""
    tracker = SessionTracker("trk-timeout-ended", timeout_s=60)
    tracker.end()
    clock.now += 3_600
    assert tracker.status == "completed"


# -- links -------------------------------------------------------------------------------------


def test_child_links_to_parent_session_and_latest_step(backend: MemoryBackend) -> None:
    """child() records the parent's session id and the trace id of its latest step."""
    parent = SessionTracker("trk-parent", user_id="u-9", tags=["prod"])
    parent.begin_step().end()
    latest = parent.begin_step()
    latest.end()
    child = parent.child(session_id="trk-child")
    assert child.parent_session_id == "trk-parent"
    assert child.parent_trace_id == latest.trace_id
    assert child.user_id == "u-9"
    with child:
        step = child.begin_step()
        step.end()
    assert step.parent_trace_id == latest.trace_id
    [started] = _events_of(backend, "trk-child", SessionStarted)
    assert started.parent_session_id == "trk-parent"
    assert started.parent_trace_id == latest.trace_id
    assert agentsession.flush(5.0)
    summary = backend.get_session("trk-child")
    assert summary is not None
    assert summary.parent_session_id == "trk-parent"


def test_child_before_any_step_inherits_parent_trace() -> None:
    """A child made before the parent's first step links to the parent's own parent trace."""
    parent = SessionTracker("trk-parent-2", parent_trace_id="upstream-trace")
    assert parent.child().parent_trace_id == "upstream-trace"
    assert SessionTracker("trk-parent-3").child().parent_trace_id is None


def test_child_gets_its_own_id_and_numbering() -> None:
    """A child session gets a fresh id and numbers its steps from 0."""
    parent = SessionTracker("trk-parent-4")
    parent.begin_step().end()
    child = parent.child()
    assert child.session_id != parent.session_id
    assert child.begin_step().step_index == 0


def test_steps_carry_the_parent_trace_id(steps_of: StepsOf) -> None:
    """Steps record the session's parent trace id unless begin_step names another."""
    tracker = SessionTracker("trk-parent-trace", parent_trace_id="trace-A")
    tracker.begin_step().end()
    tracker.set_parent_trace_id("trace-B")
    tracker.begin_step().end()
    tracker.begin_step(parent_trace_id="trace-C").end()
    assert [s.parent_trace_id for s in steps_of("trk-parent-trace")] == [
        "trace-A",
        "trace-B",
        "trace-C",
    ]


def test_latest_trace_id_is_the_latest_step_begun() -> None:
    """latest_trace_id follows begin_step, and an explicit trace id is kept."""
    tracker = SessionTracker("trk-latest-trace")
    assert tracker.latest_trace_id is None
    step = tracker.begin_step(trace_id="0af7651916cd43dd8448eb211c80319c")
    assert step.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert tracker.latest_trace_id == step.trace_id


# -- tool calls and step content ---------------------------------------------------------------


def test_tool_calls_go_into_the_next_step(steps_of: StepsOf) -> None:
    """Tool calls recorded between two steps are listed in the next step, and only there."""
    tracker = SessionTracker("trk-tools")
    tracker.begin_step().end()
    tracker.record_tool_call("search", {"q": "paris"}, ["result"], duration_ms=12.5)
    tracker.record_tool_call("calc", "1+1", None, error="ZeroDivisionError")
    tracker.begin_step().end()
    tracker.begin_step().end()
    first, second, third = steps_of("trk-tools")
    assert first.tool_calls == ()
    assert [(c.name, c.input, c.output, c.error) for c in second.tool_calls] == [
        ("search", {"q": "paris"}, ["result"], None),
        ("calc", "1+1", None, "ZeroDivisionError"),
    ]
    assert second.tool_calls[0].duration_ms == 12.5
    assert third.tool_calls == ()


def test_tool_calls_after_the_last_step_are_counted_at_end(
    steps_of: StepsOf, caplog: pytest.LogCaptureFixture
) -> None:
    """Tool calls recorded after the last step belong to no step: end() counts them in
    dropped.tool_calls and says so once in the log."""
    tracker = SessionTracker("trk-tools-lost")
    tracker.begin_step().end()
    for name in ("search", "calc"):
        tracker.record_tool_call(name, "in", "out")
    with caplog.at_level(logging.INFO, logger="agentsession"):
        tracker.end()
        other = SessionTracker("trk-tools-lost-2")
        other.record_tool_call("search")
        other.end()
    assert agentsession.get_stats()["dropped.tool_calls"] == 3
    assert len([r for r in caplog.records if "tool call" in r.getMessage()]) == 1
    [step] = steps_of("trk-tools-lost")
    assert step.tool_calls == ()


def test_steps_carry_tracker_attributes(steps_of: StepsOf) -> None:
    """user_id and tags of the tracker, and begin_step's fields, are recorded on each step."""
    tracker = SessionTracker("trk-attrs", user_id="u-1", tags=["a", "b"])
    step = tracker.begin_step(
        kind="chat", name="planner", framework="custom", provider="openai", model="gpt-4o"
    )
    step.end("done", input_tokens=3, output_tokens=4)
    [recorded] = steps_of("trk-attrs")
    assert recorded.user_id == "u-1"
    assert recorded.tags == ("a", "b")
    assert (recorded.kind, recorded.name, recorded.framework) == ("chat", "planner", "custom")
    assert (recorded.provider, recorded.model) == ("openai", "gpt-4o")
    assert recorded.total_tokens == 7


def test_explicit_backend_receives_the_steps(backend: MemoryBackend) -> None:
    """A tracker given a backend writes there and not to the default backend."""
    own = MemoryBackend()
    tracker = SessionTracker("trk-own-backend", backend=own)
    assert tracker.backend is own
    tracker.begin_step().end()
    tracker.end()
    assert agentsession.flush(5.0)
    assert len(own.list_steps("trk-own-backend")) == 1
    assert backend.list_steps("trk-own-backend") == []


def test_backend_url_selects_a_backend() -> None:
    """A tracker can be given a backend URL instead of an object."""
    tracker = SessionTracker("trk-url-backend", backend="memory://")
    assert isinstance(tracker.backend, MemoryBackend)


def test_indexes_handed_in_out_of_order_are_kept() -> None:
    """A receiver's indexes arriving 2, 0, 1 are recorded as given; the counter moves past 2."""
    tracker = SessionTracker("trk-out-of-order-0001", backend=MemoryBackend())
    got = [tracker.begin_step(step_index=i).step_index for i in (2, 0, 1)]
    assert got == [2, 0, 1]
    assert tracker.step_index == 3
    assert tracker.begin_step().step_index == 3


def test_an_index_handed_in_twice_becomes_the_next_step() -> None:
    """Headers computed once resend index 0: the second call is recorded as the next index."""
    tracker = SessionTracker("trk-reused-index-0001", backend=MemoryBackend())
    got = [tracker.begin_step(step_index=0).step_index for _ in range(3)]
    assert got == [0, 1, 2]
    assert tracker.begin_step(step_index=1).step_index == 3


def test_a_resumed_session_treats_stored_indexes_as_taken() -> None:
    """After resuming at 5, an index below 5 handed in again is not reused."""
    tracker = SessionTracker("trk-resumed-index-0001", backend=MemoryBackend())
    tracker._resume(5)
    assert tracker.begin_step(step_index=3).step_index == 5
    assert tracker.begin_step(step_index=7).step_index == 7
    assert tracker.begin_step(step_index=6).step_index == 6
