"""Session scores: the rules of a score, tracker.score and score_session through the writer,
latest-wins storage in every backend, the score filters, and the SQLite upgrade from v1."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from explorer_data import T0, at, step

import agentsession
from agentsession import (
    InvalidScoreError,
    JsonlBackend,
    MemoryBackend,
    Score,
    SessionFilter,
    SessionTracker,
    SQLiteBackend,
    score_session,
)
from agentsession.backends._base import Backend
from agentsession.backends._sqlite_schema import MIGRATIONS

BackendFactory = Callable[[Path], Backend]
BACKENDS: dict[str, BackendFactory] = {
    "memory": lambda path: MemoryBackend(),
    "jsonl": lambda path: JsonlBackend(path / "sessions.jsonl"),
    "sqlite": lambda path: SQLiteBackend(path / "sessions.db"),
}


@pytest.fixture(params=list(BACKENDS))
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each built-in backend in turn, on a fresh store."""
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


def score(name: str, value: float | bool | str, seconds: float, **fields: object) -> Score:
    return Score(session_id="s-1", name=name, value=value, created_at=at(seconds), **fields)  # type: ignore[arg-type]


# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "comment", "field", "says"),
    [
        ("", 1.0, None, "name", "got 0 characters"),
        ("   ", 1.0, None, "name", "not blank"),
        ("n" * 101, 1.0, None, "name", "1 to 100 characters and not blank, got 101"),
        ("ok", "", None, "value", "label of 1 to 100 characters, got 0"),
        ("ok", "v" * 101, None, "value", "got 101 characters"),
        ("ok", float("nan"), None, "value", "finite"),
        ("ok", float("inf"), None, "value", "finite"),
        ("ok", 10**400, None, "value", "finite number, got an integer of 1329 bits"),
        ("ok", [1], None, "value", "got list"),
        ("ok", None, None, "value", "got NoneType"),
        ("ok", 1.0, "c" * 2001, "comment", "at most 2000 characters, got 2001"),
    ],
)
def test_a_score_breaking_a_rule_is_refused_naming_the_field(
    name: str, value: object, comment: str | None, field: str, says: str
) -> None:
    """score_session raises InvalidScoreError naming the field, the limit and the size given."""
    with pytest.raises(InvalidScoreError, match=says) as caught:
        score_session("s-1", name, value, comment)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert f"score {field}" in str(caught.value)


def test_values_keep_their_kind() -> None:
    """A bool stays a bool, an int becomes a float, a str is a label."""
    assert score_session("s-1", "pass", True).value is True
    assert score_session("s-1", "n", 3).value == 3.0
    assert isinstance(score_session("s-1", "n", 3).value, float)
    assert score_session("s-1", "label", "1.5").value == "1.5"


def test_min_score_must_be_finite() -> None:
    """SessionFilter refuses a NaN or infinite min_score."""
    with pytest.raises(ValueError, match="min_score"):
        SessionFilter(min_score=float("nan"))


# -- recording ----------------------------------------------------------------------------------


def test_tracker_score_goes_through_the_writer_also_after_the_end(
    isolated: MemoryBackend,
) -> None:
    """tracker.score queues a Score event (none is written before a flush), even after end()."""
    with SessionTracker(user_id="u") as session:
        pass
    recorded = session.score("helpful", True, "clear answer")
    session.score("quality", 0.5)
    assert recorded.session_id == session.session_id
    assert recorded.comment == "clear answer"
    assert agentsession.flush(5.0)
    summary = isolated.get_session(session.session_id)
    assert summary is not None
    assert [(s.name, s.value) for s in summary.scores] == [("helpful", True), ("quality", 0.5)]
    assert summary.status == "completed"


def test_a_tracker_scored_before_anything_else_starts_its_session(
    isolated: MemoryBackend,
) -> None:
    """Scoring a tracker never started records its start first."""
    session = SessionTracker(user_id="u")
    session.score("quality", 1)
    assert agentsession.flush(5.0)
    summary = isolated.get_session(session.session_id)
    assert summary is not None
    assert summary.user_ids == ["u"]


def test_a_bad_tracker_score_raises_and_records_nothing(isolated: MemoryBackend) -> None:
    """An invalid score raises on the caller's thread; nothing reaches the backend."""
    session = SessionTracker()
    with pytest.raises(InvalidScoreError):
        session.score("x" * 500, 1)
    assert agentsession.flush(5.0)
    assert isolated.events == []


def test_score_session_writes_to_the_default_backend(isolated: MemoryBackend) -> None:
    """Without a backend, score_session goes to the default one, like a tracker."""
    score_session("conv-1", "resolved", False, source="eval")
    assert agentsession.flush(5.0)
    summary = isolated.get_session("conv-1")
    assert summary is not None
    assert summary.scores[0].value is False
    assert summary.scores[0].source == "eval"


def test_score_session_writes_to_a_backend_object(tmp_path: Path) -> None:
    """A backend object gets the score through its own background writer."""
    backend = SQLiteBackend(tmp_path / "s.db")
    backend.write([step("s-1", 0, T0)])
    score_session("s-1", "quality", 0.75, backend=backend)
    assert agentsession.flush(5.0)
    summary = backend.get_session("s-1")
    assert summary is not None
    assert summary.scores[0].value == 0.75
    backend.close()


