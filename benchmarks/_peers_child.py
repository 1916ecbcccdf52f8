"""One measurement of bench_peers.py: one variant, in a process of its own, against bare.

Run by bench_peers.py as ``python _peers_child.py VARIANT --calls N --rounds R``; prints one
JSON object. A process per variant keeps the peers apart: Langfuse registers a global tracer
provider, OpenInference patches LangChain and LlamaIndex process-wide, and the export threads
of Langfuse and LangSmith go on retrying their dead endpoint after the last call.

Each round times ``calls`` bare calls and ``calls`` calls with the variant on (which side goes
first alternates), each call alone, timer included. Between the two sides the variant's
background work is let settle, outside the timing, where that cannot block: our writer, an
in-memory exporter; a flush to a dead endpoint would only wait out its retries. The process
reports, per workload, the median bare call, the median call with the variant on, and a check
that the variant really recorded the calls it was given.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _timing import per_call_us

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
SESSION_ID = "bench-peers-0001"
WARM_UP = 30

Workload = Callable[[bool], object]  # one call, with the variant on (True) or off


@dataclass
class Variant:
    """A set-up to time against bare: its workloads, its on/off switch, its check.

    Callback handlers are passed per call, so their workloads pick the config; variants that
    hook a process-wide extension point (instrumentors) turn it on and off in ``switch``.
    """

    workloads: dict[str, Workload]
    switch: Callable[[bool], None] = lambda on: None
    settle: Callable[[], object] = lambda: None
    # Once timing is over, given the number of calls made with the variant on: what it
    # recorded, in a few words, starting with FAIL if that is not what it should have.
    check: Callable[[int], str] = lambda calls: "n/a"


def guard_network() -> tuple[list[str], list[str]]:
    """Refuse every connection that leaves 127.0.0.1: a benchmark must not reach the internet.

    Returns the hosts refused and the local connections tried (to the dead endpoint).
    """
    refused: list[str] = []
    local: list[str] = []
    original = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            refused.append(str(host))
            raise ConnectionRefusedError(f"bench_peers: no connection to {host}")
        local.append(str(address))
        original(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    return refused, local


# LangChain: FakeListChatModel.invoke and prompt | model | parser.


def langchain_workloads(config_on: RunnableConfig | None) -> dict[str, Workload]:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    model = FakeListChatModel(responses=[ANSWER])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one sentence."), ("user", "{question}")]
    )
    chain = prompt | model | StrOutputParser()
    return {
        "lc.invoke": lambda on: model.invoke(QUESTION, config_on if on else None),
        "lc.chain": lambda on: chain.invoke({"question": QUESTION}, config_on if on else None),
    }


def lc_noop(tmp: Path, endpoint: str) -> Variant:
    from langchain_core.callbacks import BaseCallbackHandler

    class NoOpHandler(BaseCallbackHandler):
        """Receives the chat-model and LLM callbacks and does nothing with them."""

        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            return None

        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            return None

        def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            return None

        def on_llm_error(self, *args: Any, **kwargs: Any) -> None:
            return None

    return Variant(langchain_workloads({"callbacks": [NoOpHandler()]}))


def lc_ours(tmp: Path, endpoint: str) -> Variant:
    from agentsession_langchain import SessionCallbackHandler

    tracker, settle, check = our_session(tmp)
    handler = SessionCallbackHandler(tracker)
    return Variant(langchain_workloads({"callbacks": [handler]}), settle=settle, check=check)


def lc_langfuse(tmp: Path, endpoint: str) -> Variant:
    from langfuse import Langfuse
    from langfuse.langchain import CallbackHandler

    # The client the handler finds by its public key; it exports with OTLP over HTTP from a
    # BatchSpanProcessor thread, here to the dead endpoint. Never flushed (see the docstring).
    Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", host=endpoint, timeout=2)
    workloads = langchain_workloads({"callbacks": [CallbackHandler(public_key="pk-lf-bench")]})
    return Variant(workloads, check=lambda calls: spans_ended(workloads["lc.invoke"]))


def lc_openinference(tmp: Path, endpoint: str) -> Variant:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    return openinference(LangChainInstrumentor(), langchain_workloads(None))


def lc_langsmith(tmp: Path, endpoint: str) -> Variant:
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    # info={}: no request for the server's settings at start-up.
    client = Client(api_url=endpoint, api_key="bench", info={})
    tracer = LangChainTracer(project_name="bench", client=client)
    workloads = langchain_workloads({"callbacks": [tracer]})

    def check(calls: int) -> str:
        # Count what one more call puts on the queue that the client's export thread drains.
        queue = client.tracing_queue
        if queue is None:
            return "FAIL: the client has no tracing queue"
        queued: list[object] = []
        put = queue.put_nowait

        def counted(item: object) -> None:
            queued.append(item)
            put(item)

        queue.put_nowait = counted  # type: ignore[method-assign]
        workloads["lc.invoke"](True)
        return f"{len(queued)} run ops/call" if queued else "FAIL: no run queued for export"

    return Variant(workloads, check=check)


# LlamaIndex: MockLLM.chat.


def llamaindex_workloads() -> dict[str, Workload]:
    from llama_index.core.llms import ChatMessage, MockLLM

    llm = MockLLM(max_tokens=3)
    messages = [ChatMessage(role="user", content=QUESTION)]
    return {"li.chat": lambda on: llm.chat(messages)}


def li_noop(tmp: Path, endpoint: str) -> Variant:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span_handlers import NullSpanHandler

    class NoOpEventHandler(BaseEventHandler):
        """Receives every event and does nothing with it."""

        def handle(self, event: Any, **kwargs: Any) -> None:
            return None

    root = get_dispatcher()
    events, spans = NoOpEventHandler(), NullSpanHandler()

    def switch(on: bool) -> None:
        if on:
            root.add_event_handler(events)
            root.add_span_handler(spans)
        else:
            root.event_handlers = [h for h in root.event_handlers if h is not events]
            root.span_handlers = [h for h in root.span_handlers if h is not spans]

    return Variant(llamaindex_workloads(), switch=switch)


def li_ours(tmp: Path, endpoint: str) -> Variant:
    import agentsession_llamaindex

    tracker, settle, check = our_session(tmp)

    def switch(on: bool) -> None:
        if on:
            agentsession_llamaindex.instrument(tracker=tracker)
        else:
            agentsession_llamaindex.uninstrument()

    return Variant(llamaindex_workloads(), switch=switch, settle=settle, check=check)


def li_openinference(tmp: Path, endpoint: str) -> Variant:
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    return openinference(LlamaIndexInstrumentor(), llamaindex_workloads())


# AutoGen: an AssistantAgent run answered by ReplayChatCompletionClient.


def autogen_runs(recorded_client: Callable[[Any], Any]) -> tuple[Workload, Workload]:
    """One agent run with a bare model client, and one with ``recorded_client(client)``."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import CancellationToken
    from autogen_core.models import ModelInfo
    from autogen_ext.models.replay import ReplayChatCompletionClient

    # The scripted model warns about token counting on every call: not what is measured.
    logging.getLogger("autogen_core.events").setLevel(logging.ERROR)
    info = ModelInfo(
        vision=False,
        function_calling=True,
        json_output=False,
        family="unknown",
        structured_output=False,
    )
    loop = asyncio.new_event_loop()

    def run_of(client: Any) -> Workload:
        agent = AssistantAgent("planner", model_client=client)

        async def turn() -> None:
            await agent.run(task=QUESTION)
            await agent.on_reset(CancellationToken())  # the same prompt every time

        return lambda on: loop.run_until_complete(turn())

    def scripted() -> Any:
        # More answers than any run asks for: the replay client fails once it runs out.
        return ReplayChatCompletionClient([ANSWER] * 200_000, model_info=info)

    return run_of(scripted()), run_of(recorded_client(scripted()))


