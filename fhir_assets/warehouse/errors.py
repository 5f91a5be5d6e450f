"""The warehouse layer's errors: what went wrong and what to change, in one line."""

from __future__ import annotations


class WarehouseError(Exception):
    """Root of the warehouse layer's errors."""


class WarehouseMemoryError(WarehouseError):
    """The warehouse ran out of the memory it may use (DuckDB's ``memory_limit``)."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the warehouse file."""
