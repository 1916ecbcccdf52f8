"""Session headers on every request of the real framework clients, against a 127.0.0.1 server.

Each framework makes three calls in one session, with different state set before each and a
parent trace id; the server records the headers each request carried: steps 0, 1, 2, that
state and that parent. The frameworks are optional: a missing one skips its tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentsession import (
    SessionTracker,
    instrument_http_client,
    session_http_client,
    uninstrument_http_client,
    using_session,
)
from agentsession._config import reset_settings
from agentsession.testing import FakeOpenAIServer

openai = pytest.importorskip("openai")

PARENT = "4bf92f3577b34da6a3ce929d0e0e4736"
TURNS = ("plan", "search", "answer")
MESSAGES = [{"role": "user", "content": "Book a flight to Paris"}]
API_KEY = "sk-test-not-a-real-key"
# openai 3.x is built on httpx2, openai 2.x on httpx: a client handed to it must match.
OPENAI_FLAVOR = "httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx"


@pytest.fixture(autouse=True)
def memory_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing here records steps locally; should anything be written, it stays in memory."""
    monkeypatch.setenv("AGENTSESSION_BACKEND_URL", "memory://")
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="module")
def running_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def server(running_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The module's fake OpenAI server, with no request recorded yet."""
    running_server.requests.clear()
    return running_server


@pytest.fixture
def tracker() -> SessionTracker:
    """A header-only session linked to a parent trace."""
    return SessionTracker(parent_trace_id=PARENT)


def assert_three_steps(server: FakeOpenAIServer, tracker: SessionTracker) -> None:
    """The chat requests carried steps 0, 1, 2, the state of each turn and the parent trace."""
    chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert [r.headers.get("x-traceforge-session-id") for r in chats] == [tracker.session_id] * 3
    assert [r.headers.get("x-traceforge-step-index") for r in chats] == ["0", "1", "2"]
    states = [json.loads(r.headers["x-traceforge-state"]) for r in chats]
    assert states == [{"turn": turn} for turn in TURNS]
    assert [r.headers.get("x-traceforge-parent-trace-id") for r in chats] == [PARENT] * 3


def test_openai_client(server: FakeOpenAIServer, tracker: SessionTracker) -> None:
    """openai.OpenAI instrumented: three calls in a session send steps 0, 1, 2."""
    client = instrument_http_client(
        openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    )
    with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert_three_steps(server, tracker)


async def test_async_openai_client(server: FakeOpenAIServer, tracker: SessionTracker) -> None:
    """openai.AsyncOpenAI instrumented, streaming: three calls send steps 0, 1, 2."""
    client = instrument_http_client(
        openai.AsyncOpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    )
    async with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            stream = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True
            )
            async for _ in stream:
                pass
    assert_three_steps(server, tracker)
    await client.close()


def test_openai_with_a_session_http_client(
    server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """OpenAI(http_client=session_http_client(tracker)) needs no session block at all."""
    http_client = session_http_client(tracker, flavor=OPENAI_FLAVOR)
    client = openai.OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=http_client
    )
    for turn in TURNS:
        tracker.set_state("turn", turn)
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert_three_steps(server, tracker)


