"""The store of `orch dev` (MCP servers and assistants added over the API, their secrets, OAuth
tokens): unless ORCH_DATABASE_URL names one, a SQLite file in the state directory; unless
ORCH_SECRETS_KEY is set, a key made on the first start and kept beside it, so that the secrets
stored then still open after a restart. It is migrated before the API and the worker start,
since both refuse a store that is not at the newest migration."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from api.cli.client import CLIError
from worker.store.database import StoreError, create_engine, upgrade
from worker.store.sealing import Sealer, SecretsKeyError, new_secrets_key

DATABASE_FILE = "orch.db"
SECRETS_KEY_FILE = "secrets.key"


@dataclass(frozen=True)
class DevStore:
    url: str
    env: dict[str, str] = field(default_factory=dict)
    """The settings the children get that the user did not set (ORCH_DATABASE_URL, ORCH_SECRETS_KEY)."""
    key_file: Path | None = None
    """Where the secrets key is kept, when orch dev keeps it."""

    def shown_url(self) -> str:
        """The URL without its password."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return self.url

    def description(self) -> str:
        """The store for the banner: its URL, and where orch dev keeps its secrets key."""
        return self.shown_url() + (f" (secrets key: {self.key_file})" if self.key_file else "")


def prepare_store(state_dir: Path, environ: Mapping[str, str]) -> DevStore:
    """The store the children will use, with its secrets key, migrated to the newest schema;
    CLIError in one line when it cannot be."""
    env: dict[str, str] = {}
    url = environ.get("ORCH_DATABASE_URL")
    if not url:
        url = env["ORCH_DATABASE_URL"] = f"sqlite:///{(state_dir / DATABASE_FILE).resolve()}"
    key_file = None
    if not environ.get("ORCH_SECRETS_KEY"):
        key_file = state_dir / SECRETS_KEY_FILE
        env["ORCH_SECRETS_KEY"] = kept_secrets_key(key_file)
    store = DevStore(url, env, key_file)
    migrate(store)
    return store


def kept_secrets_key(path: Path) -> str:
    """The key in `path`; made and written there (readable by its owner only) when there is none."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = new_secrets_key()
        _write_private(path, key + "\n")
        return key
    except OSError as err:
        raise CLIError(f"cannot read the secrets key {path}: {err.strerror}") from None
    try:
        if not Sealer(key).configured:
            raise SecretsKeyError("it is empty")
    except SecretsKeyError as err:
        raise CLIError(
            f"the secrets key {path} is not usable ({err}): restore it, or delete it to make a new one "
            "(secrets stored with the old key will not open)"
        ) from None
    return key


def _write_private(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a crash leaves no empty key behind), mode 0600."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def migrate(store: DevStore) -> None:
    """`orch db upgrade` on the store, in this process."""
    _check_sqlite_directory(store.url)
    try:
        asyncio.run(_upgrade(store.url))
    except StoreError as err:
        raise CLIError(f"cannot migrate the store: {err}") from None
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise CLIError(f"cannot migrate the store {store.shown_url()}: {type(err).__name__}: {first_line}") from None


def _check_sqlite_directory(url: str) -> None:
    """A SQLite file's directory exists (said before aiosqlite fails to open the file, which
    it says less clearly)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # said by the migration, as the API and the worker say it
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        directory = Path(parsed.database).parent
        if not directory.is_dir():
            raise CLIError(f"ORCH_DATABASE_URL: the SQLite file's directory {directory} does not exist")


async def _upgrade(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
