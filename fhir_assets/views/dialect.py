"""What the compiler needs from a SQL dialect: JSON access, collections, casts, row expansion.

A FHIRPath collection is held in one of three forms while compiling (see ``expressions.Value``):
a single JSON item, a JSON value "as found in the resource" (NULL: empty, an array: its items,
anything else: one item) or a dialect collection (``Coll``: a DuckDB ``JSON[]`` list, or a
Snowflake FLATTEN pipeline). Each dialect turns those forms into SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

# FHIR column type -> output kind
INTEGER_TYPES = {"integer", "positiveInt", "unsignedInt", "integer64"}


def output_kind(fhir_type: str | None) -> str:
    """The SQL kind of a column: boolean, integer, decimal, timestamp or string."""
    if fhir_type == "boolean":
        return "boolean"
    if fhir_type in INTEGER_TYPES:
        return "integer"
    if fhir_type == "decimal":
        return "decimal"
    # An instant is complete to the second with a zone (FHIR R4 §2.24.0.1); date and dateTime
    # may be partial ("1970", "1970-03"), which no DATE/TIMESTAMP holds: they stay text.
    if fhir_type == "instant":
        return "timestamp"
    return "string"


# the text a typed date column casts as it is: a complete FHIR date, or a dateTime to the second
# with its offset (FHIR requires one whenever a time is given)
COMPLETE = {
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "timestamp": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$",
}
# a FHIR date of any precision ("1970", "1970-03", "1970-03-04"): cast as its period's start
PARTIAL_DATE = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"


@dataclass(frozen=True, slots=True)
class Unnest:
    """A FROM-clause item expanding an array column, and the SQL of its item and 0-based index."""

    clause: str
    value: str
    index: str


class Dialect(ABC):
    """SQL generation for one warehouse. An instance serves one compilation (alias counter)."""

    name: str
    hoists = False  # whether the compiler reads top-level elements through ``hoist``

    def hoist(self, resource: str, names: list[str]) -> str:
        """The top-level elements ``names`` of the resource as one array, parsed once."""
        raise NotImplementedError

    def __init__(self) -> None:
        self.counter = count(1)

    def fresh(self, prefix: str) -> str:
        """A new alias, unique within the compiled statement."""
        return f"{prefix}{next(self.counter)}"

    # literals and plain SQL
    @abstractmethod
    def string(self, value: str) -> str: ...

    @abstractmethod
    def sql_type(self, kind: str) -> str: ...

    @abstractmethod
    def array_type(self, kind: str) -> str:
        """The SQL type of an array of ``kind`` values (a collection column)."""

    @abstractmethod
    def collapse_whitespace(self, text: str) -> str:
        """``text`` with every run of whitespace replaced by one space."""

    @abstractmethod
    def error(self, message: str, kind: str, witness: str) -> str:
        """An expression that raises ``message`` when evaluated (``witness``: a row-dependent
        integer SQL expression, so the optimizer cannot evaluate it ahead of time)."""

    @abstractmethod
    def int_range(self, count: int) -> str:
        """An array of the integers 0..count-1 (unionAll's alternative numbers)."""

    @abstractmethod
    def full_match(self, text: str, pattern: str) -> str:
        """Whether ``text`` matches the anchored regular expression ``pattern``."""

    def typed_date(self, text: str, kind: str, message: str) -> str:
        """FHIR date/dateTime text as a DATE or TIMESTAMP (``kind``); a malformed value raises.

        A partial value ("1970", "1970-03", a dateTime "2020-05-06") becomes the start of its
        period (1970-01-01; 2020-05-06T00:00:00+00:00), what ``lowBoundary()`` gives, with UTC
        for a date without a zone; the column's FHIR text stays available untagged.
        """
        start = (
            f"CASE LENGTH({text}) WHEN 4 THEN {text} || '-01-01' "
            f"WHEN 7 THEN {text} || '-01' ELSE {text} END"
        )
        if kind == "timestamp":
            start = f"({start}) || 'T00:00:00+00:00'"
        complete = self.full_match(text, COMPLETE[kind])
        partial = self.full_match(text, PARTIAL_DATE)
        sql_type = self.sql_type(kind)
        return (
            f"CASE WHEN {text} IS NULL THEN NULL WHEN {complete} THEN CAST({text} AS {sql_type}) "
            f"WHEN {partial} THEN CAST({start} AS {sql_type}) "
            f"ELSE {self.error(message, kind, f'LENGTH({text})')} END"
        )

    @abstractmethod
    def regexp_group(self, text: str, pattern: str, group: int) -> str: ...

    @abstractmethod
    def last_day(self, year_month: str) -> str:
        """'YYYY-MM-DD' of the last day of the month given as 'YYYY-MM' text."""

    @abstractmethod
    def lpad_index(self, index: str) -> str: ...

    # JSON items
    @abstractmethod
    def field(self, item: str, name: str) -> str: ...

    @abstractmethod
    def is_array(self, value: str) -> str: ...

    @abstractmethod
    def raw_item(self, value: str, index: str) -> str:
        """Item ``index`` (0-based SQL integer) of a JSON array value."""

    @abstractmethod
    def raw_size(self, value: str) -> str: ...

    def raw_nav(self, value: str, name: str) -> str | None:
        """``value.name`` as a raw value, if the dialect can keep it one (else None: a Coll)."""
        return None

    def raw_index(self, value: str, index: str) -> str:
        """Item ``index`` of a raw JSON value (a non-array value is its own item 0)."""
        guard = f"CASE WHEN {index} = 0 THEN {value} END"
        item = self.raw_item(value, index)
        return f"CASE WHEN {self.is_array(value)} THEN {item} ELSE {guard} END"

    @abstractmethod
    def raw_first(self, value: str) -> str:
        """The first item of a raw JSON value (its first element if it is an array)."""

    @abstractmethod
    def raw_single(self, value: str, message: str) -> str:
        """The only item of a raw JSON value; raises ``message`` for an array of two or more."""

    @abstractmethod
    def to_text(self, item: str) -> str: ...

    @abstractmethod
    def to_number(self, item: str) -> str: ...

    @abstractmethod
    def to_integer(self, item: str) -> str: ...

    @abstractmethod
    def to_boolean(self, item: str, message: str) -> str:
        """A JSON boolean as SQL BOOLEAN; anything else raises ``message``."""

    @abstractmethod
    def to_timestamp(self, text: str) -> str:
        """An instant's text as a time-zone-aware timestamp."""

    @abstractmethod
    def json_compare(self, op: str, left: str, right: str) -> str:
        """Compare two JSON items of unknown type (numbers numerically, strings as text)."""

    @abstractmethod
    def is_number(self, item: str) -> str: ...

    @abstractmethod
    def number_text(self, item: str) -> str:
        """The JSON number's literal text (for precision); raises UnsupportedError if lost."""

    # collections
    @abstractmethod
    def coll_of_raw(self, value: str) -> Any: ...

    @abstractmethod
    def coll_of_item(self, item: str) -> Any: ...

    @abstractmethod
    def coll_nav(self, coll: Any, name: str) -> Any: ...

    @abstractmethod
    def coll_filter(self, coll: Any, condition: Callable[[str], str]) -> Any: ...

    @abstractmethod
    def coll_size(self, coll: Any) -> str: ...

    @abstractmethod
    def coll_item(self, coll: Any, index: str) -> str: ...

    def coll_last(self, coll: Any) -> str:
        """The last item of a collection (NULL when it is empty)."""
        return self.coll_item(coll, f"{self.coll_size(coll)} - 1")

    def coll_size_distinct(self, coll: Any) -> str:
        """``distinct().count()``."""
        _, distinct = self.coll_distinct(coll)
        return f"len({distinct})"

    @abstractmethod
    def coll_single(self, coll: Any, message: str) -> str:
        """The only item of a collection; raises ``message`` if it holds two or more."""

    @abstractmethod
    def coll_array(self, coll: Any) -> str:
        """The collection as one SQL array value (for expansion and collection columns)."""

    @abstractmethod
    def coll_concat(self, colls: list[Any]) -> str:
        """Several collections, one after the other, as one SQL array value."""

    @abstractmethod
    def coll_join(self, coll: Any, separator: str) -> str: ...

    @abstractmethod
    def coll_typed(self, coll: Any, kind: str) -> str:
        """A collection column: the items converted to ``kind``."""

    # rows
    @abstractmethod
    def unnest(self, array: str, alias: str, outer: bool = False) -> Unnest:
        """Expand an array column; ``Unnest.value`` is what a stage stores for the item.

        ``outer``: the array may be ``null_row``'s, whose item must be stored as NULL."""

    def select_unnest(self, array: str) -> Unnest | None:
        """An expansion written in the SELECT list (``Unnest.clause`` empty), where the
        warehouse runs that faster than a lateral join; None: use ``unnest``."""
        return None

    @abstractmethod
    def null_row(self, array: str, condition: str) -> str:
        """``array``, or one NULL item where ``condition`` holds (forEachOrNull's NULL row)."""

    @abstractmethod
    def array_empty(self, array: str) -> str:
        """Whether an array value (from ``coll_array``) has no items."""

    def focus(self, stored: str) -> str:
        """The JSON item of a stored forEach focus column (see ``unnest``)."""
        return stored

    @abstractmethod
    def table(self, resource_type: str) -> str: ...

    # FHIRPath functions (strings.py); a string's SQL is NULL when empty
    @abstractmethod
    def template(self, name: str, value: str, *args: str) -> str:
        """String function ``name`` (starts, ends, contains, matches, replace, upper...)."""

    @abstractmethod
    def substring(self, value: str, start: str, length: str | None) -> str: ...

    @abstractmethod
    def coll_slice(self, coll: Any, start: str, end: str | None) -> tuple[str, Any]:
        """Items [start, end) as a Value form and SQL (``end`` None: to the last)."""

    @abstractmethod
    def coll_distinct(self, coll: Any) -> tuple[str, Any]: ...

    @abstractmethod
    def coll_union(self, colls: list[Any]) -> tuple[str, Any]: ...

    @abstractmethod
    def coll_as_raw(self, coll: Any) -> str:
        """A collection as one JSON array value."""

    @abstractmethod
    def coll_map(self, coll: Any, projection: Callable[[str], str]) -> Any:
        """The raw values ``projection(item)`` of every item, flattened."""

    @abstractmethod
    def is_primitive(self, item: str) -> str: ...

    @abstractmethod
    def scalar_json(self, sql: str) -> str:
        """A typed SQL value as a JSON item."""

    @abstractmethod
    def shift_date(self, text: str, n: int, unit: str, width: int) -> str:
        """Date text of ``width`` 7 (YYYY-MM), 10 or 19 (dateTime to the second) moved by
        ``n`` ``unit``s, as text of the same width."""

    @abstractmethod
    def clock(self, which: str) -> str:
        """today() ('YYYY-MM-DD') or now() (UTC 'YYYY-MM-DDThh:mm:ss.fff') as text."""
