"""A view's select tree expanded into flat branches: each a list of row operations.

A select's rows are the product of its columns, nested selects and unionAll; unionAll
distributes over that product, so a view becomes a UNION ALL of branches without alternatives
inside. forEachOrNull P {body} is forEach P {body} plus, when P is empty, one row of NULLs for
the body (SQL on FHIR v2, "forEachOrNull"): it is one outer expansion inside its branch (an
empty P expands to one NULL item), so k sibling forEachOrNull keep one branch, not 2^k. Only a
forEachOrNull whose body holds a ``repeat`` is still split in two branches (a recursive
expansion of a NULL row yields no row). A unionAll is one branch as well: ``Choose`` copies
the row once per alternative and each alternative's ops are ``When``-guarded to its copies, so
sibling unionAlls add ops instead of multiplying branches (alternatives that are themselves
several branches, or hold a ``repeat``, still become branches).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count, product

from .definition import Column, Select
from .fhirpath import Node


@dataclass(frozen=True, slots=True)
class ForEach:
    """One row per item of ``path`` evaluated in context ``parent``; the item is context ``ctx``.

    ``outer``: an empty ``path`` gives one row whose item is NULL (forEachOrNull). ``nullable``:
    the parent may be such a NULL row, which then passes through as one NULL row.
    """

    path: Node
    parent: int
    ctx: int
    outer: bool = False
    nullable: bool = False


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
class Present:
    """Keep the row only if context ``ctx`` is not forEachOrNull's NULL row (which a unionAll
    below it must yield once, not once per branch)."""

    ctx: int


@dataclass(frozen=True, slots=True)
class Columns:
    """Output columns evaluated in context ``ctx``; ``nullable``: NULL where ``ctx`` is NULL."""

    columns: tuple[Column, ...]
    ctx: int
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Nulls:
    """Output columns that are NULL in this branch."""

    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Choose:
    """One copy of the row per unionAll alternative, numbered 0..count-1 in column ``a<var>``."""

    var: int
    count: int


@dataclass(frozen=True, slots=True)
class When:
    """``op`` of unionAll alternative ``number`` (of ``Choose`` ``var``): other copies of the row
    pass through it untouched (one NULL item for a forEach, no filter, no column)."""

    var: int
    number: int
    op: Op


Op = ForEach | Repeat | Empty | Present | Columns | Nulls | Choose | When
Branch = list[Op]


def expand(root: Select) -> list[Branch]:
    """The branches of a view's root select (context 0 is the resource)."""
    return Expander().select(root, 0)


class Expander:
    """Numbers contexts while expanding (each forEach/repeat level gets a new one)."""

    def __init__(self) -> None:
        self.ids = count(1)
        self.nullable: set[int] = set()  # contexts that may be forEachOrNull's NULL row
        self.choices = count(1)

    def select(self, node: Select, ctx: int) -> list[Branch]:
        if node.for_each is None and not node.repeat:
            return self.body(node, ctx)
        inner = next(self.ids)
        split = node.or_null and has_repeat(node)
        outer = node.or_null and not split
        head: Op
        if node.repeat or node.for_each is None:
            head = Repeat(node.repeat, ctx, inner)
        else:
            head = ForEach(node.for_each, ctx, inner, outer, ctx in self.nullable)
            if outer or ctx in self.nullable:
                self.nullable.add(inner)
        branches = [[head, *branch] for branch in self.body(node, inner)]
        if split and node.for_each is not None:
            branches.append([Empty(node.for_each, ctx), Nulls(tuple(node.all_columns()))])
        return branches

    def body(self, node: Select, ctx: int) -> list[Branch]:
        parts: list[list[Branch]] = [[[Columns(node.columns, ctx, ctx in self.nullable)]]]
        parts += [self.select(child, ctx) for child in node.selects]
        if node.union:
            parts.append(self.union(node, ctx))
        return [[op for branch in combination for op in branch] for combination in product(*parts)]

    def union(self, node: Select, ctx: int) -> list[Branch]:
        """unionAll: one branch of guarded alternatives (linear SQL), or one branch per
        alternative where an alternative has several branches or a recursive ``repeat``."""
        alternatives = []
        for number, child in enumerate(node.union):
            guard: Branch = [Present(ctx)] if number and ctx in self.nullable else []
            alternatives.append([[*guard, *branch] for branch in self.select(child, ctx)])
        if any(len(branches) != 1 or not linear(branches[0]) for branches in alternatives):
            return [branch for branches in alternatives for branch in branches]
        var = next(self.choices)
        chosen: Branch = [Choose(var, len(alternatives))]
        for number, (branch,) in enumerate(alternatives):
            chosen += [When(var, number, op) for op in branch]
        return [chosen]


def linear(branch: Branch) -> bool:
    """Whether every op of an alternative can pass the other alternatives' rows through."""
    return all(isinstance(op, ForEach | Present | Columns | Choose | When) for op in branch)


def has_repeat(node: Select) -> bool:
    """Whether a ``repeat`` sits anywhere below ``node``."""
    children = (*node.selects, *node.union)
    return any(child.repeat or has_repeat(child) for child in children)
