"""Errors of the ViewDefinition engine."""

from __future__ import annotations


class ViewError(Exception):
    """Root of the ViewDefinition errors."""


class ViewDefinitionError(ViewError):
    """The ViewDefinition is invalid (missing resource, bad column name, mismatched unionAll...)."""


class FhirPathSyntaxError(ViewDefinitionError):
    """A FHIRPath expression does not parse."""


class UnsupportedError(ViewError):
    """A FHIRPath construct this engine (or one SQL dialect) cannot express.

    Raised at compile time, naming the construct, so a view never yields silently wrong rows.
    """
