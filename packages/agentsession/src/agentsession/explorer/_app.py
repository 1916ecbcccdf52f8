"""The explorer's Starlette app: the JSON API under /api, the OpenAPI document and the web page."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from importlib.resources import files
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import from_json
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._errors import InvalidScoreError
from .._models import Score, SessionSummary
from .._scores import new_score
from .._worker import emitter_for
from ..backends._base import SessionReader, SessionWriter
from ._documents import export_jsonl, session_document, timeline_document
from ._guard import Guard, check_token
from ._openapi import openapi_document
from ._params import (
    ApiError,
    check_no_query,
    parse_export_format,
    parse_list_query,
    split_session_path,
)
from ._schemas import ScoreInput

__all__ = ["create_explorer_app"]

logger = logging.getLogger("agentsession.explorer")

BODY_MAX_BYTES = 16 * 1024
_SESSION_MARKER = b"/api/sessions/"
_WRITE_TIMEOUT_S = 10.0
_STATIC = {
    "explorer.css": "text/css; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
}
_T = TypeVar("_T")


def create_explorer_app(
    backend: SessionReader, *, token: str | None = None, allowed_hosts: Iterable[str] = ()
) -> Starlette:
    """The explorer of the sessions ``backend`` holds: the API, its OpenAPI and the web page.

    With ``token`` every request must carry it (``Authorization: Bearer <token>``, or the
    cookie the page's login form sets). Without one, only requests naming a loopback host
    (or one of ``allowed_hosts``) are answered: run it on 127.0.0.1. Scores can be written
    when ``backend`` is also a SessionWriter.
    """
    if not isinstance(backend, SessionReader):
        raise TypeError(f"{backend!r} cannot answer queries: the explorer needs a SessionReader")
    if token is not None:
        check_token(token)  # here, not on the first request: the middleware is built lazily
    api = _Api(backend, token_required=token is not None)
    routes = [
        Route("/", api.page),
        Route("/static/{name}", api.asset),
        Route("/openapi.json", api.openapi),
        Route("/api/sessions", api.list_sessions),
        Route("/api/sessions/{rest:path}", api.session_resource, methods=["GET", "POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, allowed_hosts=allowed_hosts)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )


def _json(body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store", **(headers or {})},
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json(json.dumps(exc.document()), exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    error = ApiError(exc.status_code, code, str(exc.detail))
    return _json(json.dumps(error.document()), exc.status_code, dict(exc.headers or {}))


class _Api:
    """The endpoints, around one backend."""

    def __init__(self, backend: SessionReader, *, token_required: bool) -> None:
        self.backend = backend
        static = files("agentsession.explorer") / "static"
        self.page_html = (static / "index.html").read_bytes()
        self.assets = {name: (static / name).read_bytes() for name in _STATIC}
        self.openapi_json = json.dumps(openapi_document(token_required=token_required))

    # -- the page ------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return Response(
            self.page_html,
            media_type="text/html; charset=utf-8",
            headers={"cache-control": "no-cache"},
        )

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            raise ApiError(404, "not_found", "no such file")
        return Response(
            self.assets[name], media_type=_STATIC[name], headers={"cache-control": "no-cache"}
        )

    async def openapi(self, request: Request) -> Response:
        return _json(self.openapi_json)

    # -- the API -------------------------------------------------------------------------------

    async def list_sessions(self, request: Request) -> Response:
        filters, limit, cursor = parse_list_query(request.query_params.multi_items())
        page = await self._read(lambda: self.backend.list_sessions(filters, limit, cursor))
        return _json(page.model_dump_json())

    async def session_resource(self, request: Request) -> Response:
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        rest = raw_path.split(b"?", 1)[0]
        rest = rest[rest.rfind(_SESSION_MARKER) + len(_SESSION_MARKER) :]
        session_id, sub = split_session_path(rest)
        query = request.query_params.multi_items()
        if request.method == "POST":
            if sub != "scores":
                raise ApiError(405, "method_not_allowed", "only scores can be posted")
            check_no_query(query)
            return await self._add_score(request, session_id)
        if sub == "export":
            export_format = parse_export_format(query)
        elif sub in (None, "timeline", "scores"):
            check_no_query(query)
        else:
            raise ApiError(404, "not_found", f"sessions have no {sub[:60]!r}")
        summary = await self._summary(session_id)
        if sub is None:
            return _json(await self._read(lambda: session_document(self.backend, summary)))
        if sub == "timeline":
            return _json(await self._read(lambda: timeline_document(self.backend, summary)))
        if sub == "scores":
            return _json(
                json.dumps({"scores": [s.model_dump(mode="json") for s in summary.scores]})
            )
        filename = "session-" + re.sub(r"[^A-Za-z0-9._-]", "_", session_id)
        if export_format == "jsonl":
            body = await self._read(lambda: export_jsonl(self.backend, summary))
            media_type, filename = "application/x-ndjson", filename + ".jsonl"
        else:
            body = await self._read(lambda: session_document(self.backend, summary))
            media_type, filename = "application/json", filename + ".json"
        return Response(
            body,
            media_type=media_type,
            headers={
                "content-disposition": f'attachment; filename="{filename}"',
                "cache-control": "no-store",
            },
        )

    async def _summary(self, session_id: str) -> SessionSummary:
        summary = await self._read(lambda: self.backend.get_session(session_id))
        if summary is None:
            raise ApiError(
                404,
                "unknown_session",
                f"no session with id {session_id[:60]!r}",
                parameter="session_id",
            )
        return summary

    async def _read(self, query: Callable[[], _T]) -> _T:
        """Run a backend query off the event loop; its failure is a 503, never a 500."""
        try:
            return await run_in_threadpool(query)
        except ApiError:
            raise
        except Exception as exc:
            logger.warning("agentsession explorer: the backend failed: %r", exc)
            raise ApiError(
                503,
                "backend_error",
                f"the backend could not answer: {type(exc).__name__}: {str(exc)[:200]}",
            ) from exc

    async def _add_score(self, request: Request, session_id: str) -> Response:
        backend = self.backend
        if not isinstance(backend, SessionWriter):
            raise ApiError(405, "method_not_allowed", "this explorer's backend is read-only")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            # Also what keeps another site's page from posting a plain form here.
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the score as application/json, got {content_type[:60]!r}",
            )
        fields = _score_fields(await _read_body(request))
        try:
            score = new_score(
                session_id,
                fields.name,
                fields.value,
                fields.comment,
                source="explorer",
            )
        except InvalidScoreError as exc:
            raise ApiError(422, "invalid_score", str(exc), parameter=exc.field) from None
        await self._summary(session_id)
        stored = await self._read(lambda: _write_score(backend, score))
        if stored is None:
            raise ApiError(503, "backend_error", "the backend did not store the score")
        return _json(json.dumps({"score": stored.model_dump(mode="json")}), 201)


def _write_score(backend: SessionWriter, score: Score) -> Score | None:
    """Write through the backend's writer (never beside it) and read the score back."""
    emitter = emitter_for(backend)
    emitter.emit(score)
    if not emitter.flush(_WRITE_TIMEOUT_S):
        return None
    assert isinstance(backend, SessionReader)
    summary = backend.get_session(score.session_id)
    if summary is None:
        return None
    return next((s for s in summary.scores if s == score), None)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > BODY_MAX_BYTES:
        raise _too_large(int(declared))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_MAX_BYTES:
            raise _too_large(len(body))
    return body


def _too_large(size: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"the body must be at most {BODY_MAX_BYTES} bytes, got {size}"
    )


def _score_fields(body: bytes) -> ScoreInput:
    try:
        document: Any = from_json(body)
    except ValueError as exc:
        raise ApiError(400, "invalid_body", f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    try:
        return ScoreInput.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise ApiError(
            422, "invalid_score", f"{field}: {error['msg']}", parameter=field.split(".")[0]
        ) from None
