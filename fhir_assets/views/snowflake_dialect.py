"""Snowflake: VARIANT resources, collections as FLATTEN pipelines aggregated with ARRAY_AGG.

Snowflake's higher-order TRANSFORM/FILTER work on ARRAY values, but a collection here is built
from correlated ``TABLE(FLATTEN(...))`` subqueries instead: they are older, portable across
accounts, and the fakesnow emulator (which does not run TRANSFORM over VARIANT) executes them.
FLATTEN inputs are never subqueries (pipelines are extended, not nested), which both Snowflake
and fakesnow require.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .dialect import Dialect, Unnest
from .errors import UnsupportedError

# decimals are exact (FHIRPath N1 §2.1.9.1.2); "product": see duckdb_dialect.TYPES
TYPES = {"boolean": "BOOLEAN", "integer": "NUMBER(38,0)", "decimal": "NUMBER(38,18)"}
TYPES |= {"string": "VARCHAR", "product": "NUMBER(38,9)"}
TYPES["real"] = "FLOAT"  # decimal columns: exact arithmetic, stored as floats
TYPES["json"] = "VARIANT"
TYPES["date"] = "DATE"
TYPES["timestamp"] = "TIMESTAMP_TZ"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A collection as FROM items + conditions; ``item`` is the current element, ``order`` its
    position keys (FHIRPath collections are ordered)."""

    sources: tuple[str, ...]
    conditions: tuple[str, ...]
    item: str
    order: tuple[str, ...]
    whole: str | None = None  # set while the pipeline is just the items of this raw value

    def body(self) -> str:
        where = f" WHERE {' AND '.join(self.conditions)}" if self.conditions else ""
        return f"FROM {', '.join(self.sources)}{where}"


def item(alias: str) -> str:
    """The current element of a FLATTEN."""
    return f"{alias}.value"


