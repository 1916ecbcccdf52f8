"""Steps read back from a real SQLite file, and a real provider integration on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from langchain_fakes import react_agent, reply, scripted

import agentsession
from agentsession import (
    SessionTracker,
    SQLiteBackend,
    Step,
    instrument_http_client,
    uninstrument_http_client,
)
from agentsession.testing import FakeOpenAIServer, FakeReply
from agentsession_langchain import SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_agent_steps_read_back_from_sqlite(tmp_path: Path) -> None:
    """An agent run into a SQLite file: steps, tokens, tool calls and the summary as recorded."""
    pytest.importorskip("langgraph")
    path = tmp_path / "sessions.db"
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}], input_tokens=50),
        reply("Sunny.", input_tokens=70, output_tokens=3),
    )
    with SessionTracker("lc-sqlite-0001", backend=SQLiteBackend(path), user_id="u-1") as session:
        session.set_state("goal", "weather")
        react_agent(model, [get_weather]).invoke(
            {"messages": [("user", "Weather in Paris?")]},
            {"callbacks": [SessionCallbackHandler(session)]},
        )
    assert agentsession.flush(5.0)
    reader = SQLiteBackend(path)
    try:
        steps = reader.list_steps("lc-sqlite-0001")
        summary = reader.get_session("lc-sqlite-0001")
    finally:
        reader.close()
    assert [s.step_index for s in steps] == [0, 1]
    assert [(s.input_tokens, s.output_tokens) for s in steps] == [(50, 5), (70, 3)]
    assert steps[1].tool_calls[0].output == "sunny in Paris"
    assert steps[0].state == {"goal": "weather"}
    assert steps[0].output["tool_calls"][0]["args"] == {"city": "Paris"}
    assert summary is not None
    assert (summary.total_steps, summary.input_tokens, summary.status) == (2, 120, "completed")
    assert summary.user_ids == ["u-1"]


@pytest.fixture
def chat_openai() -> Iterator[tuple[Any, FakeOpenAIServer]]:
    """LangChain's ChatOpenAI talking to an OpenAI-compatible server on 127.0.0.1."""
    langchain_openai = pytest.importorskip("langchain_openai")
    with FakeOpenAIServer(FakeReply(text="Bonjour", prompt_tokens=21, completion_tokens=4)) as s:
        model = langchain_openai.ChatOpenAI(
            model="gpt-4o-mini", base_url=s.base_url, api_key="sk-test", max_retries=0
        )
        yield model, s


def test_chat_openai_tokens_model_and_provider(
    chat_openai: tuple[Any, FakeOpenAIServer], steps_of: StepsOf
) -> None:
    """A real integration: provider "openai", the model asked, the usage the server sent."""
    model, _ = chat_openai
    with SessionTracker("lc-openai-0001") as session:
        assert model.invoke("Hello", {"callbacks": [SessionCallbackHandler(session)]}).content
    (step,) = steps_of("lc-openai-0001")
    assert (step.provider, step.input_tokens, step.output_tokens) == ("openai", 21, 4)
    assert step.model is not None
    assert step.model.startswith("gpt-4o-mini")


async def test_chat_openai_stream_with_usage_is_one_step(
    chat_openai: tuple[Any, FakeOpenAIServer], steps_of: StepsOf
) -> None:
    """astream with stream_usage: one step, with the usage of the stream's last chunk."""
    model, _ = chat_openai
    with SessionTracker("lc-openai-0002") as session:
        config = {"callbacks": [SessionCallbackHandler(session)]}
        chunks = [chunk async for chunk in model.astream("Hello", config, stream_usage=True)]
    assert chunks
    (step,) = steps_of("lc-openai-0002")
    assert (step.input_tokens, step.output_tokens) == (21, 4)


def test_http_hooks_send_the_step_the_handler_opened(
    chat_openai: tuple[Any, FakeOpenAIServer], steps_of: StepsOf
) -> None:
    """With instrument_http_client too, each request carries the handler's step index: the
    hooks take no index of their own, so the session has no gaps."""
    model, server = chat_openai
    instrument_http_client(model)
    try:
        with SessionTracker("lc-openai-0003") as session:
            config = {"callbacks": [SessionCallbackHandler(session)]}
            for _ in range(3):
                model.invoke("Hello", config)
    finally:
        uninstrument_http_client(model)
    assert [s.step_index for s in steps_of("lc-openai-0003")] == [0, 1, 2]
    sent = [r.headers.get("x-traceforge-step-index") for r in server.requests]
    assert sent == ["0", "1", "2"]
    assert session.step_index == 3
