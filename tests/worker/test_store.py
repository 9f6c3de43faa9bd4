"""The store (worker/store) on both databases it supports, SQLite and a real PostgreSQL
(tests/postgres.py): its migrations, the tables' interfaces, sealed secrets, and the API and a
worker sharing one PostgreSQL store."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.fernet import Fernet
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken, ProtectedResourceMetadata
from pydantic import AnyHttpUrl, AnyUrl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.mcp_config import MCPServerConfig
from tests.api.conftest import APIFactory, api_stack  # noqa: F401  (api_stack: the fixture of tests/api/)
from tests.api.test_mcp_servers import SERVERS, listed_tools, toolbox_body
from tests.conftest import REPO_ROOT, SECRETS_KEY, CallLog
from tests.postgres import postgres_server_fixture, postgres_url_fixture  # noqa: F401
from tests.waiting import WAIT_SECONDS, eventually
from worker.settings import Settings
from worker.store.assistants import AssistantChanged, AssistantExists
from worker.store.database import StoreError, check_current, create_engine, current_revision, head_revision, upgrade
from worker.store.oauth_grants import Discovery, OAuthGrants
from worker.store.sealing import Sealer, SecretsKeyError
from worker.store.servers import SEALED, ServerChanged, ServerExists, ServerStore
from worker.store.shared import Store, open_store
from worker.store.tables import Base

BACKENDS = ["sqlite", "postgresql"]
HEADER_SECRET = "hdr-secret-4b1d"
ENV_SECRET = "env-secret-9c2e"
CLIENT_SECRET = "client-secret-77aa"


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no migration run: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest) -> str:
    """A database at the newest migration: `store_url` (SQLite), or a PostgreSQL database."""
    return str(request.getfixturevalue("store_url" if request.param == "sqlite" else "postgres_store_url"))


@pytest.fixture
async def postgres_store_url(postgres_url: str) -> str:
    """A fresh PostgreSQL database at the newest migration (as `store_url` is for SQLite)."""
    await _upgraded(postgres_url)
    return postgres_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[Store]:
    opened = await open_store(Settings(database_url=migrated_url, secrets_key=SECRETS_KEY))
    assert opened is not None
    yield opened
    await opened.aclose()


async def _upgraded(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _schema_differences(engine: AsyncEngine) -> list[Any]:
    """What Alembic's autogenerate finds between the tables (tables.py) and the database."""
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))


