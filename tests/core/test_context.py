"""using_session and current_session: how the current session travels through a program."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

import agentsession
from agentsession import (
    ContextThreadPoolExecutor,
    InvalidSessionIdError,
    MemoryBackend,
    SessionEvent,
    SessionSummary,
    SessionTracker,
    Step,
    current_session,
    propagate_context,
    set_default_backend,
    using_session,
)
from agentsession._context import live_sessions

StepsOf = Callable[[str], list[Step]]


def _current_id() -> str | None:
    tracker = current_session()
    return None if tracker is None else tracker.session_id


def _record_step(label: str) -> int:
    tracker = current_session()
    assert tracker is not None, "no current session"
    step = tracker.begin_step(input=label)
    step.end(label)
    return step.step_index


def test_no_session_outside_any_block() -> None:
    """current_session() is None when no block is active."""
    assert current_session() is None


def test_context_manager_sets_and_restores() -> None:
    """Inside ``with using_session(id)`` the session is current; afterwards it is not."""
    with using_session("ctx-conv-0001") as tracker:
        assert isinstance(tracker, SessionTracker)
        assert current_session() is tracker
        assert tracker.session_id == "ctx-conv-0001"
    assert current_session() is None


def test_block_is_restored_after_an_exception() -> None:
    """An exception leaving the block still restores the previous session."""
    with pytest.raises(ZeroDivisionError), using_session("ctx-conv-raise"):
        _ = 1 / 0
    assert current_session() is None


def test_invalid_id_raises_at_construction() -> None:
    """using_session validates the id like SessionTracker does."""
    with pytest.raises(InvalidSessionIdError):
        using_session("bad\nid")


async def test_async_context_manager() -> None:
    """``async with using_session(id)`` works like the sync form, across awaits."""
    async with using_session("ctx-conv-async") as tracker:
        await asyncio.sleep(0)
        assert current_session() is tracker
    assert current_session() is None


def test_nested_blocks_restore_the_outer_session() -> None:
    """An inner block shadows the outer session and hands it back when it ends."""
    with using_session("ctx-outer-0001") as outer:
        with using_session("ctx-inner-0001") as inner:
            assert current_session() is inner
        assert current_session() is outer
    assert current_session() is None


def test_tracker_can_be_used_directly() -> None:
    """using_session(tracker) makes that very tracker current."""
    tracker = SessionTracker("ctx-own-tracker")
    with using_session(tracker) as entered:
        assert entered is tracker
        assert current_session() is tracker


def test_none_starts_a_new_session_each_time() -> None:
    """using_session(None) makes a fresh auto-id session per block."""
    with using_session(None) as first:
        pass
    with using_session(None) as second:
        pass
    assert first.session_id != second.session_id


def test_same_id_continues_step_numbering_across_blocks(steps_of: StepsOf) -> None:
    """Two blocks with the same id are one session: turn 2's first step follows turn 1's last."""
    with using_session("ctx-turns-0001"):
        turn_one = [_record_step(f"t1-{n}") for n in range(3)]
    with using_session("ctx-turns-0001"):
        turn_two = [_record_step(f"t2-{n}") for n in range(2)]
    assert turn_one == [0, 1, 2]
    assert turn_two == [3, 4]
    steps = steps_of("ctx-turns-0001")
    assert [(s.step_index, s.input) for s in steps] == [
        (0, "t1-0"),
        (1, "t1-1"),
        (2, "t1-2"),
        (3, "t2-0"),
        (4, "t2-1"),
    ]


def test_forgotten_session_resumes_numbering_from_the_backend(backend: MemoryBackend) -> None:
    """A session id seen again after its tracker was evicted continues after the stored steps."""
    with using_session("ctx-resume-0001"):
        for n in range(3):
            _record_step(f"first-{n}")
    assert agentsession.flush(5.0)
    live_sessions.clear()
    with using_session("ctx-resume-0001"):
        assert _record_step("again") == 3


class _HeldBackend(MemoryBackend):
    """A backend that writes nothing until released: steps stay queued in the writer."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, events: Sequence[SessionEvent]) -> None:
        assert self.release.wait(10)
        super().write(events)