def test_default_headers_alone_freeze_step_0_and_the_hook_fixes_it(
    server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """default_headers=session.get_headers() sends step 0 every time; instrumenting fixes it."""
    tracker.set_state("turn", "before the client was built")
    client = openai.OpenAI(
        api_key=API_KEY,
        base_url=server.base_url,
        max_retries=0,
        default_headers=tracker.get_headers(),
    )
    for turn in TURNS:
        tracker.set_state("turn", turn)
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert [r.headers["x-traceforge-step-index"] for r in server.requests] == ["0", "0", "0"]
    assert {r.headers["x-traceforge-state"] for r in server.requests} == {
        '{"turn":"before the client was built"}'
    }
    server.requests.clear()
    instrument_http_client(client, tracker)  # the same client, its default headers unchanged
    for turn in TURNS:
        tracker.set_state("turn", turn)
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert_three_steps(server, tracker)


@pytest.fixture
def chat_openai(server: FakeOpenAIServer) -> Iterator[Any]:
    """A LangChain ChatOpenAI on the fake server, instrumented, uninstrumented afterwards.

    Its default httpx clients are cached and shared per base URL, hence the cleanup.
    """
    langchain_openai = pytest.importorskip("langchain_openai")
    model = langchain_openai.ChatOpenAI(
        model="fake-model", base_url=server.base_url, api_key=API_KEY, max_retries=0
    )
    yield instrument_http_client(model)
    uninstrument_http_client(model)


def test_langchain_chat_openai(
    chat_openai: Any, server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """LangChain ChatOpenAI instrumented (root_client): invoke sends steps 0, 1, 2."""
    with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            chat_openai.invoke("Book a flight to Paris")
    assert_three_steps(server, tracker)


async def test_langchain_chat_openai_async(
    chat_openai: Any, server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """LangChain ChatOpenAI instrumented (root_async_client): ainvoke sends steps 0, 1, 2."""
    async with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            await chat_openai.ainvoke("Book a flight to Paris")
    assert_three_steps(server, tracker)


def test_langchain_default_headers_with_a_session_http_client(
    server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """ChatOpenAI(default_headers=..., http_client=session_http_client()) stays current."""
    langchain_openai = pytest.importorskip("langchain_openai")
    model = langchain_openai.ChatOpenAI(
        model="fake-model",
        base_url=server.base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers=tracker.get_headers(),  # as TraceForge's examples do
        http_client=session_http_client(tracker, flavor=OPENAI_FLAVOR),
    )
    for turn in TURNS:
        tracker.set_state("turn", turn)
        model.invoke("Book a flight to Paris")
    assert_three_steps(server, tracker)


@pytest.fixture
def llama_index_openai_like() -> Any:
    return pytest.importorskip("llama_index.llms.openai_like").OpenAILike


def test_llama_index_openai_like(
    llama_index_openai_like: Any, server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """LlamaIndex OpenAILike instrumented (its cached openai client): chat sends steps 0, 1, 2."""
    from llama_index.core.llms import ChatMessage

    llm = instrument_http_client(
        llama_index_openai_like(
            model="fake-model",
            api_base=server.base_url,
            api_key=API_KEY,
            is_chat_model=True,
            max_retries=0,
        )
    )
    with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            llm.chat([ChatMessage(role="user", content="Book a flight to Paris")])
    assert_three_steps(server, tracker)


async def test_llama_index_openai_like_async_with_http_client(
    llama_index_openai_like: Any, server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """OpenAILike(async_http_client=session_http_client(asynchronous=True)): achat stays current."""
    from llama_index.core.llms import ChatMessage

    llm = llama_index_openai_like(
        model="fake-model",
        api_base=server.base_url,
        api_key=API_KEY,
        is_chat_model=True,
        max_retries=0,
        async_http_client=session_http_client(asynchronous=True, flavor=OPENAI_FLAVOR),
    )
    async with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            await llm.achat([ChatMessage(role="user", content="Book a flight to Paris")])
    assert_three_steps(server, tracker)


def test_llama_index_without_a_kept_client_is_refused(
    llama_index_openai_like: Any, server: FakeOpenAIServer
) -> None:
    """reuse_client=False builds a client per call: instrumenting says to pass http_client."""
    llm = llama_index_openai_like(
        model="fake-model", api_base=server.base_url, api_key=API_KEY, reuse_client=False
    )
    with pytest.raises(TypeError, match=r"http_client=agentsession\.session_http_client"):
        instrument_http_client(llm)


async def test_autogen_openai_chat_completion_client(
    server: FakeOpenAIServer, tracker: SessionTracker
) -> None:
    """AutoGen OpenAIChatCompletionClient with TraceForge's default_headers, instrumented:
    three create() calls send steps 0, 1, 2 (AutoGen refuses per-call extra_headers)."""
    autogen_openai = pytest.importorskip("autogen_ext.models.openai")
    from autogen_core.models import ModelInfo, UserMessage

    model_client = autogen_openai.OpenAIChatCompletionClient(
        model="fake-model",
        base_url=server.base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers=tracker.get_headers(),
        model_info=ModelInfo(
            vision=False,
            function_calling=False,
            json_output=False,
            family="unknown",
            structured_output=False,
        ),
    )
    instrument_http_client(model_client)
    async with using_session(tracker):
        for turn in TURNS:
            tracker.set_state("turn", turn)
            await model_client.create([UserMessage(content="Book a flight", source="user")])
    await model_client.close()
    assert_three_steps(server, tracker)