def ag_wrapper(tmp: Path, endpoint: str) -> Variant:
    from agentsession_autogen import SessionChatCompletionClient

    tracker, settle, check = our_session(tmp)
    bare, wrapped = autogen_runs(lambda client: SessionChatCompletionClient(client, tracker))

    def run(on: bool) -> object:
        return wrapped(on) if on else bare(on)

    return Variant({"ag.run": run}, settle=settle, check=check)


def ag_instrument(tmp: Path, endpoint: str) -> Variant:
    import agentsession_autogen
    from agentsession import using_session

    tracker, settle, check = our_session(tmp)
    bare, _ = autogen_runs(lambda client: client)
    # The session in force while instrumented; each run's task copies this context.
    scope = using_session(tracker)

    def switch(on: bool) -> None:
        if on:
            agentsession_autogen.instrument()
            scope.__enter__()
        elif agentsession_autogen.uninstrument():
            scope.__exit__(None, None, None)

    return Variant({"ag.run": bare}, switch=switch, settle=settle, check=check)


# Shared set-ups.


def our_session(tmp: Path) -> tuple[Any, Callable[[], object], Callable[[int], str]]:
    """A tracker writing to a SQLite file through the background writer (the default set-up)."""
    import agentsession
    from agentsession import SessionTracker, SQLiteBackend

    path = tmp / "bench.db"
    tracker = SessionTracker(SESSION_ID, backend=SQLiteBackend(path))

    def check(calls: int) -> str:
        agentsession.flush()
        reader = SQLiteBackend(path)
        try:
            summary = reader.get_session(SESSION_ID)
        finally:
            reader.close()
        stored = 0 if summary is None else summary.total_steps
        return f"{'' if stored == calls else 'FAIL: '}{stored}/{calls} steps in SQLite"

    return tracker, agentsession.flush, check


