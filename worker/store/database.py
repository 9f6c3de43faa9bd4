"""Reaching the store: the engine for ORCH_DATABASE_URL and Alembic's migrations.

`sqlite:///path` and `postgresql://...` are the forms users write; the async drivers
(aiosqlite, asyncpg) are chosen here, so no other module knows which database it talks to.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


class StoreError(Exception):
    """The store cannot be used as configured; one line naming the problem."""


def async_url(url: str) -> str:
    """The URL with the async driver of its database (`sqlite://` -> `sqlite+aiosqlite://`)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("ORCH_DATABASE_URL is not a database URL (e.g. sqlite:///orch.db, postgresql://...)") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"ORCH_DATABASE_URL: {backend!r} is not supported (use sqlite or postgresql)")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(async_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # The API and the workers are separate processes on one file: wait for each other's
        # writes instead of failing at once, and let readers go on while one writes.
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


MIGRATION_LOCK = 7_412_300_118
"""The PostgreSQL advisory lock migrations hold: replicas that start together (init containers)
migrate one after the other instead of racing to create the same tables."""


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the store to `revision` (Alembic's `upgrade`), on this engine's connection, one
    process at a time: PostgreSQL's advisory lock, SQLite's write lock taken at the start."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        else:  # the driver would begin the transaction only at the first write, after the version is read
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    # Alembic keeps the migration context in module state (`alembic.context`): two upgrades of
    # one process interleaving at a database wait would break each other, so they take turns.
    async with _UPGRADING.setdefault(asyncio.get_running_loop(), asyncio.Lock()), engine.begin() as connection:
        await connection.run_sync(run)


_UPGRADING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
"""The upgrades of this process take turns (per event loop: a lock belongs to one)."""


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def check_current(engine: AsyncEngine) -> None:
    """StoreError unless the store is at the newest migration (say how to get there)."""
    try:
        current = await current_revision(engine)
    except Exception as err:
        raise StoreError(f"ORCH_DATABASE_URL: cannot reach the database ({type(err).__name__}: {err})") from None
    head = head_revision()
    if current != head:
        raise StoreError(
            f"the store is at migration {current or 'none'}, this version needs {head}: run `orch db upgrade`"
        )
