"""Streams pass through chunk by chunk: the client reads while the upstream is still sending."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from proxy_harness import ProxyProcess

GATE_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 5.0
"""Below the gate's timeout: a proxy that buffered the stream makes the first read time out."""


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _chunk(content: str) -> bytes:
    return _event(
        {
            "id": "chatcmpl-gated",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        }
    )


USAGE_CHUNK = _event(
    {
        "id": "chatcmpl-gated",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
)


class GatedUpstream:
    """Streams one chunk, then waits for ``release`` before the rest (or breaks off instead)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished = threading.Event()
        self.break_off = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._send(_chunk("Hello "))
                if outer.break_off:
                    self.close_connection = True
                    return  # no terminating chunk: the stream is cut short
                if not outer.release.wait(GATE_TIMEOUT_S):
                    return
                try:
                    self._send(_chunk("world"))
                    self._send(USAGE_CHUNK)
                    self._send(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    return
                outer.finished.set()

            def _send(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reset(self) -> None:
        self.release.clear()
        self.finished.clear()
        self.break_off = False

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedUpstream]:
    server = GatedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gated_proxy(
    gated: GatedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    process = ProxyProcess(
        gated.base_url, tmp_path_factory.mktemp("stream") / "p.db", "--log-level", "warning"
    )
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def client(gated: GatedUpstream, gated_proxy: ProxyProcess) -> Iterator[openai.OpenAI]:
    gated.reset()
    with openai.OpenAI(
        base_url=gated_proxy.base_url, api_key="sk-x", max_retries=0, timeout=CLIENT_TIMEOUT_S
    ) as client:
        yield client
    gated.release.set()  # never leave the upstream's handler waiting


def _stream(client: openai.OpenAI, session_id: str) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-TraceForge-Session-ID": session_id},
    )


def test_the_first_chunk_arrives_before_the_upstream_sent_the_last(
    gated: GatedUpstream, gated_proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """The client reads the first chunk while the upstream still holds back the rest."""
    session_id = f"stream-{uuid.uuid4().hex}"
    chunks = iter(_stream(client, session_id))
    first = next(chunks)
    assert first.choices[0].delta.content == "Hello "
    assert not gated.finished.is_set()
    gated.release.set()
    rest = list(chunks)
    assert gated.finished.is_set()
    assert [c.choices[0].delta.content for c in rest if c.choices] == ["world"]
    (step,) = gated_proxy.steps(session_id, 1)
    assert (step.status, step.output, step.total_tokens) == ("completed", "Hello world", 7)


def test_a_client_that_leaves_mid_stream_cancels_the_step_at_once(
    gated: GatedUpstream, gated_proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """Closing the stream early records the step as cancelled without waiting for the upstream."""
    session_id = f"stream-{uuid.uuid4().hex}"
    stream = _stream(client, session_id)
    next(iter(stream))
    stream.close()
    (step,) = gated_proxy.steps(session_id, 1, timeout_s=GATE_TIMEOUT_S / 2)
    assert step.status == "cancelled"
    assert "client disconnected" in (step.error or "")
    assert not gated.finished.is_set()


def test_an_upstream_that_breaks_off_mid_stream_fails_the_step_and_tells_the_client(
    gated: GatedUpstream, gated_proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """A stream cut short ends with an OpenAI error event; the step is failed, its text kept."""
    gated.break_off = True
    session_id = f"stream-{uuid.uuid4().hex}"
    chunks = iter(_stream(client, session_id))
    assert next(chunks).choices[0].delta.content == "Hello "
    with pytest.raises(openai.APIError, match="upstream connection failed"):
        next(chunks)
    (step,) = gated_proxy.steps(session_id, 1)
    assert step.status == "failed"
    assert "after part of the stream" in (step.error or "")
    assert step.output == "Hello "
