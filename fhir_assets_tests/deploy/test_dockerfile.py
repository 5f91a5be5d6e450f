"""deploy/Dockerfile: installs the lock's versions with compiled bytecode, runs as a non-root
user, and bakes no secret into a layer. (No Docker daemon here: a static check; the resolution it
runs was checked with `uv pip compile pyproject.toml -c requirements.lock`.)"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|PRIVATE_KEY|TOKEN|CLIENT_ID", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(" ", 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def test_dependencies_come_from_the_lock_with_compiled_bytecode() -> None:
    runs = " ".join(args for op, args in instructions() if op == "RUN")
    assert "--constraint requirements.lock" in runs
    assert "--compile-bytecode" in runs
    assert "dagster-k8s==0.29.27" in runs  # the integration version every dagster-* pins


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [args for op, args in instructions() if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}


def test_no_secret_enters_a_layer() -> None:
    for op, args in instructions():
        if op in {"ENV", "ARG", "COPY", "ADD"}:
            assert not SECRET_NAMES.search(args), f"{op} {args}"
    copied = [args.split()[-2] for op, args in instructions() if op == "COPY"]
    assert not [path for path in copied if path in {".", "./"}], "COPY . copies local secrets"
