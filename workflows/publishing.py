"""What the outside sees of a run, published in one place: the `OrchestrationStatus` search
attribute and the status event when the status changes, the Temporal UI's Current Details,
the run's metrics (`workflows/metrics.py`, through the workflow's replay-safe meter), and, when
the run ends, the memo the API reads once no worker answers for it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import metrics
    from workflows.contract import ORCHESTRATION_STATUS_ATTRIBUTE, WEBHOOK_APPROVER_PREFIX
    from workflows.details import current_details
    from workflows.limits import MEMO_STATUS_BUDGET_BYTES, fitted_status
    from workflows.messages import TERMINAL_STATUSES, RunEventType, RunMemo, RunStatus
    from workflows.run_record import RunRecord
    from workflows.state import ToolCallRecord


class Publisher:
    """Publishes one run's record; called from workflow code only."""

    def __init__(self, record: RunRecord) -> None:
        self._record = record
        self._published: RunStatus | None = None

    def status(self, status: RunStatus) -> None:
        """The run is now `status`: the search attribute, a status event (a finished run's last
        event says how it ended instead) and the Current Details, when it changed."""
        record = self._record
        record.updated_at = workflow.now()
        if status == self._published:
            return
        record.status = self._published = status
        self.details()
        workflow.upsert_search_attributes([ORCHESTRATION_STATUS_ATTRIBUTE.value_set(status.value)])
        if status not in TERMINAL_STATUSES:
            record.emit(RunEventType.STATUS, status=status.value)
        workflow.logger.info("status %s", status.value)

    def refresh(self) -> None:
        """An open run's status follows its calls: waiting while one waits, else running."""
        if self._record.status not in TERMINAL_STATUSES:
            self.status(self._record.open_status())

    def details(self, doing: str | None = None) -> None:
        """Tell the Temporal UI what the run is doing (its Current Details)."""
        workflow.set_current_details(current_details(self._record.full_status(audit=False), doing))

    def final_memo(self) -> None:
        """The final status and the events, readable without a worker (e.g. after cancel)."""
        final = fitted_status(self._record.full_status(), MEMO_STATUS_BUDGET_BYTES)
        memo = RunMemo(orchestration=final, events=self._record.events.carried())
        workflow.upsert_memo(memo.written("orchestration", "events"))

    # --- Metrics (recorded only when the workflow runs for the first time, never on replay) --

    def finished(self, status: RunStatus) -> None:
        metrics.count(workflow.metric_meter(), metrics.RUNS_FINISHED, {"status": status.value})

    def approval_requested(self, call: ToolCallRecord) -> None:
        labels = {"server": call.server or "", "tool": call.tool or ""}
        metrics.count(workflow.metric_meter(), metrics.APPROVALS_REQUESTED, labels)

    def decided(self, call: ToolCallRecord, channel: str) -> None:
        """A decision on `call` through `channel` (update, webhook, signal, timeout, rule)."""
        decision = call.decision.decision if call.decision else "approve"
        if channel == "update" and call.approver and call.approver.startswith(WEBHOOK_APPROVER_PREFIX):
            channel = "webhook"
        labels = {"decision": decision, "channel": channel}
        meter = workflow.metric_meter()
        metrics.count(meter, metrics.APPROVALS_DECIDED, labels)
        if call.requested_at is not None and call.decided_at is not None:
            waited = (call.decided_at - call.requested_at).total_seconds() * 1000
            metrics.observe_ms(meter, metrics.APPROVAL_WAIT, labels, waited)

    def decided_by_rules(self, calls: list[ToolCallRecord]) -> None:
        for call in calls:
            if call.rule is not None:
                self.decided(call, "rule")

    def cost(self, call: ToolCallRecord) -> None:
        if call.price_usd > 0:
            labels = {"server": call.server or "", "tool": call.tool or ""}
            metrics.count(workflow.metric_meter(), metrics.COST, labels, round(call.price_usd * 1_000_000))
