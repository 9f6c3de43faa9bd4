"""Reaching a secured Temporal: the worker (`python -m worker`) and the API connect through the
SDK's environment configuration (`worker.connection`) to a frontend that requires mTLS, here a
TLS-terminating proxy (certificates made by the test, ALPN h2, client certificate required) in
front of the dev server. A wrong CA or a missing client certificate is one clear line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.api.conftest import serve_api
from tests.conftest import REPO_ROOT, WorkerProcess
from tests.scripted_llm import Reply, ScriptedLLM
from tests.tls_proxy import Certificates, TLSProxy
from tests.waiting import WAIT_SECONDS, eventually
from worker.connection import TemporalConfigError, TemporalConnection
from worker.settings import Settings


def _environment(proxy: TLSProxy, ca: Path, client: tuple[Path, Path] | None, **extra: str) -> dict[str, str]:
    """The process's environment with only these TEMPORAL_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    env.update(
        TEMPORAL_ADDRESS=proxy.address,
        TEMPORAL_CONFIG_FILE=os.devnull,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(ca),
        TEMPORAL_TLS_SERVER_NAME="localhost",
        **extra,
    )
    if client is not None:
        env.update(TEMPORAL_TLS_CLIENT_CERT_PATH=str(client[0]), TEMPORAL_TLS_CLIENT_KEY_PATH=str(client[1]))
    return env


async def test_the_worker_and_the_api_run_a_run_over_mtls(
    tls_proxy: tuple[TLSProxy, Certificates], llm: ScriptedLLM, tmp_path: Path
) -> None:
    tls, certs = tls_proxy
    llm.script("m-tls", Reply(content="hello over mTLS"))
    queue = f"tq-tls-{os.getpid()}"
    env = _environment(tls, certs.ca, (certs.client_cert, certs.client_key))
    worker = WorkerProcess(env | {"ORCH_TASK_QUEUE": queue, "OPENAI_BASE_URL": llm.base_url})
    await worker.start()
    try:
        polling = await worker.wait_for_line(lambda line: "worker polling" in line)
        assert f"{tls.address} (namespace default, TLS, client certificate)" in polling
        connection = TemporalConnection.from_environment(env)
        async with serve_api(Settings(task_queue=queue), connection=connection) as (http, _):
            assert (await http.get("/readyz")).json() == {"status": "ready"}
            run_id = (await http.post("/v1/orchestrations", json={"input": "hi", "model": "m-tls"})).json()["id"]

            async def finished() -> dict | None:
                run = (await http.get(f"/v1/orchestrations/{run_id}")).json()
                return run if run["status"] == "completed" else None

            run = await eventually(finished, "the run completed")
        assert run["output"] == "hello over mTLS"
        assert tls.verified_clients >= 2, "the worker and the API each connected with a client certificate"
    finally:
        await worker.stop()


@pytest.mark.parametrize("mistake", ["wrong CA", "no client certificate"])
async def test_a_wrong_ca_or_no_client_certificate_is_one_clear_line(
    tls_proxy: tuple[TLSProxy, Certificates], mistake: str
) -> None:
    tls, certs = tls_proxy
    if mistake == "wrong CA":
        env = _environment(tls, certs.other_ca, (certs.client_cert, certs.client_key))
        why = "not signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH"
    else:
        env = _environment(tls, certs.ca, None)
        why = "requires a client certificate, set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
    lines = stderr.decode().splitlines()
    errors = [line for line in lines if line.startswith("worker:")]
    assert proc.returncode == 1 and len(errors) == 1, stderr.decode()
    assert errors[0].startswith(f"worker: cannot connect to Temporal at {tls.address} (namespace default, TLS")
    assert why in errors[0] and "Traceback" not in stderr.decode()

    async with serve_api(Settings(), connection=TemporalConnection.from_environment(env)) as (http, _):
        answer = await http.get("/readyz")
    message = answer.json()["error"]["message"]
    assert answer.status_code == 503 and why in message and "\n" not in message


async def test_a_certificate_file_that_is_not_there_stops_the_worker_before_it_connects(
    tls_proxy: tuple[TLSProxy, Certificates], tmp_path: Path
) -> None:
    tls, _ = tls_proxy
    env = _environment(tls, tmp_path / "missing-ca.pem", None)
    with pytest.raises(TemporalConfigError, match="missing-ca.pem"):
        TemporalConnection.from_environment(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
    assert proc.returncode == 2, stderr.decode()
    assert (
        stderr.decode().strip().startswith("worker: Temporal connection settings:")
        and "missing-ca.pem" in stderr.decode()
    )
    assert tls.verified_clients == 0 and tls.refused_handshakes == 0
