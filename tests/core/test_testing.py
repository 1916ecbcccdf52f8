"""agentsession.testing: capture_steps, isolated and FailingBackend, the helpers users test with."""

from __future__ import annotations

import os

import pytest

import agentsession
from agentsession import MemoryBackend, SessionTracker, using_session
from agentsession.testing import CapturedSessions, FailingBackend, capture_steps, isolated


def test_capture_steps_records_synchronously() -> None:
    """Inside capture_steps a step is visible as soon as it ends, without flushing."""
    with capture_steps() as captured:
        tracker = SessionTracker("tst-capture-sync")
        tracker.begin_step(input="q").end("a")
        assert [(s.step_index, s.output) for s in captured.steps] == [(0, "a")]
    assert isinstance(captured, CapturedSessions)


def test_capture_steps_sees_using_session_steps() -> None:
    """Steps recorded through using_session land in the capture, by session."""
    with capture_steps() as captured:
        for session_id in ("tst-cap-a-conv", "tst-cap-b-conv"):
            with using_session(session_id) as tracker:
                tracker.begin_step().end()
                tracker.begin_step().end()
    assert captured.session_ids == ["tst-cap-a-conv", "tst-cap-b-conv"]
    assert [s.step_index for s in captured.steps_of("tst-cap-b-conv")] == [0, 1]


def test_only_session_returns_the_single_summary() -> None:
    """only_session() returns the summary when exactly one session was recorded."""
    with capture_steps() as captured, SessionTracker("tst-only-one-conv") as tracker:
        tracker.begin_step().end()
    summary = captured.only_session()
    assert (summary.session_id, summary.status, summary.total_steps) == (
        "tst-only-one-conv",
        "completed",
        1,
    )


def test_only_session_fails_with_several_sessions() -> None:
    """only_session() raises AssertionError listing the ids when more than one was recorded."""
    with capture_steps() as captured:
        SessionTracker("tst-many-1-conv").start()
        SessionTracker("tst-many-2-conv").start()
    with pytest.raises(AssertionError, match="tst-many-2-conv"):
        captured.only_session()


def test_capture_steps_restores_the_previous_default(backend: MemoryBackend) -> None:
    """After the block, trackers write to the default backend again, not the capture."""
    with capture_steps() as captured:
        SessionTracker("tst-inside-conv").begin_step().end()
    outside = SessionTracker("tst-outside-conv")
    outside.begin_step().end()
    assert agentsession.flush(5.0)
    assert captured.session_ids == ["tst-inside-conv"]
    assert len(backend.list_steps("tst-outside-conv")) == 1
    assert backend.list_steps("tst-inside-conv") == []


def test_capture_steps_restores_the_default_after_an_error(backend: MemoryBackend) -> None:
    """An exception inside capture_steps still puts the previous default back."""
    with pytest.raises(RuntimeError), capture_steps():
        raise RuntimeError("test failure")
    SessionTracker("tst-after-error-conv").begin_step().end()
    assert agentsession.flush(5.0)
    assert len(backend.list_steps("tst-after-error-conv")) == 1


def test_trackers_with_their_own_backend_are_not_captured() -> None:
    """capture_steps only sees trackers that name no backend."""
    own = MemoryBackend()
    with capture_steps() as captured:
        SessionTracker("tst-own-backend-conv", backend=own).begin_step().end()
    assert captured.steps == []


def test_failing_backend_fails_then_recovers() -> None:
    """FailingBackend(failures=n) raises n times, then stores; it counts every attempt."""
    backend = FailingBackend(failures=1)
    with pytest.raises(OSError, match="disk full"):
        backend.write([])
    backend.write([])
    assert backend.attempts == 2


def test_failing_backend_raises_the_given_error_forever() -> None:
    """FailingBackend() with no limit raises its error on every write."""
    backend = FailingBackend(PermissionError("read-only"))
    for _ in range(3):
        with pytest.raises(PermissionError, match="read-only"):
            backend.write([])
    assert backend.attempts == 3


def test_recording_into_a_failing_backend_never_raises() -> None:
    """User code recording into a FailingBackend (sync mode) runs to the end without errors."""
    agentsession.configure(sync=True)
    tracker = SessionTracker("tst-failing-conv", backend=FailingBackend())
    with tracker:
        tracker.begin_step().end("fine")
    assert tracker.status == "completed"
    assert agentsession.get_stats()["dropped.backend_error"] == 3


def test_isolated_hides_and_restores_environment_and_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """isolated() hides AGENTSESSION_* variables and configure() calls, then puts them back."""
    monkeypatch.setenv("AGENTSESSION_MAX_STEPS", "7")
    agentsession._config.reset_settings()
    assert agentsession.get_settings().max_steps == 7
    with isolated():
        assert "AGENTSESSION_MAX_STEPS" not in os.environ
        assert agentsession.get_settings().max_steps is None
        agentsession.configure(state_limit_bytes=99)
        assert agentsession.get_settings().state_limit_bytes == 99
    assert os.environ["AGENTSESSION_MAX_STEPS"] == "7"
    assert agentsession.get_settings().max_steps == 7
    assert agentsession.get_settings().state_limit_bytes == 10_240


def test_isolated_records_into_its_own_backend_and_forgets_sessions() -> None:
    """Inside isolated() steps go to the yielded backend; sessions known by id do not leak out."""
    with using_session("tst-isolated-outer-conv") as outer:
        outer.begin_step().end()
    with isolated() as backend:
        with using_session("tst-isolated-outer-conv") as inner:
            assert inner is not outer
            inner.begin_step().end("inside")
        agentsession.flush()
        assert [s.output for s in backend.steps_of("tst-isolated-outer-conv")] == ["inside"]
        assert agentsession.get_stats()["written.events"] >= 2
    with using_session("tst-isolated-outer-conv") as again:
        assert again is not inner


def test_isolated_puts_back_the_default_backend_set_before_it() -> None:
    """A default backend set before isolated() is the default again after the block."""
    before = MemoryBackend()
    agentsession.set_default_backend(before)
    with isolated() as inside:
        SessionTracker("tst-isolated-inner-conv").begin_step().end()
        assert agentsession.flush(5.0)
    SessionTracker("tst-isolated-after-conv").begin_step().end()
    assert agentsession.flush(5.0)
    assert len(inside.list_steps("tst-isolated-inner-conv")) == 1
    assert before.list_steps("tst-isolated-inner-conv") == []
    assert len(before.list_steps("tst-isolated-after-conv")) == 1
