"""``fhir-assets views``: run a ViewDefinition over an NDJSON file with the same engine."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="SQL on FHIR v2 ViewDefinitions.", no_args_is_help=True)

FORMATS = {".csv": "FORMAT csv, HEADER true", ".json": "FORMAT json, ARRAY true"}
FORMATS[".parquet"] = "FORMAT parquet"
BATCH = 10_000


def print_csv(con: Any, sql: str) -> None:
    """Rows as CSV on stdout, a batch at a time (the result may not fit in memory)."""
    cursor = con.execute(sql)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow([column[0] for column in cursor.description])
    while batch := cursor.fetchmany(BATCH):
        out.writerows(["" if value is None else value for value in row] for row in batch)
    sys.stdout.flush()


@app.command()
def run(
    view_path: Path = typer.Argument(..., metavar="VIEW.json", help="the ViewDefinition"),
    input_path: Path = typer.Option(..., "--input", help="NDJSON file of FHIR resources"),
    output: Path | None = typer.Option(
        None, "--output", help="write .csv, .json (array of row objects) or .parquet; else print"
    ),
) -> None:
    """Flatten the resources of an NDJSON file with a ViewDefinition (DuckDB in-process)."""
    import duckdb

    from .definition import load_view
    from .errors import ViewError
    from .runner import run_ndjson

    if output is not None and output.suffix.lower() not in FORMATS:
        typer.echo(f"--output must end in {', '.join(FORMATS)}: {output}", err=True)
        raise typer.Exit(2)
    if not input_path.is_file():
        typer.echo(f"--input {input_path} is not a file", err=True)
        raise typer.Exit(2)
    con = duckdb.connect()
    try:
        relation = run_ndjson(load_view(view_path), input_path, con)
        if output is None:
            print_csv(con, relation.sql_query())
            return
        # the path is bound as a parameter; the format options are fixed strings
        con.execute(
            f"COPY ({relation.sql_query()}) TO ? ({FORMATS[output.suffix.lower()]})", [str(output)]
        )
    except (ViewError, duckdb.Error) as exc:
        typer.echo(f"view failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        con.close()
    typer.echo(f"wrote {output}", err=True)


@app.command()
def sql(
    view_path: Path = typer.Argument(..., metavar="VIEW.json", help="the ViewDefinition"),
    dialect: str = typer.Option("duckdb", "--dialect", help="duckdb or snowflake"),
    table: str | None = typer.Option(
        None, "--table", help="the raw table to read (default fhir_raw.<resource type>)"
    ),
) -> None:
    """Print the SQL a ViewDefinition compiles to, to review it or paste it into a worksheet."""
    from .compiler import compile_view
    from .definition import load_view
    from .errors import ViewError

    try:
        compiled = compile_view(load_view(view_path), dialect, table=table)
    except ViewError as exc:
        typer.echo(f"view failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(compiled.sql)
