"""Errors that the CLI turns into one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: names the file (when there is one) and the problem.

    The CLI prints ``str(error)`` on one line and exits with code 2.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem.replace("\n", " ").strip()
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)
