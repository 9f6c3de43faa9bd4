"""Recorded histories must replay on the current workflow code (determinism guard).

Every `tests/histories/*.json` is the history of one run, recorded by `python -m
tests.histories.record NAME` (one file per scenario, or one per run of a continue-as-new chain
or of a scenario with several runs). Each is replayed on its own, with what production workers
run: the `OrchestrationPlugin` brings the data converter, both workflows and the sandbox runner.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.histories.record import HERE, SCENARIOS, recorded_files
from worker.converter import data_converter
from worker.plugin import WORKFLOW_RUNNER, OrchestrationPlugin
from workflows.list_tools import ListTools
from workflows.orchestration import Orchestration

HISTORIES = sorted(HERE.glob("*.json"))

CLOSING_EVENTS = (
    "workflow_execution_completed_event_attributes",
    "workflow_execution_failed_event_attributes",
    "workflow_execution_canceled_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
)


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def _replayer() -> Replayer:
    """A replayer configured like production workers: by the plugin their client carries."""
    return Replayer(workflows=[], plugins=[OrchestrationPlugin()])


def test_histories_are_committed() -> None:
    assert HISTORIES, "run `python -m tests.histories.record NAME` and commit the result"


def test_the_replayer_runs_what_production_workers_run() -> None:
    config = _replayer().config(active_config=True)
    assert list(config["workflows"]) == [Orchestration, ListTools]
    assert config["workflow_runner"] is WORKFLOW_RUNNER
    assert config["data_converter"] is data_converter(None)
    assert not config.get("interceptors") and not config.get("workflow_failure_exception_types")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_has_a_committed_history(name: str) -> None:
    assert recorded_files(name), f"no history of scenario {name}: run `python -m tests.histories.record {name}`"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_every_history_is_a_whole_run(path: Path) -> None:
    """A run that was still open when recorded would replay only its beginning."""
    last = _history(path).events[-1]
    assert any(last.HasField(closing) for closing in CLOSING_EVENTS), f"{path.name} ends with an open run"


def test_every_run_of_a_continue_as_new_chain_is_recorded() -> None:
    """Each run of a chain is replayed on its own: a chain with a run missing is not covered."""
    started = {path.name: _history(path).events[0].workflow_execution_started_event_attributes for path in HISTORIES}
    run_ids = {attributes.original_execution_run_id for attributes in started.values()}
    chains = 0
    for path in HISTORIES:
        last = _history(path).events[-1]
        if last.HasField("workflow_execution_continued_as_new_event_attributes"):
            chains += 1
            next_run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            assert next_run in run_ids, f"{path.name} continued as new into a run that has no history here"
        previous_run = started[path.name].continued_execution_run_id
        assert not previous_run or previous_run in run_ids, f"the run before {path.name} has no history here"
    assert chains, "no history continues as new"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    result = await _replayer().replay_workflow(_history(path), raise_on_replay_failure=True)
    assert result.replay_failure is None
