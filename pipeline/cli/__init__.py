"""The ``imri`` command line: one command per pipeline stage, plus helpers for codebooks and corpora.

Every command turns :class:`~pipeline.errors.InputError` into one line on stderr and exit code 2.
No segment text is ever logged.

This module is the entry point (:func:`main`, the ``imri`` console script) and turns usage errors into one
line; the commands live in one module per group, each registering them on the app of
:mod:`pipeline.cli.app` (which also holds the options and output lines they share): :mod:`~pipeline.cli.corpus`
(codebook, corpus, segment), :mod:`~pipeline.cli.qdpx` (REFI-QDA import and export),
:mod:`~pipeline.cli.agreement`, :mod:`~pipeline.cli.review` and :mod:`~pipeline.cli.model` (models build, train,
code, finetune, embed, evaluate, report). They are imported in the order ``imri --help`` lists the commands.
"""

from __future__ import annotations

import sys

import typer

from pipeline.cli.app import app
from pipeline.errors import InputError

# the command modules register their commands on the app when imported: imri --help lists them in this order
# isort: off
from pipeline.cli import corpus  # noqa: F401
from pipeline.cli import qdpx  # noqa: F401
from pipeline.cli import agreement  # noqa: F401
from pipeline.cli import review  # noqa: F401
from pipeline.cli import model  # noqa: F401

# isort: on

__all__ = ["app", "main", "usage_line"]


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The usage-error classes of the CLI library: typer's vendored click, and click's own if present."""
    import importlib

    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _repeat_hint(ctx, argv: list[str]) -> str:
    """For an extra argument after a repeatable option (``--gold a b``): say to repeat the option."""
    command = getattr(ctx, "command", None)
    repeatable = {
        opt for param in getattr(command, "params", []) if getattr(param, "multiple", False) for opt in param.opts
    }
    for i, token in enumerate(argv[:-2]):
        if token in repeatable and not argv[i + 1].startswith("-") and not argv[i + 2].startswith("-"):
            return f"{token} takes one value: repeat it for each ({token} {argv[i + 1]} {token} {argv[i + 2]})"
    return ""


def _command_path(argv: list[str]) -> str:
    """``imri`` and the (sub)command names that start ``argv``, for errors raised before a command's context."""
    command, path = typer.main.get_command(app), ["imri"]
    for token in argv:
        commands = getattr(command, "commands", None)
        if not commands or token not in commands:
            break
        command = commands[token]
        path.append(token)
    return " ".join(path)


def usage_line(error: BaseException, argv: list[str]) -> str:
    """One line for a usage error of the CLI library: what is wrong, and which help to read."""
    ctx = getattr(error, "ctx", None)
    command_path = getattr(ctx, "command_path", None) or _command_path(argv)
    if type(error).__name__ == "NoArgsIsHelpError" or str(error).startswith("Missing command"):
        names = sorted(getattr(getattr(ctx, "command", None), "commands", {}) or {})
        message = "missing command" + (f": one of {', '.join(names)}" if names else "")
    else:
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        if "unexpected extra argument" in message:
            message = _repeat_hint(ctx, argv) or message
    message = " ".join(message.split()).rstrip(".")
    return f"error: {message} (see {command_path} --help)"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``imri`` console script.

    Exit codes: 0 done (``--help`` included), 2 bad input or a usage error (one line on stderr, starting
    with ``error:``), 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=argv, prog_name="imri", standalone_mode=False)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as error:
        if not isinstance(error, _usage_error_types()):
            raise
        # usage errors, and any other error of the CLI library (a file it could not open): bad input
        typer.echo(usage_line(error, argv), err=True)
        sys.exit(2)
    if isinstance(code, int) and code:  # typer.Exit(code), or 130 from an interrupt typer caught
        if code == 130:
            typer.echo("aborted", err=True)
        sys.exit(code)
