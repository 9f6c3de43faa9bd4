"""A real PostgreSQL server for the tests: a throwaway cluster from Debian's `postgresql` package
(`.ci/run` installs it), in a temporary directory, listening on 127.0.0.1 on a free port with a
password (and on a unix socket in that directory), stopped at the end of the session.

initdb and postgres refuse to run as root, and the tests run as root in CI: then every server
command runs as the `postgres` system user the package creates (through `runuser`, or
`setpriv`), and the directory belongs to that user. Missing binaries fail the tests that need
the server, with what to install: a skipped store test would hide a broken PostgreSQL path.

    from tests.postgres import postgres_server_fixture, postgres_url_fixture  # noqa: F401

in a test module makes the fixtures `postgres_server` (the session's one server) and
`postgres_url` (a fresh, empty database per test, dropped after it) available there.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scripted_llm import free_port
from tests.waiting import POLL_SECONDS, WAIT_SECONDS

DEBIAN_INSTALLS = Path("/usr/lib/postgresql")
"""Debian's layout: /usr/lib/postgresql/<major>/bin/{initdb,pg_ctl,postgres,...}."""
SERVER_USER = "postgres"
"""The system user that runs the server when the tests run as root (created by Debian's package)."""
SUPERUSER = "orch"
"""The cluster's superuser, whom the URLs name."""
START_ATTEMPTS = 3
"""A free port can be taken by another process before the server binds it; then try another."""


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries, or no way to run them; says what to install."""


class PostgresError(Exception):
    """A server command failed; carries its output and the server log's end."""


@dataclass(frozen=True)
class Installation:
    """Where the server's programs are, how to run them, and who owns the cluster's directory."""

    bin_dir: Path
    run_as: list[str]
    """Command prefix: empty, or `runuser -u postgres --` when the tests run as root."""
    owner: pwd.struct_passwd | None
    """The user to give the directory to (None: the current user keeps it)."""


def find_installation() -> Installation:
    """PostgresUnavailable when the server cannot run here, naming what to install."""
    run_as, owner = run_as_server_user()
    return Installation(server_binaries(), run_as, owner)


def server_binaries() -> Path:
    """The bin directory of the newest PostgreSQL installed (Debian's layout, else `initdb` on PATH)."""
    installed = sorted(DEBIAN_INSTALLS.glob("*/bin/initdb"), key=lambda path: _version(path.parent.parent.name))
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) are not under {DEBIAN_INSTALLS}/*/bin "
        "nor on PATH: install them (Debian: apt-get install postgresql; .ci/run does)"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def run_as_server_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the server's commands, and the user to own its directory:
    nothing when not root; as root, the `postgres` user (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, and PostgreSQL refuses root: there is no `{SERVER_USER}` user to run it as "
            "(Debian's postgresql package creates it)"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", SERVER_USER, "--"], user
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"], user
    raise PostgresUnavailable("running as root, and neither runuser nor setpriv is there to run PostgreSQL as postgres")


class PostgresServer:
    """One cluster in `root` (data, unix socket, log), run as `installation` says."""

    def __init__(self, installation: Installation, root: Path) -> None:
        self.installation = installation
        self.bin_dir = installation.bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = 0
        self.password = secrets.token_hex(16)

    def url(self, database: str) -> str:
        """How ORCH_DATABASE_URL names `database`: over TCP, with the password."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        self.give_to_server_user(password_file)
        self._run(
            "initdb",
            f"--pgdata={self.data}",
            f"--username={SUPERUSER}",
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",  # TCP, as the URLs connect: with the password
            "--auth-local=trust",  # the unix socket in `root`, for creating databases
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        password_file.unlink()

    def start(self) -> None:
        """Start on a free port; returns once the server accepts connections on it."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.root}'",
                # A throwaway cluster: durability costs time and buys nothing here.
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
            # postgresql.auto.conf is read last: its settings win over postgresql.conf's.
            (self.data / "postgresql.auto.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
            try:
                # -w: pg_ctl polls the server until it accepts connections, for at most -t seconds.
                self._run(
                    "pg_ctl", "start", f"--pgdata={self.data}", f"--log={self.log}", "-w", f"-t{WAIT_SECONDS:.0f}"
                )
            except PostgresError:
                if attempt < START_ATTEMPTS and "could not bind" in self._log_tail():
                    continue
                raise
            self._wait_accepting()
            return

    def stop(self) -> None:
        """Stop the server (fast: ends the sessions), and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", f"--pgdata={self.data}", "-m", "fast", "-w", f"-t{WAIT_SECONDS:.0f}")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database `url` names, ending the sessions still on it (PostgreSQL 13+)."""
        name = url.rsplit("/", 1)[-1]
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser over the unix socket; psql's output."""
        return self._run(
            "psql",
            f"--host={self.root}",
            f"--port={self.port}",
            f"--username={SUPERUSER}",
            f"--dbname={database}",
            "--no-psqlrc",
            "--tuples-only",
            "--set=ON_ERROR_STOP=1",
            f"--command={statement}",
        )

    def _wait_accepting(self) -> None:
        """Until pg_isready says the server takes connections on its TCP port (pg_ctl saw the
        socket; this is the address the URLs use)."""
        deadline = time.monotonic() + WAIT_SECONDS
        command = [str(self.bin_dir / "pg_isready"), "--host=127.0.0.1", f"--port={self.port}", "--dbname=postgres"]
        while subprocess.run(command, capture_output=True, timeout=WAIT_SECONDS).returncode != 0:
            if time.monotonic() > deadline:
                raise PostgresError(f"not accepting connections on 127.0.0.1:{self.port} within {WAIT_SECONDS:g}s")
            time.sleep(POLL_SECONDS)

    def _run(self, program: str, *args: str) -> str:
        command = [*self.installation.run_as, str(self.bin_dir / program), *args]
        try:
            done = subprocess.run(
                command, cwd=self.root, capture_output=True, text=True, timeout=WAIT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{program} did not finish within {WAIT_SECONDS:g}s{self._log_tail()}") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise PostgresError(f"{program} {' '.join(args)} exited {done.returncode}: {output}{self._log_tail()}")
        return done.stdout

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines) if lines else ""

    def give_to_server_user(self, path: Path) -> None:
        owner = self.installation.owner
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)


@contextmanager
def running_postgres(installation: Installation | None = None) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the duration of the block; stopped and removed after, always."""
    installation = installation or find_installation()
    # Under the system's temporary directory, not pytest's (mode 0700, root's): the server's
    # user must reach its own directory.
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    server = PostgresServer(installation, root)
    try:
        server.give_to_server_user(root)
        server.init()
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started by the first test that asks for it)."""
    try:
        installation = find_installation()
    except PostgresUnavailable as err:
        problem = str(err)
    else:
        with running_postgres(installation) as server:
            yield server
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(name="postgres_url")
def postgres_url_fixture(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server (no migration run), dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
