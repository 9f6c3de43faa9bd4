"""`ORCH_LOG_FORMAT=json`: the worker's and the API's processes write one JSON object per line,
lines about a run carry its id, and no secret of a run that used every one appears in them."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx

from api.api_keys import hash_key
from tests.conftest import CallLog, ServiceProcess, WebhookReceiver, WorkerProcess, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.tls_proxy import Certificates, TLSProxy
from tests.waiting import eventually, wait_for_port

SECRETS = {
    "OPENAI_API_KEY": "sk-log-test-OPENAI-0123456789",
    "TEMPORAL_API_KEY": "temporal-log-test-APIKEY-0123456789",
    "ORCH_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"webhook-log-test-SECRET-0123456789").decode(),
    "TOOLBOX_TOKEN": "mcp-log-test-TOKEN-0123456789",
}
ENCRYPTION_KEY_MATERIAL = base64.b64encode(b"k" * 32).decode()
API_KEY = "orch-log-test-APIKEY-0123456789"
WEBHOOK_TOKEN = "hook-log-test-TOKEN-0123456789"


async def test_json_lines_with_run_ids_and_no_secrets(
    tls_proxy: tuple[TLSProxy, Certificates],
    llm: ScriptedLLM,
    call_log: CallLog,
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    proxy, certs = tls_proxy
    llm.script(
        "m-logs",
        Reply(tool_calls=[tool_call("c1", "toolbox__echo", {"text": "hello"})]),
        Reply(content="logged"),
    )
    toolbox = toolbox_stdio(call_log, tools_to_auto_execute=["echo"])
    toolbox["env"] |= {"TOOLBOX_TOKEN": "${TOOLBOX_TOKEN}"}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"toolbox": toolbox}}))
    queue = f"tq-logs-{os.getpid()}"
    api_port = free_port()
    keys = {"keys": [{"name": "ops", "sha256": hash_key(API_KEY), "roles": ["run", "approve", "admin"]}]}
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    env |= SECRETS | {
        "TEMPORAL_ADDRESS": proxy.address,
        "TEMPORAL_CONFIG_FILE": os.devnull,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs.client_cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs.client_key),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
        "ORCH_LOG_FORMAT": "json",
        "ORCH_TASK_QUEUE": queue,
        "ORCH_MCP_CONFIG": str(config),
        "OPENAI_BASE_URL": llm.base_url,
        "ORCH_ENCRYPTION_KEY": f"k1:{ENCRYPTION_KEY_MATERIAL}",
        "ORCH_WEBHOOK_URL": f"http://127.0.0.1:{webhook_receiver.port}/hook?token={WEBHOOK_TOKEN}",
        "ORCH_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "ORCH_API_KEYS": json.dumps(keys),
        "ORCH_API_PORT": str(api_port),
    }
    worker = WorkerProcess(env)
    api = ServiceProcess(env, "api")
    await worker.start()
    await api.start()
    try:
        await wait_for_port(api_port)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers) as http:
            run_id = (await http.post("/v1/orchestrations", json={"input": "hi", "model": "m-logs"})).json()["id"]

            async def finished() -> dict | None:
                run = (await http.get(f"/v1/orchestrations/{run_id}")).json()
                return run if run["status"] == "completed" else None

            run = await eventually(finished, "the run completed")
            await eventually(lambda: len(webhook_receiver.received) >= 1, "the completion webhook")
    finally:
        await api.stop()
        code = await worker.stop()
    assert run["output"] == "logged" and code == 0
    assert call_log.calls()[0]["tool"] == "echo", "the tool ran (with the token in its environment)"
    assert llm.headers[-1]["authorization"] == f"Bearer {SECRETS['OPENAI_API_KEY']}"

    for name, lines in (("worker", worker.output), ("api", api.output)):
        records = [json.loads(line) for line in lines if line.strip()]
        assert records, f"{name} logged nothing"
        assert all({"time", "level", "logger", "message"} <= set(record) for record in records), name
        about_run = [record for record in records if record.get("run_id") == run_id]
        assert about_run, f"{name}: no line carries the run's id"
        text = "\n".join(lines)
        for secret in [*SECRETS.values(), ENCRYPTION_KEY_MATERIAL, API_KEY, WEBHOOK_TOKEN]:
            assert secret not in text, f"{name} logged a secret"
    worker_loggers = {json.loads(line)["logger"] for line in worker.output if line.strip()}
    assert "temporalio.workflow" in worker_loggers, worker_loggers
