"""Cost of the LlamaIndex adapter per LLM call: MockLLM.chat bare, with no-op handlers, with ours.

One run, rounds interleaved so that the three set-ups share the machine's state. Ours records
each call as a step of one session into a SQLite file through the background writer (the
default set-up) and is timed on the caller's thread. Target: ours adds at most 60 us per call
to the bare call (for reference, OpenInference's LlamaIndex instrumentor adds about 1,650 us).

    python benchmarks/bench_llamaindex.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _timing import per_call_us
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import NullSpanHandler
from llama_index.core.llms import ChatMessage, MockLLM

import agentsession
import agentsession_llamaindex
from agentsession import SessionTracker, SQLiteBackend, using_session

TARGET_US = 60.0
SESSION_ID = "bench-llamaindex-0001"


class NoOpEventHandler(BaseEventHandler):
    """Receives every event and does nothing: the price of being an event handler at all."""

    def handle(self, event: Any, **kwargs: Any) -> None:
        return None


@contextmanager
def bare() -> Iterator[None]:
    yield


@contextmanager
def noop_event_handler() -> Iterator[None]:
    root = get_dispatcher()
    handler = NoOpEventHandler()
    root.add_event_handler(handler)
    try:
        yield
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not handler]


@contextmanager
def noop_handlers() -> Iterator[None]:
    """A no-op event handler and a span handler that overrides span enter/exit (as ours does)."""
    root = get_dispatcher()
    spans = NullSpanHandler()
    root.add_span_handler(spans)
    try:
        with noop_event_handler():
            yield
    finally:
        root.span_handlers = [h for h in root.span_handlers if h is not spans]


def make_ours(tracker: SessionTracker) -> Callable[[], Any]:
    @contextmanager
    def ours() -> Iterator[None]:
        agentsession_llamaindex.instrument()
        try:
            with using_session(tracker):
                yield
        finally:
            agentsession_llamaindex.uninstrument()

    return ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI smoke runs")
    args = parser.parse_args()
    repeats, calls = (3, 300) if args.quick else (15, 1_000)

    llm = MockLLM(max_tokens=3)
    messages = [ChatMessage(role="user", content="Book a flight to Paris")]

    def chat() -> None:
        llm.chat(messages)

    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.db"
        tracker = SessionTracker(SESSION_ID, backend=SQLiteBackend(database))
        setups: dict[str, Callable[[], Any]] = {
            "bare MockLLM.chat": bare,
            "+ no-op event handler": noop_event_handler,
            "+ no-op event and span handlers": noop_handlers,
            "+ agentsession (SQLite, writer)": make_ours(tracker),
        }
        samples: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(10):
            chat()  # warm up imports and caches
        for _ in range(repeats):
            for name, setup in setups.items():
                with setup():
                    samples[name].extend(per_call_us(chat, calls))
                agentsession.flush()  # the writer catches up between rounds, outside the timing
        agentsession.shutdown()
        reader = SQLiteBackend(database)
        summary = reader.get_session(SESSION_ID)
        reader.close()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["bare MockLLM.chat"]
    print(f"{repeats * calls} calls per set-up, median per call (timer included)")
    for name, median in medians.items():
        p99 = statistics.quantiles(samples[name], n=100)[98]
        added = "" if median == base else f"   +{median - base:6.1f} us"
        print(f"{name:34s} {median:7.1f} us   p99 {p99:7.1f} us{added}")
    ours = medians["+ agentsession (SQLite, writer)"]
    handlers = medians["+ no-op event and span handlers"]
    print(f"ours over the no-op handlers: +{ours - handlers:.1f} us (the adapter's own work)")
    verdict = "met" if ours - base <= TARGET_US else "MISSED"
    print(f"target: ours adds <= {TARGET_US:.0f} us per call -> {verdict} (+{ours - base:.1f} us)")
    recorded = 0 if summary is None else summary.total_steps
    print(f"steps in SQLite after flush: {recorded} of {repeats * calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
