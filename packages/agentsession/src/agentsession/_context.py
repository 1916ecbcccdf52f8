"""The current session, carried by ``contextvars`` across calls, ``await`` and asyncio tasks."""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from ._health import record_fault

if TYPE_CHECKING:
    from ._step import StepHandle
    from ._tracker import SessionTracker

__all__ = [
    "ContextThreadPoolExecutor",
    "Scope",
    "current_scope",
    "current_session",
    "current_step",
    "propagate_context",
    "using_session",
]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Scope:
    """The session in force, plus attributes that apply to the steps recorded inside it."""

    tracker: SessionTracker
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "agentsession_scope", default=None
)


_current_step: contextvars.ContextVar[StepHandle | None] = contextvars.ContextVar(
    "agentsession_step", default=None
)


def current_step() -> StepHandle | None:
    """The step in flight around the code running now (``with step:`` or ``step.activate()``).

    An HTTP hook uses it to send that step's index instead of allocating a new one. A step that
    has ended is no longer current, even in a context that still holds it: an adapter that
    activated a step on a framework's start event may see its end in another context.
    """
    step = _current_step.get()
    return None if step is None or step.ended else step


def current_scope() -> Scope | None:
    return _current.get()


def current_session() -> SessionTracker | None:
    """The tracker of the innermost ``using_session`` (or ``with tracker:``) block, if any."""
    scope = _current.get()
    return None if scope is None else scope.tracker


_Entered = tuple[object, contextvars.Token[Scope | None], Scope | None]

_entered: contextvars.ContextVar[tuple[_Entered, ...]] = contextvars.ContextVar(
    "agentsession_entered", default=()
)
"""The open blocks of this context: (owner, token, scope before the block), innermost last.

Kept per context, not on the owner: one ``using_session`` or tracker object may be entered
by several asyncio tasks at once, each of which must get its own token back.
"""


def enter_scope(owner: object, scope: Scope) -> None:
    """Make ``scope`` current for a block of ``owner`` (a using_session or a tracker)."""
    previous = _current.get()
    token = _current.set(scope)
    _entered.set((*_entered.get(), (owner, token, previous)))


def exit_scope(owner: object) -> None:
    """End the innermost block of ``owner`` opened in this context (none: nothing to do)."""
    entered = _entered.get()
    for position in range(len(entered) - 1, -1, -1):
        if entered[position][0] is owner:
            break
    else:
        return
    _, token, previous = entered[position]
    _entered.set(entered[:position] + entered[position + 1 :])
    restore_scope(token, previous)


def restore_scope(token: contextvars.Token[Scope | None], previous: Scope | None) -> None:
    """Undo ``_current.set``; ``previous`` is what was current before it."""
    try:
        _current.reset(token)
    except ValueError:  # exited in another context (e.g. a generator finalized elsewhere)
        _current.set(previous)


class _LiveSessions:
    """Trackers that ``using_session("id")`` created, so a session's steps continue across turns.

    Bounded (least recently used first out). An evicted session's next step index is kept in
    a second, larger LRU: its last steps may still be queued for the backend, so the backend's
    count could be short. Only an id unknown to both is resumed from the backend.
    """

    def __init__(self, max_size: int = 10_000, max_remembered: int = 200_000) -> None:
        self.max_size = max_size
        self.max_remembered = max_remembered
        self._lock = threading.Lock()
        self._trackers: OrderedDict[str, SessionTracker] = OrderedDict()
        self._next_index: OrderedDict[str, int] = OrderedDict()  # of evicted sessions

    def get_or_create(
        self,
        session_id: str,
        user_id: str | None,
        tags: tuple[str, ...],
        metadata: Mapping[str, Any] | None,
        *,
        new: bool = False,
    ) -> SessionTracker:
        """The tracker of ``session_id``, made on first sight; ``new`` skips looking for where
        a stored session left off (the id was just generated, so nothing can be stored)."""
        from ._tracker import SessionTracker

        with self._lock:
            tracker = self._trackers.get(session_id)
            if tracker is not None:
                self._trackers.move_to_end(session_id)
                return tracker
            remembered = self._next_index.get(session_id)
        tracker = SessionTracker(session_id, user_id=user_id, tags=tags, metadata=metadata)
        if remembered is not None:
            tracker._resume(remembered)
        elif not new:
            _resume_from_backend(tracker)
        with self._lock:
            existing = self._trackers.setdefault(session_id, tracker)
            self._trackers.move_to_end(session_id)
            self._next_index.pop(session_id, None)
            while len(self._trackers) > self.max_size:
                self._remember(*self._trackers.popitem(last=False))
        return existing

    def _remember(self, session_id: str, tracker: SessionTracker) -> None:
        if not (tracker._started or tracker.step_index):
            return  # never used: nothing of it can be stored or queued
        self._next_index[session_id] = tracker.step_index
        self._next_index.move_to_end(session_id)
        while len(self._next_index) > self.max_remembered:
            self._next_index.popitem(last=False)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._trackers.pop(session_id, None)
            self._next_index.pop(session_id, None)

    def clear(self) -> None:
        with self._lock:
            self._trackers.clear()
            self._next_index.clear()

    def _reset_lock_in_child(self) -> None:
        # A thread of the parent may have held the lock at fork(); it does not exist here.
        self._lock = threading.Lock()


