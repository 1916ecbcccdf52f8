"""The proof against a real peer: our steps, exported by OTelBackend, are sessions in Arize
Phoenix, and OpenInference's own spans join our sessions through SessionSpanProcessor.

Phase one runs the LangChain example (a three-turn chat, one session) and the LlamaIndex
example (a RAG query) with an OTelBackend as the default backend, exporting to project
``agentsession``. Phase two runs them again traced by OpenInference's LangChain and LlamaIndex
instrumentors (project ``openinference``, with SessionSpanProcessor on their provider) while our
steps stay in memory. Two phases because Phoenix keys sessions by session id across projects:
one run traced both ways would put both kinds of LLM spans in one session and count every
token twice. Phoenix's sessions API is then read back.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from phoenix.client import Client
from phoenix_server import PhoenixServer

import agentsession
from agentsession import MemoryBackend, SessionEvent, Step, testing
from agentsession.otel import OTelBackend, SessionSpanProcessor

EXAMPLES = Path(__file__).parents[2] / "examples"
OURS = "agentsession"
THEIRS = "openinference"
READ_TIMEOUT_S = 60.0


class _Tee:
    """Writes every event to the OTel backend and to memory: what we recorded, to compare."""

    def __init__(self, otel: OTelBackend, memory: MemoryBackend) -> None:
        self.otel, self.memory = otel, memory

    def write(self, events: Sequence[SessionEvent]) -> None:
        self.memory.write(events)
        self.otel.write(events)

    def flush(self) -> None:
        self.otel.flush()

    def close(self) -> None:
        self.otel.close()


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    """One run of both examples: their session ids and the steps we recorded."""

    chat_id: str
    rag_id: str
    recorded: MemoryBackend

    def steps(self, session_id: str) -> list[Step]:
        return self.recorded.list_steps(session_id)


@dataclass
class Proof:
    ours: Run
    """Exported by OTelBackend to project ``agentsession``."""
    theirs: Run
    """Traced by OpenInference into project ``openinference``; our steps only in memory."""
    client: Client

    def sessions(self, project: str) -> dict[str, Any]:
        """Phoenix's sessions of ``project`` by session id (none while it has no span yet)."""
        try:
            listed = self.client.sessions.list(project_name=project)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:  # the project appears with its first span
                return {}
            raise
        return {s["session_id"]: s for s in listed}

    def spans(self, project: str, trace_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return [dict(span) for span in self.client.spans.get_spans(
            project_identifier=project, trace_ids=trace_ids, limit=1000, timeout=30
        )]  # fmt: skip


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READ_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"Phoenix never showed {what} within {READ_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def _top_level_steps(steps: list[Step]) -> list[Step]:
    """Steps whose parent is no step of their own session: each is a trace of its own."""
    trace_ids = {step.trace_id for step in steps}
    return [step for step in steps if step.parent_trace_id not in trace_ids]


def _run_examples(default_backend: Any, recorded: MemoryBackend) -> Run:
    agentsession.set_default_backend(default_backend)
    run = Run(_example("langchain_chat").run(), _example("llamaindex_rag").run(), recorded)
    assert agentsession.flush(30.0)
    return run


def _run_ours(phoenix: PhoenixServer) -> Run:
    otel = OTelBackend(
        phoenix.traces_endpoint,
        resource_attributes={"openinference.project.name": OURS},
        timeout_s=10.0,
    )
    recorded = MemoryBackend()
    try:
        run = _run_examples(_Tee(otel, recorded), recorded)
    finally:
        otel.close()
    stats = agentsession.get_stats()
    assert stats.get("dropped.otel_export", 0) == 0, stats
    assert stats["written.otel_spans"] >= len(recorded.list_steps(run.chat_id)) + 1
    return run


def _run_theirs(phoenix: PhoenixServer) -> Run:
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    provider = TracerProvider(resource=Resource({"openinference.project.name": THEIRS}))
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=phoenix.traces_endpoint, timeout=10))
    )
    instrumentors = [LangChainInstrumentor(), LlamaIndexInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        recorded = MemoryBackend()
        return _run_examples(recorded, recorded)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        assert provider.force_flush(30_000)
        provider.shutdown()


@pytest.fixture(scope="module")
def proof(phoenix: PhoenixServer) -> Iterator[Proof]:
    """Run both phases once and wait until Phoenix shows every trace of them."""
    with testing.isolated():
        ours = _run_ours(phoenix)
        theirs = _run_theirs(phoenix)
        proof = Proof(ours, theirs, Client(base_url=phoenix.base_url))
        for session_id in (ours.chat_id, ours.rag_id):
            expected = len(_top_level_steps(ours.steps(session_id)))
            _wait_for(
                f"{expected} traces of session {session_id}",
                lambda s=session_id, n=expected: (
                    len(proof.sessions(OURS).get(s, {}).get("traces", ())) >= n
                ),
            )
        _wait_for(
            "OpenInference's sessions",
            lambda: {theirs.chat_id, theirs.rag_id} <= set(proof.sessions(THEIRS)),
        )
        yield proof


def test_each_conversation_is_one_phoenix_session(proof: Proof) -> None:
    """Phoenix lists exactly our two sessions, under our session ids."""
    assert set(proof.sessions(OURS)) == {proof.ours.chat_id, proof.ours.rag_id}


def test_the_chat_is_a_trace_per_model_call(proof: Proof) -> None:
    """The three-turn chat made four model calls (turn two asks for a tool first): four
    top-level steps, so four traces in Phoenix, in step order, each rooted at its step, and
    the tool call is a span in the trace of the step that lists it."""
    steps = proof.ours.steps(proof.ours.chat_id)
    top_level = _top_level_steps(steps)
    assert [s.step_index for s in top_level] == [0, 1, 2, 3]
    session = proof.sessions(OURS)[proof.ours.chat_id]
    assert {t["trace_id"] for t in session["traces"]} == {s.trace_id for s in top_level}
    turns = proof.client.sessions.get_session_turns(session_id=proof.ours.chat_id)
    assert [turn["trace_id"] for turn in turns] == [s.trace_id for s in top_level]
    for turn, step in zip(turns, top_level, strict=True):
        assert turn["root_span"]["attributes"]["agentsession.step.index"] == step.step_index
    (with_tool,) = [s for s in steps if s.tool_calls]
    tool_spans = [
        s for s in proof.spans(OURS, trace_ids=[with_tool.trace_id]) if s["span_kind"] == "TOOL"
    ]
    assert [s["name"] for s in tool_spans] == [call.name for call in with_tool.tool_calls]


def test_the_rag_query_has_a_trace_per_top_level_step(proof: Proof) -> None:
    """The LlamaIndex query's session has as many traces as it has top-level steps."""
    steps = proof.ours.steps(proof.ours.rag_id)
    assert steps
    session = proof.sessions(OURS)[proof.ours.rag_id]
    assert {t["trace_id"] for t in session["traces"]} == {
        s.trace_id for s in _top_level_steps(steps)
    }


@pytest.mark.parametrize("which", ["chat", "rag"])
def test_token_totals_equal_ours(proof: Proof, which: str) -> None:
    """Phoenix's prompt and completion token totals per session equal our steps' sums."""
    session_id = proof.ours.chat_id if which == "chat" else proof.ours.rag_id
    steps = proof.ours.steps(session_id)
    prompt = sum(s.input_tokens or 0 for s in steps)
    completion = sum(s.output_tokens or 0 for s in steps)
    if which == "chat":  # LlamaIndex's MockLLM reports no usage; the chat's model does
        assert prompt > 0
        assert completion > 0
    session = proof.sessions(OURS)[session_id]
    assert session["token_count_prompt"] == prompt
    assert session["token_count_completion"] == completion
    assert session["token_count_total"] == prompt + completion


def test_openinference_spans_carry_our_session_ids(proof: Proof) -> None:
    """OpenInference's spans started inside our sessions are stamped with our session ids, so
    Phoenix groups them into exactly those sessions: one outermost LLM span of theirs per step
    of ours, and every span of the chat's traces in the chat's session."""
    theirs = proof.theirs
    ids = (theirs.chat_id, theirs.rag_id)
    assert set(proof.sessions(THEIRS)) == set(ids)
    spans = proof.spans(THEIRS)
    stamped = [s for s in spans if "session.id" in s.get("attributes", {})]
    assert {s["attributes"]["session.id"] for s in stamped} == set(ids)
    llm_per_session: dict[str, int] = {}
    for span in _outermost_llm_spans(spans):
        session_id = span.get("attributes", {}).get("session.id")
        assert session_id in ids, span["name"]
        llm_per_session[session_id] = llm_per_session.get(session_id, 0) + 1
    assert llm_per_session == {session_id: len(theirs.steps(session_id)) for session_id in ids}
    chat_traces = {t["trace_id"] for t in proof.sessions(THEIRS)[theirs.chat_id]["traces"]}
    chat_spans = proof.spans(THEIRS, trace_ids=sorted(chat_traces))
    assert chat_spans
    assert {s["attributes"].get("session.id") for s in chat_spans} == {theirs.chat_id}
    assert {s["span_kind"] for s in chat_spans} >= {"LLM", "TOOL", "CHAIN"}


def _outermost_llm_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LLM spans with no LLM span above them (LlamaIndex nests ``complete`` in ``chat``)."""
    by_id = {span["context"]["span_id"]: span for span in spans}

    def under_an_llm_span(span: dict[str, Any]) -> bool:
        parent = by_id.get(span.get("parent_id") or "")
        while parent is not None:
            if parent["span_kind"] == "LLM":
                return True
            parent = by_id.get(parent.get("parent_id") or "")
        return False

    return [s for s in spans if s["span_kind"] == "LLM" and not under_an_llm_span(s)]
