"""The manual names only what exists: commands, options, make targets, settings, files, anchors.

Every Markdown page a user reads (README.md, docs/*.md, bench/README.md) is checked against the
real thing: ``fhir-assets`` commands and options against the CLI's click tree (lazy sub-apps
included), ``make`` targets against the Makefile, ``FHIR_*``/``SNOWFLAKE_*``/``DAGSTER_*`` names
against ``settings.variables()`` and the few variables the code reads directly, links and repo
paths against the files. README stays under 10 KB, and no page tells the history of past work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer

from fhir_assets.cli import app
from fhir_assets.settings import variables

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
TOPICS = ("auth", "sync", "bulk", "landing", "views", "operations", "writeback", "deploy",
          "security", "troubleshooting")  # fmt: skip

# Variables read outside Settings, each with a file that reads it (checked below).
DIRECT = {
    "FHIR_ALLOW_INSECURE_HTTP": "fhir_assets/fhir/urls.py",
    "FHIR_ASSETS_PROGRESS": "fhir_assets/cli/progress.py",
    "FHIR_ASSETS_HOME": "fhir_assets/cli/common.py",
    "FHIR_SANDBOX_PORT": "fhir_assets/cli/common.py",
    "FHIR_SANDBOX_POPULATION": "fhir_assets/cli/common.py",
    "DAGSTER_HOME": "fhir_assets/cli/demo.py",  # Dagster's own; the CLI sets it for `ui`
    "FHIR_BENCH_MB": "bench/landing.py",
    "FHIR_BENCH_DIR": "bench/landing.py",
    "FHIR_BENCH_FULL_MB": "bench/landing.py",
    "FHIR_BENCH_ONLY": "bench/landing.py",
}
# Snowflake objects and Postgres variables that deploy/ defines, named in the deploy pages.
DEPLOY_FILES = ("deploy/snowflake/bootstrap.sql", "deploy/dagster.yaml")
NAME = re.compile(r"(?<![\w$])((?:FHIR|SNOWFLAKE|DAGSTER)_[A-Z0-9_]*[A-Z0-9])(?!\w)")
PREFIX = re.compile(r"(?<![\w$])((?:FHIR|SNOWFLAKE|DAGSTER)_(?:[A-Z0-9]+_)*)\*")
HISTORY = re.compile(
    r"\b(?:before|after):|\bwas\b|\bwere\b|\bpreviously\b|\bused to\b|\bno longer\b"
    r"|\bsession \d|\b(?:this|last|previous|earlier) session\b|\bwe (?:optimi[sz]ed|fixed|made)\b"
    r"|\b(?:is|are) now\b|\bnow (?:beats|lands|runs|takes)\b|\bbefore(?:/| → )after\b",
    re.IGNORECASE,
)
REPO_PATH = re.compile(r"(?:fhir_assets|fhir_assets_tests|bench|deploy|docs|\.ci)/[\w./*-]*")
# A fenced code block, also indented inside a list item; group 1 is its text.
FENCED = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
# Where a command line ends in prose or a code block: a pipe, a comment, "or", a slash.
STOP = {"|", "/", "#", "&&", ";", "\\", "or", "and"}


def code_texts(text: str) -> list[str]:
    """The lines of fenced code blocks and the inline code spans of a Markdown text."""
    fenced = FENCED.findall(text)
    rest = FENCED.sub("", text)
    lines = [line for block in fenced for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", rest)


def prose(text: str) -> str:
    """A Markdown text without its code (which quotes messages and commands verbatim)."""
    text = FENCED.sub("", text)
    return re.sub(r"`[^`\n]+`", "", text)


def _tokens(after: str) -> Iterator[str]:
    for token in after.split():
        if token in STOP or token.startswith("#"):
            return
        yield token.strip("[]()")


def _options(command: click.Command) -> dict[str, bool]:
    """Option name -> whether it takes a value."""
    found = {"--help": False}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                found[name] = not param.is_flag and not param.count
    return found


def command_problems(code: str) -> list[str]:
    """What a code line's ``fhir-assets ...`` names that the CLI does not have."""
    problems = []
    for found in re.finditer(r"(?:^|(?<=[\s/]))fhir-assets(?=\s)(.*)$", code):
        command: click.Command = typer.main.get_command(app)
        path, skip = "fhir-assets", False
        for token in _tokens(found.group(1)):
            if skip:
                skip = False
            elif token.startswith("--"):
                name = token.split("=")[0]
                options = _options(command)
                if name not in options:
                    problems.append(f"`{path}` has no option {name}")
                skip = options.get(name, False) and "=" not in token
            elif isinstance(command, click.Group):
                sub = command.get_command(click.Context(command), token)
                if sub is None:
                    if re.fullmatch(r"[a-z][a-z-]*", token):
                        problems.append(f"`{path}` has no command {token!r}")
                    break
                command, path = sub, f"{path} {token}"
    return problems


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))


