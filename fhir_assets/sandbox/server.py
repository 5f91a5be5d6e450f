"""Start and stop a seeded ``sekmet-fhir`` server on 127.0.0.1 with SMART Backend Services on.

The seeded SQLite database is cached under ``<home>/sandbox/cache`` (git-ignored), keyed by the
data set's size and seed, so only the first start pays for generating and loading the data. Each
start works on a copy, so writes (tests, write-back demos) never change the cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from joserfc.jwk import ECKey, RSAKey

from ..fhir.auth import BearerAuth, ClientCredentialsTokenSource, load_private_key
from ..fhir.client import FhirClient
from ..fhir.http import new_session
from ..processes import stop_group
from . import seed as seeding

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "fhir-assets-demo"
SEED_VERSION = 3  # bump when the seeding code changes what lands in the cache
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In the forked child before exec: get SIGTERM when the starting process dies, even by
    kill -9, so a sandbox is never left running re-parented to PID 1 (Linux only; elsewhere
    the context manager's stop is the only guard). The signal follows the thread that started
    the server, which is the caller of ``Sandbox.start``."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class SandboxClient:
    """A SMART Backend Services client registered with the sandbox."""

    client_id: str
    private_key_path: Path
    alg: str
    scopes: str

    def public_jwks(self) -> dict[str, Any]:
        """The public JWKS the sandbox verifies this client's assertions with."""
        key = load_private_key(self.private_key_path)
        public = key.as_dict(private=False) | {"alg": self.alg, "use": "sig"}
        return {"keys": [public]}


class PortTaken(RuntimeError):
    """The sandbox server could not bind its port: another process holds it."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` right now."""
    with socket.socket() as probe:
        # as uvicorn binds: connections of a stopped server in TIME_WAIT do not block the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def generate_key(path: Path, alg: str) -> None:
    """Write a new private key for ``alg`` (RS384 or ES384) as PEM, readable by the owner only."""
    key: RSAKey | ECKey = (
        ECKey.generate_key("P-384") if alg.startswith("ES") else RSAKey.generate_key(2048)
    )
    key.ensure_kid()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.as_pem(private=True))


