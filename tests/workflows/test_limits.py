"""What the workflow sends in one payload is shortened to fit, whatever the run holds."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from workflows.limits import fitted_events, fitted_status, json_bytes
from workflows.messages import OrchestrationStatus, RunEvent, RunEventType, RunStatus, StepRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _status(output: str, steps: int, argument_chars: int) -> OrchestrationStatus:
    records = [
        StepRecord(index=n, kind="tool", status="completed", arguments={"text": "a" * argument_chars})
        for n in range(steps)
    ]
    return OrchestrationStatus(
        id="orch-1",
        status=RunStatus.COMPLETED,
        max_steps=8,
        steps=records,
        output=output,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_status_that_fits_is_left_as_it_is() -> None:
    status = _status("answer", steps=3, argument_chars=2000)
    assert fitted_status(status, 64 * 1024) is status


@given(
    output_chars=st.integers(0, 300_000),
    steps=st.integers(0, 300),
    argument_chars=st.integers(0, 5000),
    budget=st.integers(4 * 1024, 256 * 1024),
)
def test_a_status_is_shortened_until_it_fits(output_chars: int, steps: int, argument_chars: int, budget: int) -> None:
    status = _status("é" * output_chars, steps, argument_chars)
    fitted = fitted_status(status, budget)
    assert json_bytes(fitted) <= budget
    if fitted is not status:
        assert fitted.shortened and not status.shortened, "the original is untouched"
        assert all(step.arguments is None or json_bytes(step.arguments) <= 500 for step in fitted.steps)
        kept = [step.index for step in fitted.steps]
        assert kept == [step.index for step in status.steps][len(status.steps) - len(kept) :], "the newest steps"


def test_large_arguments_become_previews_before_anything_else_is_cut() -> None:
    status = _status("answer", steps=40, argument_chars=5000)
    fitted = fitted_status(status, 64 * 1024)
    assert fitted.output == "answer" and len(fitted.steps) == 40
    assert fitted.steps[0].arguments is None and fitted.steps[0].arguments_preview.startswith('{"text": "aaa')


def test_the_newest_events_are_carried_within_the_budget() -> None:
    events = [
        RunEvent(id=n, type=RunEventType.TOOL_FINISHED, at=NOW, data={"output_preview": "o" * 1000})
        for n in range(1, 201)
    ]
    carried = fitted_events(events, 50 * 1024)
    assert json_bytes(carried) <= 50 * 1024
    assert carried[-1].id == 200 and [e.id for e in carried] == list(range(carried[0].id, 201))
    assert fitted_events(events[-1:], 10) == events[-1:], "the newest event is always carried"
