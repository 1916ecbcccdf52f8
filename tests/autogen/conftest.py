"""Fixtures for the AutoGen adapter's tests: fresh process state per test, steps recorded into
memory, scripted models (AutoGen's ReplayChatCompletionClient) and a fake OpenAI server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentsession import MemoryBackend
from agentsession.testing import FakeOpenAIServer

# The whole suite is about AutoGen: without it there is nothing here to run.
pytest.importorskip("autogen_agentchat")

import agentsession_autogen


@pytest.fixture(autouse=True)
def _fresh_process_state(isolated: MemoryBackend) -> Iterator[None]:
    """Fresh agentsession state per test (the root conftest.py); AutoGen left as it was found:
    instrumentation a test forgot to undo is undone."""
    yield
    agentsession_autogen.uninstrument()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """An OpenAI-compatible server on 127.0.0.1 that records every request it receives."""
    with FakeOpenAIServer() as fake:
        yield fake
