"""The one configuration: every variable spelled once, parsed by type, in README's one table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fhir_assets.fhir.errors import ConfigurationError
from fhir_assets.settings import Settings, variables

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_variable_is_spelled_once() -> None:
    names = [name for name, *_ in variables()]
    assert len(names) == len(set(names)) > 40
    assert all(re.fullmatch(r"(FHIR|SNOWFLAKE)_[A-Z_]+", name) for name in names)


def _shown(default: object) -> str:
    """How the README table shows a default: off for a false flag, numbers without ``.0``."""
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"`{default:g}`" if isinstance(default, float) else f"`{default}`"


def test_the_readme_has_one_table_listing_every_variable_in_order() -> None:
    text = README.read_text()
    rows = re.findall(r"^\| `((?:FHIR|SNOWFLAKE)_[A-Z_]+)` \|([^|]*)\|", text, re.MULTILINE)
    assert [name for name, _ in rows] == [name for name, *_ in variables()]
    # one table: its rows are consecutive lines, and no other page repeats a row of it
    lines = [i for i, line in enumerate(text.splitlines()) if re.match(r"\| `[A-Z]+_", line)]
    assert lines == list(range(lines[0], lines[0] + len(rows)))
    for page in (README.parent / "docs").glob("*.md"):
        assert not re.search(r"^\| `(?:FHIR|SNOWFLAKE)_[A-Z_]+` \|", page.read_text(), re.M), page
    # a real default is shown as it is; an unset one is described in words or left empty
    shown = dict(rows)
    for name, _, default, _ in variables():
        if default not in (None, ""):
            assert shown[name].strip() == _shown(default), name


def test_values_are_parsed_by_type_and_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_environ(
        {
            "FHIR_BASE_URL": "https://ehr.example/fhir",
            "FHIR_CLIENT_ID": "app",
            "FHIR_CLIENT_SECRET": "s3cret-value",
            "FHIR_SYNC_WORKERS": "3",
            "FHIR_REQUESTS_PER_S": "2.5",
            "FHIR_HISTORY": "yes",
            "FHIR_WAREHOUSE": "snowflake",
            "SNOWFLAKE_PORT": "8443",
            "SNOWFLAKE_PASSWORD": "pw-value",
            "FHIR_DUCKDB_MEMORY_LIMIT": "",  # empty: the default
        }
    )
    assert (settings.fhir.workers, settings.fhir.requests_per_s) == (3, 2.5)
    assert settings.sync.history is True and settings.warehouse.snowflake.port == 8443
    assert settings.warehouse.duckdb.memory_limit == "128MB"
    assert "s3cret-value" not in repr(settings) and "pw-value" not in repr(settings)
    assert settings.fhir.server(("Patient",)).method() == "client-secret-basic"


def test_the_defaults_need_no_environment() -> None:
    settings = Settings.from_environ({})
    assert settings.warehouse.kind == "duckdb" and settings.sync.partitions == "daily"
    with pytest.raises(ConfigurationError, match="FHIR_BASE_URL"):
        settings.fhir.server()
