"""add_session_headers: AutoGen's OpenAI client sends the session headers of each request's
moment, read back from what a 127.0.0.1 OpenAI-compatible server received."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from autogen_core.models import UserMessage
from autogen_scripts import API_KEY, MODEL_INFO, replay

from agentsession import SessionTracker, Step, using_session
from agentsession.testing import FakeOpenAIServer
from agentsession_autogen import (
    SessionChatCompletionClient,
    add_session_headers,
    instrument,
    remove_session_headers,
)

openai_models = pytest.importorskip("autogen_ext.models.openai")

PARENT = "4bf92f3577b34da6a3ce929d0e0e4736"
TURNS = ("plan", "search", "answer")
MESSAGES = [UserMessage(content="Book a flight to Paris", source="user")]


def openai_client(server: FakeOpenAIServer, **options: Any) -> Any:
    return openai_models.OpenAIChatCompletionClient(
        model="fake-model",
        base_url=server.base_url,
        api_key=API_KEY,
        max_retries=0,
        model_info=MODEL_INFO,
        **options,
    )


def sent(server: FakeOpenAIServer, header: str) -> list[str | None]:
    """The value of ``header`` in each chat request the server received."""
    chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    return [r.headers.get(header) for r in chats]


async def three_turns(client: Any, tracker: SessionTracker) -> None:
    for turn in TURNS:
        tracker.set_state("turn", turn)
        await client.create(MESSAGES)


async def test_default_headers_freeze_step_0_and_add_session_headers_fixes_it(
    server: FakeOpenAIServer,
) -> None:
    """Frozen default_headers say step 0 thrice; added hooks send 0, 1, 2, state and parent."""
    tracker = SessionTracker(parent_trace_id=PARENT)
    tracker.set_state("turn", "when the client was built")
    client = openai_client(server, default_headers=tracker.get_headers())
    await three_turns(client, tracker)
    assert sent(server, "x-traceforge-step-index") == ["0", "0", "0"]

    server.requests.clear()
    fresh = SessionTracker(parent_trace_id=PARENT)
    assert add_session_headers(client, fresh) is client
    await three_turns(client, fresh)
    await client.close()
    assert sent(server, "x-traceforge-session-id") == [fresh.session_id] * 3
    assert sent(server, "x-traceforge-step-index") == ["0", "1", "2"]
    states = [json.loads(value or "null") for value in sent(server, "x-traceforge-state")]
    assert states == [{"turn": turn} for turn in TURNS]
    assert sent(server, "x-traceforge-parent-trace-id") == [PARENT] * 3


async def test_unbound_headers_follow_the_session_in_force(server: FakeOpenAIServer) -> None:
    """With no tracker given, each request takes the session of the block around it."""
    client = add_session_headers(openai_client(server))
    tracker = SessionTracker(parent_trace_id=PARENT)
    async with using_session(tracker):
        await three_turns(client, tracker)
    await client.create(MESSAGES)  # outside any session: no session headers
    await client.close()
    assert sent(server, "x-traceforge-step-index") == ["0", "1", "2", None]


async def test_recorded_steps_and_header_steps_agree(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """Through the wrapper each request carries the index of the step recorded for it."""
    tracker = SessionTracker(parent_trace_id=PARENT)
    model = add_session_headers(SessionChatCompletionClient(openai_client(server), tracker))
    await three_turns(model, tracker)
    await model.close()
    steps = steps_of(tracker.session_id)
    assert [str(s.step_index) for s in steps] == sent(server, "x-traceforge-step-index")
    assert [s.state for s in steps] == [{"turn": turn} for turn in TURNS]
    assert sent(server, "x-traceforge-step-index") == ["0", "1", "2"]


async def test_instrumented_calls_send_their_step(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """instrument() plus add_session_headers: recorded and sent indexes agree, streams too."""
    instrument()
    client = add_session_headers(openai_client(server))
    async with using_session("conv-headers") as tracker:
        await client.create(MESSAGES)
        async for _ in client.create_stream(MESSAGES):
            pass
    await client.close()
    assert [s.step_index for s in steps_of(tracker.session_id)] == [0, 1]
    assert sent(server, "x-traceforge-step-index") == ["0", "1"]


async def test_remove_session_headers_stops_them(server: FakeOpenAIServer) -> None:
    """remove_session_headers() undoes add_session_headers(), through the wrapper as well."""
    tracker = SessionTracker()
    model = add_session_headers(SessionChatCompletionClient(openai_client(server), tracker))
    assert remove_session_headers(model) is model
    await model.create(MESSAGES)
    await model.close()
    assert sent(server, "x-traceforge-step-index") == [None]


def test_a_client_without_http_client_is_refused() -> None:
    """A client that makes no HTTP requests (the replay model) cannot carry headers."""
    with pytest.raises(TypeError, match="found no httpx or httpx2 client"):
        add_session_headers(replay("x"))
