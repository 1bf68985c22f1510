"""Errors that the CLI turns into one clear line and exit code 2, and the escaping of what goes on that line."""

from __future__ import annotations

import re
from pathlib import Path

#: Characters that could change what a terminal shows or start a new line: controls (escape sequences,
#: CR, LF, NEL), format marks (bidi overrides), line and paragraph separators, lone surrogates.
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
)


def printable(text: str) -> str:
    """``text`` with every character that a terminal would act on written as a Python escape (``\\x1b``, ``\\n``).

    Used on every file name (and message) that imri prints, so that a name holding an escape sequence or
    a line break cannot recolour the terminal or forge an ``error:`` line. Other text is unchanged.
    """
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape", "backslashreplace").decode("ascii"), text)


class InputError(Exception):
    """Bad user input: names the file (when there is one) and the problem.

    The CLI prints ``str(error)`` on one line and exits with code 2. The path and the problem are
    escaped (:func:`printable`), so the line is one line whatever the file is called.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = printable(problem.replace("\n", " ").strip())
        self.path = printable(str(path)) if path is not None else None
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)
