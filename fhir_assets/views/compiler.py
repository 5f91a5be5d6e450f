"""ViewDefinition -> one SQL query (a chain of CTEs per branch, branches joined by UNION ALL;
each branch is written by ``branches.BranchWriter``)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .branches import BranchWriter, column_kind
from .definition import ViewDefinition
from .dialect import Dialect
from .errors import UnsupportedError, ViewDefinitionError
from .expressions import ExpressionCompiler
from .plan import Repeat, expand
from .values import Context


def dialect_for(name: str) -> Dialect:
    """A new views dialect of the warehouse kind ``name`` (its ``sql.Dialect.views``).

    Raises:
        ViewDefinitionError: no such kind.
    """
    from ..warehouse.kinds import KINDS, warehouse_kind

    if name not in KINDS:
        raise ViewDefinitionError(f"unknown SQL dialect {name!r}: one of {sorted(KINDS)}")
    module, _, cls = warehouse_kind(name).dialect.views.partition(":")
    dialect: Dialect = getattr(importlib.import_module(module), cls)()
    return dialect


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """A column of the compiled query: name, SQL kind and whether it holds an array."""

    name: str
    kind: str
    collection: bool


@dataclass(frozen=True, slots=True)
class CompiledView:
    """The query and its output columns, in order."""

    view: ViewDefinition
    sql: str
    columns: tuple[OutputColumn, ...]


def quote(name: str) -> str:
    return f'"{name}"'


# The resource key a keyed view carries on every row (``incremental.py`` deletes by it).
KEY_COLUMNS = ("_source_server", "_resource_id")


def base_stage(
    compiler: ExpressionCompiler, view: ViewDefinition, table: str, rid: bool, keyed: bool
) -> str:
    """The resources the view reads: not deleted, passing every ``where`` path.

    Call it after the branches are written: it adds the top-level elements they read (``h``).
    """
    conditions = ["NOT COALESCE(r.deleted, FALSE)"]
    resource = Context("r.resource", "0", "r.resource", view.resource)
    for where in view.where:
        value = compiler.compile(where, resource)
        conditions.append(compiler.scalar(value, "boolean", "where path"))
    number = ", ROW_NUMBER() OVER () AS rid" if rid else ""
    if keyed:
        number += ", r.source_server AS ksrv, r.id AS kid"
    if compiler.hoisted is not None:
        names = list(compiler.hoisted) or ["id"]
        number += f", {compiler.dialect.hoist('r.resource', names)} AS h"
    return (
        f"base AS (SELECT r.resource AS f0{number} FROM {table} r WHERE {' AND '.join(conditions)})"
    )


def compile_view(
    view: ViewDefinition,
    dialect: str | Dialect = "duckdb",
    table: str | None = None,
    keyed: bool = False,
) -> CompiledView:
    """Compile a parsed view to one SQL query over its raw table.

    Args:
        view: the ViewDefinition.
        dialect: a warehouse kind's name ("duckdb", "snowflake") or a Dialect instance.
        table: the table holding ``resource`` and ``deleted`` columns (default
            ``fhir_raw.<type lower>``).
        keyed: also output each row's resource key (``KEY_COLUMNS``, from the raw table's
            ``source_server`` and ``id``), which incremental builds delete by.

    Returns:
        The query and its output columns.

    Raises:
        UnsupportedError: a construct the dialect cannot express (the message names it).
        ViewDefinitionError: the view is invalid (e.g. an undefined constant).
    """
    d = dialect_for(dialect) if isinstance(dialect, str) else dialect
    compiler = ExpressionCompiler(d, view.name, view.resource, view.constants, view.valuesets)
    branches = expand(view.root)
    needs_rid = any(isinstance(op, Repeat) for branch in branches for op in branch)
    carried = ["f0", "rid"] if needs_rid else ["f0"]
    if keyed:
        if set(KEY_COLUMNS) & {column.name for column in view.columns}:
            raise ViewDefinitionError(f"view {view.name!r}: {KEY_COLUMNS} are reserved names")
        carried += ["ksrv", "kid"]
    if compiler.hoisted is not None:
        carried.append("h")
    stages: list[str] = []
    selects = []
    names = [column.name for column in view.columns]
    kinds: dict[str, str] = {}
    for number, branch in enumerate(branches):
        writer = BranchWriter(compiler, f"b{number}", carried)
        writer.write(branch)
        kinds = writer.kinds | kinds
        stages += writer.stages
        projection = ", ".join(f"{writer.projections[n]} AS {quote(n)}" for n in names)
        if keyed:
            projection += f", p.ksrv AS {quote(KEY_COLUMNS[0])}, p.kid AS {quote(KEY_COLUMNS[1])}"
        selects.append(f"SELECT {projection} FROM {writer.previous} p")
    source = table or d.table(view.resource)
    stages.insert(0, base_stage(compiler, view, source, needs_rid, keyed))
    keyword = "WITH RECURSIVE" if needs_rid else "WITH"
    sql = f"{keyword} " + ",\n".join(stages) + "\n" + "\nUNION ALL\n".join(selects)
    columns = tuple(
        OutputColumn(c.name, kinds.get(c.name, column_kind(c)), c.collection) for c in view.columns
    )
    return CompiledView(view, sql, columns)


__all__ = [
    "CompiledView",
    "OutputColumn",
    "UnsupportedError",
    "ViewDefinitionError",
    "compile_view",
]
