"""``AutoGenInstrumentor``: record every AutoGen model client's calls without wrapping any.

AutoGen has no global callback registry and no middleware for model clients. What it has is
not enough for steps: its event logger (``autogen_core.events``) reports a call only after it
ended (no start, nothing on a cancellation), and only at DEBUG level on a logger shared with
the application. OpenInference wraps agent and team methods. The least we can touch that still
sees every model call begin and end is the model client itself: ``create`` and
``create_stream``, wrapped on each ``ChatCompletionClient`` subclass whose own ``__dict__``
defines them, originals kept and put back exactly by ``uninstrument()``. Subclasses defined
later (a module imported after ``instrument()``) are wrapped from a ``__init_subclass__`` hook
on ``ChatCompletionClient``, removed as well. Agents, teams, tools and runtimes are not touched.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from autogen_core.models import ChatCompletionClient, CreateResult

from agentsession.instrumentation import Instrumentor, record_fault

from ._client import SessionChatCompletionClient
from ._package import _instruments
from ._recording import is_recording, record_create, record_stream

__all__ = ["AutoGenInstrumentor"]

_FAULT = "autogen.instrument"
_HOOK = "__init_subclass__"
ORIGINAL = "__agentsession_original__"
"""Attribute of our wrappers naming the function they wrap."""


class _Switch:
    """Shared by the wrappers of one instrument() call: off means they only pass calls through.

    A wrapper that another library wrapped again after us cannot be taken out of the class
    without removing theirs too; switched off it stays, and costs one attribute read.
    """

    def __init__(self) -> None:
        self.on = True


def _messages_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``messages`` argument of a ``create`` / ``create_stream`` call."""
    return args[0] if args else kwargs.get("messages", ())


def _wrap_create(original: Callable[..., Any], switch: _Switch) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(self: ChatCompletionClient, *args: Any, **kwargs: Any) -> CreateResult:
        if not switch.on or is_recording():
            return await original(self, *args, **kwargs)  # type: ignore[no-any-return]
        return await record_create(
            self, lambda: original(self, *args, **kwargs), _messages_of(args, kwargs), kwargs, None
        )

    setattr(create, ORIGINAL, original)
    return create


def _wrap_create_stream(original: Callable[..., Any], switch: _Switch) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_stream(
        self: ChatCompletionClient, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        if not switch.on or is_recording():
            return original(self, *args, **kwargs)  # type: ignore[no-any-return]
        return record_stream(
            self, lambda: original(self, *args, **kwargs), _messages_of(args, kwargs), kwargs, None
        )

    setattr(create_stream, ORIGINAL, original)
    return create_stream


_WRAPPERS = {"create": _wrap_create, "create_stream": _wrap_create_stream}


def _subclasses(cls: type) -> Iterator[type]:
    """Every subclass of ``cls``, at any depth, once each."""
    seen: set[type] = set()
    pending: list[type] = [cls]
    while pending:
        subclass: type
        for subclass in type.__subclasses__(pending.pop()):
            if subclass not in seen:
                seen.add(subclass)
                pending.append(subclass)
                yield subclass


class AutoGenInstrumentor(Instrumentor):
    """Records every AutoGen model call made in a session, with no wrapper client.

    ``instrument()`` wraps ``create`` and ``create_stream`` of every ``ChatCompletionClient``
    subclass, present and future; ``uninstrument()`` puts the originals back. Calls are recorded
    in the session in force (``using_session``, ``with tracker:``), as
    :class:`~agentsession_autogen.SessionChatCompletionClient` records them; a wrapper client
    records its own calls and is never wrapped. Takes no options.
    """

    instruments = _instruments

    def __init__(self) -> None:
        super().__init__()
        self._patch_lock = threading.Lock()
        self._switch: _Switch | None = None
        # (class, method name) -> (the original, our wrapper)
        self._patched: dict[tuple[type, str], tuple[Callable[..., Any], Callable[..., Any]]] = {}
        self._hook: classmethod[Any, Any, None] | None = None
        self._saved_hook: Any = None

    def _instrument(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unexpected option(s): {', '.join(sorted(options))}")
        with self._patch_lock:
            self._switch = _Switch()
        for cls in list(_subclasses(ChatCompletionClient)):
            try:
                self._patch(cls)
            except Exception as exc:  # one odd client class must not stop the application
                record_fault(_FAULT, exc)
        self._install_hook()

    def _uninstrument(self) -> None:
        self._remove_hook()
        with self._patch_lock:
            if self._switch is not None:
                self._switch.on = False
            self._switch = None
            for (cls, name), (original, wrapper) in self._patched.items():
                if cls.__dict__.get(name) is wrapper:
                    setattr(cls, name, original)
            self._patched.clear()

    def _patch(self, cls: type) -> None:
        """Wrap the create/create_stream ``cls`` itself defines (inherited ones already are)."""
        if issubclass(cls, SessionChatCompletionClient):
            return  # records its own calls
        with self._patch_lock:
            switch = self._switch
            if switch is None:
                return
            for name, wrap in _WRAPPERS.items():
                original = cls.__dict__.get(name)
                if (
                    not inspect.isfunction(original)
                    or getattr(original, "__isabstractmethod__", False)
                    or hasattr(original, ORIGINAL)
                ):
                    continue
                wrapper = wrap(original, switch)
                setattr(cls, name, wrapper)
                self._patched[(cls, name)] = (original, wrapper)

    def _install_hook(self) -> None:
        base = ChatCompletionClient
        saved = base.__dict__.get(_HOOK)
        instrumentor = self

        def __init_subclass__(cls: type, /, **kwargs: Any) -> None:
            if saved is not None:
                saved.__get__(None, cls)(**kwargs)
            else:
                super(base, cls).__init_subclass__(**kwargs)  # type: ignore[misc]
            try:
                instrumentor._patch(cls)
            except Exception as exc:  # the class is defined either way, unrecorded
                record_fault(_FAULT, exc)

        self._saved_hook = saved
        self._hook = classmethod(__init_subclass__)
        setattr(base, _HOOK, self._hook)

    def _remove_hook(self) -> None:
        base = ChatCompletionClient
        if self._hook is not None and base.__dict__.get(_HOOK) is self._hook:
            if self._saved_hook is None:
                delattr(base, _HOOK)
            else:
                setattr(base, _HOOK, self._saved_hook)
        self._hook = self._saved_hook = None