def test_evicted_session_continues_after_its_still_queued_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session evicted from the live set while its steps are still queued for the backend
    continues after them when its id comes back, instead of reusing their indexes."""
    held = _HeldBackend()
    set_default_backend(held)
    monkeypatch.setattr(live_sessions, "max_size", 1)
    with using_session("ctx-evicted-0001"):
        first_turn = [_record_step(f"first-{n}") for n in range(3)]
    with using_session("ctx-evictor-0001"):  # evicts the first session's tracker
        pass
    with using_session("ctx-evicted-0001"):
        second_turn = _record_step("again")
    held.release.set()
    assert agentsession.flush(5.0)
    assert (first_turn, second_turn) == ([0, 1, 2], 3)
    assert [s.input for s in held.list_steps("ctx-evicted-0001")] == [
        "first-0",
        "first-1",
        "first-2",
        "again",
    ]


def test_a_just_generated_id_does_not_read_the_backend() -> None:
    """get_or_create(new=True) skips the backend read; an id seen for the first time does it."""
    reads: list[str] = []

    class CountingBackend(MemoryBackend):
        def get_session(self, session_id: str) -> SessionSummary | None:
            reads.append(session_id)
            return super().get_session(session_id)

    set_default_backend(CountingBackend())
    live_sessions.get_or_create("ctx-generated-0001", None, (), None, new=True)
    assert reads == []
    live_sessions.get_or_create("ctx-from-a-header-0001", None, (), None)
    assert reads == ["ctx-from-a-header-0001"]


def test_decorated_function_runs_in_the_session() -> None:
    """A function decorated with using_session runs with the session current, then restores."""

    @using_session("ctx-decorated-fn")
    def work(x: int) -> tuple[int, str | None]:
        return x * 2, _current_id()

    assert work(21) == (42, "ctx-decorated-fn")
    assert current_session() is None
    assert work.__name__ == "work"


async def test_decorated_coroutine_runs_in_the_session() -> None:
    """An async function decorated with using_session sees the session across awaits."""

    @using_session("ctx-decorated-coro")
    async def work() -> str | None:
        await asyncio.sleep(0)
        return _current_id()

    assert await work() == "ctx-decorated-coro"
    assert current_session() is None


def test_decorated_generator_does_not_leak_between_yields() -> None:
    """A decorated generator sees the session while it runs; its caller never does."""

    @using_session("ctx-decorated-gen")
    def produce() -> Iterator[str | None]:
        yield _current_id()
        yield _current_id()
        return

    seen_by_caller = []
    results = []
    for item in produce():
        results.append(item)
        seen_by_caller.append(_current_id())
    assert results == ["ctx-decorated-gen", "ctx-decorated-gen"]
    assert seen_by_caller == [None, None]


def test_decorated_generator_passes_sent_values_and_return_value() -> None:
    """send() values reach the generator body and its return value reaches the caller."""

    @using_session("ctx-decorated-send")
    def echo() -> Generator[object, object, str]:
        received = yield "ready"
        yield (received, _current_id())
        return "finished"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("hello") == ("hello", "ctx-decorated-send")
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "finished"


def test_decorated_generator_receives_thrown_exceptions() -> None:
    """throw() reaches the generator body, which handles it with the session current."""

    @using_session("ctx-decorated-throw")
    def produce() -> Generator[object, None, None]:
        try:
            yield "first"
        except ValueError as exc:
            yield ("caught", str(exc), _current_id())

    gen = produce()
    assert next(gen) == "first"
    assert gen.throw(ValueError("stop")) == ("caught", "stop", "ctx-decorated-throw")
    assert _current_id() is None


def test_decorated_generator_works_as_a_context_manager() -> None:
    """A decorated generator under contextlib.contextmanager sees the block's exception."""
    handled = []

    @contextlib.contextmanager
    @using_session("ctx-decorated-cm")
    def guarded() -> Iterator[None]:
        try:
            yield
        except KeyError as exc:
            handled.append((exc.args[0], _current_id()))

    def fail_inside() -> None:
        raise KeyError("inside")

    with guarded():
        fail_inside()
    assert handled == [("inside", "ctx-decorated-cm")]


