"""The distribution's contract: public names, supported versions as data, the entry point, and
instrument()/uninstrument() adding and removing exactly our handlers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import ChatMessage, MockLLM

import agentsession_llamaindex
from agentsession import using_session
from agentsession_llamaindex import (
    LlamaIndexInstrumentor,
    SessionEventHandler,
    SessionSpanHandler,
    _package,
)

PYPROJECT = Path(__file__).parents[2] / "packages" / "agentsession-llamaindex" / "pyproject.toml"


def test_all_is_complete_and_sorted() -> None:
    """__all__ lists every public name of the package, sorted, and each one resolves."""
    public = sorted(
        name
        for name in (*vars(agentsession_llamaindex), "SessionEventHandler", "SessionSpanHandler")
        if not name.startswith("_")
        and name not in {"annotations", "TYPE_CHECKING", "Any", "SessionTracker"}
    )
    assert agentsession_llamaindex.__all__ == sorted(agentsession_llamaindex.__all__)
    assert agentsession_llamaindex.__all__ == public
    for name in agentsession_llamaindex.__all__:
        assert getattr(agentsession_llamaindex, name) is not None


def test_instruments_extra_matches_the_package_data() -> None:
    """pyproject's `instruments` extra is exactly _package._instruments; the entry point works."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert tuple(project["optional-dependencies"]["instruments"]) == _package._instruments
    assert LlamaIndexInstrumentor.instruments == _package._instruments
    entry = project["entry-points"]["agentsession.instrumentors"]["llamaindex"]
    assert entry == "agentsession_llamaindex:LlamaIndexInstrumentor"


def test_importing_the_package_does_not_import_llama_index() -> None:
    """`import agentsession_llamaindex` works without LlamaIndex loaded (entry-point discovery)."""
    code = (
        "import sys, agentsession_llamaindex\n"
        "assert 'llama_index.core' not in sys.modules, 'llama_index imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Counting(BaseEventHandler):
    """Someone else's event handler, which must survive our uninstrument()."""

    seen: int = 0

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.seen += 1


def test_instrument_is_idempotent_and_uninstrument_removes_exactly_ours() -> None:
    """instrument() twice adds one handler pair; uninstrument() takes out only that pair."""
    root = get_dispatcher()
    theirs_events, theirs_spans = Counting(), SimpleSpanHandler()
    root.add_event_handler(theirs_events)
    root.add_span_handler(theirs_spans)
    before = (list(root.event_handlers), list(root.span_handlers))
    try:
        assert agentsession_llamaindex.instrument() is True
        assert agentsession_llamaindex.instrument() is False
        ours = [h for h in root.span_handlers if isinstance(h, SessionSpanHandler)]
        assert len(ours) == 1
        assert sum(isinstance(h, SessionEventHandler) for h in root.event_handlers) == 1
        assert agentsession_llamaindex.uninstrument() is True
        assert agentsession_llamaindex.uninstrument() is False
        assert (root.event_handlers, root.span_handlers) == before
        MockLLM(max_tokens=1).chat([ChatMessage(role="user", content="hi")])
        assert theirs_events.seen > 0
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not theirs_events]
        root.span_handlers = [h for h in root.span_handlers if h is not theirs_spans]


def test_nothing_is_recorded_after_uninstrument(backend: Any) -> None:
    """Once uninstrumented, LLM calls in a session record no step."""
    agentsession_llamaindex.instrument()
    agentsession_llamaindex.uninstrument()
    with using_session("package-off") as session:
        MockLLM(max_tokens=1).chat([ChatMessage(role="user", content="hi")])
    assert session.step_index == 0


def test_unknown_instrument_option_is_refused() -> None:
    """A misspelt option raises TypeError rather than being ignored."""
    instrumentor = LlamaIndexInstrumentor()
    with pytest.raises(TypeError, match="trackr"):
        instrumentor.instrument(trackr=None)
    assert not instrumentor.is_instrumented
