"""Package attributes imported on first use (PEP 562), so that code needing one module of a
package (``fhir-assets land`` needs ``names`` and ``ndjson``) does not pay for the HTTP client."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: a public name is taken from its submodule in
    ``homes`` (name -> submodule), any other name is imported as a submodule; either is kept as
    an attribute, so it is imported once."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":  # the submodule exists, what it needs doesn't
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