def test_score_session_with_a_url_has_written_when_it_returns(tmp_path: Path) -> None:
    """A backend URL is opened, written and closed within the call: a reader sees the score."""
    path = tmp_path / "s.db"
    SQLiteBackend(path).close()
    score_session("s-1", "quality", "great", "by hand", backend=f"sqlite:///{path}")
    reader = SQLiteBackend(path)
    summary = reader.get_session("s-1")
    reader.close()
    assert summary is not None
    assert [(s.name, s.value, s.comment) for s in summary.scores] == [
        ("quality", "great", "by hand")
    ]


# -- storage ------------------------------------------------------------------------------------


def test_every_backend_keeps_the_latest_score_of_each_name(any_backend: Backend) -> None:
    """Per name the later created_at wins, whatever order writes arrive in; sorted by name."""
    any_backend.write([step("s-1", 0, T0), score("quality", 0.2, 10), score("b", True, 5)])
    any_backend.write([score("quality", 0.9, 30), score("quality", 0.5, 20)])
    any_backend.write([score("a", "good", 1, comment="fine", source="explorer")])
    summary = any_backend.get_session("s-1")
    assert summary is not None
    assert [(s.name, s.value) for s in summary.scores] == [
        ("a", "good"),
        ("b", True),
        ("quality", 0.9),
    ]
    assert summary.scores[0] == score("a", "good", 1, comment="fine", source="explorer")
    assert summary.total_steps == 1
    assert summary.last_activity_at == at(0.5)  # a score is no activity of the session


def test_an_equal_time_score_written_later_replaces_the_earlier(any_backend: Backend) -> None:
    """Two scores of one name at the same instant: the one written last is kept."""
    any_backend.write([score("q", 1.0, 5)])
    any_backend.write([score("q", 2.0, 5)])
    summary = any_backend.get_session("s-1")
    assert summary is not None
    assert [s.value for s in summary.scores] == [2.0]


def test_a_score_of_an_unknown_session_creates_its_record(any_backend: Backend) -> None:
    """Like a step, the first event of a session creates it; it starts at the score's time."""
    any_backend.write([score("q", 1.0, 42)])
    summary = any_backend.get_session("s-1")
    assert summary is not None
    assert summary.started_at == at(42)
    assert summary.total_steps == 0


def test_every_backend_filters_by_score(any_backend: Backend) -> None:
    """score_name and min_score select sessions by their scores; labels never pass min_score."""
    events = []
    for n, value in enumerate([0.1, 0.8, True, False, "great"]):
        events.append(step(f"s-{n}", 0, at(n)))
        events.append(
            Score(session_id=f"s-{n}", name="q" if n < 4 else "label", value=value, created_at=T0)
        )
    any_backend.write(events)

    def selected(**filters: object) -> list[str]:
        page = any_backend.list_sessions(SessionFilter.model_validate(filters), limit=50)
        return sorted(s.session_id for s in page.sessions)

    assert selected(score_name="q") == ["s-0", "s-1", "s-2", "s-3"]
    assert selected(score_name="q", min_score=0.5) == ["s-1", "s-2"]
    assert selected(min_score=0) == ["s-0", "s-1", "s-2", "s-3"]
    assert selected(score_name="label") == ["s-4"]
    assert selected(score_name="label", min_score=-1e300) == []


def test_jsonl_keeps_scores_across_reopening(tmp_path: Path) -> None:
    """Scores are lines of the file; another backend on the file reads them back."""
    path = tmp_path / "s.jsonl"
    first = JsonlBackend(path)
    first.write([step("s-1", 0, T0), score("quality", 0.5, 1), score("quality", 0.7, 2)])
    first.close()
    assert '"type":"score"' in path.read_text()
    summary = JsonlBackend(path).get_session("s-1")
    assert summary is not None
    assert [s.value for s in summary.scores] == [0.7]


def test_a_version_1_sqlite_file_upgrades_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file made by the schema before scores opens at version 2 with its data, once."""
    path = tmp_path / "v1.db"
    with monkeypatch.context() as patch:
        patch.setattr("agentsession.backends._sqlite_schema.MIGRATIONS", MIGRATIONS[:1])
        old = SQLiteBackend(path)  # reads of this version's code would look for scores
        assert old.schema_version == 1
        events = [step("s-1", 0, T0), step("s-1", 1, T0 + timedelta(seconds=1))]
        old.write(events)
        old.close()
    expected = MemoryBackend()
    expected.write(events)
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "session_scores" not in tables

    upgraded = SQLiteBackend(path)
    try:
        assert upgraded.schema_version == len(MIGRATIONS) == 2
        assert upgraded.get_session("s-1") == expected.get_session("s-1")
        assert upgraded.list_steps("s-1") == events
        upgraded.write([score("quality", 0.5, 3)])
        summary = upgraded.get_session("s-1")
        assert summary is not None
        assert [s.value for s in summary.scores] == [0.5]
    finally:
        upgraded.close()
    again = SQLiteBackend(path)  # a second open finds nothing to do
    assert again.schema_version == 2
    again.close()
