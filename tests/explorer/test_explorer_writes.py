"""POST /api/sessions/{id}/scores: what is accepted, stored and answered, and every refusal."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the explorer extra is not installed")
pytest.importorskip("httpx", reason="the tests talk to the app through httpx")

from explorer_data import NESTED
from starlette.testclient import TestClient

from agentsession import MemoryBackend, SessionEvent, SQLiteBackend
from agentsession.explorer import create_explorer_app
from agentsession.explorer._app import BODY_MAX_BYTES


@pytest.fixture
def writable(store_path: Path, tmp_path: Path) -> Iterator[SQLiteBackend]:
    """A copy of the generated store that this test may write to."""
    path = tmp_path / "copy.db"
    shutil.copy(store_path, path)
    backend = SQLiteBackend(path)
    yield backend
    backend.close()


@pytest.fixture
def client(writable: SQLiteBackend) -> Iterator[TestClient]:
    with TestClient(create_explorer_app(writable), base_url="http://127.0.0.1") as test_client:
        yield test_client


def post(client: TestClient, body: Any, session_id: str = NESTED, **kwargs: Any) -> Any:
    return client.post(f"/api/sessions/{session_id}/scores", json=body, **kwargs)


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_posted_score_is_stored_and_listed(client: TestClient, writable: SQLiteBackend) -> None:
    """201 with the score as stored (source explorer); the session and its listing show it."""
    response = post(client, {"name": "quality", "value": 0.8, "comment": "good plan"})
    assert response.status_code == 201, response.text
    created = response.json()["score"]
    assert created["value"] == 0.8
    assert created["source"] == "explorer"
    assert created["comment"] == "good plan"
    summary = writable.get_session(NESTED)
    assert summary is not None
    assert [(s.name, s.value) for s in summary.scores] == [("quality", 0.8)]
    assert client.get(f"/api/sessions/{NESTED}").json()["scores"] == [created]
    assert client.get(f"/api/sessions/{NESTED}/scores").json() == {"scores": [created]}
    listed = client.get("/api/sessions", params={"score_name": "quality", "min_score": "0.8"})
    assert NESTED in [s["session_id"] for s in listed.json()["sessions"]]


def test_posting_the_same_name_again_edits_the_score(client: TestClient) -> None:
    """A second score of one name replaces the first: that is how the page edits a score."""
    post(client, {"name": "verdict", "value": "ok"})
    post(client, {"name": "verdict", "value": True, "comment": "checked"})
    scores = client.get(f"/api/sessions/{NESTED}/scores").json()["scores"]
    assert [(s["name"], s["value"], s["comment"]) for s in scores] == [("verdict", True, "checked")]


@pytest.mark.parametrize(
    ("body", "parameter", "says"),
    [
        ({"name": "n" * 101, "value": 1}, "name", "1 to 100 characters"),
        ({"name": "q", "value": "v" * 101}, "value", "got 101 characters"),
        ({"name": "q", "value": [1]}, "value", "value"),
        ({"name": "q", "value": {"a": 1}}, "value", "value"),
        ({"name": "q", "value": None}, "value", "value"),
        ({"name": "q"}, "value", "Field required"),
        ({"value": 1}, "name", "Field required"),
        ({"name": "q", "value": 1, "comment": "c" * 2001}, "comment", "2000"),
        ({"name": "q", "value": 1, "source": "me"}, "source", "Extra inputs"),
        ({"name": 5, "value": 1}, "name", "string"),
    ],
)
def test_a_score_breaking_a_rule_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], parameter: str, says: str
) -> None:
    """Each bad field gets a 422 naming it; nothing is stored."""
    error = error_of(post(client, body), 422)
    assert error["code"] == "invalid_score"
    assert error["parameter"] == parameter
    assert says in error["message"]
    assert client.get(f"/api/sessions/{NESTED}/scores").json() == {"scores": []}


def test_nan_in_the_body_is_refused(client: TestClient) -> None:
    """A NaN literal (which the JSON parser accepts) is not a finite number: 422."""
    response = client.post(
        f"/api/sessions/{NESTED}/scores",
        content=b'{"name": "q", "value": NaN}',
        headers={"content-type": "application/json"},
    )
    assert "finite" in error_of(response, 422)["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"name": "q", "value": 1}', "text/plain", 415, "unsupported_media_type"),
        (b"name=q&value=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{not json", "application/json", 400, "invalid_body"),
        (b"[1, 2]", "application/json", 400, "invalid_body"),
        (b"", "application/json", 400, "invalid_body"),
        (b" " * (BODY_MAX_BYTES + 1), "application/json", 413, "body_too_large"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    client: TestClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    """Other media types (a cross-site form among them), broken JSON and big bodies: refused."""
    response = client.post(
        f"/api/sessions/{NESTED}/scores", content=content, headers={"content-type": content_type}
    )
    assert error_of(response, status)["code"] == code


def test_scoring_an_unknown_session_is_a_404(client: TestClient) -> None:
    """Scores are given to recorded sessions only."""
    error = error_of(post(client, {"name": "q", "value": 1}, session_id="nobody-here"), 404)
    assert error["code"] == "unknown_session"


class _ReadOnly:
    """A reader that cannot write."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.list_sessions = inner.list_sessions
        self.get_session = inner.get_session
        self.list_steps = inner.list_steps


class _Forgetful(MemoryBackend):
    """Accepts writes of scores and keeps none of them."""

    def write(self, events: Sequence[SessionEvent]) -> None:
        super().write([e for e in events if type(e).__name__ != "Score"])


def test_a_read_only_backend_refuses_scores_with_405() -> None:
    """An explorer over a backend without a write side answers 405 to a score."""
    app = create_explorer_app(_ReadOnly(MemoryBackend()))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        error = error_of(post(client, {"name": "q", "value": 1}), 405)
    assert error["code"] == "method_not_allowed"


def test_a_score_the_backend_did_not_keep_is_a_503(writable: SQLiteBackend) -> None:
    """The score is read back after the write; if it is not there the answer says so."""
    backend = _Forgetful()
    backend.write(writable.list_steps(NESTED))
    with TestClient(create_explorer_app(backend), base_url="http://127.0.0.1") as client:
        assert error_of(post(client, {"name": "q", "value": 1}), 503)["code"] == "backend_error"
