"""Activities are registered under their prefixed names and, for runs from before the prefix,
under their bare ones: the same activity, the same payload types."""

from __future__ import annotations

from temporalio import activity
from temporalio.common import _type_hints_from_func

from activities.mcp_config import MCPConfig
from worker.runner import worker_resources
from worker.settings import Settings
from workflows.contract import ACTIVITIES, ACTIVITIES_BEFORE_PREFIX, ACTIVITY_PREFIX


def _name(fn: object) -> str:
    return activity._Definition.must_from_callable(fn).name  # type: ignore[arg-type]


async def test_each_activity_answers_to_its_prefixed_and_its_bare_name() -> None:
    async with worker_resources(Settings(), MCPConfig()) as resources:
        by_name = {_name(fn): fn for fn in resources.activities}
    assert set(by_name) == {*ACTIVITIES, *(name.removeprefix(ACTIVITY_PREFIX) for name in ACTIVITIES_BEFORE_PREFIX)}
    for name in ACTIVITIES_BEFORE_PREFIX:
        bare = by_name[name.removeprefix(ACTIVITY_PREFIX)]
        assert _type_hints_from_func(bare) == _type_hints_from_func(by_name[name])
        assert bare.__wrapped__ == by_name[name]  # type: ignore[attr-defined]
