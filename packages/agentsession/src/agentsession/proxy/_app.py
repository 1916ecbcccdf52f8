"""The recording proxy as a Starlette app: ``/v1/*`` goes upstream, LLM calls become steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .._config import get_settings
from .._headers import DEFAULT_HEADER_PREFIX
from .._health import record_fault
from .._worker import flush_all, set_default_backend
from ..backends._base import SessionWriter
from ._recorder import ENDPOINTS, RecordedCall, Recorder
from ._upstream import (
    UpstreamURL,
    error_body,
    forwarded_path,
    httpx,
    new_upstream_client,
    request_headers_for_upstream,
    response_headers_for_client,
)
from ._usage import CallOutcome, StreamScanner, outcome_from_body

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "DEFAULT_READ_TIMEOUT_S", "create_proxy_app"]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 600.0
"""As long as the OpenAI SDK waits by default: a long completion is not an error."""
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_JSON = (b"content-type", b"application/json")


def create_proxy_app(
    upstream: str,
    *,
    backend: SessionWriter | str | None = None,
    auto_session_id: bool | None = None,
    header_prefix: str | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> Starlette:
    """An OpenAI-compatible app that forwards ``/v1/<rest>`` to ``<upstream>/<rest>``.

    ``upstream`` is what an OpenAI client takes as ``base_url`` (e.g.
    ``https://api.openai.com/v1``). ``POST`` to ``/v1/chat/completions``, ``/v1/completions``,
    ``/v1/embeddings`` and ``/v1/responses`` is recorded as a step of the session its headers
    name; a request without a session header starts a new session when ``auto_session_id``
    is on. ``backend`` (an object or a URL) becomes the process's default backend when the
    app starts; None keeps the configured one. Arguments left as None take their
    ``AGENTSESSION_*`` setting. Shutting the app down flushes what it recorded.
    """
    settings = get_settings()
    prefix = header_prefix or settings.header_prefix
    proxy = _Proxy(
        UpstreamURL(upstream),
        Recorder(
            header_prefix=prefix,
            auto_session_id=(
                settings.auto_session_id if auto_session_id is None else auto_session_id
            ),
            state_limit_bytes=settings.state_limit_bytes,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if backend is not None:
            set_default_backend(backend)
        client = new_upstream_client(
            connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
        )
        async with client:
            proxy.client = client
            try:
                yield
            finally:
                proxy.client = None
        # Off the event loop: a slow backend must not stall the last in-flight answers.
        await anyio.to_thread.run_sync(flush_all)

    return Starlette(
        routes=[
            Route("/healthz", _health, methods=["GET"]),
            Route("/v1/{rest:path}", proxy.handle, methods=_METHODS),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )


async def _health(request: Request) -> Response:
    """Readiness: the proxy answers (it does not ask the upstream)."""
    return _response(200, [_JSON], b'{"status":"ok"}')


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (an unknown path) in OpenAI's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    message = f"{request.method} {request.url.path}: {detail} (the proxy serves /v1/*)"
    code = "not_found" if status == 404 else f"http_{status}"
    return _response(status, [_JSON], error_body(message, "invalid_request_error", code))


def _gateway_failure(exc: Exception) -> tuple[int, str, bytes]:
    """Status, step error and OpenAI-shaped body for an upstream that did not answer."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        message = f"the upstream did not answer in time ({detail})"
        return 504, message, error_body(message, "upstream_error", "upstream_timeout")
    if isinstance(exc, httpx.ConnectError):
        message = f"the upstream could not be reached ({detail})"
        return 502, message, error_body(message, "upstream_error", "upstream_unavailable")
    message = f"the upstream connection failed ({detail})"
    return 502, message, error_body(message, "upstream_error", "upstream_connection_failed")


def _response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    response = Response(body, status)
    response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
    return response


class _Proxy:
    """Forwards one request upstream and records its step (the route's endpoint)."""

    def __init__(self, upstream: UpstreamURL, recorder: Recorder) -> None:
        self.upstream = upstream
        self.recorder = recorder
        self.client: httpx.AsyncClient | None = None
        self._session_prefixes = tuple(
            {f"{p}-".lower().encode() for p in (recorder.header_prefix, DEFAULT_HEADER_PREFIX)}
        )

    async def handle(self, request: Request) -> Response:
        rest: str = request.path_params["rest"]
        try:
            path = forwarded_path(rest, request.scope.get("raw_path"))
        except ValueError as exc:
            return _response(
                400, [_JSON], error_body(str(exc), "invalid_request_error", "bad_path")
            )
        endpoint = ENDPOINTS.get(rest) if request.method == "POST" else None
        client = self.client
        if client is None:
            raise RuntimeError("the proxy app was called outside its lifespan")
        body = await request.body()
        headers: list[tuple[bytes, bytes]] = request.scope["headers"]
        call = self.recorder.open(headers, endpoint, body)
        upstream_request = client.build_request(
            request.method,
            self.upstream.for_path(path, request.scope["query_string"]),
            headers=request_headers_for_upstream(headers, self._session_prefixes),
            content=body,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except Exception as exc:
            if not isinstance(exc, httpx.HTTPError):  # not the network's doing: log it once
                record_fault("proxy.forward", exc)
            return self._gateway_error(call, exc, stream=False)
        event_stream = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if endpoint is None or event_stream:
            scanner = None
            if call.step is not None and call.tracker is not None:
                policy = call.tracker.capture
                scanner = StreamScanner(capture=policy.enabled, capture_limit=policy.limit_bytes)
            return _RelayedStream(upstream, call, scanner, event_stream=event_stream)
        try:
            content = await upstream.aread()
        except httpx.HTTPError as exc:
            return self._gateway_error(call, exc, stream=False)
        finally:
            await upstream.aclose()
        capture_output = call.tracker is not None and call.tracker.capture.enabled
        outcome = outcome_from_body(content, upstream.status_code, capture=capture_output)
        call.finish(upstream.status_code, outcome, stream=False)
        relayed = response_headers_for_client(upstream.headers.raw)
        return _response(upstream.status_code, relayed + call.response_headers(), content)

    @staticmethod
    def _gateway_error(call: RecordedCall, exc: Exception, *, stream: bool) -> Response:
        status, message, body = _gateway_failure(exc)
        call.fail(message, status, stream=stream)
        return _response(status, [_JSON, *call.response_headers()], body)


class _RelayedStream(Response):
    """The upstream's body passed on chunk by chunk as it arrives, read on the way if recorded.

    The response starts with the first chunk, so an upstream that fails before it still gets
    the client a 502/504. A failure after it ends an event stream with an OpenAI ``error``
    event (which OpenAI clients raise); a client that leaves stops the upstream read at once.
    """

    def __init__(
        self,
        upstream: httpx.Response,
        call: RecordedCall,
        scanner: StreamScanner | None,
        *,
        event_stream: bool,
    ) -> None:
        self.status_code = upstream.status_code
        self.background = None
        self.raw_headers = response_headers_for_client(upstream.headers.raw)
        self.raw_headers += call.response_headers()
        self._upstream = upstream
        self._call = call
        self._scanner = scanner
        self._event_stream = event_stream
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        finished = False
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._cancel_on_disconnect, receive, tasks.cancel_scope)
                await self._relay(send)
                finished = True
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
            if not finished:
                # The client went away (or the server is stopping): not the upstream's fault.
                error = asyncio.CancelledError("the client disconnected before the end")
                self._call.fail(error, self.status_code, stream=True)

    @staticmethod
    async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        scope.cancel()

    async def _relay(self, send: Send) -> None:
        scanner = self._scanner
        try:
            async for chunk in self._upstream.aiter_bytes():
                if scanner is not None:
                    scanner.feed(chunk)
                if not self._started:
                    await self._start(send)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            await self._upstream_broke(send, exc)
            return
        if not self._started:
            await self._start(send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        outcome = scanner.finish() if scanner is not None else CallOutcome()
        self._call.finish(self.status_code, outcome, stream=True)

    async def _start(self, send: Send) -> None:
        self._started = True
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )

    async def _upstream_broke(self, send: Send, exc: httpx.HTTPError) -> None:
        status, message, body = _gateway_failure(exc)
        if not self._started:
            self._call.fail(message, status, stream=True)
            headers = [_JSON, *self._call.response_headers()]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if self._scanner is not None:
            outcome = self._scanner.finish()
            outcome.error = f"{message} after part of the stream"
            self._call.finish(self.status_code, outcome, stream=True)
        if not self._event_stream:
            raise exc  # a plain body cannot say it is cut short: closing the connection does
        await send({"type": "http.response.body", "body": b"data: " + body + b"\n\n"})
