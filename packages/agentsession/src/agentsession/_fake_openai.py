"""A small OpenAI-compatible server on 127.0.0.1 that records what it receives (stdlib only).

Made for tests of code that talks to an LLM through HTTP: which headers each request carried,
streaming, and upstream failures, without reaching the network.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeOpenAIServer", "FakeReply", "RecordedRequest"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeReply:
    """What the server answers to one request (the next queued one, else the default)."""

    text: str = "Hello from the fake model."
    tool_calls: list[dict[str, Any]] | None = None
    """OpenAI-shaped: ``{"id", "type": "function", "function": {"name", "arguments"}}``."""
    prompt_tokens: int = 11
    completion_tokens: int = 7
    status: int = 200
    delay_s: float = 0.0
    """Wait this long before answering: a slow or hanging upstream."""
    error: str = "fake upstream error"
    headers: dict[str, str] = field(default_factory=dict)


class FakeOpenAIServer:
    """``with FakeOpenAIServer() as server: OpenAI(base_url=server.base_url, api_key="x")``.

    Answers ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses``
    and ``/v1/models``, streaming (SSE) when asked, with ``usage`` in the final chunk when the
    request sets ``stream_options.include_usage``. Queue specific answers with :meth:`reply`.
    """

    def __init__(self, default: FakeReply | None = None, *, stream_chunks: int = 3) -> None:
        self.default = default or FakeReply()
        self.stream_chunks = stream_chunks
        self.requests: list[RecordedRequest] = []
        self._queue: deque[FakeReply] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what OpenAI clients take as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, *replies: FakeReply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self) -> FakeReply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> FakeOpenAIServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # The stdlib default backlog of 5 resets connections under a handful of concurrent clients.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hung up (a proxy timing out a slow reply does)."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a kept-alive connection waits ~40 ms (delayed ACK) on every reply.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read ``requests`` instead."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.fake._record(RecordedRequest(self.command, self.path, headers, body))
        reply = self.fake._next_reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status >= 400:
            error = {"error": {"message": reply.error, "type": "fake_error", "code": reply.status}}
            self._send_json(reply.status, error, reply)
            return
        request = json.loads(body) if body else {}
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake-model"}]}, reply)
        elif path.endswith("/embeddings"):
            self._send_json(200, _embeddings(request, reply), reply)
        elif path.endswith(("/chat/completions", "/completions", "/responses")):
            kind = path.rsplit("/", 1)[-1] if not path.endswith("/chat/completions") else "chat"
            if request.get("stream"):
                self._stream(kind, request, reply)
            else:
                self._send_json(200, _completion(kind, request, reply), reply)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}}, reply)

    def _send_json(self, status: int, payload: Any, reply: FakeReply) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, kind: str, request: dict[str, Any], reply: FakeReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for event in _stream_events(kind, request, reply, self.fake.stream_chunks):
            data = f"data: {event}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def _usage(reply: FakeReply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _completion(kind: str, request: dict[str, Any], reply: FakeReply) -> dict[str, Any]:
    model = request.get("model", "fake-model")
    created = int(time.time())
    if kind == "responses":
        return {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": created,
            "model": model,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "output_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }
    if kind == "completions":
        choice: dict[str, Any] = {"index": 0, "text": reply.text, "finish_reason": "stop"}
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": _usage(reply),
        }
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    finish = "stop"
    if reply.tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": reply.tool_calls}
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(reply),
    }


def _embeddings(request: dict[str, Any], reply: FakeReply) -> dict[str, Any]:
    inputs = request.get("input", "")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {
        "object": "list",
        "model": request.get("model", "fake-embedding"),
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8}
            for i in range(count)
        ],
        "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
    }


def _stream_events(kind: str, request: dict[str, Any], reply: FakeReply, chunks: int) -> list[str]:
    model = request.get("model", "fake-model")
    words = reply.text.split(" ")
    size = max(1, -(-len(words) // chunks))
    pieces = [" ".join(words[i : i + size]) + " " for i in range(0, len(words), size)]
    pieces[-1] = pieces[-1].rstrip()
    created = int(time.time())
    events: list[dict[str, Any]] = []
    if kind == "chat":
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        events.extend(
            {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
        )
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": _usage(reply)})
    else:
        ident = f"cmpl-{uuid.uuid4().hex}"
        base = {"id": ident, "object": "text_completion", "created": created, "model": model}
        events.extend(
            {**base, "choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in pieces
        )
        final: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "text": "", "finish_reason": "stop"}],
        }
        if (request.get("stream_options") or {}).get("include_usage"):
            final["usage"] = _usage(reply)
        events.append(final)
    return [json.dumps(e) for e in events] + ["[DONE]"]
