"""instrument(): the handler attached to every LangChain run through LangChain's own hook.

``langchain_core.tracers.context.register_configure_hook`` makes every callback manager
LangChain configures add the handler held in a ContextVar. The ContextVar's default is our
handler, so runs in every thread and task get it, including threads started before
``instrument()``; nothing of LangChain's is replaced.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from agentsession.instrumentation import Instrumentor, record_fault, warn_once

from ._handler import SessionCallbackHandler
from ._package import _instruments

__all__ = ["LangChainInstrumentor"]


class LangChainInstrumentor(Instrumentor):
    """Records every chat-model and LLM call LangChain makes, with no callbacks to pass.

    Sessions are resolved per run (metadata ids, ``using_session``, the enclosing run's, a
    new one per top-level run); a ``SessionCallbackHandler`` passed in a run's config takes
    precedence for the runs it sees.
    """

    instruments = _instruments

    def __init__(self) -> None:
        super().__init__()
        self._hook: ContextVar[SessionCallbackHandler | None] | None = None

    @property
    def handler(self) -> SessionCallbackHandler | None:
        """The handler attached to every run while instrumented."""
        return None if self._hook is None else self._hook.get()

    def _instrument(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unexpected options: {sorted(options)}")
        from langchain_core.tracers.context import register_configure_hook

        # The handler is the variable's default, not a value set in this context: threads and
        # tasks that exist already see it too. A new variable per instrument() call, as a
        # default cannot change and uninstrument() must leave no handler behind.
        hook: ContextVar[SessionCallbackHandler | None] = ContextVar(
            "agentsession_langchain_handler",
            default=SessionCallbackHandler(),  # noqa: B039 - one shared handler is the point
        )
        # Inheritable: LangGraph runs a nested graph on the manager its caller was given,
        # without configuring a new one, so a handler added per configure call would miss it.
        register_configure_hook(hook, inheritable=True)
        self._hook = hook

    def _uninstrument(self) -> None:
        hook, self._hook = self._hook, None
        if hook is None:
            return
        handler = hook.get()
        try:
            removed = _unregister(hook)
        except Exception as exc:
            record_fault("langchain", exc)
            removed = False
        if not removed and handler is not None:
            # Every context that never set the variable still hands LangChain its default:
            # the handler itself must stop recording.
            handler.retire()
            warn_once(
                "langchain:unregister",
                "agentsession: could not unregister the LangChain configure hook; it stays "
                "registered but records nothing",
            )


def _unregister(hook: ContextVar[SessionCallbackHandler | None]) -> bool:
    """Remove ``hook`` from LangChain's hook registry; False if that registry is not the list
    of ``(variable, ...)`` tuples it is today: LangChain has no public way to unregister."""
    from langchain_core.tracers import context

    hooks = getattr(context, "_configure_hooks", None)
    if not isinstance(hooks, list):
        return False
    removed = False
    for entry in list(hooks):
        if isinstance(entry, tuple) and entry and entry[0] is hook:
            hooks.remove(entry)
            removed = True
    return removed
