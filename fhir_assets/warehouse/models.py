"""Full validation: each resource against the fhir.resources R4B model of its type.

``full``: the fast checks, then the resource is validated against the fhir.resources **R4B**
(4.3.0) pydantic model of its type: element names, cardinalities, primitive formats and choice
types; codes are not checked against value sets. fhir.resources 8 has no R4 (4.0.1) package.
R4B is R4 plus changes that HL7 declared breaking only for the Evidence-Based-Medicine and
Medication-Definition resources (and Substance); none of them is in the default catalog, so an
R4 resource of a catalog type validates against R4B (an R4-only type has no model: quarantined).
The one gap: an element that exists only in R4B would be accepted although R4 does not define
it. A model runs about 3.4k Observations/s on one core, so full validation runs in a
``ProcessPoolExecutor`` across cores (``landing.py``).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from functools import cache
from multiprocessing import get_context
from typing import Any

import numpy as np

from .arrays import bool_array, int_array
from .batches import Batch
from .head import NotJSON, decode_json


@cache
def model_class(resource_type: str) -> Callable[[Mapping[str, Any]], Any]:
    """The R4B pydantic model's ``model_validate`` for a type (looked up once per process)."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type).model_validate  # type: ignore[no-any-return]


def validate_model(resource: dict[str, Any], resource_type: str) -> str | None:
    """Full R4B model validation of one resource that passed ``check``.

    Returns:
        None when valid, else the errors as ``path: message`` lines, without input values
        (pydantic's default text quotes the input, which is PHI).
    """
    from pydantic import ValidationError

    try:
        model_class(resource_type)(resource)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or resource_type}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:10]
        )
    except KeyError:  # fhir.resources looks up each resourceType, e.g. of contained resources
        return f"{resource_type}: names a resource type R4B does not define (e.g. in contained)"
    except (TypeError, ValueError, AttributeError) as exc:
        return f"{resource_type}: the R4B model refused it ({type(exc).__name__})"
    except RecursionError:
        return f"{resource_type}: nested too deeply for the R4B model"
    return None


def validate_texts(resource_type: str, texts: list[str]) -> list[tuple[int, str]]:
    """Full validation of a batch of JSON texts; run in worker processes.

    Returns:
        (position in ``texts``, error) for each invalid resource.
    """
    errors = []
    for position, text in enumerate(texts):
        try:
            resource = decode_json(text)
        except NotJSON as exc:
            errors.append((position, str(exc)))
            continue
        if type(resource) is not dict or resource.get("resourceType") != resource_type:
            continue  # the fast checks quarantine it, or take the tombstones of a deletion Bundle
        error = validate_model(resource, resource_type)
        if error is not None:
            errors.append((position, error))
    return errors


def validated(
    batches: Iterator[Batch], resource_type: str, workers: int | None, stack: ExitStack
) -> Iterator[Batch]:
    """Full validation: the batches, in order, without the lines the R4B model refuses (those
    become quarantine rows).

    Validation runs in ``workers`` processes (default: one per CPU), ``2 x workers`` batches
    in flight, unless the input is one batch. Workers are forked (``spawn`` would re-run an
    unguarded calling script) on the first submit, before the writer thread has touched the
    warehouse (Python 3.11 starts all fork workers at once).
    """
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:
        yield without_invalid(first, validate_texts(resource_type, texts_of(first)), resource_type)
        return
    workers = workers or os.cpu_count() or 1
    pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("fork")))
    in_flight: deque[tuple[Batch, Future[list[tuple[int, str]]]]] = deque()
    for batch in itertools.chain([first, second], batches):
        in_flight.append((batch, pool.submit(validate_texts, resource_type, texts_of(batch))))
        if len(in_flight) >= 2 * workers:
            batch, errors = in_flight.popleft()
            yield without_invalid(batch, errors.result(), resource_type)
    while in_flight:
        batch, errors = in_flight.popleft()
        yield without_invalid(batch, errors.result(), resource_type)


def texts_of(batch: Batch) -> list[str]:
    """The JSON texts of a batch's lines."""
    return batch.lines.column("text").to_pylist()  # type: ignore[no-any-return]


def without_invalid(batch: Batch, errors: list[tuple[int, str]], resource_type: str) -> Batch:
    """The batch with the lines at the positions of ``errors`` moved to its quarantine."""
    if not errors:
        return batch
    lines = batch.lines
    for n, error in errors:
        source, number = lines.column("source")[n].as_py(), lines.column("line")[n].as_py()
        text = lines.column("text")[n].as_py()
        batch.quarantine.append((resource_type, source, number, error, text))
    invalid = {n for n, _ in errors}
    kept = lines.filter(bool_array([n not in invalid for n in range(lines.num_rows)]))
    positions = int_array(np.arange(kept.num_rows, dtype=np.int32), np.int32)
    batch.lines = kept.set_column(0, "n", positions)
    return batch
