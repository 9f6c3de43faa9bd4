"""`python -m worker.store upgrade | current | revision -m "..."` (also `orch db ...`): the
store's migrations, on ORCH_DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import sys

from alembic import command
from sqlalchemy.exc import SQLAlchemyError

from worker.settings import Settings
from worker.store.database import StoreError, alembic_config, create_engine, current_revision, head_revision, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orch db", description="The store's migrations (ORCH_DATABASE_URL).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="migrate the store to the newest schema (creates it when empty)")
    commands.add_parser("current", help="print the store's migration and the newest one")
    draft = commands.add_parser("revision", help="draft a migration from the change to worker/store/tables.py")
    draft.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    url = Settings().database_url
    if not url:
        print("ORCH_DATABASE_URL is not set", file=sys.stderr)  # noqa: T201
        return 2
    try:
        if args.command == "revision":
            command.revision(alembic_config(url), message=args.message, autogenerate=True)
            return 0
        return asyncio.run(_run(args.command, url))
    except StoreError as err:
        print(err, file=sys.stderr)  # noqa: T201
        return 1
    except (OSError, SQLAlchemyError) as err:  # unreachable, refused, bad credentials: one line
        print(f"ORCH_DATABASE_URL: {type(err).__name__}: {str(err).splitlines()[0]}", file=sys.stderr)  # noqa: T201
        return 1


async def _run(what: str, url: str) -> int:
    engine = create_engine(url)
    try:
        if what == "upgrade":
            await upgrade(engine)
        current = await current_revision(engine)
        print(f"store at {current or 'no migration'} (newest: {head_revision()})")  # noqa: T201
        return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
