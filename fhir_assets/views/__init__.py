"""SQL on FHIR v2 ViewDefinitions compiled to warehouse SQL (DuckDB, Snowflake)."""

from __future__ import annotations

from .compiler import CompiledView, OutputColumn, compile_view
from .definition import ViewDefinition, load_view, parse_view
from .errors import FhirPathSyntaxError, UnsupportedError, ViewDefinitionError, ViewError

__all__ = [
    "CompiledView",
    "FhirPathSyntaxError",
    "OutputColumn",
    "UnsupportedError",
    "ViewDefinition",
    "ViewDefinitionError",
    "ViewError",
    "compile_view",
    "load_view",
    "parse_view",
]