def test_closing_a_decorated_generator_runs_its_cleanup_in_the_session() -> None:
    """close() runs the generator's finally block, with the session current."""
    cleaned = []

    @using_session("ctx-decorated-close")
    def produce() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append(_current_id())

    gen = produce()
    assert next(gen) == 1
    gen.close()
    assert cleaned == ["ctx-decorated-close"]


def test_generator_caller_keeps_its_own_session() -> None:
    """Iterating a decorated generator inside another session leaves that session current."""

    @using_session("ctx-gen-inner")
    def produce() -> Iterator[str | None]:
        yield _current_id()

    with using_session("ctx-gen-outer"):
        assert list(produce()) == ["ctx-gen-inner"]
        assert _current_id() == "ctx-gen-outer"


async def test_decorated_async_generator_does_not_leak_between_yields() -> None:
    """A decorated async generator sees the session while it runs; its caller never does."""

    @using_session("ctx-decorated-agen")
    async def produce() -> AsyncIterator[str | None]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield _current_id()

    results = []
    seen_by_caller = []
    async for item in produce():
        results.append(item)
        seen_by_caller.append(_current_id())
    assert results == ["ctx-decorated-agen", "ctx-decorated-agen"]
    assert seen_by_caller == [None, None]


async def test_decorated_async_generator_receives_thrown_exceptions() -> None:
    """athrow() reaches the async generator body, which handles it with the session current."""

    @using_session("ctx-decorated-athrow")
    async def produce() -> AsyncGenerator[object, None]:
        try:
            yield "first"
        except ValueError as exc:
            yield ("caught", str(exc), _current_id())

    gen = produce()
    assert await gen.__anext__() == "first"
    assert await gen.athrow(ValueError("stop")) == ("caught", "stop", "ctx-decorated-athrow")
    assert _current_id() is None
    await gen.aclose()


def test_decorated_function_in_many_threads_shares_one_session(steps_of: StepsOf) -> None:
    """A decorated function called from several threads records into one gap-free session."""

    @using_session("ctx-decorated-threads")
    def work(n: int) -> int:
        return _record_step(f"call-{n}")

    with ThreadPoolExecutor(4) as pool:
        indexes = list(pool.map(work, range(20)))
    assert sorted(indexes) == list(range(20))
    assert len(steps_of("ctx-decorated-threads")) == 20


async def test_session_visible_in_created_tasks() -> None:
    """Tasks created inside the block inherit the session, even if they run after it ends."""
    async with using_session("ctx-tasks-0001"):
        inner = asyncio.create_task(_async_current_id())
    assert current_session() is None
    assert await inner == "ctx-tasks-0001"


async def _async_current_id() -> str | None:
    return _current_id()


async def test_task_session_does_not_leak_into_the_creator() -> None:
    """A session entered inside a task is not current in the code that created the task."""

    async def child() -> str | None:
        with using_session("ctx-task-local"):
            await asyncio.sleep(0)
            return _current_id()

    assert await asyncio.create_task(child()) == "ctx-task-local"
    assert current_session() is None


async def test_gathered_tasks_each_keep_their_own_session() -> None:
    """Concurrent tasks in different sessions never see each other's session."""

    async def agent(n: int) -> list[str | None]:
        async with using_session(f"ctx-gather-{n:04d}"):
            seen = []
            for _ in range(5):
                await asyncio.sleep(0)
                seen.append(_current_id())
            return seen

    results = await asyncio.gather(*(agent(n) for n in range(10)))
    for n, seen in enumerate(results):
        assert seen == [f"ctx-gather-{n:04d}"] * 5


async def test_one_block_object_entered_by_two_tasks_restores_each_outer_session() -> None:
    """A using_session object entered by two tasks at once, the first to enter leaving first,
    hands each task back its own outer session."""
    shared = using_session("ctx-shared-block")
    first_entered, second_entered, first_left = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> str | None:
        with using_session("ctx-outer-first"):
            with shared:
                first_entered.set()
                await second_entered.wait()
            first_left.set()
            return _current_id()

    async def second() -> str | None:
        await first_entered.wait()
        with using_session("ctx-outer-second"):
            with shared:
                second_entered.set()
                await first_left.wait()
            return _current_id()

    results = await asyncio.wait_for(asyncio.gather(first(), second()), 5.0)
    assert results == ["ctx-outer-first", "ctx-outer-second"]


