"""A view's select tree expanded into flat branches: each a list of row operations.

A select's rows are the product of its columns, nested selects and unionAll; unionAll and
forEachOrNull distribute over that product, so a view becomes a UNION ALL of branches without
alternatives inside. forEachOrNull P {body} is forEach P {body} plus, when P is empty, one row
of NULLs for the body (SQL on FHIR v2, "forEachOrNull").
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count, product

from .definition import Column, Select
from .fhirpath import Node


@dataclass(frozen=True, slots=True)
class ForEach:
    """One row per item of ``path`` evaluated in context ``parent``; the item is context ``ctx``."""

    path: Node
    parent: int
    ctx: int


@dataclass(frozen=True, slots=True)
class Repeat:
    """One row per item reached by applying ``paths`` recursively (depth-first, pre-order)."""

    paths: tuple[Node, ...]
    parent: int
    ctx: int


@dataclass(frozen=True, slots=True)
class Empty:
    """Keep the row only if ``path`` is empty in context ``parent`` (forEachOrNull's null row)."""

    path: Node
    parent: int


@dataclass(frozen=True, slots=True)
class Columns:
    """Output columns evaluated in context ``ctx``."""

    columns: tuple[Column, ...]
    ctx: int


@dataclass(frozen=True, slots=True)
class Nulls:
    """Output columns that are NULL in this branch."""

    columns: tuple[Column, ...]


Op = ForEach | Repeat | Empty | Columns | Nulls
Branch = list[Op]


def expand(root: Select) -> list[Branch]:
    """The branches of a view's root select (context 0 is the resource)."""
    return Expander().select(root, 0)


class Expander:
    """Numbers contexts while expanding (each forEach/repeat level gets a new one)."""

    def __init__(self) -> None:
        self.ids = count(1)

    def select(self, node: Select, ctx: int) -> list[Branch]:
        if node.for_each is None and not node.repeat:
            return self.body(node, ctx)
        inner = next(self.ids)
        head: Op = (
            Repeat(node.repeat, ctx, inner) if node.repeat else ForEach(node.for_each, ctx, inner)  # type: ignore[arg-type]
        )
        branches = [[head, *branch] for branch in self.body(node, inner)]
        if node.or_null and node.for_each is not None:
            branches.append([Empty(node.for_each, ctx), Nulls(tuple(node.all_columns()))])
        return branches

    def body(self, node: Select, ctx: int) -> list[Branch]:
        parts: list[list[Branch]] = [[[Columns(node.columns, ctx)]]]
        parts += [self.select(child, ctx) for child in node.selects]
        if node.union:
            parts.append([branch for child in node.union for branch in self.select(child, ctx)])
        return [[op for branch in combination for op in branch] for combination in product(*parts)]
