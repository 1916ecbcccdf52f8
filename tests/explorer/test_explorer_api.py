"""The explorer's JSON API over a real SQLite store: listing, filters, paging, a session, its
timeline and export, the OpenAPI document, and a 400 (never a 500) for any bad input."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette", reason="the explorer extra is not installed")
pytest.importorskip("httpx", reason="the tests talk to the app through httpx")

from explorer_client import ServerThread, asgi_request
from explorer_data import (
    DOT_IDS,
    NESTED,
    STATES,
    TRICKY,
    hostile_sessions,
    listed_sessions,
    nested_session,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agentsession import MemoryBackend, SessionFilter, SQLiteBackend
from agentsession.explorer import create_explorer_app
from agentsession.explorer._params import LIST_PARAMETERS
from agentsession.explorer._schemas import SessionDocument, SessionList, TimelineDocument

TRACEFORGE_KEYS = {
    "step",
    "trace_id",
    "parent_trace_id",
    "timestamp",
    "model",
    "duration_ms",
    "tokens",
    "status",
    "state_snapshot",
}


@pytest.fixture
def client(store: SQLiteBackend) -> Iterator[TestClient]:
    """The explorer of the generated store, addressed as http://127.0.0.1."""
    with TestClient(create_explorer_app(store), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_app(store_path: Path) -> Iterator[Any]:
    """One app over the generated store for all examples of a hypothesis test."""
    backend = SQLiteBackend(store_path)
    yield create_explorer_app(backend)
    backend.close()


@pytest.fixture(scope="module")
def memory() -> MemoryBackend:
    """The generated sessions in a MemoryBackend: what every listing must agree with."""
    backend = MemoryBackend()
    backend.write([*listed_sessions(), *nested_session()])
    return backend


def ids(page: dict[str, Any]) -> list[str]:
    return [session["session_id"] for session in page["sessions"]]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


# -- listing ------------------------------------------------------------------------------------


def test_list_is_newest_first_with_total_and_cursor(client: TestClient) -> None:
    """The default page holds 50 of the 62 sessions, newest first, and a cursor to the rest."""
    page = client.get("/api/sessions").json()
    SessionList.model_validate(page)
    assert page["total"] == 62
    assert len(page["sessions"]) == 50
    starts = [(s["started_at"], s["session_id"]) for s in page["sessions"]]
    assert starts == sorted(starts, reverse=True)
    assert page["next_cursor"] is not None


def test_following_cursors_visits_every_session_once(client: TestClient) -> None:
    """Pages of 7 chained by next_cursor list all 62 sessions once, in order, then stop."""
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        query = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/sessions", params=query).json()
        assert page["total"] == 62
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 62
    assert seen == ids(client.get("/api/sessions", params={"limit": "100"}).json())


FILTERS: list[dict[str, str]] = [
    {"user_id": "u1"},
    {"status": "in_progress"},
    {"status": "failed"},
    {"status": "completed"},
    {"tag": "travel"},
    {"since": "2024-05-01T12:30:00Z"},
    {"until": "2024-05-01T12:10:00+00:00"},
    {"since": "2024-05-01T12:10", "until": "2024-05-01T13:00:00.5Z"},
    {"q": "s-01"},
    {"q": "tricky/"},
    {"score_name": "quality"},
    {"score_name": "resolved", "min_score": "1"},
    {"min_score": "0.3"},
    {"score_name": "quality", "min_score": "0.2", "user_id": "u0"},
    {"user_id": "nobody"},
    {"user_id": "", "status": ""},
]


@pytest.mark.parametrize("query", FILTERS, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_each_filter_answers_as_the_backend_does(
    client: TestClient, memory: MemoryBackend, query: dict[str, str]
) -> None:
    """Every filter (empty values count as not given) selects what MemoryBackend selects."""
    page = client.get("/api/sessions", params={**query, "limit": "500"}).json()
    given = {name: value for name, value in query.items() if value}
    if "since" in given and not given["since"].endswith("Z"):
        given["since"] += "+00:00"
    expected = memory.list_sessions(SessionFilter.model_validate(given), limit=500)
    assert ids(page) == [s.session_id for s in expected.sessions]
    assert page["total"] == expected.total


def test_filters_select_what_they_say(client: TestClient) -> None:
    """Spot checks by hand: user, status, tag, prefix and score filters hold for every row."""
    by_user = client.get("/api/sessions", params={"user_id": "u1", "limit": "500"}).json()
    assert by_user["total"] == 20
    assert all("u1" in s["user_ids"] for s in by_user["sessions"])
    failed = client.get("/api/sessions", params={"status": "failed"}).json()
    assert ids(failed) == ["s-007"]
    resolved = client.get("/api/sessions", params={"score_name": "resolved", "min_score": "1"})
    assert sorted(ids(resolved.json())) == [f"s-{n:03d}" for n in range(0, 60, 8)]
    prefix = client.get("/api/sessions", params={"q": "s-05"}).json()
    assert sorted(ids(prefix)) == [f"s-05{n}" for n in range(10)]


BAD_QUERIES: list[tuple[str, str]] = [
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("limit=1.5", "limit"),
    ("limit=99999999999999999999", "limit"),
    ("status=done", "status"),
    ("since=yesterday", "since"),
    ("until=2024-13-01", "until"),
    ("since=0001-01-01T00:00:00%2B01:00", "since"),
    ("since=2024-05-02&until=2024-05-01", "until"),
    ("cursor=not-a-cursor", "cursor"),
    ("min_score=nan", "min_score"),
    ("min_score=inf", "min_score"),
    ("min_score=1e999", "min_score"),
    ("min_score=high", "min_score"),
    ("color=red", "color"),
    ("limit=5&limit=6", "limit"),
    ("user_id=" + "x" * 1001, "user_id"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD_QUERIES)
def test_bad_parameters_get_a_400_naming_them(
    client: TestClient, query: str, parameter: str
) -> None:
    """Each bad parameter gets a 400 whose error names the parameter and quotes the value."""
    error = error_of(client.get("/api/sessions?" + query), 400)
    assert error["code"] == "invalid_parameter"
    assert error["parameter"] == parameter
    assert parameter in error["message"]


def test_a_cursor_with_a_time_without_zone_is_refused(client: TestClient) -> None:
    """A crafted cursor whose time has no zone is a 400, not a comparison error."""
    import base64

    crafted = base64.urlsafe_b64encode(b'["2024-05-01T12:00:00", "s-001"]').decode()
    error = error_of(client.get("/api/sessions", params={"cursor": crafted}), 400)
    assert error["parameter"] == "cursor"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.tuples(
                st.sampled_from([*LIST_PARAMETERS, "x", "", "limit[]", "%00"]),
                st.text(max_size=40),
            ),
            max_size=6,
        ).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()),
    )
)
def test_any_query_string_gets_200_or_400_never_500(shared_app: Any, query: bytes) -> None:
    """Random bytes or random parameters in the list's query string answer 200 or a 400 JSON."""
    app = shared_app
    status, _headers, body = asgi_request(app, "GET", b"/api/sessions", query)
    assert status in (200, 400), body
    document = json.loads(body)
    if status == 400:
        assert document["error"]["code"] == "invalid_parameter"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    session_id=st.text(max_size=210),
    sub=st.sampled_from(["", "/timeline", "/export", "/scores", "/nope", "/x/y"]),
)
def test_any_session_path_gets_a_json_answer_never_500(
    shared_app: Any, session_id: str, sub: str
) -> None:
    """Any session id (encoded) under any sub-path answers 200, 400 or 404 with JSON."""
    app = shared_app
    raw = ("/api/sessions/" + quote(session_id, safe="") + sub).encode()
    status, _, body = asgi_request(app, "GET", raw)
    assert status in (200, 400, 404), body
    json.loads(body)