def make_problems(code: str, targets: set[str]) -> list[str]:
    return [f"no make target {name!r}"
            for name in re.findall(r"(?:^|(?<=\s))make\s+([a-z][\w-]*)", code)
            if name not in targets]  # fmt: skip


def known_names() -> set[str]:
    deploy = "".join((ROOT / path).read_text() for path in DEPLOY_FILES)
    return {name for name, *_ in variables()} | set(DIRECT) | set(NAME.findall(deploy))


def name_problems(text: str, known: set[str]) -> list[str]:
    problems = [f"unknown setting {n}" for n in NAME.findall(text) if n not in known]
    problems += [f"no setting starts with {p}" for p in PREFIX.findall(text)
                 if not any(name.startswith(p) for name in known)]  # fmt: skip
    return problems


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def link_problems(text: str, page: Path) -> list[str]:
    """Relative links to missing files or anchors, and repo paths in code that do not exist."""
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            problems.append(f"link to a missing file: {target}")
        elif anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", path.read_text(), re.MULTILINE)
            if anchor not in {_slug(h) for h in headings}:
                problems.append(f"link to a missing heading: {target}")
    for code in code_texts(text):
        if REPO_PATH.fullmatch(code) and not any(ROOT.glob(code.rstrip("/"))):
            problems.append(f"no such file in the repository: {code}")
    return problems


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_and_option_named_exists(page: Path) -> None:
    targets = make_targets()
    problems = []
    for code in code_texts(page.read_text()):
        problems += command_problems(code) + make_problems(code, targets)
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_setting_named_exists(page: Path) -> None:
    assert name_problems(page.read_text(), known_names()) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_and_paths_resolve(page: Path) -> None:
    assert link_problems(page.read_text(), page) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_history_of_past_work(page: Path) -> None:
    found = [m.group(0) for m in HISTORY.finditer(prose(page.read_text()))]
    assert found == [], "say what is, not what changed"


def test_readme_is_short_and_links_every_topic_page() -> None:
    text = README.read_text()
    assert len(text.encode()) < 10_000
    for topic in TOPICS:
        assert f"(docs/{topic}.md)" in text
        assert (ROOT / "docs" / f"{topic}.md").exists()


def test_variables_read_directly_are_read_where_named_and_documented() -> None:
    readme = README.read_text()
    for name, source in DIRECT.items():
        assert name in (ROOT / source).read_text(), f"{source} no longer reads {name}"
        assert source.startswith("bench/") or name in readme, f"README does not name {name}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("`fhir-assets sync --since X`", []),
        ("`fhir-assets sync --frobnicate`", ["`fhir-assets sync` has no option --frobnicate"]),
        ("fhir-assets frobnicate --out x", ["`fhir-assets` has no command 'frobnicate'"]),
        (
            "`fhir-assets views run V.json --input F --bogus`",
            ["`fhir-assets views run` has no option --bogus"],
        ),
        ("`fhir-assets auth bogus`", ["`fhir-assets auth` has no command 'bogus'"]),
        ("`make frobnicate`", ["no make target 'frobnicate'"]),
        ("`FHIR_FROBNICATE=1` and `FHIR_BULK_*`", ["unknown setting FHIR_FROBNICATE"]),
        ("`SNOWFLAKE_NOPE_*`", ["no setting starts with SNOWFLAKE_NOPE_"]),
        (
            "[x](docs/nope.md) and `fhir_assets/nope.py`",
            [
                "link to a missing file: docs/nope.md",
                "no such file in the repository: fhir_assets/nope.py",
            ],
        ),
        (
            "[x](docs/sync.md#no-such-heading)",
            ["link to a missing heading: docs/sync.md#no-such-heading"],
        ),
    ],
)
def test_the_checks_catch_what_does_not_exist(line: str, expected: list[str]) -> None:
    problems = name_problems(line, known_names()) + link_problems(line, README)
    for code in code_texts(line) or [line]:
        problems += command_problems(code) + make_problems(code, make_targets())
    assert problems == expected


def test_history_words_are_caught() -> None:
    assert HISTORY.search("it was 2x slower") and HISTORY.search(prose("Before: `x` 12 s"))
    assert not HISTORY.search("the first start takes about 15 s")
