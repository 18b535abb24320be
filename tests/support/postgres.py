"""A throwaway PostgreSQL server for tests: its own cluster (initdb) in a temporary folder, reached only over a
unix socket in that folder (no TCP at all), started with pg_ctl and stopped at the end.

The server binaries come from Debian's `postgresql` package (`cli.py install --test-tools`). PostgreSQL refuses to
run as root, so as root the cluster belongs to, and runs as, the package's `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL

SERVER_BINARIES = "/usr/lib/postgresql/*/bin"
DATABASE = "calls_test"


def server_bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob(SERVER_BINARIES), key=lambda path: int(Path(path).parent.name.split(".")[0]))
    return Path(found[-1]) if found and (Path(found[-1]) / "initdb").exists() else None


@contextmanager
def postgres_server(port: int = 25432) -> Iterator[URL]:
    """A running server with an empty database DATABASE; its SQLAlchemy URL (psycopg 3 over the unix socket).
    Its folder is a fresh one in /tmp (short: a socket path has at most 107 characters), removed at the end."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError(f"no PostgreSQL server in {SERVER_BINARIES}: run `python cli.py install --test-tools`")
    folder = Path(tempfile.mkdtemp(prefix="calls-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        run_as = ["runuser", "-u", "postgres", "--"]
        account = pwd.getpwnam("postgres")
        shutil.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run([*run_as, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(command[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}"
                               + (f"\n{log.read_text()}" if log.exists() else ""))

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        # No TCP listener at all: the socket in our folder is the only way in.
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {folder} -c listen_addresses='' -c fsync=off")
        try:
            run(str(bin_dir / "createdb"), "-h", str(folder), "-p", str(port), "-U", "postgres", DATABASE)
            yield URL.create("postgresql+psycopg", username="postgres", database=DATABASE,
                             query={"host": str(folder), "port": str(port)})
        finally:
            subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