class SnowflakeDialect(Dialect):
    """SQL for Snowflake (and the fakesnow emulator in tests)."""

    name = "snowflake"

    def string(self, value: str) -> str:
        # Snowflake string literals treat backslash as an escape character.
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

    def sql_type(self, kind: str) -> str:
        return TYPES[kind]

    def array_type(self, kind: str) -> str:
        return "ARRAY"

    def collapse_whitespace(self, text: str) -> str:
        return f"REGEXP_REPLACE({text}, '\\\\s+', ' ')"

    def error(self, message: str, kind: str, witness: str) -> str:
        # Snowflake has no RAISE in expressions: a failing cast carries the message instead
        # ("Boolean value '<message>' is not recognized"). The witness keeps it row-dependent.
        text = f"{self.string(message)} || LEFT(CAST({witness} AS VARCHAR), 0)"
        return f"CAST(CAST({text} AS BOOLEAN) AS {self.sql_type(kind)})"

    def int_range(self, count: int) -> str:
        return "ARRAY_CONSTRUCT(" + ", ".join(str(n) for n in range(count)) + ")"

    def full_match(self, text: str, pattern: str) -> str:
        return f"REGEXP_LIKE({text}, {self.string(pattern)})"

    def regexp_group(self, text: str, pattern: str, group: int) -> str:
        return f"REGEXP_SUBSTR({text}, {self.string(pattern)}, 1, 1, 'e', {group})"

    def last_day(self, year_month: str) -> str:
        return f"TO_VARCHAR(LAST_DAY(TO_DATE({year_month} || '-01')), 'YYYY-MM-DD')"

    def lpad_index(self, index: str) -> str:
        return f"LPAD(CAST({index} AS VARCHAR), 6, '0')"

    # GET_PATH rather than GET: the emulator (fakesnow) unquotes strings on CAST(... AS VARCHAR)
    # only for path extractions, as Snowflake does for any string VARIANT.
    def field(self, item: str, name: str) -> str:
        return f"GET_PATH({item}, '{name}')"

    def is_array(self, value: str) -> str:
        return f"IS_ARRAY({value})"

    def raw_item(self, value: str, index: str) -> str:
        if index.isdigit():
            return f"GET_PATH({value}, '[{index}]')"
        return f"GET({value}, {index})"

    def raw_size(self, value: str) -> str:
        return f"ARRAY_SIZE({value})"

    # first/single stay GET(...) expressions so that a later CAST unquotes in the emulator too
    def raw_first(self, value: str) -> str:
        return self.raw_item(self.wrap(value), "0")

    def raw_index(self, value: str, index: str) -> str:
        # one GET_PATH over the wrapped value, as raw_first: the emulator returns a CAST of a
        # CASE over VARIANT to VARCHAR JSON-quoted
        return self.raw_item(self.wrap(value), index)

    def raw_single(self, value: str, message: str) -> str:
        error = f"TO_ARRAY({self.error(message, 'boolean', f'IFF(IS_ARRAY({value}), 1, 0)')})"
        second = f"{self.raw_item(value, '1')} IS NOT NULL"
        array = (
            f"CASE WHEN IS_ARRAY({value}) AND {second} THEN {error} "
            f"WHEN IS_ARRAY({value}) THEN {value} ELSE ARRAY_CONSTRUCT_COMPACT({value}) END"
        )
        return self.raw_item(array, "0")

    def to_text(self, item: str) -> str:
        return f"CAST({item} AS VARCHAR)"

    def to_number(self, item: str) -> str:
        return f"CAST({item} AS {TYPES['decimal']})"

    def to_integer(self, item: str) -> str:
        return f"CAST({item} AS NUMBER(38,0))"

    def to_boolean(self, item: str, message: str) -> str:
        # A non-boolean JSON string fails the cast with Snowflake's own error.
        return f"CAST({item} AS BOOLEAN)"

    def to_timestamp(self, text: str) -> str:
        return f"CAST({text} AS TIMESTAMP_TZ)"

    def json_compare(self, op: str, left: str, right: str) -> str:
        # VARIANT comparison orders numbers numerically and strings as text.
        return f"{left} {op} {right}"

    def is_number(self, item: str) -> str:
        return f"TYPEOF({item}) IN ('INTEGER', 'DECIMAL', 'DOUBLE')"

    def number_text(self, item: str) -> str:
        raise UnsupportedError(
            "unsupported lowBoundary()/highBoundary() of a decimal: Snowflake's VARIANT does not "
            "keep the number's written precision (1.0 is stored as 1)"
        )

    def wrap(self, value: str) -> str:
        # ARRAY_CONSTRUCT_COMPACT drops a NULL: an absent element is an empty collection
        return f"CASE WHEN IS_ARRAY({value}) THEN {value} ELSE ARRAY_CONSTRUCT_COMPACT({value}) END"

    def flatten(self, pipeline: Pipeline | None, value: str) -> Pipeline:
        alias = self.fresh("g")
        source = f"TABLE(FLATTEN(input => {self.wrap(value)})) {alias}"
        if pipeline is None:
            return Pipeline((source,), (), item(alias), (f"{alias}.index",), whole=value)
        return Pipeline(
            (*pipeline.sources, source),
            pipeline.conditions,
            item(alias),
            (*pipeline.order, f"{alias}.index"),
        )

    def coll_of_raw(self, value: str) -> Pipeline:
        return self.flatten(None, value)

    def coll_of_item(self, item: str) -> Pipeline:
        return self.flatten(None, item)

    def coll_nav(self, coll: Pipeline, name: str) -> Pipeline:
        return self.flatten(coll, self.field(coll.item, name))

    def coll_filter(self, coll: Pipeline, condition: Callable[[str], str]) -> Pipeline:
        return replace(coll, conditions=(*coll.conditions, f"({condition(coll.item)})"), whole=None)

    def coll_size(self, coll: Pipeline) -> str:
        return f"(SELECT COUNT(*) {coll.body()})"

    def coll_item(self, coll: Pipeline, index: str) -> str:
        return self.raw_item(self.coll_array(coll), index)

    def coll_last(self, coll: Pipeline) -> str:
        # a constant GET_PATH: the emulator returns CAST(GET(array, n) AS VARCHAR) JSON-quoted
        order = ", ".join(f"{key} DESC" for key in coll.order)
        aggregate = f"ARRAY_AGG({coll.item}) WITHIN GROUP (ORDER BY {order})"
        return f"GET_PATH((SELECT {aggregate} {coll.body()}), '[0]')"

    def coll_size_distinct(self, coll: Pipeline) -> str:
        # one aggregate: the emulator cannot FLATTEN an ARRAY_DISTINCT of a subquery
        return f"(SELECT COUNT(DISTINCT {coll.item}) {coll.body()})"

    def coll_single(self, coll: Pipeline, message: str) -> str:
        array = self.coll_array(coll)
        second = f"{self.raw_item(array, '1')} IS NOT NULL"
        error = f"TO_ARRAY({self.error(message, 'boolean', f'IFF({second}, 1, 0)')})"
        return self.raw_item(f"CASE WHEN {second} THEN {error} ELSE {array} END", "0")

    def coll_array(self, coll: Pipeline) -> str:
        if coll.whole is not None:
            return self.wrap(coll.whole)  # a plain value needs no aggregate (nor a subquery)
        order = ", ".join(coll.order)
        aggregate = f"ARRAY_AGG({coll.item}) WITHIN GROUP (ORDER BY {order})"
        return f"COALESCE((SELECT {aggregate} {coll.body()}), ARRAY_CONSTRUCT())"

    def coll_concat(self, colls: list[Pipeline]) -> str:
        if len(colls) == 1:
            return self.coll_array(colls[0])
        # one aggregate over a UNION ALL keeps the order: collection first, then its items
        width = max(len(coll.order) for coll in colls)
        parts = []
        for number, coll in enumerate(colls):
            keys = [*coll.order, *["0"] * (width - len(coll.order))]
            columns = ", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))
            parts.append(f"SELECT {number} AS part, {columns}, {coll.item} AS item {coll.body()}")
        order = ", ".join(["part", *(f"k{i}" for i in range(width))])
        union = " UNION ALL ".join(parts)
        aggregate = f"ARRAY_AGG(item) WITHIN GROUP (ORDER BY {order})"
        return f"COALESCE((SELECT {aggregate} FROM ({union}) parts), ARRAY_CONSTRUCT())"

    def coll_join(self, coll: Pipeline, separator: str) -> str:
        order = ", ".join(coll.order)
        aggregate = (
            f"LISTAGG(CAST({coll.item} AS VARCHAR), {separator}) WITHIN GROUP (ORDER BY {order})"
        )
        return f"COALESCE((SELECT {aggregate} {coll.body()}), '')"

    def coll_typed(self, coll: Pipeline, kind: str) -> str:
        return self.coll_array(coll)

    def null_row(self, array: str, condition: str) -> str:
        # ARRAY_CONSTRUCT(NULL) is one undefined item: FLATTEN gives it one row, value NULL
        return f"CASE WHEN {condition} THEN ARRAY_CONSTRUCT(NULL) ELSE {array} END"

    def array_empty(self, array: str) -> str:
        return f"(COALESCE(ARRAY_SIZE({array}), 0) = 0)"

    def unnest(self, array: str, alias: str, outer: bool = False) -> Unnest:
        # The item is stored wrapped in a one-element array and read back with GET_PATH(.., '[0]'):
        # same value in Snowflake, and the emulator then unquotes it on CAST(... AS VARCHAR).
        value = f"ARRAY_CONSTRUCT({item(alias)})"
        if not outer:
            return Unnest(f"LATERAL FLATTEN(input => {array}) {alias}", value, f"{alias}.index")
        # OUTER => TRUE as well, in case FLATTEN skips the undefined item: then it still emits
        # one row (value and index NULL). The emulator ignores OUTER but keeps the NULL item.
        return Unnest(
            f"LATERAL FLATTEN(input => {array}, OUTER => TRUE) {alias}",
            f"IFF({item(alias)} IS NULL, NULL, {value})",
            f"COALESCE({alias}.index, 0)",
        )

    def focus(self, stored: str) -> str:
        return f"GET_PATH({stored}, '[0]')"

    # FHIRPath functions (strings.py)
    def template(self, name: str, value: str, *args: str) -> str:
        forms = {
            "starts": "STARTSWITH({0}, {1})", "ends": "ENDSWITH({0}, {1})",
            "contains": "CONTAINS({0}, {1})", "matches": "(REGEXP_INSTR({0}, {1}) > 0)",
            "replace": "REPLACE({0}, {1}, {2})", "upper": "UPPER({0})", "lower": "LOWER({0})",
            "length": "LENGTH({0})",
        }  # fmt: skip
        return forms[name].format(value, *args)

    def substring(self, value: str, start: str, length: str | None) -> str:
        if length is None:
            return f"SUBSTR({value}, {start} + 1)"
        return f"SUBSTR({value}, {start} + 1, GREATEST({length}, 0))"

    def coll_slice(self, coll: Pipeline, start: str, end: str | None) -> tuple[str, str]:
        array = self.coll_array(coll)
        stop = f"ARRAY_SIZE({array})" if end is None else f"GREATEST({end}, 0)"
        return "raw", f"ARRAY_SLICE({array}, GREATEST({start}, 0), {stop})"

    def coll_distinct(self, coll: Pipeline) -> tuple[str, str]:
        return "raw", f"ARRAY_DISTINCT({self.coll_array(coll)})"

    def coll_union(self, colls: list[Pipeline]) -> tuple[str, str]:
        return "raw", f"ARRAY_DISTINCT({self.coll_concat(colls)})"

    def coll_as_raw(self, coll: Pipeline) -> str:
        return self.coll_array(coll)

    def coll_map(self, coll: Pipeline, projection: Callable[[str], str]) -> Pipeline:
        return self.flatten(coll, projection(coll.item))

    def is_primitive(self, item: str) -> str:
        return f"({item} IS NOT NULL AND TYPEOF({item}) NOT IN ('OBJECT', 'ARRAY'))"

    def scalar_json(self, sql: str) -> str:
        return f"TO_VARIANT({sql})"

    def clock(self, which: str) -> str:
        if which == "today":
            return "TO_VARCHAR(CURRENT_DATE(), 'YYYY-MM-DD')"
        return "TO_VARCHAR(SYSDATE(), 'YYYY-MM-DD\"T\"HH24:MI:SS.FF3')"

    def shift_date(self, text: str, n: int, unit: str, width: int) -> str:
        if width == 19:
            moment = f"TO_TIMESTAMP_NTZ(SUBSTR({text}, 1, 19), 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            return f"TO_VARCHAR(DATEADD({unit}, {n}, {moment}), 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        day = f"TO_DATE({text} || '-01')" if width == 7 else f"TO_DATE({text})"
        pattern = "YYYY-MM" if width == 7 else "YYYY-MM-DD"
        return f"TO_VARCHAR(DATEADD({unit}, {n}, {day}), '{pattern}')"

    def table(self, resource_type: str) -> str:
        return f"fhir_raw.{resource_type.lower()}"