@dataclass
class Sandbox:
    """A seeded FHIR R4 server for demos and tests. Use as a context manager.

    Args:
        home: state folder (keys, seeded-database cache); ``.fhir-assets`` by default.
        population: size of the synthetic data set (clinosim catchment population).
        seed: random seed of the synthetic data.
        token_lifetime: seconds an access token lives (short values test refresh).
        extra_clients: more ``smart_clients`` entries in sekmet's settings format.
        settings: top-level overrides of sekmet's settings.
    """

    home: Path = field(default_factory=lambda: Path(".fhir-assets"))
    population: int = 150
    seed: int = 7
    token_lifetime: int = 3600
    extra_clients: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    @property
    def client(self) -> SandboxClient:
        """The demo client: RS384, all system scopes."""
        key = self.home.resolve() / "sandbox" / "keys" / "demo-rs384.pem"
        return SandboxClient(DEFAULT_CLIENT_ID, key, "RS384", "system/*.*")

    def fhir_client(self, scope: str = "system/*.*") -> FhirClient:
        """A FhirClient authenticated as the demo client."""
        tokens = ClientCredentialsTokenSource(
            token_url=self.token_url,
            client_id=self.client.client_id,
            private_key=load_private_key(self.client.private_key_path),
            scope=scope,
        )
        return FhirClient(self.base_url, auth=BearerAuth(tokens, self.base_url))

    def environment(self) -> dict[str, str]:
        """The ``FHIR_*`` variables that point fhir-assets at this sandbox."""
        return {
            "FHIR_BASE_URL": self.base_url,
            "FHIR_CLIENT_ID": self.client.client_id,
            "FHIR_PRIVATE_KEY_PATH": str(self.client.private_key_path),
            "FHIR_SCOPES": "system/*.read",
        }

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server on a copy of the seeded database and wait until it answers."""
        cached = self.seeded_database()
        self._workdir = Path(tempfile.mkdtemp(prefix="fhir-sandbox-"))
        shutil.copy(cached, self._workdir / "sekmet.db")
        try:
            self._launch(self._workdir)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server and delete its working copy."""
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_group(process, timeout=15)

    def seeded_database(self) -> Path:
        """The cached seeded database and demo key, made once (under a file lock) if missing."""
        cache = self.home.resolve() / "sandbox" / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / f"v{SEED_VERSION}-pop{self.population}-seed{self.seed}.db"
        with (cache / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.client.private_key_path.exists():
                generate_key(self.client.private_key_path, "RS384")
            if not target.exists():
                self._build(target)
        return target

    def _build(self, target: Path) -> None:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fhir-seed-") as tmp:
            work = Path(tmp)
            ndjson = seeding.generate(work, population=self.population, seed=self.seed)
            self._launch(work)
            try:
                with self.fhir_client() as client:
                    counts = seeding.load(client, ndjson)
            finally:
                self._terminate()
            with contextlib.closing(sqlite3.connect(work / "sekmet.db")) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("ANALYZE")
            shutil.copy(work / "sekmet.db", target.with_suffix(".tmp"))
            target.with_suffix(".tmp").rename(target)
        log.info(
            "seeded sandbox with %d resources in %.1fs",
            sum(counts.values()),
            time.monotonic() - started,
        )

    def _launch(self, workdir: Path) -> None:
        try:
            self._serve(workdir)
        except PortTaken:
            # Another process took the port between our check and our bind (two `make demo`s at
            # once): take any free port rather than fail.
            self.port = free_port()
            self._serve(workdir)

    def _serve(self, workdir: Path) -> None:
        self.port = self.port or free_port()
        settings_path = workdir / "settings.yaml"
        settings_path.write_text(yaml.safe_dump(self._settings(workdir)))
        log_file = (workdir / "server.log").open("wb")
        self._process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            # sekmet's app plus the operations it lacks ($extract): sandbox/app.py
            [sys.executable, "-m", "fhir_assets.sandbox.app", "--config", str(settings_path)],
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one in _terminate
            preexec_fn=die_with_parent,
            env={**os.environ, "SEKMET_CONFIG": str(settings_path)},
        )
        self._wait_ready(workdir / "server.log")

    def _settings(self, workdir: Path) -> dict[str, Any]:
        demo = {
            "client_id": self.client.client_id,
            "jwks": self.client.public_jwks(),
            "scopes": "system/*.*",
        }
        return {
            # sekmet binds 0.0.0.0 unless told otherwise, stores every body unless log_inbound is
            # off, and invents resources unless its simulator is off.
            "host": "127.0.0.1",
            "port": self.port,
            "base_url": self.base_url,
            "log_inbound": False,
            "simulator": {"enabled": False, "delay_seconds": 0},
            "data_dir": str(workdir),
            "db_path": str(workdir / "sekmet.db"),
            "own_private_key_path": str(workdir / "sekmet-own.pem"),
            "validation": {"inbound": "off"},
            "server_auth": {
                "types": ["smart"],
                "token_lifetime": self.token_lifetime,
                "enforce_scopes": True,
                "smart_clients": [demo, *self.extra_clients],
            },
            **self.settings,
        }

    def _wait_ready(self, log_path: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        while process is not None and time.monotonic() < deadline:
            log = log_path.read_text(errors="replace")
            if process.poll() is not None:
                if "address already in use" in log:
                    raise PortTaken(self.port)
                raise RuntimeError(f"the sandbox server exited at start:\n{log[-2000:]}")
            # Only our own server counts: another one may answer on this port if it won the bind.
            if "Uvicorn running on" not in log:
                time.sleep(0.2)
                continue
            with contextlib.suppress(requests.RequestException):
                with new_session() as http:
                    probe = http.get(f"{self.base_url}/metadata", timeout=2)
                if probe.status_code == 200:
                    return
            time.sleep(0.2)
        self._terminate()
        raise RuntimeError(f"the sandbox server did not answer within {timeout:.0f}s")

    def counts(self, resource_types: list[str]) -> dict[str, int]:
        """How many resources of each type the server holds (``_summary=count``)."""
        with self.fhir_client() as client:
            return {
                t: int(client.get(t, {"_summary": "count"}).get("total", 0)) for t in resource_types
            }


def describe(sandbox: Sandbox) -> str:
    """A text a user can paste: the base URL, the client and the environment to export."""
    env = "\n".join(f"export {k}={v}" for k, v in sandbox.environment().items())
    jwks = json.dumps(sandbox.client.public_jwks()["keys"][0]["kid"])
    return (
        f"FHIR base URL : {sandbox.base_url}\nToken URL     : {sandbox.token_url}\n"
        f"Client        : {sandbox.client.client_id} (RS384, key id {jwks})\n\n{env}\n"
    )