live_sessions = _LiveSessions()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=live_sessions._reset_lock_in_child)


def _resume_from_backend(tracker: SessionTracker) -> None:
    from .backends._base import SessionReader

    try:
        backend = tracker.backend
        if not isinstance(backend, SessionReader):
            return
        summary = backend.get_session(tracker.session_id)
    except Exception as exc:
        record_fault("resume", exc)
        return
    if summary is not None:
        tracker._resume(summary.total_steps)


class using_session:  # named like a function, as OpenInference names it
    """Make a session current for everything nested: calls, ``await``, new asyncio tasks.

    ``session_id_or_tracker`` is a session id (the same id reuses the same tracker, so steps
    continue across turns), a :class:`SessionTracker`, or None for a new session. Works as
    ``with``, ``async with`` and as a decorator of functions, coroutines and generators.
    ``user_id``, ``tags`` and ``metadata`` apply to the steps recorded inside the block.
    """

    def __init__(
        self,
        session_id_or_tracker: str | SessionTracker | None,
        *,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        from ._ids import validate_session_id, validate_user_id

        if isinstance(session_id_or_tracker, str):
            validate_session_id(session_id_or_tracker)
        self._target = session_id_or_tracker
        self._user_id = validate_user_id(user_id)
        self._metadata = dict(metadata or {})
        self._tags = tuple(tags or ())

    def _scope(self) -> Scope:
        from ._tracker import SessionTracker

        target = self._target
        if isinstance(target, SessionTracker):
            tracker = target
        elif target is None:
            tracker = SessionTracker(
                user_id=self._user_id, tags=self._tags, metadata=self._metadata
            )
        else:
            tracker = live_sessions.get_or_create(target, self._user_id, self._tags, self._metadata)
        return Scope(tracker, self._user_id, self._tags, self._metadata)

    def __enter__(self) -> SessionTracker:
        scope = self._scope()
        enter_scope(self, scope)
        return scope.tracker

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        exit_scope(self)

    async def __aenter__(self) -> SessionTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isasyncgenfunction(fn):
            return cast(Callable[P, R], self._wrap_async_generator(fn))
        if inspect.isgeneratorfunction(fn):
            return cast(Callable[P, R], self._wrap_generator(fn))
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_coroutine(fn))

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._fresh():
                return fn(*args, **kwargs)

        return call

    def _fresh(self) -> using_session:
        # One context manager per call: a decorated function may run in many threads at once.
        return using_session(
            self._target, user_id=self._user_id, metadata=self._metadata, tags=self._tags
        )

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return await fn(*args, **kwargs)

        return call

    def _wrap_generator(self, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            # The session is current only while the generator body runs, never between yields.
            scope = self._fresh()._scope()
            generator = fn(*args, **kwargs)
            resume: Callable[[], Any] = functools.partial(generator.send, None)
            try:
                while True:
                    previous = _current.get()
                    token = _current.set(scope)
                    try:
                        item = resume()
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        restore_scope(token, previous)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # throw() must reach the body (contextmanager)
                        resume = functools.partial(generator.throw, exc)
                    else:
                        resume = functools.partial(generator.send, sent)
            finally:
                previous = _current.get()
                token = _current.set(scope)
                try:
                    generator.close()
                finally:
                    restore_scope(token, previous)

        return call

    def _wrap_async_generator(
        self, fn: Callable[..., AsyncGenerator[Any, Any]]
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            scope = self._fresh()._scope()
            generator = fn(*args, **kwargs)
            resume: Callable[[], Awaitable[Any]] = functools.partial(generator.asend, None)
            try:
                while True:
                    previous = _current.get()
                    token = _current.set(scope)
                    try:
                        item = await resume()
                    except StopAsyncIteration:
                        return
                    finally:
                        restore_scope(token, previous)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() must reach the body
                        resume = functools.partial(generator.athrow, exc)
                    else:
                        resume = functools.partial(generator.asend, sent)
            finally:
                previous = _current.get()
                token = _current.set(scope)
                try:
                    await generator.aclose()
                finally:
                    restore_scope(token, previous)

        return call


def propagate_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` to run in a copy of the caller's context (session included) in any thread.

    ``executor.submit(propagate_context(work), ...)``: thread pools do not copy contextvars.
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return call


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks see the submitter's session (and other contextvars)."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return super().submit(propagate_context(fn), *args, **kwargs)
