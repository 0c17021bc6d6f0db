"""Where in a schema document's text each problem is: the editor shows every problem at its line.

`SchemaProblem` names a data type and a field; this finds the line of that field's key inside that
data type's definition (or of the data type's key), in the text as the user sees it in the editor.
A problem about the whole document, or one whose key is not in the text (a missing built-in data
type), is put at line 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .schema import SchemaProblem, publish_problems


@dataclass(frozen=True)
class LocatedProblem:
    """A problem and the line (from 1) of the editor it belongs to."""

    line: int
    problem: SchemaProblem

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _key_at(text: str, key: str, start: int) -> int | None:
    match = re.compile(re.escape(json.dumps(key)) + r"\s*:").search(text, start)
    return match.start() if match else None


def line_of(text: str, problem: SchemaProblem) -> int:
    """The line of `text` holding the key `problem` is about (1 when it is about no key in the text)."""
    position = 0
    data_types = _key_at(text, "data_types", 0)
    if problem.data_type is not None and data_types is not None:
        found = _key_at(text, problem.data_type, data_types)
        if found is not None:
            position = found
            if problem.field is not None:
                fields = _key_at(text, "fields", found)
                field = _key_at(text, problem.field, fields) if fields is not None else None
                position = field if field is not None else position
    return text.count("\n", 0, position) + 1


def located_problems(text: str, document: object) -> list[LocatedProblem]:
    """Every problem that stops `document` (parsed from `text`) from publishing, each at its line, in line order."""
    located = [LocatedProblem(line_of(text, problem), problem) for problem in publish_problems(document)]
    return sorted(located, key=lambda each: each.line)
