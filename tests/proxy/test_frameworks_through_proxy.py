"""LangChain, LlamaIndex and AutoGen model clients pointed at the proxy with ``default_headers``
(the set-up TraceForge documents): every call of a run is recorded in the session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from proxy_harness import ProxyProcess

from agentsession import MemoryBackend, SessionTracker

API_KEY = "sk-framework-test"
CALLS = 3


def three_calls_with_headers_computed_once(
    call: Callable[[dict[str, str]], str],
) -> SessionTracker:
    """Build the client's default_headers once, as an agent config does, and call it 3 times."""
    session = SessionTracker(backend=MemoryBackend())
    session.set_state("goal", "plan a trip")
    headers = session.get_headers()
    for _ in range(CALLS):
        assert call(headers) == "Hello from the fake model."
    return session


def assert_recorded(proxy: ProxyProcess, session: SessionTracker, model: str) -> None:
    steps = proxy.steps(session.session_id, CALLS)
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert {(s.model, s.input_tokens, s.output_tokens, s.status) for s in steps} == {
        (model, 11, 7, "completed")
    }
    assert {tuple(s.state.items()) for s in steps} == {(("goal", "plan a trip"),)}
    # The repeated step index is reported, not silently stored twice or dropped.
    assert ["header_problems" in s.metadata for s in steps] == [False, True, True]


def test_langchain_chat_openai_through_the_proxy(proxy: ProxyProcess) -> None:
    """ChatOpenAI with default_headers: three invokes, three steps of the session."""
    langchain_openai = pytest.importorskip("langchain_openai")

    def call(headers: dict[str, str]) -> str:
        llm = langchain_openai.ChatOpenAI(
            model="gpt-4o-mini",
            base_url=proxy.base_url,
            api_key=API_KEY,
            default_headers=headers,
            max_retries=0,
        )
        return str(llm.invoke("Plan a trip to Paris").content)

    session = three_calls_with_headers_computed_once(call)
    assert_recorded(proxy, session, "gpt-4o-mini")


def test_llamaindex_openai_like_through_the_proxy(proxy: ProxyProcess) -> None:
    """OpenAILike with default_headers: three chat calls, three steps of the session."""
    openai_like = pytest.importorskip("llama_index.llms.openai_like")
    from llama_index.core.llms import ChatMessage

    def call(headers: dict[str, str]) -> str:
        llm = openai_like.OpenAILike(
            model="fake-model",
            api_base=proxy.base_url,
            api_key=API_KEY,
            is_chat_model=True,
            default_headers=headers,
            max_retries=0,
        )
        reply = llm.chat([ChatMessage(role="user", content="Plan a trip to Paris")])
        return str(reply.message.content)

    session = three_calls_with_headers_computed_once(call)
    assert_recorded(proxy, session, "fake-model")


@pytest.mark.filterwarnings("ignore:Resolved model mismatch")  # AutoGen's own model table
def test_autogen_openai_chat_completion_client_through_the_proxy(proxy: ProxyProcess) -> None:
    """OpenAIChatCompletionClient with default_headers: three creates, three steps."""
    models = pytest.importorskip("autogen_ext.models.openai")
    from autogen_core.models import UserMessage

    async def create(headers: dict[str, str]) -> str:
        client = models.OpenAIChatCompletionClient(
            model="gpt-4o-mini",
            base_url=proxy.base_url,
            api_key=API_KEY,
            default_headers=headers,
            max_retries=0,
        )
        try:
            result = await client.create([UserMessage(content="Plan a trip", source="user")])
        finally:
            await client.close()
        return str(result.content)

    session = three_calls_with_headers_computed_once(lambda h: asyncio.run(create(h)))
    assert_recorded(proxy, session, "gpt-4o-mini")


def test_session_headers_set_per_call_need_no_warning(proxy: ProxyProcess) -> None:
    """Fresh headers for each call (get_headers() then next_step()) record 0, 1, 2 cleanly."""
    langchain_openai = pytest.importorskip("langchain_openai")
    session = SessionTracker(f"framework-{uuid.uuid4().hex}", backend=MemoryBackend())
    for turn in range(CALLS):
        session.set_state("turn", turn)
        llm = langchain_openai.ChatOpenAI(
            model="gpt-4o-mini",
            base_url=proxy.base_url,
            api_key=API_KEY,
            default_headers=session.get_headers(),
            max_retries=0,
        )
        llm.invoke("Next step")
        session.next_step()
    steps = proxy.steps(session.session_id, CALLS)
    assert [(s.step_index, s.state) for s in steps] == [(i, {"turn": i}) for i in range(CALLS)]
    assert all("header_problems" not in s.metadata for s in steps)
