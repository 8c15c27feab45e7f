"""A throw-away PostgreSQL server for the tests that share a study through a server database: initdb
into a temporary folder, pg_ctl start on a free local port with password authentication, one
database; stopped and deleted at the end of the session. Skips with one line when no server binary
is found (scripts/test.sh installs Debian's postgresql package when it can) or psycopg is missing."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER, PASSWORD, DATABASE = "unpaired", "s3cret-Pa55word", "unpaired"


def server_bin() -> Path | None:
    """The folder with initdb and pg_ctl: $PG_BIN, on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    candidates = [os.environ.get("PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running server; ``url(password)`` for its database, ``stop()`` / ``start()`` for the
    tests of a database that goes away and comes back."""

    def __init__(self, bin_dir: Path, root: Path):
        self.bin, self.root, self.port = bin_dir, root, free_port()
        self.data = root / "data"
        # initdb refuses root: run the server as the postgres user (Debian creates it) when we are root
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(root, "postgres")
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.prefix:
            shutil.chown(pwfile, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"
        )
        self.start()
        import psycopg  # noqa: PLC0415 - optional (the fixture skips without it)

        with psycopg.connect(self.url().rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bin / tool), *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{DATABASE}"


@pytest.fixture(scope="session")
def postgres():
    """A running throw-away PostgreSQL server (skips with one line when none can be started)."""
    pytest.importorskip("psycopg", reason="no psycopg: pip install 'psycopg[binary]' (the sweep extra)")
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binary (initdb): apt-get install postgresql, or set PG_BIN")
    root = Path(tempfile.mkdtemp(prefix="unpaired-pg-"))
    os.chmod(root, 0o755)
    try:
        server = Server(bin_dir, root)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {(e.stderr or b'').decode(errors='replace').strip()[:200]}")
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(root, ignore_errors=True)
