"""Which de-identification method each column of a view gets, and which views get one.

A column's method comes from, in order: the policy file (``FHIR_DEID_POLICY``), the column's
``deid`` tag in its ViewDefinition (``"tag": [{"name": "deid", "value": "hash"}]``), the
shipped defaults for the default views (``default_policies.json``). A view takes part when it
is a default view, is named in the policy file, or tags any column; then every column needs a
method, or the code location refuses to load (no identifier slips through unnoticed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..views.definition import Column, ViewDefinition
from .errors import DeidPolicyError

TAG = "deid"
DEFAULTS_FILE = Path(__file__).resolve().parent / "default_policies.json"
# hash: keyed pseudonym; date: shifted by the patient's offset; year: the year only;
# birthdate: shifted, and one value for everyone 90 or older; zip: Safe Harbor's 3 digits;
# age: over 89 -> 90; drop: left out; keep: copied.
KINDS = ("hash", "date", "year", "birthdate", "zip", "age", "drop", "keep")
DATED = ("date", "birthdate")


@dataclass(frozen=True, slots=True)
class ViewPolicy:
    """A view's method per column (in the view's column order) and its patient key column."""

    view: ViewDefinition
    methods: tuple[tuple[Column, str], ...]
    patient_key: str | None

    def kept(self) -> list[tuple[Column, str]]:
        """The columns that reach the de-identified table."""
        return [(column, kind) for column, kind in self.methods if kind != "drop"]


def load_policy_file(path: str | Path | None) -> dict[str, dict[str, str]]:
    """``{"views": {view: {column: method}}}`` from a JSON file (empty without a path).

    Raises:
        DeidPolicyError: the file cannot be read or has another shape.
    """
    if not path:
        return {}
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeidPolicyError(f"cannot read FHIR_DEID_POLICY {path}: {exc}") from exc
    views = raw.get("views") if isinstance(raw, dict) else None
    if not isinstance(views, dict) or not all(
        isinstance(cols, dict) and all(isinstance(k, str) for k in cols.values())
        for cols in views.values()
    ):
        raise DeidPolicyError(
            f'FHIR_DEID_POLICY {path}: expected {{"views": {{view: {{column: method}}}}}}'
        )
    return views


def default_policies() -> dict[str, dict[str, str]]:
    """The shipped methods for the default views' columns."""
    return dict(json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))["views"])


def tag_of(column: Column) -> str | None:
    """The column's ``deid`` tag value, if any."""
    values = [value for name, value in column.tags if name == TAG]
    return values[0].strip().lower() if values else None


def opts_in(
    view: ViewDefinition, overrides: Mapping[str, Any], defaults: Mapping[str, Any]
) -> bool:
    """Whether the view gets a de-identified table."""
    return (
        view.name in defaults
        or view.name in overrides
        or any(tag_of(c) is not None for c in view.columns)
    )


def resolve(
    view: ViewDefinition, overrides: Mapping[str, str], defaults: Mapping[str, str]
) -> ViewPolicy:
    """The policy of one view that takes part.

    Raises:
        DeidPolicyError: a column without a method, an unknown method or column, or a method
            the column cannot take; the message names the view and the column.
    """
    names = {column.name for column in view.columns}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise DeidPolicyError(f"deid policy for view {view.name!r}: no columns {unknown}")
    methods = []
    for column in view.columns:
        kind = overrides.get(column.name) or tag_of(column) or defaults.get(column.name)
        if kind is None:
            raise DeidPolicyError(
                f"view {view.name!r} column {column.name!r} has no de-identification method: "
                f'tag it ({{"name": "deid", "value": "hash"}}) or name it in '
                f"FHIR_DEID_POLICY; methods: {', '.join(KINDS)}"
            )
        methods.append((column, check_kind(view, column, kind)))
    return ViewPolicy(view, tuple(methods), patient_key(view, methods))


def check_kind(view: ViewDefinition, column: Column, kind: str) -> str:
    """``kind`` if it is a method the column can take."""
    where = f"view {view.name!r} column {column.name!r}"
    if kind not in KINDS:
        raise DeidPolicyError(f"{where}: unknown method {kind!r} (methods: {', '.join(KINDS)})")
    if kind in (*DATED, "year") and date_kind(column) is None:
        raise DeidPolicyError(
            f"{where}: {kind!r} needs a typed date column (an ansi/type tag DATE or TIMESTAMP, "
            "or type instant); drop or keep an untyped one"
        )
    return kind


def date_kind(column: Column) -> str | None:
    """``date`` or ``timestamp`` for a typed date column, else None."""
    if column.hint in ("date", "timestamp"):
        return column.hint
    return "timestamp" if column.type == "instant" and not column.collection else None


def patient_key(view: ViewDefinition, methods: list[tuple[Column, str]]) -> str | None:
    """The column holding the patient's id (``patient_id``, or ``id`` of a Patient view), which
    keys the date shift; None if there is none. A dated view must have one, hashed."""
    by_name = {column.name: kind for column, kind in methods}
    key = "id" if view.resource == "Patient" else "patient_id"
    if key in by_name and by_name[key] != "hash":
        raise DeidPolicyError(
            f"view {view.name!r} column {key!r} holds the patient's id: its method must be "
            f"'hash' (so it joins), not {by_name[key]!r}"
        )
    if key not in by_name and any(kind in DATED for kind in by_name.values()):
        raise DeidPolicyError(
            f"view {view.name!r}: shifted dates need the patient's id in a column named "
            f"{key!r}; use 'year' or 'drop' for its dates otherwise"
        )
    return key if key in by_name else None


def build_policies(
    views: Iterable[ViewDefinition], policy_file: str | Path | None = None
) -> list[ViewPolicy]:
    """The policies of every view that takes part, checked (see the module's docstring).

    Raises:
        DeidPolicyError: the policy file names an unknown view, or a view's policy is refused.
    """
    views = list(views)
    overrides = load_policy_file(policy_file)
    defaults = default_policies()
    # a default view left out by FHIR_RESOURCE_TYPES may still be named
    missing = sorted(set(overrides) - {view.name for view in views} - set(defaults))
    if missing:
        raise DeidPolicyError(f"FHIR_DEID_POLICY names views that are not loaded: {missing}")
    return [
        resolve(view, overrides.get(view.name, {}), defaults.get(view.name, {}))
        for view in views
        if opts_in(view, overrides, defaults)
    ]