def openinference(instrumentor: Any, workloads: dict[str, Workload]) -> Variant:
    """An OpenInference instrumentor on a TracerProvider of its own, exporting to memory.

    Spans go through a BatchSpanProcessor, the processor a production set-up uses.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    exported: list[int] = []

    def switch(on: bool) -> None:
        if on:
            instrumentor.instrument(tracer_provider=provider)
        else:
            instrumentor.uninstrument()

    def settle() -> None:
        provider.force_flush()
        exported.append(len(exporter.get_finished_spans()))
        exporter.clear()  # keep memory flat

    def check(calls: int) -> str:
        settle()
        spans = sum(exported)
        return f"{spans} spans" if spans >= calls else f"FAIL: {spans} spans for {calls} calls"

    return Variant(workloads, switch=switch, settle=settle, check=check)


def spans_ended(call: Workload) -> str:
    """How many spans one more call ends in the global tracer provider (Langfuse's own)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    ended: list[str] = []

    class Counter(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span.name)

    trace.get_tracer_provider().add_span_processor(Counter())  # type: ignore[attr-defined]
    call(True)
    return f"{len(ended)} spans/call" if ended else "FAIL: no span ended"


VARIANTS: dict[str, Callable[[Path, str], Variant]] = {
    "lc.noop": lc_noop,
    "lc.ours": lc_ours,
    "lc.langfuse": lc_langfuse,
    "lc.openinference": lc_openinference,
    "lc.langsmith": lc_langsmith,
    "li.noop": li_noop,
    "li.ours": li_ours,
    "li.openinference": li_openinference,
    "ag.wrapper": ag_wrapper,
    "ag.instrument": ag_instrument,
}
DEAD_ENDPOINT_VARIANTS = ("lc.langfuse", "lc.langsmith")


def measure(variant: Variant, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, run in variant.workloads.items():
        samples: dict[bool, list[float]] = {False: [], True: []}
        for on in (False, True):  # warm-up: imports, caches, the export threads
            variant.switch(on)
            for _ in range(WARM_UP):
                run(on)
        variant.switch(False)
        variant.settle()
        for round_number in range(rounds):
            for on in (False, True) if round_number % 2 == 0 else (True, False):
                variant.switch(on)
                samples[on].extend(per_call_us(functools.partial(run, on), calls))
                variant.switch(False)
                variant.settle()
        results[name] = {
            "bare": statistics.median(samples[False]),
            "on": statistics.median(samples[True]),
            "calls": len(samples[True]) + WARM_UP,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--calls", type=int, required=True, help="calls per side per round")
    parser.add_argument("--rounds", type=int, required=True)
    args = parser.parse_args()
    endpoint = os.environ["BENCH_PEERS_DEAD_ENDPOINT"]
    refused, local = guard_network()
    # Exporters log every failed attempt to reach the dead endpoint: not what is measured.
    for name in ("langfuse", "langsmith", "opentelemetry", "urllib3", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            variant = VARIANTS[args.variant](Path(tmp), endpoint)
            results = measure(variant, args.calls, args.rounds)
            check = variant.check(int(sum(r["calls"] for r in results.values())))
        if refused:
            check = f"FAIL: tried to reach {sorted(set(refused))}"
        connects = len(local) if args.variant in DEAD_ENDPOINT_VARIANTS else None
        json.dump({"results": results, "check": check, "connects": connects}, sys.stdout)
        sys.stdout.flush()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # Skip the exit handlers: Langfuse's and LangSmith's flush to the dead endpoint, which
    # ends only when their retries give up.
    os._exit(0)


if __name__ == "__main__":
    main()
