"""A parser for the FHIRPath subset that ViewDefinitions use, producing a small typed AST.

fhirpathpy (installed with sekmet-fhir) ships an ANTLR parse tree as nested dicts keyed by grammar
rule names; compiling to SQL needs a plain expression tree, so this hand-written precedence-climbing
parser follows the FHIRPath N1 grammar (https://hl7.org/fhirpath/N1/grammar.html) instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import FhirPathSyntaxError


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, integer, decimal or boolean literal; ``value`` None is the empty collection."""

    value: str | int | float | bool | None
    type: str  # "string", "integer", "decimal", "boolean" or "empty"


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quantity literal: ``1 year``, ``4 'mg'`` (calendar units singular or plural)."""

    value: int | float
    unit: str


@dataclass(frozen=True, slots=True)
class This:
    """``$this``: the current focus."""


@dataclass(frozen=True, slots=True)
class Constant:
    """``%name``: an environment variable (a view constant or ``%rowIndex``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """``base.name``; ``base`` None means the implicit focus."""

    base: Node | None
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """``base.name(args)``; ``base`` None means the implicit focus."""

    base: Node | None
    name: str
    args: tuple[Node, ...]
    # where the call is written (for error messages; not part of the tree's identity)
    pos: int = field(default=-1, compare=False)
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Index:
    """``base[index]``."""

    base: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``."""

    op: str
    left: Node
    right: Node
    pos: int = field(default=-1, compare=False)
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Negate:
    """Unary minus."""

    operand: Node


Node = Literal | Quantity | This | Constant | Member | Call | Index | Binary | Negate

# Binary operators by precedence, loosest first (FHIRPath N1 §"Operator precedence").
PRECEDENCE: tuple[tuple[str, ...], ...] = (
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("in", "contains"),
    ("=", "~", "!=", "!~"),
    ("<=", "<", ">", ">="),
    ("|",),
    ("is", "as"),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
)
# calendar duration keywords (FHIRPath N1 §"Quantity"), by their singular name
CALENDAR = {
    unit + plural: unit
    for unit in ("year", "month", "week", "day", "hour", "minute", "second", "millisecond")
    for plural in ("", "s")
}
WORD_OPERATORS = {op for level in PRECEDENCE for op in level if op.isalpha()}

TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<delimited>`(?:[^`\\]|\\.)*`)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<special>[$%][A-Za-z_][A-Za-z0-9_]*|%`(?:[^`\\]|\\.)*`)
    | (?P<op><=|>=|!=|!~|[-+*/|&=~<>.,()\[\]{}])
    )""",
    re.VERBOSE,
)
ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r"}
ESCAPES["t"] = "\t"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int = 0


def unescape(body: str) -> str:
    """Resolve FHIRPath string escapes (``\\'``, ``\\n``, ``\\uXXXX``...)."""
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|.)",
        lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5 else ESCAPES.get(m[1], m[1]),
        body,
    )


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; raise FhirPathSyntaxError on an unknown character."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise FhirPathSyntaxError(f"FHIRPath {text!r}: unexpected character at {position}")
        tokens.append(Token(match.lastgroup, match[match.lastgroup], match.start(match.lastgroup)))
        position = match.end()
    return tokens


class Parser:
    """Recursive descent over the token list of one expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0

    def error(self, message: str) -> FhirPathSyntaxError:
        return FhirPathSyntaxError(f"FHIRPath {self.text!r}: {message}")

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise self.error(f"expected {text or 'more input'}")
        self.position += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text and token.kind in ("op", "ident"):
            self.position += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.binary(0)
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def binary(self, level: int) -> Node:
        if level == len(PRECEDENCE):
            return self.unary()
        node = self.binary(level + 1)
        while (token := self.peek()) is not None and token.text in PRECEDENCE[level]:
            if token.kind not in ("op", "ident"):
                break
            self.position += 1
            node = Binary(token.text, node, self.binary(level + 1), token.pos, self.text)
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return Negate(self.unary())
        self.accept("+")
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.accept("."):
                node = self.invocation(node)
            elif self.accept("["):
                node = Index(node, self.binary(0))
                self.take("]")
            else:
                return node

    def term(self) -> Node:
        token = self.take()
        if token.kind == "string":
            return Literal(unescape(token.text[1:-1]), "string")
        if token.kind == "number":
            number = float(token.text) if "." in token.text else int(token.text)
            unit = self.peek()
            if unit is not None and (unit.text in CALENDAR or unit.kind == "string"):
                self.position += 1
                name = unescape(unit.text[1:-1]) if unit.kind == "string" else unit.text
                return Quantity(number, CALENDAR.get(name, name))
            if "." in token.text:
                return Literal(number, "decimal")
            return Literal(number, "integer")
        if token.kind == "special":
            return self.special(token.text)
        if token.text == "(":
            node = self.binary(0)
            self.take(")")
            return node
        if token.text == "{":
            self.take("}")
            return Literal(None, "empty")
        if token.kind == "ident" and token.text in ("true", "false"):
            return Literal(token.text == "true", "boolean")
        self.position -= 1
        return self.invocation(None)

    def special(self, text: str) -> Node:
        if text == "$this":
            return This()
        if text.startswith("%"):
            name = text[1:]
            return Constant(unescape(name[1:-1]) if name.startswith("`") else name)
        raise self.error(f"unsupported {text}")

    def call_follows(self) -> bool:
        token = self.peek()
        return token is not None and token.text == "("

    def invocation(self, base: Node | None) -> Node:
        token = self.take()
        if token.kind == "delimited":
            name = unescape(token.text[1:-1])
        elif token.kind == "ident" and (token.text not in WORD_OPERATORS or self.call_follows()):
            name = token.text  # "contains(" after a dot is the function, not the operator
        else:
            raise self.error(f"expected a name, got {token.text!r}")
        if not self.accept("("):
            return Member(base, name)
        at = token.pos
        args: list[Node] = []
        if not self.accept(")"):
            args.append(self.binary(0))
            while self.accept(","):
                args.append(self.binary(0))
            self.take(")")
        return Call(base, name, tuple(args), at, self.text)


def parse(text: str) -> Node:
    """Parse one FHIRPath expression.

    Args:
        text: the expression, e.g. ``name.where(use = 'official').family.first()``.

    Returns:
        The expression tree.

    Raises:
        FhirPathSyntaxError: the text is not a valid expression of the supported grammar.
    """
    if not isinstance(text, str) or not text.strip():
        raise FhirPathSyntaxError(f"FHIRPath expression must be a non-empty string, got {text!r}")
    return Parser(text).parse()
