"""Debian's PgBouncer in transaction mode in front of a PostgreSQL server, for the drill and the benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import free_port, wait_for


class PgBouncer:
    """PgBouncer on a free loopback port in front of the server of `database` (Django's settings dict), with
    `pool_size` server connections per database; a context manager that starts and stops it."""

    def __init__(self, database: dict, *, pool_size: int):
        self.database = database
        self.pool_size = pool_size
        self.port = free_port()
        self.user = database["USER"] or "postgres"
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PgBouncer:
        ini = self._ini()
        # PgBouncer refuses to run as root: as root, run it as the postgres user.
        command = (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + ["/usr/sbin/pgbouncer", str(ini)]
        self.log = open(self.directory / "pgbouncer.log", "w")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.admin("SHOW VERSION") is not None, timeout=10, message="PgBouncer to listen")
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def env_for(self, name: str) -> dict[str, str]:
        """What a process needs to reach database `name` through PgBouncer."""
        password = f":{self.database['PASSWORD']}" if self.database.get("PASSWORD") else ""
        url = f"postgres://{self.user}{password}@127.0.0.1:{self.port}/{name}"
        return {"DATABASE_URL": url, "DATABASE_POOLER": "pgbouncer"}

    def admin(self, command: str) -> list[list[str]] | None:
        """A command on PgBouncer's admin console (simple query protocol only, so through psql); its rows."""
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "pgbouncer", "-AtF", "\t"]
            + ["-c", command],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return [line.split("\t") for line in done.stdout.splitlines()] if done.returncode == 0 else None

    def _ini(self) -> Path:
        users = self.directory / "users.txt"
        users.write_text(f'"{self.user}" "{self.database.get("PASSWORD") or ""}"\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.database.get('HOST') or '127.0.0.1'} port={self.database.get('PORT') or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\nadmin_users = {self.user}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\nmax_client_conn = 500\n"
            # psycopg sends no startup options Django does not need; these two are harmless when it does.
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        for path in (self.directory, users, ini):
            path.chmod(0o755 if path.is_dir() else 0o644)
        return ini
