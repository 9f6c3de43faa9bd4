"""The `ListTools` workflow: how the API learns the configured tools without opening MCP
connections itself (secrets and connections stay in the worker)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import contract, options
    from workflows.activity_io import ListToolsInput, ToolListing


@workflow.defn(name=contract.LIST_TOOLS_WORKFLOW)
class ListTools:
    """One activity on a worker: list every configured server's tools with their policy."""

    @workflow.run
    async def run(self, input: ListToolsInput) -> ToolListing:
        return await workflow.execute_activity(
            options.activity_name(contract.DESCRIBE_TOOLS_ACTIVITY),
            input,
            result_type=ToolListing,
            start_to_close_timeout=timedelta(minutes=2),
            summary="describe configured MCP tools",
        )
