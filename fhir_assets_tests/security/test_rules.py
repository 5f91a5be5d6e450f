"""The identifier rule and the path rule, by property (Hypothesis): no generated string gets
through either one unless it is valid; and the R4 name list is fhir.resources' registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fhir_assets.fhir.bulk.manifest import OutputFile
from fhir_assets.fhir.bulk.state import inside, local_name
from fhir_assets.fhir.names import (
    R4_ONLY,
    RESOURCE_TYPES,
    UnsafeNameError,
    check_resource_type,
    is_resource_type,
)
from fhir_assets.warehouse import sql

# Names that look like types: letters of any script, ASCII look-alikes, SQL and path pieces.
ALPHABET = st.sampled_from(
    [*"PatienObsrvGupAZaz09_ .;-'\"/\\", "..", "\uff2f", "\u0130", "\u0131", "\u212a", "\x00", "\n"]
)
NAMEISH = st.one_of(
    st.text(),
    st.lists(ALPHABET, max_size=20).map("".join),
    st.sampled_from(RESOURCE_TYPES).map(lambda t: t + "; DROP TABLE x; --"),
    st.sampled_from(RESOURCE_TYPES),
)


def registry_resource_types() -> list[str]:
    """The resource classes of fhir.resources' R4B model registry (abstract ones excluded)."""
    from fhir.resources.R4B import fhirtypes, get_fhir_model_class
    from fhir.resources.R4B.domainresource import DomainResource
    from fhir.resources.R4B.resource import Resource

    found = set()
    for name in dir(fhirtypes):
        if not name.endswith("Type") or not name[0].isupper():
            continue
        try:
            model = get_fhir_model_class(name.removesuffix("Type"))
        except (ValueError, AttributeError):
            continue
        if issubclass(model, Resource) and model not in (Resource, DomainResource):
            found.add(model.__name__)
    return sorted(found)


def test_the_name_list_is_the_r4b_registry() -> None:
    assert list(RESOURCE_TYPES) == registry_resource_types()
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", t) for t in RESOURCE_TYPES + R4_ONLY)


def test_r4_names_that_r4b_dropped_pass_too() -> None:
    assert not set(R4_ONLY) & set(RESOURCE_TYPES)
    assert is_resource_type("MedicinalProductAuthorization") and is_resource_type("Patient")
    assert not is_resource_type("MedicinalProductAuthorisation")


@settings(max_examples=400, deadline=None)
@given(NAMEISH)
@example("patient (id int); DROP TABLE fhir_raw.patient; CREATE TABLE fhir_raw.pwned (x int); --")
@example("x/../../../../somewhere/else/pwned")
@example("\uff2fbservation")
@example("select")
def test_a_type_passes_only_if_it_is_an_r4_name(value: str) -> None:
    try:
        accepted = check_resource_type(value)
    except UnsafeNameError as exc:
        assert value not in RESOURCE_TYPES + R4_ONLY
        assert repr(value)[:40] in str(exc) or len(repr(value)) > 76
        return
    assert accepted == value and value in RESOURCE_TYPES + R4_ONLY
    assert sql.qualified(accepted.lower()) == f"fhir_raw.{accepted.lower()}"


@settings(max_examples=400, deadline=None)
@given(NAMEISH)
@example("patient; drop table x")
@example("fhir_raw.patient")
def test_an_identifier_passes_only_if_it_is_plain(value: str) -> None:
    try:
        built = sql.identifier(value)
    except sql.UnsafeIdentifierError:
        assert not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in value.split("."))
        return
    assert built == value
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", built)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(NAMEISH)
@example("../outside")
@example("/etc/passwd")
@example("output/../../outside")
@example("output/x/../../..")
@example(".")
def test_a_path_passes_only_if_it_stays_inside(tmp_path: Path, value: str) -> None:
    folder = tmp_path / "export"
    try:
        target = inside(folder, value)
    except UnsafeNameError:
        resolved = (folder.resolve() / value).resolve() if "\x00" not in value else None
        assert (
            resolved is None
            or resolved == folder.resolve()
            or not resolved.is_relative_to(folder.resolve())
        )
        return
    assert target.is_relative_to(folder.resolve()) and target != folder.resolve()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "export", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "output").symlink_to(elsewhere)
    with pytest.raises(UnsafeNameError, match="outside the export folder"):
        inside(folder, "output/00000.Patient.ndjson")


@given(NAMEISH, st.sampled_from(["output", "error", "deleted"]))
@settings(max_examples=200, deadline=None)
def test_a_local_name_is_built_only_from_an_r4_type(value: str, kind: str) -> None:
    file = OutputFile(value, "https://files.example/x", None, kind)
    try:
        name = local_name(3, file)
    except UnsafeNameError:
        assert value not in RESOURCE_TYPES + R4_ONLY
        return
    assert name == f"{kind}/00003.{value}.ndjson" and value in RESOURCE_TYPES


@pytest.mark.parametrize("name", ["Group", "CarePlan", "MedicinalProduct", "SubscriptionTopic"])
def test_any_r4_or_r4b_type_is_accepted_catalog_or_not(name: str) -> None:
    assert check_resource_type(name, source="the manifest") == name


@pytest.mark.parametrize("name", ["careplan", "Careplan ", "NotAType", "Patient;--"])
def test_a_refused_type_says_why(name: str) -> None:
    with pytest.raises(UnsafeNameError, match=r"not an R4/R4B resource type name .*case-sensitive"):
        check_resource_type(name, source="the manifest")
