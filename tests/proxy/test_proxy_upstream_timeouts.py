"""Every wait on the upstream is bounded: a stream that goes silent half-way ends with an error
after the read timeout, and calls that hang do not hold up the proxy's other clients."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from proxy_harness import READ_TIMEOUT_S, ProxyProcess

HOLD_S = 15.0
"""How long the upstream holds a call it does not answer: far past the proxy's read timeout."""

BOUND_S = READ_TIMEOUT_S + 1.5
"""How long a client may wait for the proxy's answer to an upstream that went silent."""


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


FIRST_CHUNK = _event(
    {
        "id": "chatcmpl-stall",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stall",
        "choices": [{"index": 0, "delta": {"content": "Hello "}, "finish_reason": None}],
    }
)

COMPLETION = {
    "id": "chatcmpl-ok",
    "object": "chat.completion",
    "created": 0,
    "model": "ok",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "fine"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class SilentUpstream:
    """Answers by the requested model: ``ok`` at once, ``silent`` never (it holds the connection
    open), ``stall`` with the first chunk of a stream and then nothing."""

    def __init__(self) -> None:
        self.release = threading.Event()

        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = body.get("model")
                if model == "silent":
                    outer.release.wait(HOLD_S)
                    self.close_connection = True
                    return
                if model == "stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(FIRST_CHUNK):x}\r\n".encode() + FIRST_CHUNK + b"\r\n")
                    self.wfile.flush()
                    outer.release.wait(HOLD_S)
                    self.close_connection = True
                    return
                data = json.dumps(COMPLETION).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def silent() -> Iterator[SilentUpstream]:
    server = SilentUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def silent_proxy(
    silent: SilentUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    process = ProxyProcess(
        silent.base_url,
        tmp_path_factory.mktemp("silent") / "p.db",
        "--read-timeout",
        str(READ_TIMEOUT_S),
        "--log-level",
        "warning",
    )
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def client(silent_proxy: ProxyProcess) -> Iterator[openai.OpenAI]:
    # The client's own timeout is far above the bound: the proxy must answer first.
    with openai.OpenAI(
        base_url=silent_proxy.base_url, api_key="sk-x", max_retries=0, timeout=HOLD_S
    ) as client:
        yield client


def _chat(client: openai.OpenAI, session_id: str, model: str, **options: Any) -> Any:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-TraceForge-Session-ID": session_id},
        **options,
    )


def test_a_stream_that_goes_silent_half_way_ends_with_an_error_after_the_read_timeout(
    silent_proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """The first chunk arrives, then nothing: the client gets an error event within the read
    timeout (not the upstream's silence), and the step is failed with the text it had."""
    session_id = f"stall-{uuid.uuid4().hex}"
    chunks = iter(_chat(client, session_id, "stall", stream=True))
    assert next(chunks).choices[0].delta.content == "Hello "
    started = time.monotonic()
    with pytest.raises(openai.APIError, match="did not answer in time"):
        next(chunks)
    assert time.monotonic() - started < BOUND_S
    (step,) = silent_proxy.steps(session_id, 1)
    assert step.status == "failed"
    assert step.output == "Hello "
    assert "did not answer in time" in (step.error or "")
    assert "after part of the stream" in (step.error or "")


def test_calls_that_hang_do_not_hold_up_the_other_clients(
    silent_proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """Four calls whose upstream never answers each get a 504 within the bound, while calls
    made meanwhile are answered at once and recorded."""
    hung_session = f"hung-{uuid.uuid4().hex}"
    served_session = f"served-{uuid.uuid4().hex}"

    def hang() -> tuple[int, float]:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as raised:
            _chat(client, hung_session, "silent")
        return raised.value.status_code, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        hung = [pool.submit(hang) for _ in range(4)]
        time.sleep(0.2)  # the four are waiting on the upstream now
        for _ in range(5):
            started = time.monotonic()
            assert _chat(client, served_session, "ok").choices[0].message.content == "fine"
            assert time.monotonic() - started < READ_TIMEOUT_S / 2
        assert not any(future.done() for future in hung)
        outcomes = [future.result(timeout=BOUND_S + 5) for future in hung]
    assert all(status == 504 and waited < BOUND_S for status, waited in outcomes), outcomes
    assert [s.status for s in silent_proxy.steps(served_session, 5)] == ["completed"] * 5
    hung_steps = silent_proxy.steps(hung_session, 4)
    assert sorted(s.step_index for s in hung_steps) == [0, 1, 2, 3]
    assert {s.status for s in hung_steps} == {"failed"}
