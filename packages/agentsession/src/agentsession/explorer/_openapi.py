"""The explorer API's OpenAPI 3.1 document: paths written here, schemas from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from ._params import LIST_PARAMETERS
from ._schemas import (
    ErrorDocument,
    ScoreCreated,
    ScoreInput,
    ScoresDocument,
    SessionDocument,
    SessionList,
    TimelineDocument,
)

__all__ = ["openapi_document"]

_PARAMETER_TYPES: dict[str, dict[str, Any]] = {
    "status": {
        "type": "string",
        "enum": ["in_progress", "completed", "failed", "cancelled", "timed_out"],
    },
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    "min_score": {"type": "number"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _error(description: str) -> dict[str, Any]:
    return _json("ErrorDocument", description)


_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "the session id, percent-encoded (an id holding / is sent with %2F); "
    "the ids . and .. are sent as .%20 and ..%20, since URL parsers resolve dot segments",
    "schema": {"type": "string", "minLength": 1, "maxLength": 199},
}
_NOT_FOUND = _error("no session has this id")
_BAD_ID = _error("the session id breaks the id rule, or a query parameter was given")


def openapi_document(*, token_required: bool) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    _, schemas = models_json_schema(
        [
            (model, "serialization" if model is not ScoreInput else "validation")
            for model in (
                SessionList,
                SessionDocument,
                TimelineDocument,
                ScoresDocument,
                ScoreCreated,
                ScoreInput,
                ErrorDocument,
            )
        ],
        ref_template="#/components/schemas/{model}",
    )
    session_paths: dict[str, Any] = {
        "/api/sessions": {
            "get": {
                "summary": "Sessions, newest first, one page at a time",
                "operationId": "listSessions",
                "parameters": [
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": description,
                        "schema": _PARAMETER_TYPES.get(name, {"type": "string"}),
                    }
                    for name, description in LIST_PARAMETERS.items()
                ],
                "responses": {
                    "200": _json("SessionList", "one page of sessions"),
                    "400": _error("a parameter is unknown, repeated or breaks its rule"),
                },
            }
        },
        "/api/sessions/{session_id}": {
            "get": {
                "summary": "A session with all its steps and scores",
                "operationId": "getSession",
                "parameters": [_SESSION_ID],
                "responses": {
                    "200": _json("SessionDocument", "the session"),
                    "400": _BAD_ID,
                    "404": _NOT_FOUND,
                },
            }
        },
        "/api/sessions/{session_id}/timeline": {
            "get": {
                "summary": "A session's steps as a timeline, with state diffs and nesting",
                "operationId": "getTimeline",
                "parameters": [_SESSION_ID],
                "responses": {
                    "200": _json("TimelineDocument", "the timeline"),
                    "400": _BAD_ID,
                    "404": _NOT_FOUND,
                },
            }
        },
        "/api/sessions/{session_id}/export": {
            "get": {
                "summary": "A session as a JSON file or as JSON Lines (a session line, step lines)",
                "operationId": "exportSession",
                "parameters": [
                    _SESSION_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "jsonl"], "default": "json"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the session, as an attachment",
                        "content": {
                            "application/json": {"schema": _ref("SessionDocument")},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("bad format or session id"),
                    "404": _NOT_FOUND,
                },
            }
        },
        "/api/sessions/{session_id}/scores": {
            "get": {
                "summary": "A session's scores: the latest of each name",
                "operationId": "listScores",
                "parameters": [_SESSION_ID],
                "responses": {
                    "200": _json("ScoresDocument", "the scores"),
                    "400": _BAD_ID,
                    "404": _NOT_FOUND,
                },
            },
            "post": {
                "summary": "Score a session; a score with the same name is replaced",
                "operationId": "scoreSession",
                "parameters": [_SESSION_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ScoreInput")}},
                },
                "responses": {
                    "201": _json("ScoreCreated", "the score, as stored"),
                    "400": _error("the body is not a JSON object"),
                    "404": _NOT_FOUND,
                    "405": _error("the explorer's backend cannot store scores"),
                    "413": _error("the body is over 16 KiB"),
                    "415": _error("the body is not sent as application/json"),
                    "422": _error("a field breaks its rule (named in parameter)"),
                    "503": _error("the backend did not store the score"),
                },
            },
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "agentsession explorer",
            "version": "1",
            "description": "Find, replay and score recorded agent sessions.",
        },
        "paths": session_paths,
        "components": {"schemas": schemas["$defs"]},
    }
    if token_required:
        document["components"]["securitySchemes"] = {"token": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"token": []}]
    return document
