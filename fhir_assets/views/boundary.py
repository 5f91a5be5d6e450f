"""lowBoundary() / highBoundary() (FHIRPath 3.0 §5.11) of decimals, dates, dateTimes and times.

The result is text; the column type turns it into a number or keeps the FHIR string form.
A dateTime without a time zone takes the widest offsets: +14:00 (low) and -12:00 (high).
"""

from __future__ import annotations

from .dialect import Dialect
from .errors import UnsupportedError

NUMERIC = {"integer", "decimal", "positiveInt", "unsignedInt", "integer64", "Quantity"}
DATE_TIMES = {"dateTime", "instant"}


def decimal(d: Dialect, item: str, low: bool) -> str:
    # the precision is the number of written decimals: 1.0 -> [0.95, 1.05]
    text = d.number_text(item)
    dot = f"POSITION('.' IN {text})"
    scale = f"CASE WHEN {dot} > 0 THEN LENGTH({text}) - {dot} ELSE 0 END"
    value = f"{d.to_number(item)} {'-' if low else '+'} 0.5 / POWER(10, {scale})"
    return f"CAST({value} AS VARCHAR)"


def date(d: Dialect, text: str, low: bool) -> str:
    if low:
        return (
            f"CASE LENGTH({text}) WHEN 4 THEN {text} || '-01-01' "
            f"WHEN 7 THEN {text} || '-01' ELSE {text} END"
        )
    return (
        f"CASE LENGTH({text}) WHEN 4 THEN {text} || '-12-31' "
        f"WHEN 7 THEN {d.last_day(text)} ELSE {text} END"
    )


def time(text: str, low: bool) -> str:
    pad = ".000" if low else ".999"
    minute = ":00.000" if low else ":59.999"
    return (
        f"CASE LENGTH({text}) WHEN 5 THEN {text} || '{minute}' "
        f"WHEN 8 THEN {text} || '{pad}' ELSE {text} END"
    )


def date_time(d: Dialect, text: str, low: bool) -> str:
    zone = "'+14:00'" if low else "'-12:00'"
    day = f"{date(d, text, low)} || '{'T00:00:00.000' if low else 'T23:59:59.999'}' || {zone}"
    tail = f"SUBSTR({text}, 20)"
    has_zone = (
        f"(POSITION('Z' IN {tail}) > 0 OR POSITION('+' IN {tail}) > 0 "
        f"OR POSITION('-' IN {tail}) > 0)"
    )
    fraction = (
        f"CASE WHEN SUBSTR({text}, 20, 1) = '.' THEN '' ELSE '{'.000' if low else '.999'}' END"
    )
    full = f"SUBSTR({text}, 1, 19) || {fraction} || {tail}"
    full = f"CASE WHEN {has_zone} THEN {full} ELSE {full} || {zone} END"
    return f"CASE WHEN POSITION('T' IN {text}) > 0 THEN {full} ELSE {day} END"


def boundary(d: Dialect, item: str, hint: str, low: bool) -> str:
    """SQL text of the low/high boundary of a JSON item with FHIR type ``hint`` ("json": unknown).

    Raises:
        UnsupportedError: a decimal boundary in a dialect that loses the written precision.
    """
    text = d.to_text(item)
    if hint in NUMERIC:
        return decimal(d, item, low)
    if hint == "date":
        return date(d, text, low)
    if hint in DATE_TIMES:
        return date_time(d, text, low)
    if hint == "time":
        return time(text, low)
    try:
        number = decimal(d, item, low)
    except UnsupportedError as exc:
        number = d.error(str(exc), "string", "0")
    return (
        f"CASE WHEN {d.is_number(item)} THEN {number} "
        f"WHEN {text} LIKE '__:%' THEN {time(text, low)} "
        f"WHEN POSITION('T' IN {text}) > 0 THEN {date_time(d, text, low)} "
        f"ELSE {date(d, text, low)} END"
    )
