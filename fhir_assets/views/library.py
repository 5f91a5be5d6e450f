"""The views that become assets: the shipped defaults plus a folder of the user's own."""

from __future__ import annotations

from pathlib import Path

from .definition import ViewDefinition, load_view
from .errors import ViewDefinitionError
from .valuesets import is_valueset, load_valuesets

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"


def load_folder(folder: Path) -> list[ViewDefinition]:
    """Every ``*.json`` ViewDefinition in ``folder``, sorted by file name.

    Raises:
        ViewDefinitionError: the folder is missing, a file is invalid, or two views share a name.
    """
    if not folder.is_dir():
        raise ViewDefinitionError(f"views folder {folder} does not exist")
    valuesets = load_valuesets(folder)
    views = [
        load_view(path, valuesets)
        for path in sorted(folder.glob("*.json"))
        if not is_valueset(path)  # ValueSets for memberOf() may sit beside the views
    ]
    names = [view.name for view in views]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ViewDefinitionError(f"views folder {folder}: duplicate view names {duplicates}")
    return views


def load_views(
    user_dir: str | Path | None = None, resource_types: set[str] | None = None
) -> list[ViewDefinition]:
    """The default views (for ``resource_types`` if given) plus every view in ``user_dir``.

    A user view with the name of a default view replaces it. User views are always kept, also
    for types outside ``resource_types`` (their raw asset then shows as external).
    """
    defaults = {
        view.name: view
        for view in load_folder(DEFAULTS_DIR)
        if resource_types is None or view.resource in resource_types
    }
    users = {view.name: view for view in load_folder(Path(user_dir))} if user_dir else {}
    return list((defaults | users).values())
