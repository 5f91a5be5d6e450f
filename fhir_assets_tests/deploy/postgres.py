"""A throwaway PostgreSQL server on 127.0.0.1: Debian's ``postgresql`` binaries, a data folder of
its own, a free port, password authentication. What the production instance runs against.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` system user
(which Debian's package creates) through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from fhir_assets_tests.ports import unshared_port

USER = "dagster"
DATABASE = "dagster"


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be started here (no binaries, no unprivileged user)."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if not found:
        raise PostgresUnavailableError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
            "apt-get install -y postgresql"
        )
    return Path(found[-1]).parent


def _version(path: str) -> float:
    return float(Path(path).parent.parent.name)


class Postgres:
    """Start with ``with Postgres() as pg:``; ``pg.environment()`` is what dagster.yaml reads."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.run_as = _unprivileged_user()
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="fhir-assets-pg-"))
        self.data = self.root / "data"

    def environment(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables of deploy/dagster.yaml."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": DATABASE,
        }

    def dsn(self) -> str:
        """A libpq URL of the database (what FHIR_RATE_LIMIT_POSTGRES takes)."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """initdb, start on a free port (listening on 127.0.0.1 only), create the database;
        on any failure the server is stopped and its folder deleted."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if self.run_as is not None:
            shutil.chown(self.root, self.run_as, self.run_as)
        password_file = self.root / "pw"
        password_file.write_text(self.password)
        if self.run_as is not None:
            shutil.chown(password_file, self.run_as)
        password_file.chmod(0o600)
        self._pg("initdb", "-D", str(self.data), "-U", USER, "-A", "scram-sha-256",
                 f"--pwfile={password_file}", "-E", "UTF8", "--no-sync")  # fmt: skip
        password_file.unlink()
        self.port = unshared_port()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options,
                 "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip
        self._psql(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _psql(self, sql: str) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=USER, password=self.password, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def _pg(self, tool: str, *args: str, check: bool = True) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise PostgresUnavailableError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n"
                f"{self.log()[-2000:]}"
            )


def _unprivileged_user() -> str | None:
    """None when we are not root; else the ``postgres`` user the server runs as."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise PostgresUnavailableError("running as root and runuser is missing")
    try:
        subprocess.run(["id", "postgres"], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        raise PostgresUnavailableError(
            "running as root and there is no 'postgres' user to run the server as"
        ) from exc
    return "postgres"
