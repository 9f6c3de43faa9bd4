"""`orch dev`'s store, before any process starts: a SQLite file and a secrets key kept in the
state directory unless the user set them, migrated to the newest schema."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from api.cli.dev_store import DevStore, prepare_store
from worker.store.database import create_engine, current_revision, head_revision
from worker.store.sealing import Sealer, new_secrets_key


def _revision(url: str) -> str | None:
    async def read() -> str | None:
        engine = create_engine(url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_out_of_the_box_the_store_and_its_key_are_kept_in_the_state_directory(tmp_path: Path) -> None:
    first = prepare_store(tmp_path, {})
    url = f"sqlite:///{(tmp_path / 'orch.db').resolve()}"
    key_file = tmp_path / "secrets.key"
    assert first.env == {"ORCH_DATABASE_URL": url, "ORCH_SECRETS_KEY": key_file.read_text().strip()}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _revision(url) == head_revision()
    assert first.description() == f"{url} (secrets key: {key_file})"

    # A restart keeps the key, so what it sealed still opens.
    sealed = Sealer(first.env["ORCH_SECRETS_KEY"]).seal({"API_TOKEN": "t0ken"})
    again = prepare_store(tmp_path, {})
    assert again.env == first.env
    assert Sealer(again.env["ORCH_SECRETS_KEY"]).open(sealed) == {"API_TOKEN": "t0ken"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["orch.db", "secrets.key"]


def test_the_users_store_and_key_are_used_as_set_and_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    store = prepare_store(tmp_path / "state", {"ORCH_DATABASE_URL": url, "ORCH_SECRETS_KEY": new_secrets_key()})
    assert store.env == {} and store.key_file is None
    assert _revision(url) == head_revision()
    assert not (tmp_path / "state").exists()


def test_the_banner_hides_the_databases_password() -> None:
    store = DevStore("postgresql://orch:s3cret@db.example/orch")
    assert store.description() == "postgresql://orch:***@db.example/orch"
