"""Alembic's environment: migrations run on the connection `worker.store.database.upgrade`
passes in, or on ORCH_DATABASE_URL when Alembic's own command line runs them."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from worker.store.database import create_engine
from worker.store.tables import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_url(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_with_url(context.config.get_main_option("sqlalchemy.url") or ""))
