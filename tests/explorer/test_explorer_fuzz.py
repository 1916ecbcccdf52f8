"""Hostile requests on every explorer endpoint, fuzzed: any query string, any path, any score
body gets a 4xx JSON error naming what was wrong (or a 200 where the input is valid), never a
500 or a 503. test_explorer_api.py fuzzes the list's query and session ids; this module covers
the other endpoints, crafted cursors, dates, limits and paths with encoded slashes and dots."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette", reason="the explorer extra is not installed")

from explorer_client import asgi_request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from agentsession import SQLiteBackend
from agentsession.explorer import create_explorer_app
from agentsession.explorer._params import LIST_PARAMETERS

_FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SESSION = "/api/sessions/s-004"
GET_ENDPOINTS = [
    "/api/sessions",
    SESSION,
    f"{SESSION}/timeline",
    f"{SESSION}/export",
    f"{SESSION}/scores",
    "/api/sessions/tricky%2Fid%201/timeline",
    "/api/sessions/no-such-session/export",
    "/openapi.json",
    "/",
    "/static/explorer.js",
]
ERROR_CODES = {"invalid_parameter", "not_found", "unknown_session", "method_not_allowed"}


@pytest.fixture(scope="module")
def app(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    """One explorer for every example, over a copy of the generated store (scores get posted)."""
    copy = tmp_path_factory.mktemp("explorer-fuzz") / "sessions.db"
    shutil.copy(store_path, copy)
    backend = SQLiteBackend(copy)
    yield create_explorer_app(backend)
    backend.close()


def assert_json_answer(status: int, headers: dict[bytes, bytes], body: bytes) -> Any:
    """A JSON body; an error one holds a known code and a message."""
    assert headers[b"content-type"].startswith(b"application/json"), (status, body)
    document = json.loads(body)
    if status >= 400:
        error = document["error"]
        assert error["code"] in ERROR_CODES | {"invalid_body", "invalid_score"}, error
        assert error["message"]
        if error["code"] == "invalid_parameter":
            assert "parameter" in error  # the name given, even "" for a query of "="
    return document


# -- query strings -------------------------------------------------------------------------------


def _cursor(moment: str, session_id: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([moment, session_id]).encode()).decode()


moments = st.one_of(
    st.builds(
        lambda moment, zone: moment.isoformat() + zone,
        st.datetimes(),
        st.sampled_from(["", "Z", "+00:00", "+05:30", "-23:59", "+24:00", "+00:00:01", "z"]),
    ),
    st.sampled_from(["2024-02-30", "0000-01-01", "9999-12-31T23:59:59-23:59", "nan", "now", ""]),
    st.text(max_size=30),
)
cursors = st.one_of(
    st.builds(
        _cursor,
        moments,
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["\ud800", "x" * 300, "s-004", "", None, 7, {"a": 1}, ["s"]]),
        ),
    ),
    st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    st.text(max_size=40),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(repr),
    st.sampled_from(["0x10", "1_0", " 5", "5.0", "\uff15", "\u0665", "1e999", "-0", "+3", ""]),
)
junk = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "x" * 5000, "%", "&", "=", "\ud7ff", "<script>", "../.."]),
)
parameter_values = {
    "limit": numbers,
    "min_score": numbers,
    "since": moments,
    "until": moments,
    "cursor": cursors,
    "status": st.sampled_from(["completed", "failed", "COMPLETED", "in_progress "]) | junk,
    "format": st.sampled_from(["json", "jsonl", "JSON", "csv"]) | junk,
}
parameter_names = st.sampled_from([*LIST_PARAMETERS, "format", "x", "", "limit[]", "\x00"])


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """Parameters (known, unknown, repeated) with hostile values, or raw and undecodable bytes."""
    kind = draw(st.sampled_from(["params", "raw", "encoded-junk"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "encoded-junk":
        pieces = st.sampled_from(["%ff", "%C0%80", "%ED%A0%80", "%00", "%", "%2", "%zz", "+", "&"])
        prefix = draw(parameter_names)
        return (quote(prefix) + "=" + "".join(draw(st.lists(pieces, max_size=8)))).encode()
    pairs = []
    for name in draw(st.lists(parameter_names, max_size=4)):
        value = draw(parameter_values.get(name, junk))
        pairs.append(f"{quote(name)}={quote(value, errors='surrogatepass')}")
    return "&".join(pairs).encode()


@_FUZZ
@example(endpoint="/api/sessions", query=f"cursor={_cursor('2024-05-01T12:00:00+00:00', 'x')}")
@example(  # a lone surrogate in a crafted cursor reached SQLite: a 503 "backend error"
    endpoint="/api/sessions",
    query=f"cursor={_cursor('2024-05-01T12:00:00+00:00', chr(0xD800))}".encode(),
)
@example(endpoint="/api/sessions", query=b"since=9999-12-31T23:59:59-23:59&limit=-1")
@example(endpoint="/api/sessions", query=b"limit=500&limit=500")
@example(endpoint=f"{SESSION}/export", query=b"format=%ff")
@example(endpoint=f"{SESSION}/timeline", query=b"%00=%00")
@given(endpoint=st.sampled_from(GET_ENDPOINTS), query=query_strings())
def test_any_query_string_on_any_endpoint_is_answered_without_a_server_error(
    app: Starlette, endpoint: str, query: bytes | str
) -> None:
    """Every GET endpoint, with any query string: 200, or 400 for a bad or unexpected parameter
    (404 for a session that does not exist), never a 5xx; the API answers JSON throughout."""
    raw_query = query.encode() if isinstance(query, str) else query
    status, headers, body = asgi_request(app, "GET", endpoint.encode(), raw_query)
    expected = {200, 400, 404} if "no-such" in endpoint else {200, 400}
    assert status in expected, (status, body[:300])
    if endpoint.startswith("/api") or endpoint == "/openapi.json":
        assert_json_answer(status, headers, body)


# -- paths ---------------------------------------------------------------------------------------

segments = st.sampled_from(
    [
        "s-004",
        "agent-run",
        ".",
        "..",
        "%2E",
        "%2e%2E",
        ".%20",
        "..%20",
        "%2F",
        "..%2F..%2Fetc%2Fpasswd",
        "%5C..%5C",
        "%00",
        "a%00b",
        "%ff",
        "%C0%AF",
        "%ED%A0%80",
        "%",
        "%2",
        "",
        "timeline",
        "export",
        "scores",
        "explorer.js",
        "x" * 300,
        "tricky%2Fid%201",
        "%252F",
    ]
)


@_FUZZ
@example(prefix="/static/", parts=["..%2F..%2Fetc%2Fpasswd"])
@example(prefix="/api/sessions/", parts=["%2e%2E", "timeline"])
@example(prefix="/api/sessions/", parts=["s-004", "%ff"])
@example(prefix="/api/sessions/", parts=["%ED%A0%80", "export"])
@given(
    prefix=st.sampled_from(["/api/sessions/", "/static/", "/", "/api/", "/openapi.json/"]),
    parts=st.lists(segments, max_size=4),
)
def test_any_path_is_answered_with_a_json_4xx_or_a_page(
    app: Starlette, prefix: str, parts: list[str]
) -> None:
    """Paths built of encoded slashes and dots, NUL, undecodable and over-long segments: 200 for
    a real resource, else 400, 404 or 405 with a JSON error (or a redirect dropping a trailing
    slash); never a 5xx."""
    raw = (prefix + "/".join(parts)).encode()
    status, headers, body = asgi_request(app, "GET", raw)
    if status == 307:  # Starlette's redirect of "/openapi.json/" to "/openapi.json"
        assert raw.startswith(b"/openapi.json/")
        assert headers[b"location"].startswith(b"http://127.0.0.1:3001/openapi.json")
        return
    assert status in (200, 400, 404, 405), (raw, status, body[:300])
    if status != 200 or raw.startswith(b"/api/"):
        assert_json_answer(status, headers, body)


# -- score bodies --------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["x" * 3000, "\x00", "<b>"]),
)
score_documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "name": json_leaves,
            "value": json_leaves,
            "comment": json_leaves,
            "source": json_leaves,
            "extra": json_leaves,
        },
    ),
    st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=5),
)
score_bodies = st.one_of(
    score_documents.map(lambda document: json.dumps(document).encode()),
    st.binary(max_size=100),
    st.sampled_from([b"", b"{", b'{"name":"q","value":NaN}', b"[" * 5000, b"{}" * 10_000]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(body=b'{"name":"quality","value":0.5}', query=b"", content_type=b"application/json")
@example(body=b'{"name":"q","value":NaN}', query=b"", content_type=b"application/json")
@example(body=b"{}" * 10_000, query=b"", content_type=b"application/json")
@given(
    body=score_bodies,
    query=st.sampled_from([b"", b"x=1", b"%ff"]),
    content_type=st.sampled_from(
        [b"application/json", b"application/json; charset=utf-8", b"text/plain", b"\xff"]
    ),
)
def test_any_score_post_is_stored_or_refused_with_a_json_4xx(
    app: Starlette, body: bytes, query: bytes, content_type: bytes
) -> None:
    """POST /api/sessions/<id>/scores with any body, content type and query: 201 with the score
    stored, or 400, 413, 415 or 422 with a JSON error; never a 5xx."""
    status, headers, answer = asgi_request(
        app,
        "POST",
        f"{SESSION}/scores".encode(),
        query,
        headers=[(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        body=body,
    )
    assert status in (201, 400, 413, 415, 422), (status, answer[:300])
    document = json.loads(answer)
    if status == 201:
        assert document["score"]["source"] == "explorer"
    else:
        error = document["error"]
        assert error["message"]
        assert headers[b"content-type"].startswith(b"application/json")
