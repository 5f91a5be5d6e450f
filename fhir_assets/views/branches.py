"""One branch of a compiled view as CTE stages: forEach/forEachOrNull/repeat expansions, filters,
unionAll alternatives and the column projections (see ``plan.expand`` for the branches).

Every stage carries the focus items of the enclosing forEach levels (``f<n>``) and their
``%rowIndex`` (``i<n>``); context 0 is the resource itself, with index 0.
"""

from __future__ import annotations

from typing import Any

from .definition import Column
from .dialect import output_kind
from .errors import UnsupportedError
from .expressions import ExpressionCompiler
from .fhirpath import Constant, Node
from .functions import exists_sql
from .plan import Branch, Choose, Columns, Empty, ForEach, Nulls, Op, Present, Repeat, When
from .values import Context, Value


class BranchWriter:
    """Writes the CTE stages of one branch."""

    def __init__(self, compiler: ExpressionCompiler, prefix: str, carried: list[str]):
        self.compiler = compiler
        self.dialect = compiler.dialect
        self.prefix = prefix
        self.carried = list(carried)
        self.stages: list[str] = []
        self.previous = "base"
        self.projections: dict[str, str] = {}
        # the FHIR type of each context's items, where the models know it
        self.types: dict[int, str | None] = {0: compiler.resource_type}
        self.kinds: dict[str, str] = {}  # output kind per column name
        self.guard: list[tuple[int, int]] = []  # the unionAll alternatives the op belongs to
        self.cases: dict[str, list[str]] = {}  # per column: WHEN ... THEN ... of each alternative

    def guarded(self, alias: str) -> str:
        """SQL true on the rows of the current unionAll alternative(s)."""
        return " AND ".join(f"{alias}.a{var} = {number}" for var, number in self.guard)

    def name(self) -> str:
        return f"{self.prefix}_{len(self.stages) + 1}"

    def columns(self, alias: str) -> str:
        return ", ".join(f"{alias}.{column}" for column in self.carried)

    def context(self, ctx: int, alias: str) -> Context:
        kind = self.types.get(ctx)
        if ctx == 0:
            return Context(f"{alias}.f0", "0", f"{alias}.f0", kind)
        focus = self.dialect.focus(f"{alias}.f{ctx}")
        return Context(focus, f"{alias}.i{ctx}", f"{alias}.f0", kind)

    def collection(self, path_ctx: Context, path: Node) -> Any:
        return self.compiler.coll(self.compiler.compile(path, path_ctx))

    def for_each(self, op: ForEach) -> None:
        collect, expand_ = self.name(), f"{self.prefix}_{len(self.stages) + 2}"
        value = self.compiler.compile(op.path, self.context(op.parent, "p"))
        self.types[op.ctx] = value.fhir
        array = self.dialect.coll_array(self.compiler.coll(value))
        self.stages.append(
            f"{collect} AS (SELECT {self.columns('p')}, {array} AS c FROM {self.previous} p)"
        )
        d, array = self.dialect, "q.c"
        if op.outer:
            array = d.null_row(array, d.array_empty(array))
        elif op.nullable:
            array = d.null_row(array, f"q.f{op.parent} IS NULL")
        if self.guard:  # the other alternatives' rows pass through as one NULL item
            array = d.null_row(array, f"NOT ({self.guarded('q')})")
        outer = op.outer or op.nullable or bool(self.guard)
        u = d.select_unnest(array) or d.unnest(array, "u", outer=outer)
        source = f"{collect} q, {u.clause}" if u.clause else f"{collect} q"
        self.stages.append(
            f"{expand_} AS (SELECT {self.columns('q')}, {u.value} AS f{op.ctx}, "
            f"{u.index} AS i{op.ctx} FROM {source})"
        )
        self.carried += [f"f{op.ctx}", f"i{op.ctx}"]
        self.previous = expand_

    def empty(self, op: Empty) -> None:
        value = self.compiler.compile(op.path, self.context(op.parent, "p"))
        condition = exists_sql(self.compiler, value)
        stage = self.name()
        self.stages.append(
            f"{stage} AS (SELECT {self.columns('p')} FROM {self.previous} p WHERE NOT {condition})"
        )
        self.previous = stage

    def repeat(self, op: Repeat) -> None:
        d, n = self.dialect, op.ctx
        recursive, stage = self.name(), f"{self.prefix}_{len(self.stages) + 2}"

        def children(ctx: Context) -> str:
            return d.coll_concat([self.collection(ctx, path) for path in op.paths])

        u, v = d.unnest("a.c", "u"), d.unnest("b.c", "v")
        focus = Context(d.focus(f"t.f{n}"), "0", "t.f0")
        anchor = (
            f"SELECT {self.columns('a')}, {u.value}, {d.lpad_index(u.index)} FROM "
            f"(SELECT {self.columns('p')}, {children(self.context(op.parent, 'p'))} AS c "
            f"FROM {self.previous} p) a, {u.clause}"
        )
        step = (
            f"SELECT {self.columns('b')}, {v.value}, b.k{n} || {d.lpad_index(v.index)} FROM "
            f"(SELECT {self.columns('t')}, t.f{n}, t.k{n}, {children(focus)} AS c "
            f"FROM {recursive} t) b, {v.clause}"
        )
        names = ", ".join([*self.carried, f"f{n}", f"k{n}"])
        self.stages.append(f"{recursive}({names}) AS ({anchor} UNION ALL {step})")
        # %rowIndex of a repeat: position in the pre-order walk below one parent row
        partition = ", ".join(["t.rid"] + [f"t.{c}" for c in self.carried if c.startswith("i")])
        self.stages.append(
            f"{stage} AS (SELECT {self.columns('t')}, t.f{n}, ROW_NUMBER() OVER "
            f"(PARTITION BY {partition} ORDER BY t.k{n}) - 1 AS i{n} FROM {recursive} t)"
        )
        self.carried += [f"f{n}", f"i{n}"]
        self.previous = stage

    def output(self, column: Column, ctx: int, nullable: bool) -> None:
        try:
            self.projection(column, ctx, nullable)
        except UnsupportedError as exc:
            if " at position " in str(exc):
                raise
            raise UnsupportedError(f"{exc} in column {column.name!r} ({column.text})") from exc

    def projection(self, column: Column, ctx: int, nullable: bool) -> None:
        value = self.compiler.compile(column.path, self.context(ctx, "p"))
        kind = column_kind(column) if column.type or column.hint else inferred_kind(value)
        self.kinds[column.name] = kind
        if column.collection:
            sql = self.dialect.coll_typed(self.compiler.coll(value), kind)
        elif column.hint:
            text = self.compiler.scalar(value, "string", f"column {column.name!r} ({column.text})")
            message = (
                f"view {self.compiler.view!r}: column {column.name!r} is tagged ansi/type "
                f"{column.hint.upper()} but holds a malformed {column.hint} "
                "(remove the tag to keep the FHIR text)"
            )
            sql = self.dialect.typed_date(text, column.hint, message)
        else:
            sql = self.compiler.scalar(value, kind, f"column {column.name!r} ({column.text})")
            if kind == "decimal":  # computed exactly, stored as the warehouse's float
                sql = f"CAST({sql} AS {self.dialect.sql_type('real')})"
        if nullable and column.path != Constant("rowIndex"):
            # forEachOrNull's NULL row: every column of the body is NULL (%rowIndex is 0)
            sql = f"CASE WHEN p.f{ctx} IS NULL THEN NULL ELSE {sql} END"
        self.projections[column.name] = sql

    def choose(self, op: Choose) -> None:
        """Copy each row once per alternative (once if it belongs to another alternative)."""
        d, stage = self.dialect, self.name()
        array = d.int_range(op.count)
        if self.guard:
            array = f"CASE WHEN {self.guarded('p')} THEN {array} ELSE {d.int_range(1)} END"
        u = d.select_unnest(array) or d.unnest(array, "u")
        source = f"{self.previous} p, {u.clause}" if u.clause else f"{self.previous} p"
        self.stages.append(
            f"{stage} AS (SELECT {self.columns('p')}, {u.index} AS a{op.var} FROM {source})"
        )
        self.carried.append(f"a{op.var}")
        self.previous = stage

    def write(self, branch: Branch) -> None:
        for op in branch:
            self.dispatch(op)
        for name, cases in self.cases.items():
            self.projections[name] = f"CASE {' '.join(cases)} END"

    def dispatch(self, op: Op) -> None:
        if isinstance(op, When):
            self.guard.append((op.var, op.number))
            self.dispatch(op.op)
            self.guard.pop()
        elif isinstance(op, Choose):
            self.choose(op)
        elif isinstance(op, Columns) and self.guard:
            for column in op.columns:
                self.output(column, op.ctx, op.nullable)
                sql = self.projections.pop(column.name)
                self.cases.setdefault(column.name, []).append(
                    f"WHEN {self.guarded('p')} THEN {sql}"
                )
        else:
            self.operation(op)

    def operation(self, op: Op) -> None:
        if isinstance(op, ForEach):
            self.for_each(op)
        elif isinstance(op, Repeat):
            self.repeat(op)
        elif isinstance(op, Empty):
            self.empty(op)
        elif isinstance(op, Present):
            stage = self.name()
            keep = f"p.f{op.ctx} IS NOT NULL"
            if self.guard:
                keep = f"{keep} OR NOT ({self.guarded('p')})"
            self.stages.append(
                f"{stage} AS (SELECT {self.columns('p')} FROM {self.previous} p WHERE {keep})"
            )
            self.previous = stage
        elif isinstance(op, Columns):
            for column in op.columns:
                self.output(column, op.ctx, op.nullable)
        elif isinstance(op, Nulls):
            for column in op.columns:
                self.projections[column.name] = self.null(column)

    def null(self, column: Column) -> str:
        """A column of forEachOrNull's null row: NULL, except %rowIndex which is 0."""
        kind = self.dialect.sql_type(column_kind(column))
        if column.collection:
            kind = self.dialect.array_type(column_kind(column))
        elif column.path == Constant("rowIndex"):
            return f"CAST(0 AS {kind})"
        return f"CAST(NULL AS {kind})"


def column_kind(column: Column) -> str:
    return column.hint or output_kind(column.type)


def inferred_kind(value: Value) -> str:
    """An untyped column's kind: a computed value's own, else its FHIR element's type."""
    if value.form == "scalar":
        return value.type if value.type in ("boolean", "integer", "decimal") else "string"
    return output_kind(value.fhir if value.type == "json" else value.type)