def test_block_exited_in_another_context_restores_the_scope_it_replaced() -> None:
    """A block left in a copy of its context (its token cannot be used there) puts back the
    session that was current when it was entered, not None."""
    with using_session("ctx-outer-copied"):
        block = using_session("ctx-inner-copied")
        block.__enter__()
        copy = contextvars.copy_context()
        copy.run(block.__exit__, None, None, None)
        assert copy.run(_current_id) == "ctx-outer-copied"
        assert _current_id() == "ctx-inner-copied"
        block.__exit__(None, None, None)
        assert _current_id() == "ctx-outer-copied"


def test_plain_thread_pool_does_not_see_the_session() -> None:
    """A plain ThreadPoolExecutor does not copy contextvars, so its tasks see no session."""
    with using_session("ctx-plain-pool"), ThreadPoolExecutor(1) as pool:
        assert pool.submit(_current_id).result() is None


def test_propagate_context_carries_the_session_into_threads() -> None:
    """propagate_context(fn) runs fn in the submitter's context in a worker thread."""
    with using_session("ctx-propagate"), ThreadPoolExecutor(2) as pool:
        assert pool.submit(propagate_context(_current_id)).result() == "ctx-propagate"


def test_propagated_callable_can_be_called_many_times_concurrently() -> None:
    """One propagate_context wrapper may run in several threads at once."""
    wrapped = None
    with using_session("ctx-propagate-many"):
        wrapped = propagate_context(_current_id)
    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(wrapped) for _ in range(16)]
        assert {f.result() for f in results} == {"ctx-propagate-many"}


def test_context_thread_pool_executor_carries_the_session() -> None:
    """ContextThreadPoolExecutor's tasks see the session of the code that submitted them."""
    with ContextThreadPoolExecutor(2) as pool:
        with using_session("ctx-pool-a"):
            first = pool.submit(_current_id)
        with using_session("ctx-pool-b"):
            second = pool.submit(_current_id)
        outside = pool.submit(_current_id)
        assert (first.result(), second.result(), outside.result()) == (
            "ctx-pool-a",
            "ctx-pool-b",
            None,
        )


def test_scope_attributes_apply_to_steps(steps_of: StepsOf) -> None:
    """user_id, tags and metadata given to using_session are recorded on the steps inside."""
    with using_session(
        "ctx-scope-attrs", user_id="u-42", tags=["beta"], metadata={"tenant": "acme"}
    ) as tracker:
        step = tracker.begin_step(metadata={"call": "plan"})
        step.end()
    [recorded] = steps_of("ctx-scope-attrs")
    assert recorded.user_id == "u-42"
    assert recorded.tags == ("beta",)
    assert recorded.metadata == {"tenant": "acme", "call": "plan"}


def test_scope_attributes_apply_to_a_given_tracker(steps_of: StepsOf) -> None:
    """Attributes of a using_session block are added to a tracker's own for steps inside it."""
    tracker = SessionTracker("ctx-scope-tracker", user_id="u-own", tags=["own"])
    with using_session(tracker, user_id="u-scope", tags=["scoped"], metadata={"m": 1}):
        tracker.begin_step().end()
    tracker.begin_step().end()
    inside, outside = steps_of("ctx-scope-tracker")
    assert (inside.user_id, inside.tags, inside.metadata) == (
        "u-scope",
        ("own", "scoped"),
        {"m": 1},
    )
    assert (outside.user_id, outside.tags, outside.metadata) == ("u-own", ("own",), {})


def test_scope_attributes_do_not_apply_to_other_trackers(steps_of: StepsOf) -> None:
    """A block's attributes apply only to its own session, not to another tracker used inside."""
    other = SessionTracker("ctx-scope-other")
    with using_session("ctx-scope-main", user_id="u-main", tags=["main"]):
        other.begin_step().end()
    [recorded] = steps_of("ctx-scope-other")
    assert recorded.user_id is None
    assert recorded.tags == ()


def test_copied_context_sees_the_session() -> None:
    """The session lives in a contextvar, so contextvars.copy_context() carries it."""
    with using_session("ctx-copy-context"):
        context = contextvars.copy_context()
    assert current_session() is None
    assert context.run(_current_id) == "ctx-copy-context"