async def _store_command(url: str, *args: str) -> tuple[int, str]:
    """`python -m worker.store ARGS` on ORCH_DATABASE_URL=url: exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker.store",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "ORCH_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return await process.wait(), output.decode()


# --- migrations ---------------------------------------------------------------------------------


async def test_upgrade_takes_an_empty_database_to_the_newest_migration(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        assert await current_revision(engine) is None
        with pytest.raises(StoreError, match=r"at migration none, .* run `orch db upgrade`"):
            await check_current(engine)

        await upgrade(engine)
        assert head_revision() is not None
        assert await current_revision(engine) == head_revision()
        await check_current(engine)
        await upgrade(engine)  # again: nothing to do
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_open_store_refuses_a_database_that_is_not_migrated(empty_url: str) -> None:
    with pytest.raises(StoreError, match="orch db upgrade"):
        await open_store(Settings(database_url=empty_url, secrets_key=SECRETS_KEY))


async def test_the_migrations_create_exactly_the_tables_of_tables_py(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        missing = await _schema_differences(engine)
        assert sorted(diff[1].name for diff in missing) == sorted(Base.metadata.tables), "the comparison sees them"
        await upgrade(engine)
        assert await _schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_the_store_commands_migrate_and_report_on_the_url(empty_url: str) -> None:
    head = head_revision()
    code, output = await _store_command(empty_url, "current")
    assert (code, output.strip()) == (0, f"store at no migration (newest: {head})")
    code, output = await _store_command(empty_url, "upgrade")
    assert (code, output.strip()) == (0, f"store at {head} (newest: {head})")
    code, output = await _store_command(empty_url, "current")
    assert (code, output.strip()) == (0, f"store at {head} (newest: {head})")
    engine = create_engine(empty_url)
    try:
        await check_current(engine)
    finally:
        await engine.dispose()


async def test_the_store_command_names_what_is_wrong() -> None:
    code, output = await _store_command("mysql://h/db", "current")
    assert code == 1 and "'mysql' is not supported" in output
    code, output = await _store_command("", "current")
    assert code == 2 and "ORCH_DATABASE_URL is not set" in output


# --- MCP servers ----------------------------------------------------------------------------------


def remote_server(**fields: Any) -> MCPServerConfig:
    """An HTTP server with a secret header and an OAuth client secret."""
    return MCPServerConfig.model_validate(
        {
            "url": "http://127.0.0.1:9/mcp",
            "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
            "auth": {"type": "oauth_client_credentials", "client_id": "cid", "client_secret": CLIENT_SECRET},
            **fields,
        }
    )


def local_server(**fields: Any) -> MCPServerConfig:
    return MCPServerConfig.model_validate({"command": "mcp-server-time", "env": {"TOKEN": ENV_SECRET}, **fields})


async def test_servers_are_created_read_listed_replaced_and_deleted(store: Store) -> None:
    servers = store.servers
    created = await servers.create("remote", remote_server(tools_to_auto_execute=["read"]))
    assert (created.name, created.revision) == ("remote", 1)
    assert created.config.tools_to_auto_execute == ["read"] and created.secret_headers == {"Authorization"}
    assert created.created_at.utcoffset() == timedelta(0), "times read back in UTC on every database"
    await servers.create("local", local_server())
    with pytest.raises(ServerExists):
        await servers.create("local", local_server())

    assert [server.name for server in await servers.list()] == ["local", "remote"]
    assert await servers.revisions() == {"local": 1, "remote": 1}
    assert await servers.get("nope") is None

    replaced = await servers.replace("local", local_server(env={}, availability="default_off"))
    assert replaced is not None and replaced.revision == 2 and replaced.secret_env == frozenset()
    again = await servers.replace("local", local_server(availability="force_on"))
    assert again is not None and again.revision == 3 and again.updated_at >= replaced.updated_at
    read = await servers.get("local", with_secrets=True)
    assert read is not None and read.config.availability == "force_on" and read.config.env == {"TOKEN": ENV_SECRET}
    assert read.updated_at.utcoffset() == timedelta(0) and read.updated_at >= read.created_at
    assert await servers.revisions() == {"local": 3, "remote": 1}
    assert await servers.replace("nope", local_server()) is None
    # A change made from an older revision (a concurrent PATCH read before this one wrote) is refused.
    with pytest.raises(ServerChanged):
        await servers.replace("local", local_server(), revision=2)
    assert (await servers.replace("local", local_server(), revision=3) or created).revision == 4

    assert await servers.delete("local") is True
    assert await servers.delete("local") is False
    assert await servers.revisions() == {"remote": 1}


async def test_server_secrets_are_sealed_in_the_row_and_opened_only_when_asked(store: Store) -> None:
    await store.servers.create("remote", remote_server())
    await store.servers.create("local", local_server())

    async with store.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT name, config, sealed_secrets FROM mcp_servers"))).all()
    raw = " ".join(str(column) for row in rows for column in row)
    assert "Authorization" in raw and "TOKEN" in raw and "cid" in raw, "the secrets' names stay readable"
    for secret in (HEADER_SECRET, ENV_SECRET, CLIENT_SECRET):
        assert secret not in raw, f"{secret} is stored in the clear"

    opened = await store.servers.get("remote", with_secrets=True)
    assert opened is not None
    assert opened.config.headers == {"Authorization": f"Bearer {HEADER_SECRET}"}
    assert opened.config.auth.client_secret == CLIENT_SECRET
    view = await store.servers.get("remote")
    assert view is not None and view.has_client_secret
    assert view.config.headers == {"Authorization": SEALED} and view.config.auth.client_secret == SEALED
    listed = {server.name: server for server in await store.servers.list(with_secrets=True)}
    assert listed["local"].config.env == {"TOKEN": ENV_SECRET}
    assert {server.name: server.config.env for server in await store.servers.list()}["local"] == {"TOKEN": SEALED}


async def test_another_secrets_key_cannot_open_the_secrets_and_a_rotated_one_can(store: Store) -> None:
    await store.servers.create("remote", remote_server())
    new_key = Fernet.generate_key().decode()

    stranger = ServerStore(store.engine, Sealer(new_key))
    with pytest.raises(SecretsKeyError, match="does not open"):
        await stranger.get("remote", with_secrets=True)
    view = await stranger.get("remote")
    assert view is not None and view.config.headers == {"Authorization": SEALED}, "views need no key"

    rotated = ServerStore(store.engine, Sealer(f"{new_key},{SECRETS_KEY}"))
    opened = await rotated.get("remote", with_secrets=True)
    assert opened is not None and opened.config.auth.client_secret == CLIENT_SECRET
    # Written again after the rotation, the secrets are sealed with the new key alone.
    await rotated.replace("remote", opened.config)
    moved = await ServerStore(store.engine, Sealer(new_key)).get("remote", with_secrets=True)
    assert moved is not None and moved.config.headers == {"Authorization": f"Bearer {HEADER_SECRET}"}
    with pytest.raises(SecretsKeyError):
        await store.servers.get("remote", with_secrets=True)


async def test_a_server_needs_a_secrets_key_only_for_its_secrets(store: Store) -> None:
    keyless = ServerStore(store.engine, Sealer(None))
    with pytest.raises(SecretsKeyError, match="ORCH_SECRETS_KEY"):
        await keyless.create("remote", remote_server())
    plain = await keyless.create("plain", MCPServerConfig.model_validate({"command": "mcp-server-time"}))
    assert plain.revision == 1 and await keyless.get("plain", with_secrets=True) is not None


async def test_health_keeps_the_last_error_and_when(store: Store) -> None:
    await store.servers.create("remote", remote_server())
    await store.servers.record_health("remote", "connected", None)
    first = (await store.servers.health())["remote"]
    assert (first.state, first.last_error, first.last_error_at) == ("connected", None, None)

    await store.servers.record_health("remote", "error", "connection refused")
    await store.servers.record_health("filed", "disconnected", None)  # servers of ORCH_MCP_CONFIG too
    failed = (await store.servers.health())["remote"]
    assert (failed.state, failed.last_error) == ("error", "connection refused")
    assert failed.last_error_at is not None and failed.checked_at >= first.checked_at

    await store.servers.record_health("remote", "connected", None)
    health = await store.servers.health()
    assert health["remote"].state == "connected" and health["remote"].last_error == "connection refused"
    assert health["remote"].last_error_at == failed.last_error_at
    assert health["filed"].state == "disconnected"

    await store.servers.delete("remote")
    assert set(await store.servers.health()) == {"filed"}, "deleting a server drops its health"


# --- OAuth grants -------------------------------------------------------------------------------

AUTHORIZATION_SERVER = OAuthMetadata(
    issuer=AnyHttpUrl("https://auth.example.com"),
    authorization_endpoint=AnyHttpUrl("https://auth.example.com/authorize"),
    token_endpoint=AnyHttpUrl("https://auth.example.com/token"),
)
RESOURCE = ProtectedResourceMetadata(
    resource=AnyHttpUrl("https://mcp.example.com/mcp"), authorization_servers=[AnyHttpUrl("https://auth.example.com")]
)


async def test_oauth_grants_are_written_read_listed_and_forgotten(store: Store) -> None:
    grants = store.grants
    token = OAuthToken(access_token="at-5ecret", refresh_token="rt-5ecret", expires_in=3600, scope="read")
    client = OAuthClientInformationFull(
        client_id="registered", client_secret="cs-5ecret", redirect_uris=[AnyUrl("http://127.0.0.1:8000/cb")]
    )
    alice = grants.storage("remote", "key:alice")
    assert await alice.get_tokens() is None and await alice.get_client_info() is None
    await alice.set_client_info(client)
    await alice.set_discovery(Discovery(AUTHORIZATION_SERVER, RESOURCE))
    assert await grants.connected("remote") == [], "a registration alone is not a connection"
    written = time.monotonic()
    await alice.set_tokens(token)
    await grants.write("remote", "key:bob", tokens=OAuthToken(access_token="bob-token"))
    await grants.write("other", "", tokens=OAuthToken(access_token="server-token"))

    read = await alice.get_tokens()
    assert read is not None and read.model_copy(update={"expires_in": 3600}) == token
    # Read back, the lifetime is what is left of it (at most the time since the write is gone).
    assert read.expires_in is not None and 3600 - (time.monotonic() - written) - 1 <= read.expires_in <= 3600
    assert await alice.get_client_info() == client
    discovery = await alice.get_discovery()
    assert (discovery.authorization_server, discovery.resource) == (AUTHORIZATION_SERVER, RESOURCE)
    assert sorted(await grants.connected("remote")) == ["key:alice", "key:bob"]
    async with store.engine.connect() as connection:
        raw = str((await connection.execute(text("SELECT * FROM mcp_oauth_grants"))).all())
    for secret in ("at-5ecret", "rt-5ecret", "cs-5ecret", "bob-token"):
        assert secret not in raw

    assert await grants.forget("remote", "key:alice") is True
    assert await grants.read("remote", "key:alice") == (None, None)
    assert (await alice.get_discovery()).authorization_server is None
    assert await grants.connected("remote") == ["key:bob"]
    assert await grants.forget("remote") is True
    assert await grants.forget("remote") is False
    assert await grants.connected("remote") == [] and await grants.connected("other") == [""]
    with pytest.raises(SecretsKeyError):
        await OAuthGrants(store.engine, Sealer(Fernet.generate_key().decode())).read("other", "")


# --- assistants -----------------------------------------------------------------------------------


async def test_assistants_are_created_read_listed_replaced_and_deleted(store: Store) -> None:
    assistants = store.assistants
    spec: dict[str, Any] = {"model": "m", "instructions": "Réponds en français ✓", "mcp_servers": ["time"]}
    created = await assistants.create("helper", spec)
    assert created.spec == spec
    with pytest.raises(AssistantExists):
        await assistants.create("helper", {})
    await assistants.create("another", {"limits": {"max_steps": 3}})

    assert [a.name for a in await assistants.list()] == ["another", "helper"]
    read = await assistants.get("helper")
    assert read is not None and read.spec == spec and read.created_at.utcoffset() == timedelta(0)
    assert await assistants.get("nope") is None

    replaced = await assistants.replace("helper", {"model": "other"})
    assert replaced is not None and replaced.updated_at >= created.updated_at
    read = await assistants.get("helper")
    assert read is not None and read.spec == {"model": "other"}
    assert await assistants.replace("nope", {}) is None
    with pytest.raises(AssistantChanged):  # made from what it was before the last change
        await assistants.replace("helper", {"model": "third"}, was=spec)
    assert await assistants.replace("helper", {"model": "third"}, was={"model": "other"}) is not None

    assert await assistants.delete("helper") is True
    assert await assistants.delete("helper") is False
    assert [a.name for a in await assistants.list()] == ["another"]


# --- the API and a worker on one PostgreSQL store ---------------------------------------------------


async def test_a_server_added_over_the_api_is_listed_by_a_worker_sharing_a_postgresql_store(
    api_stack: APIFactory,  # noqa: F811  (the fixture imported above)
    postgres_store_url: str,
    call_log: CallLog,
) -> None:
    async with api_stack({}, database_url=postgres_store_url) as api:
        assert await listed_tools(api, "box") is None
        created = await api.http.post(SERVERS, json=toolbox_body(call_log, tools_to_auto_execute=["echo"]))
        assert created.status_code == 201, created.text

        async def worker_lists_box() -> dict[str, str] | None:
            return await listed_tools(api, "box")

        tools = await eventually(worker_lists_box, "the worker lists the server added over the API")
        assert tools["echo"] == "auto_execute" and tools["transfer"] == "execute"
        shown = await api.http.get(f"{SERVERS}/box")
        assert shown.status_code == 200 and shown.json()["source"] == "api"


async def test_replicas_migrating_at_once_take_turns(empty_url: str) -> None:
    """Init containers of several replicas migrate together on a first rollout: on PostgreSQL
    an advisory lock makes them take turns (without it, some failed creating the same tables).
    Each replica is its own process, as in a deployment (`python -m worker.store upgrade`)."""
    env = dict(os.environ, ORCH_DATABASE_URL=empty_url)
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker.store",
            "upgrade",
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(4)
    ]
    outputs = await asyncio.gather(*(replica.communicate() for replica in replicas))
    assert [replica.returncode for replica in replicas] == [0, 0, 0, 0], [out.decode() for out, _ in outputs]
    engine = create_engine(empty_url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrades_in_one_process_take_turns_too(empty_url: str) -> None:
    """Alembic keeps its migration context in module state, so two upgrades of one process
    interleaving at a wait would break each other: they take turns."""
    engines = [create_engine(empty_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()
