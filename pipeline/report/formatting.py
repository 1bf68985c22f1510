"""How the report writes figures in HTML: numbers, counts, shares and tables.

A figure the metrics do not give (null, NaN) is written as a dash; cells are HTML already, numbers
right-aligned."""

from __future__ import annotations

import math
import re


def finite(value) -> bool:
    """Whether ``value`` is a number and not NaN (metrics write a missing figure as null or NaN)."""
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def number(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or a dash when there is none."""
    return f"{value:.{digits}f}" if finite(value) else "&ndash;"


def count(value) -> str:
    """A count with thousands separators, or ``?`` when it is not an integer."""
    return f"{value:,}" if isinstance(value, int) else "?"


def percent(value) -> str:
    """A share as a whole percentage, or a dash when there is none."""
    return f"{value:.0%}" if finite(value) else "&ndash;"


def _align(cell: str) -> str:
    """Numbers (and their dashes) right-aligned, words left."""
    return " class='n'" if re.match(r"(-?[0-9]|&ndash;|<span class='(met|missed)')", cell) else ""


def html_table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """An HTML table; cells are HTML already (escape text before)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for k, row in enumerate(rows):
        css = f" class='{row_classes[k]}'" if row_classes and row_classes[k] else ""
        body.append(f"<tr{css}>" + "".join(f"<td{_align(c)}>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def absent(text: str) -> str:
    """A paragraph saying what is not in these metrics (greyed out)."""
    return f"<p class='absent'>{text}</p>"
