"""The processes of a production Dagster deployment on one machine, as the Helm chart runs them
in pods: two code servers (``dagster api grpc``) serving the one code location, the daemon and
the webserver, each with its own workspace file, all on deploy/dagster.yaml and Postgres.

The webserver reaches the location through code server A, the daemon through code server B: two
processes serve the same location, as two replicas of the user-code deployment do on Kubernetes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from fhir_assets.processes import stop_group
from fhir_assets_tests.ports import unshared_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
LOCATION = "fhir_assets"
REPOSITORY = "__repository__"  # the name Dagster gives a module's Definitions


def _default_signals() -> None:
    # Dagster processes started from a non-interactive shell ignore SIGINT/SIGTERM otherwise.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


@dataclass
class Stack:
    """Start with ``start()``, stop with ``stop()``; ``graphql()`` talks to the webserver."""

    root: Path
    env: dict[str, str]
    web_port: int = field(default_factory=unshared_port)
    code_ports: tuple[int, int] = field(default_factory=lambda: (unshared_port(), unshared_port()))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def environment(self) -> dict[str, str]:
        return self.env | {
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_COMPUTE_LOG_DIR": str(self.root / "compute_logs"),
        }

    def write_home(self) -> None:
        """A DAGSTER_HOME holding deploy/dagster.yaml and nothing else (wiped and rewritten)."""
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        shutil.copy(REPO / "deploy" / "dagster.yaml", self.home / "dagster.yaml")
        for name, port in (("web", self.code_ports[0]), ("daemon", self.code_ports[1])):
            (self.root / f"workspace-{name}.yaml").write_text(
                "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                f"      port: {port}\n      location_name: {LOCATION}\n"
            )

    def start(self) -> None:
        self.write_home()
        self.migrate()
        for name in ("code-a", "code-b"):
            self.start_code_server(name)
        self.start_daemon()
        self.start_webserver()

    def migrate(self) -> None:
        """Create the instance's tables in the empty PostgreSQL once, before any process starts:
        a daemon and a webserver creating them at the same time can collide (one fails its
        ``CREATE TABLE`` and exits), as deploy/README.md tells operators."""
        subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"],
            env=self.environment(), cwd=REPO, check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start_code_server(self, name: str) -> None:
        """``code-a`` (the webserver's) or ``code-b`` (the daemon's), on its fixed port."""
        port = self.code_ports[0 if name == "code-a" else 1]
        self.spawn(name, [str(BIN / "dagster"), "api", "grpc", "-m", "fhir_assets.definitions",
                          "-h", "127.0.0.1", "-p", str(port), "--location-name", LOCATION,
                          "-d", str(REPO)])  # fmt: skip

    def pause(self, name: str, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) one process: it holds its sockets but answers nothing."""
        self.processes[name].send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def start_daemon(self) -> None:
        workspace = self.root / "workspace-daemon.yaml"
        self.spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])

    def start_webserver(self) -> None:
        workspace = self.root / "workspace-web.yaml"
        self.spawn("webserver", [str(BIN / "dagster-webserver"), "-w", str(workspace),
                                 "-h", "127.0.0.1", "-p", str(self.web_port)])  # fmt: skip

    def spawn(self, name: str, argv: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            argv,
            env=self.environment(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )

    def kill(self, name: str) -> None:
        """SIGKILL one process (its pid only: a crash, not a shutdown)."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def terminate(self, name: str) -> None:
        """Stop one process and its children (its process group): SIGTERM, then SIGKILL."""
        stop_group(self.processes.pop(name), timeout=20)

    def stop(self) -> None:
        for name in ("webserver", "daemon", "code-a", "code-b"):
            if name in self.processes:
                self.terminate(name)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def wait_ready(self, timeout: float = 240) -> None:
        """Until the webserver answers and its code location is loaded."""
        query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus"
        query += " locationOrLoadError { __typename } } } } }"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.log(name)}")
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
            except (requests.RequestException, KeyError, RuntimeError):
                entries = []
            if entries and all(
                e["loadStatus"] == "LOADED"
                and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                for e in entries
            ):
                return
            time.sleep(1)
        raise TimeoutError(f"the webserver was not ready in {timeout:.0f}s")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a query to the webserver's GraphQL API; its ``data`` (errors raise)."""
        response = requests.post(
            f"http://127.0.0.1:{self.web_port}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]  # type: ignore[no-any-return]
