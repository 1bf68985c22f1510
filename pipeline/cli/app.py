"""The ``imri`` app and what its commands share.

The typer app with its ``codebook`` and ``corpus`` groups (the command modules register their commands on
them), the options several commands take (--codebook, --params, --gold, --interviewer, --no-speakers-as), the
callbacks that find the bundled data from any folder, and the lines every command prints the same way:
``warning:`` lines, who interviews in each file, what was read.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import typer

# no rich-framed tracebacks: a usage error is one line (main), any other failure Python's own traceback.
# Groups have no_args_is_help off: typer draws the help while building that error, so a group called
# without its command is click's "Missing command" usage error, one line like every other.
app = typer.Typer(
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="NLP-assisted coding of interview transcripts.",
)
codebook_app = typer.Typer(no_args_is_help=False, help="Inspect codebooks.")
corpus_app = typer.Typer(no_args_is_help=False, help="Build and describe the bundled gold corpus.")
app.add_typer(codebook_app, name="codebook")
app.add_typer(corpus_app, name="corpus")

CodebookOption = typer.Option(None, "--codebook", help="Codebook YAML (default: the bundled IMRI v1).")


def shipped_if_default(ctx: typer.Context, param: typer.CallbackParam, value):
    """An input left at its default: the working folder's when there, else the one shipped with imri."""
    from pipeline.locations import shipped

    source = ctx.get_parameter_source(param.name)  # typer's own copy of click's ParameterSource: compare names
    if value is None or getattr(source, "name", None) != "DEFAULT":
        return value
    return [shipped(v) for v in value] if isinstance(value, list | tuple) else shipped(value)


def bundled_if_data(ctx: typer.Context, param: typer.CallbackParam, value):
    """A path typed as the bundled data names it (``data/...``) and not in the working folder: the repository's,
    so the README's tour runs as written from any folder. Any other path is taken as given."""
    from pipeline.locations import shipped

    def one(path):
        if path is None or Path(path).is_absolute() or Path(path).parts[:1] != ("data",):
            return path
        return shipped(Path(path))

    return [one(v) for v in value] if isinstance(value, list | tuple) else one(value)


ParamsOption = typer.Option(
    None, "--params", help="Parameters file (default: ./params.yaml, else the repository's, else built-in defaults)."
)
GoldListOption = typer.Option(
    [Path("data/gold")],
    "--gold",
    help="Gold folder(s): transcripts/ + codings.csv (default: ./data/gold, else the bundled gold set).",
    callback=shipped_if_default,
)
InterviewerOption = typer.Option(
    [],
    "--interviewer",
    help="Speaker label of an interviewer (repeatable); other speakers stay participants. "
    "Default: the sidecar's interviewers, generic labels (Interviewer, Q...), else a person who interviews in "
    "most files given together, else who asks short questions in each file (the calls are printed).",
)


NoSpeakersOption = typer.Option(
    "skip",
    "--no-speakers-as",
    help="A file without speaker labels (notes, a bare text): skip (default, with a warning naming it) or "
    "participant (read as one participant's words).",
)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr; file names in it are escaped (:func:`~pipeline.errors.printable`)."""
    from pipeline.errors import printable

    typer.echo(f"warning: {printable(message)}", err=True)


class _RolesHandler(logging.Handler):
    """Prints who interviews in each file (``roles: ...``) and the ties and weak calls (``warning: ...``)."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()  # imri evaluate reads the gold set once per unit: each call is printed once

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{'warning' if record.levelno >= logging.WARNING else 'roles'}: {record.getMessage()}"
        if line not in self.said:
            self.said.add(line)
            typer.echo(line, err=True)


def prints_roles(command):
    """Decorate a command that reads transcripts: while it runs, who interviews in each file is printed."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        logger, handler = logging.getLogger("imri.roles"), _RolesHandler()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            return command(*args, **kwargs)
        finally:
            logger.removeHandler(handler)

    return run


def echo_read(transcripts) -> None:
    """One line saying what was read, by layout (and how many files were skipped)."""
    from collections import Counter

    layouts = Counter(t.layout for t in transcripts if not t.skipped)
    skipped = sum(t.skipped for t in transcripts)
    typer.echo(
        f"read {len(transcripts) - skipped} transcripts ("
        + ", ".join(f"{k} {v}" for k, v in sorted(layouts.items()))
        + ")"
        + (f"; skipped {skipped} without speaker labels" if skipped else "")
    )