# -- one session --------------------------------------------------------------------------------


def test_a_session_comes_with_its_steps_and_scores(
    client: TestClient, store: SQLiteBackend
) -> None:
    """GET /api/sessions/{id} holds the summary, every step as stored and the scores."""
    document = client.get(f"/api/sessions/{NESTED}").json()
    SessionDocument.model_validate(document)
    summary = store.get_session(NESTED)
    assert summary is not None
    assert document["session"] == summary.model_dump(mode="json")
    assert document["steps"] == [s.model_dump(mode="json") for s in store.list_steps(NESTED)]
    assert document["scores"] == []
    scored = client.get("/api/sessions/s-004").json()
    assert [(s["name"], s["value"]) for s in scored["scores"]] == [
        ("quality", 0.04),
        ("resolved", False),
    ]


def test_an_unknown_session_is_a_404_json_error(client: TestClient) -> None:
    """Every session endpoint answers 404 with code unknown_session for an id never recorded."""
    for path in ("", "/timeline", "/export", "/scores"):
        error = error_of(client.get(f"/api/sessions/no-such-session{path}"), 404)
        assert error["code"] == "unknown_session"
        assert error["parameter"] == "session_id"


@pytest.mark.parametrize(
    ("raw_id", "why"),
    [("x" * 200, "199"), ("caf%C3%A9", "US-ASCII"), ("%FF", "US-ASCII"), ("", "empty")],
)
def test_an_id_breaking_the_rule_is_a_400(client: TestClient, raw_id: str, why: str) -> None:
    """Too long, non-ASCII, undecodable or empty ids get a 400 naming session_id."""
    error = error_of(client.get(f"/api/sessions/{raw_id}/timeline"), 400)
    assert error["parameter"] == "session_id"
    assert why in error["message"]


