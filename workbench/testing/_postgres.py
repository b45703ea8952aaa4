"""``PostgresServer``: a throwaway PostgreSQL cluster for tests, as pytest-postgresql starts one.

``initdb`` and ``pg_ctl`` (Debian's ``postgresql`` package) in a temporary folder, listening on
a unix socket in that folder and on a free port of 127.0.0.1, stopped and removed on exit. Run
as root (a container, CI), the cluster runs as the ``postgres`` user, since PostgreSQL refuses
to run as root. Each test takes a database of its own (:meth:`PostgresServer.new_database`),
so tests never see each other's rows. Works without pytest; the suite's fixture wraps it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_postgres_bin"]

#: The role the tests connect as over TCP, with a password (so that the password's path
#: through logs, errors and recordings is tested), and as the socket's trusted user.
USER = "workbench"


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is missing."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of its own: ``start()`` (or ``with``) and ``stop()``."""

    def __init__(self) -> None:
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb on PATH nor under /usr/lib/postgresql); "
                "install Debian's postgresql package"
            )
        self.bin = bin_dir
        self.password = secrets.token_hex(12)
        self.port = 0
        self.folder: Path | None = None
        self._databases = itertools.count(1)
        self._as_postgres = os.geteuid() == 0

    @property
    def socket_dir(self) -> Path:
        assert self.folder is not None
        return self.folder / "socket"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
        self.socket_dir.mkdir()
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.folder, self.socket_dir, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        data = self.folder / "data"
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        password_file.unlink()
        self.port = _free_port()
        # fsync off: the tests kill clients, not the server, and a test cluster's durability
        # across power loss is not what they prove.
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        log = self.folder / "server.log"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        return self

    def restart(self) -> None:
        """Stop the server (fast: open connections are cut) and start it again, same port."""
        assert self.folder is not None
        data = str(self.folder / "data")
        log = str(self.folder / "server.log")  # else the server writes to our pipe, held open
        self._run("pg_ctl", "-D", data, "-l", log, "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        if self.folder is None:
            return
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, database: str = "postgres", *, socket: bool = False) -> str:
        """A URL of ``database``: over TCP with the password, or over the unix socket."""
        if socket:
            return f"postgresql:///{database}?host={self.socket_dir}&port={self.port}&user={USER}"
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _client(self, program: str, *args: str) -> None:
        # PostgreSQL's own client programs, over the socket (trusted): this helper lives above
        # the store, which alone talks to databases through a driver.
        done = subprocess.run(
            [
                str(self.bin / program),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                USER,
                *args,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")

    def new_database(self) -> str:
        """Create an empty database of its own; its name."""
        name = f"test_{os.getpid()}_{next(self._databases)}"
        self._client("createdb", "-T", "template0", name)
        return name

    def drop_database(self, name: str) -> None:
        self._client("dropdb", "--if-exists", "--force", name)
