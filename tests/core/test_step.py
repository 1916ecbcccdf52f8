"""StepHandle: closing a step as completed, failed or cancelled, and the Step it becomes."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from datetime import timezone

import pytest

from agentsession import SessionTracker, Step, current_step

StepsOf = Callable[[str], list[Step]]


def test_end_records_output_usage_and_model(steps_of: StepsOf) -> None:
    """end() records the output, token counts and the model/provider it names."""
    tracker = SessionTracker("step-end-fields")
    step = tracker.begin_step(model="draft-model", input=[{"role": "user", "content": "hi"}])
    step.end(
        {"content": "hello"},
        model="final-model",
        provider="acme",
        input_tokens=11,
        output_tokens=4,
        metadata={"finish": "stop"},
    )
    [recorded] = steps_of("step-end-fields")
    assert recorded.status == "completed"
    assert recorded.error is None
    assert recorded.input == [{"role": "user", "content": "hi"}]
    assert recorded.output == {"content": "hello"}
    assert (recorded.model, recorded.provider) == ("final-model", "acme")
    assert (recorded.input_tokens, recorded.output_tokens, recorded.total_tokens) == (11, 4, 15)
    assert recorded.metadata == {"finish": "stop"}


def test_explicit_total_tokens_is_kept(steps_of: StepsOf) -> None:
    """A total_tokens reported by the provider is stored as given, not recomputed."""
    tracker = SessionTracker("step-total-tokens")
    tracker.begin_step().end(input_tokens=10, output_tokens=5, total_tokens=20)
    tracker.begin_step().end()
    with_total, without_usage = steps_of("step-total-tokens")
    assert with_total.total_tokens == 20
    assert without_usage.total_tokens is None


def test_only_the_first_close_counts(steps_of: StepsOf) -> None:
    """A step is recorded once; a second end() or a later fail() changes nothing."""
    tracker = SessionTracker("step-close-once")
    step = tracker.begin_step()
    step.end("first")
    step.end("second")
    step.fail(RuntimeError("late"))
    [recorded] = steps_of("step-close-once")
    assert recorded.output == "first"
    assert recorded.status == "completed"


def test_fail_with_an_exception(steps_of: StepsOf) -> None:
    """fail(exc) records a failed step whose error names the exception type and message."""
    tracker = SessionTracker("step-fail-exc")
    tracker.begin_step().fail(TimeoutError("upstream took too long"), input_tokens=3)
    [recorded] = steps_of("step-fail-exc")
    assert recorded.status == "failed"
    assert recorded.error == "TimeoutError: upstream took too long"
    assert recorded.input_tokens == 3


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def test_exception_that_cannot_be_printed_fails_the_step_by_its_type(steps_of: StepsOf) -> None:
    """An exception whose __str__ raises still fails the step (error: its type name), and
    ``with`` re-raises that exception, not one of ours."""
    tracker = SessionTracker("step-fail-unprintable")
    tracker.begin_step().fail(_UnprintableError())
    with pytest.raises(_UnprintableError), tracker.begin_step():
        raise _UnprintableError()
    recorded = steps_of("step-fail-unprintable")
    assert [(s.status, s.error) for s in recorded] == [("failed", "_UnprintableError")] * 2


def test_fail_with_a_message(steps_of: StepsOf) -> None:
    """fail("text") records the text as the error."""
    tracker = SessionTracker("step-fail-text")
    tracker.begin_step().fail("rate limited")
    [recorded] = steps_of("step-fail-text")
    assert (recorded.status, recorded.error) == ("failed", "rate limited")


def test_fail_with_cancellation_is_cancelled(steps_of: StepsOf) -> None:
    """A cancellation passed to fail() records the step as cancelled, not failed."""
    tracker = SessionTracker("step-cancelled")
    tracker.begin_step().fail(asyncio.CancelledError())
    [recorded] = steps_of("step-cancelled")
    assert recorded.status == "cancelled"
    assert recorded.error == "CancelledError"


def test_long_error_text_is_capped(steps_of: StepsOf) -> None:
    """A huge error message is cut so one failure cannot blow up storage."""
    tracker = SessionTracker("step-long-error")
    tracker.begin_step().fail("e" * 100_000)
    [recorded] = steps_of("step-long-error")
    assert recorded.error is not None
    assert 0 < len(recorded.error) < 100_000


def test_with_block_ends_or_fails_the_step(steps_of: StepsOf) -> None:
    """``with tracker.begin_step():`` ends the step, or fails it if the block raised."""
    tracker = SessionTracker("step-with-block")
    with tracker.begin_step() as step:
        step.output = "made it"
    with pytest.raises(ValueError, match="bad"), tracker.begin_step():
        raise ValueError("bad")
    ok, failed = steps_of("step-with-block")
    assert (ok.status, ok.output) == ("completed", "made it")
    assert (failed.status, failed.error) == ("failed", "ValueError: bad")


def test_timing_is_measured(steps_of: StepsOf) -> None:
    """duration_ms covers the time between begin and end; timestamps are UTC and ordered."""
    tracker = SessionTracker("step-timing")
    step = tracker.begin_step()
    time.sleep(0.02)
    step.end()
    [recorded] = steps_of("step-timing")
    assert recorded.duration_ms >= 20
    assert recorded.started_at.tzinfo == timezone.utc
    assert recorded.ended_at >= recorded.started_at
    elapsed = (recorded.ended_at - recorded.started_at).total_seconds() * 1000
    assert elapsed == pytest.approx(recorded.duration_ms, abs=1)


def test_step_ids_and_trace_ids_are_unique(steps_of: StepsOf) -> None:
    """Every step gets its own step id and trace id."""
    tracker = SessionTracker("step-unique-ids")
    for _ in range(20):
        tracker.begin_step().end()
    steps = steps_of("step-unique-ids")
    assert len({s.step_id for s in steps}) == 20
    assert len({s.trace_id for s in steps}) == 20


def test_handle_exposes_its_session_and_index() -> None:
    """A step handle knows its session id, index and whether it will be recorded."""
    tracker = SessionTracker("step-handle-attrs")
    step = tracker.begin_step()
    assert step.session_id == "step-handle-attrs"
    assert step.step_index == 0
    assert step.recorded
    assert not step.ended
    step.end()
    assert step.ended


def test_unrecorded_step_can_still_be_closed(steps_of: StepsOf) -> None:
    """A step past max_steps accepts end() and fail() quietly and is never written."""
    tracker = SessionTracker("step-unrecorded", max_steps=1)
    tracker.begin_step().end()
    extra = tracker.begin_step()
    extra.end("ignored")
    tracker.begin_step().fail("ignored too")
    assert len(steps_of("step-unrecorded")) == 1


def test_activated_step_is_current_until_it_ends() -> None:
    """activate() makes a step current for HTTP hooks; once it ends it is current no more."""
    tracker = SessionTracker()
    step = tracker.begin_step()
    step.activate()
    assert current_step() is step
    step.end("done")
    assert current_step() is None


def test_deactivate_restores_the_previous_step() -> None:
    """deactivate() gives the context back the step that was current before activate()."""
    tracker = SessionTracker()
    outer, inner = tracker.begin_step(), tracker.begin_step()
    with outer:
        token = inner.activate()
        assert current_step() is inner
        inner.deactivate(token)
        assert current_step() is outer


def test_deactivate_in_another_context_clears_the_current_step() -> None:
    """A token used outside its context does not raise: the current step is cleared instead."""
    tracker = SessionTracker()
    step = tracker.begin_step()
    token = contextvars.copy_context().run(step.activate)
    with tracker.begin_step() as other:
        assert current_step() is other
        step.deactivate(token)
        assert current_step() is None


def test_first_chunk_delay_is_stored_in_metadata(steps_of: StepsOf) -> None:
    """chunk_arrived() times only the first chunk; the delay lands in the step's metadata."""
    tracker = SessionTracker()
    with tracker.begin_step(metadata={"stream": True}) as step:
        time.sleep(0.02)
        step.chunk_arrived()
        time.sleep(0.02)
        step.chunk_arrived()
    (stored,) = steps_of(tracker.session_id)
    delay = stored.metadata["time_to_first_chunk_ms"]
    assert 20 <= delay < stored.duration_ms - 15
    assert stored.metadata["stream"] is True


def test_no_chunk_no_first_chunk_delay(steps_of: StepsOf) -> None:
    """A call that was not streamed has no time_to_first_chunk_ms."""
    tracker = SessionTracker()
    with tracker.begin_step():
        pass
    (stored,) = steps_of(tracker.session_id)
    assert "time_to_first_chunk_ms" not in stored.metadata