def test_an_id_holding_a_slash_is_reached_percent_encoded(client: TestClient) -> None:
    """``tricky/id 1`` is found as tricky%2Fid%201; an unencoded slash is another path."""
    encoded = quote(TRICKY, safe="")
    assert client.get(f"/api/sessions/{encoded}").json()["session"]["session_id"] == TRICKY
    assert client.get(f"/api/sessions/{encoded}/timeline").status_code == 200
    assert client.get(f"/api/sessions/{encoded}/export").status_code == 200
    assert client.get("/api/sessions/tricky/id%201").status_code == 404


def test_the_ids_dot_and_dot_dot_are_reached_as_the_page_sends_them() -> None:
    """ "." and ".." travel as .%20 and ..%20 (browsers resolve even %2E%2E); %2E%2E works too."""
    backend = MemoryBackend()
    backend.write(hostile_sessions())
    app = create_explorer_app(backend)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for session_id in DOT_IDS:
            for sub in ("", "/timeline", "/scores", "/export"):
                response = client.get(f"/api/sessions/{session_id}%20{sub}")
                assert response.status_code == 200, (session_id, sub, response.text)
            document = client.get(f"/api/sessions/{session_id}%20").json()
            assert document["session"]["session_id"] == session_id
    for raw_id, session_id in ((b"%2E", "."), (b"%2e%2E", ".."), (b".%2E", "..")):
        status, _, body = asgi_request(app, "GET", b"/api/sessions/" + raw_id + b"/timeline")
        assert status == 200
        assert json.loads(body)["session"]["session_id"] == session_id
    status, _, _ = asgi_request(app, "GET", b"/api/sessions/x%20/timeline")
    assert status == 400  # only "." and ".." are spelled with a space


def test_unknown_sub_resources_methods_and_query_parameters_are_refused(
    client: TestClient,
) -> None:
    """An unknown sub-path is a 404, POST where only GET is a 405, a stray parameter a 400."""
    assert error_of(client.get(f"/api/sessions/{NESTED}/steps"), 404)["code"] == "not_found"
    assert error_of(client.post("/api/sessions"), 405)["code"] == "method_not_allowed"
    assert error_of(client.post(f"/api/sessions/{NESTED}/timeline"), 405)
    assert error_of(client.get(f"/api/sessions/{NESTED}/timeline?step=1"), 400)["parameter"] == (
        "step"
    )
    assert error_of(client.get("/nothing-here"), 404)["code"] == "not_found"


# -- the timeline -------------------------------------------------------------------------------


def test_timeline_entries_hold_traceforge_fields_and_more(client: TestClient) -> None:
    """Each entry has TraceForge's keys plus state_diff, parent_step, depth and the step's data."""
    document = client.get(f"/api/sessions/{NESTED}/timeline").json()
    TimelineDocument.model_validate(document)
    entries = document["timeline"]
    assert [e["step"] for e in entries] == [0, 1, 2, 3, 4, 5]
    for entry in entries:
        assert entry.keys() >= TRACEFORGE_KEYS | {"state_diff", "parent_step", "depth"}
    assert entries[2]["tool_calls"][0]["name"] == "search_flights"
    assert entries[4]["error"] == "RateLimitError: slow down"
    assert entries[4]["status"] == "failed"
    assert entries[1]["timestamp"] == "2024-05-01T13:00:02Z"
    assert entries[0]["tokens"] == 120
    assert [e["state_snapshot"] for e in entries] == STATES


def test_timeline_nests_steps_under_their_parents(client: TestClient) -> None:
    """Steps 2 and 3 sit under 1, 4 under 3: parent_step, depth and tree_order say so."""
    document = client.get(f"/api/sessions/{NESTED}/timeline").json()
    entries = {e["step"]: e for e in document["timeline"]}
    assert {i: e["parent_step"] for i, e in entries.items()} == {
        0: None,
        1: None,
        2: 1,
        3: 1,
        4: 3,
        5: None,
    }
    assert {i: e["depth"] for i, e in entries.items()} == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 0}
    assert document["tree_order"] == [0, 1, 2, 3, 4, 5]


def test_timeline_state_diffs_compare_each_step_with_the_one_before(client: TestClient) -> None:
    """Keys added, changed and removed since the previous step, the first against {}."""
    document = client.get(f"/api/sessions/{NESTED}/timeline").json()
    diffs = [e["state_diff"] for e in document["timeline"]]
    assert diffs == [
        {"added": ["query"], "changed": [], "removed": []},
        {"added": ["plan"], "changed": [], "removed": []},
        {"added": ["results"], "changed": [], "removed": []},
        {"added": [], "changed": ["results"], "removed": ["plan"]},
        {"added": [], "changed": [], "removed": []},
        {"added": ["booking"], "changed": [], "removed": []},
    ]


