"""CSV exports that open safely and correctly in a spreadsheet.

Every export starts with a UTF-8 byte order mark, so Excel reads "…" and "Zoë" as
written, and every text cell that would start a formula is neutralised.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

BOM = "\ufeff"

# OWASP's list: a cell starting with one of these runs as a formula when the
# export is opened in a spreadsheet (TAB and CR too: some spreadsheets drop them
# and read what follows); user agents and names are attacker-controlled.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_safe(value: str) -> str:
    """The text as a cell no spreadsheet runs as a formula."""
    return f"'{value}" if value.lstrip(" ")[:1] in _FORMULA_STARTS else value


class _Echo:
    """A file-like object whose write() hands the line back, so CSV rows can be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """Yield the BOM and header, then each row, as CSV lines (text cells made safe)."""
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_safe(cell) if isinstance(cell, str) else cell for cell in row])