def test_the_timeline_of_any_backend_is_the_same_document(
    client: TestClient, memory: MemoryBackend
) -> None:
    """SQLite's JSON-text fast path and the model path of MemoryBackend give equal timelines."""
    with TestClient(create_explorer_app(memory), base_url="http://127.0.0.1") as other:
        for session_id in (NESTED, quote(TRICKY, safe=""), "s-007"):
            for path in ("", "/timeline", "/export?format=jsonl"):
                url = f"/api/sessions/{session_id}{path}"
                assert client.get(url).text.splitlines() != []
                if path.endswith("jsonl"):
                    ours = [json.loads(line) for line in client.get(url).text.splitlines()]
                    theirs = [json.loads(line) for line in other.get(url).text.splitlines()]
                else:
                    ours, theirs = client.get(url).json(), other.get(url).json()
                assert ours == theirs, url


# -- export -------------------------------------------------------------------------------------


def test_export_json_is_an_attachment_of_the_session_document(client: TestClient) -> None:
    """format=json (the default) is the session document, served as a download."""
    response = client.get(f"/api/sessions/{NESTED}/export")
    assert (
        response.headers["content-disposition"] == f'attachment; filename="session-{NESTED}.json"'
    )
    assert response.json() == client.get(f"/api/sessions/{NESTED}").json()
    tricky = client.get(f"/api/sessions/{quote(TRICKY, safe='')}/export?format=json")
    assert 'filename="session-tricky_id_1.json"' in tricky.headers["content-disposition"]


def test_export_jsonl_is_a_session_line_then_a_line_per_step(client: TestClient) -> None:
    """format=jsonl: the session line (with its scores), then each step, each with a type."""
    response = client.get(f"/api/sessions/{NESTED}/export", params={"format": "jsonl"})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["type"] for line in lines] == ["session"] + ["step"] * 6
    assert lines[0]["session_id"] == NESTED
    assert [line["step_index"] for line in lines[1:]] == list(range(6))


def test_export_refuses_an_unknown_format(client: TestClient) -> None:
    """Only json and jsonl are formats."""
    error = error_of(client.get(f"/api/sessions/{NESTED}/export?format=xml"), 400)
    assert error["parameter"] == "format"


# -- OpenAPI, the page, headers, failures -------------------------------------------------------


def test_openapi_document_describes_every_endpoint(client: TestClient) -> None:
    """/openapi.json is OpenAPI 3.1 with every path, every list parameter and resolvable refs."""
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/timeline",
        "/api/sessions/{session_id}/export",
        "/api/sessions/{session_id}/scores",
    }
    listed = document["paths"]["/api/sessions"]["get"]["parameters"]
    assert [p["name"] for p in listed] == list(LIST_PARAMETERS)
    schemas = document["components"]["schemas"]
    refs = set(_refs(document))
    assert refs
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(schemas)
    assert "TimelineEntry" in schemas
    assert "ScoreInput" in schemas


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.mark.parametrize(
    "sink",
    ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function("],
)
def test_the_page_script_has_no_way_to_run_text_as_html_or_code(sink: str) -> None:
    """explorer.js builds the page with DOM calls only: no HTML or code sink, even in a comment."""
    script = (files("agentsession.explorer") / "static" / "explorer.js").read_text("utf-8")
    assert sink not in script


def test_the_page_and_its_assets_are_served_from_the_package(client: TestClient) -> None:
    """/ is the HTML page; its CSS and JS come from /static; nothing else is served there."""
    page = client.get("/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'src="static/explorer.js"' in page.text
    assert 'href="static/explorer.css"' in page.text
    assert client.get("/static/explorer.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/explorer.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/..%2F_app.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    """The CSP allows only this origin's scripts and styles; errors carry it too."""
    for path in ("/", "/api/sessions", "/api/sessions?limit=0", "/missing"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


class _BrokenReader(MemoryBackend):
    def list_sessions(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")


def test_a_backend_that_fails_is_a_503_not_a_500() -> None:
    """A read that raises answers 503 with the error's type and message."""
    with TestClient(create_explorer_app(_BrokenReader()), base_url="http://127.0.0.1") as client:
        error = error_of(client.get("/api/sessions"), 503)
    assert error["code"] == "backend_error"
    assert "OSError: disk on fire" in error["message"]


def test_a_real_server_answers_raw_hostile_requests_with_400(store: SQLiteBackend) -> None:
    """Over a real socket, undecodable bytes in the query get a 400 JSON answer, not a 500."""
    with ServerThread(create_explorer_app(store)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                b"GET /api/sessions?%ff%fe=%00&limit=%C0%80 HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert json.loads(body)["error"]["code"] == "invalid_parameter"
        import httpx

        listed = httpx.get(server.url + "/api/sessions?limit=3", timeout=10)
        assert listed.status_code == 200
        assert len(listed.json()["sessions"]) == 3
