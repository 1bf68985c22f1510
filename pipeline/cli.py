"""The ``imri`` command line: one command per pipeline stage, plus helpers for codebooks and corpora.

Every command turns :class:`~pipeline.errors.InputError` into one line on stderr and exit code 2.
No segment text is ever logged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="NLP-assisted coding of interview transcripts.")
codebook_app = typer.Typer(no_args_is_help=True, help="Inspect codebooks.")
corpus_app = typer.Typer(no_args_is_help=True, help="Build and describe the bundled gold corpus.")
app.add_typer(codebook_app, name="codebook")
app.add_typer(corpus_app, name="corpus")

CodebookOption = typer.Option(None, "--codebook", help="Codebook YAML (default: the bundled IMRI v1).")


@codebook_app.command("show")
def codebook_show(
    codebook: Path | None = CodebookOption,
    lang: str = typer.Option("en", "--lang", help="Language of the names: en or fr."),
) -> None:
    """Print the codebook as a tree: categories, then their impacts."""
    from pipeline.codebook import LANGUAGES, load_codebook

    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}")
    book = load_codebook(codebook)
    typer.echo(f"{book.id} v{book.version} ({len(book.impacts)} impacts)")
    for c_index, category in enumerate(book.categories):
        last_category = c_index == len(book.categories) - 1
        typer.echo(f"{'└──' if last_category else '├──'} {category.name[lang]} [{category.id}]")
        impacts = [i for i in book.impacts if i.category == category.id]
        for i_index, impact in enumerate(impacts):
            branch = "    " if last_category else "│   "
            leaf = "└──" if i_index == len(impacts) - 1 else "├──"
            kind = " (process)" if impact.kind == "process" else ""
            typer.echo(f"{branch}{leaf} {impact.name[lang]}{kind} [{impact.id}]")


@corpus_app.command("build")
def corpus_build(
    markup: Path = typer.Option(Path("data/gold/markup"), help="Folder of marked-up transcripts."),
    out: Path = typer.Option(Path("data/gold"), help="Where transcripts/ and codings.csv go."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Compile the marked-up gold transcripts into plain transcripts and codings.csv."""
    from pipeline.codebook import load_codebook
    from pipeline.corpus import build_corpus

    codings = build_corpus(markup, out, load_codebook(codebook))
    typer.echo(f"{len({c.source for c in codings})} transcripts, {len(codings)} codings -> {out}")


ParamsOption = typer.Option(None, "--params", help="Parameters file (default: ./params.yaml when present).")


@app.command("segment")
def segment(
    inputs: list[Path] = typer.Argument(..., help="Transcripts (.txt, .md, .docx) or folders of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Segment table to write (.csv or .parquet)."),
    unit: str | None = typer.Option(None, help="Coding unit: turn, sentence or window (overrides params)."),
    params: Path | None = ParamsOption,
) -> None:
    """Cut transcripts into coding units with offsets, speaker, role and language."""
    from pipeline.ingest import collect_transcripts, load_transcript
    from pipeline.io import TABLE_SUFFIXES, write_table
    from pipeline.params import load_params
    from pipeline.segment import SegmentConfig, segment_table

    if out.suffix not in TABLE_SUFFIXES:
        raise InputError(f"output must end in {' or '.join(TABLE_SUFFIXES)}", out)
    section = dict(load_params(params).get("segment") or {})
    if unit:
        section["unit"] = unit
    config = SegmentConfig.from_dict(section)
    files = collect_transcripts(inputs)
    transcripts = [load_transcript(path) for path in files]  # every file is checked before anything is written
    for transcript in transcripts:
        for warning in transcript.warnings:
            typer.echo(f"warning: {warning}", err=True)
    table = segment_table(transcripts, config, progress=len(files) > 3)
    write_table(table, out)
    languages = ", ".join(f"{k} {v}" for k, v in table["language"].value_counts().sort_index().items())
    turns = sum(len(t.turns) for t in transcripts)
    typer.echo(f"{len(files)} files, {turns} turns, {len(table)} segments ({languages}) -> {out}")


# --- REFI-QDA commands (pipeline/qdpx.py) are registered below this line -----------------------


def _echo_warnings(warnings: list[str], file: Path) -> None:
    for warning in warnings:
        typer.echo(f"warning: {file}: {warning}", err=True)


@app.command("import-qdpx")
def import_qdpx_command(
    file: Path = typer.Argument(..., help="REFI-QDA project (.qdpx) exported by NVivo, ATLAS.ti, MAXQDA, QualCoder..."),
    out: Path = typer.Option(..., "--out", help="Folder for transcripts/, codings.csv and codebook.yaml."),
    code_map: Path | None = typer.Option(
        None, "--map", help="YAML mapping the project's code names (or paths) to codebook ids."
    ),
) -> None:
    """Import a coded REFI-QDA project as transcripts, codings.csv and codebook.yaml."""
    from pipeline.qdpx import import_qdpx

    result = import_qdpx(file, out, code_map=code_map)
    _echo_warnings(result.warnings, file)
    typer.echo(f"{result.sources} transcripts, {result.codes} codes, {result.codings} codings -> {out}")


@app.command("import-qdc")
def import_qdc_command(
    file: Path = typer.Argument(..., help="REFI-QDA codebook (.qdc)."),
    out: Path = typer.Option(..., "--out", help="Folder for codebook.yaml."),
) -> None:
    """Import a REFI-QDA codebook (.qdc) as codebook.yaml."""
    from pipeline.qdpx import import_qdc

    result = import_qdc(file, out)
    _echo_warnings(result.warnings, file)
    typer.echo(f"{result.codes} codes -> {out / 'codebook.yaml'}")


@app.command("export-qdpx")
def export_qdpx_command(
    codings: Path = typer.Option(..., "--codings", help="Codings table (source,start,end,code,coder[,description])."),
    text_dir: Path = typer.Option(..., "--text-dir", help="Folder of the transcripts (*.txt) the codings refer to."),
    codebook: Path | None = typer.Option(None, "--codebook", help="Codebook YAML describing the codes (optional)."),
    out: Path = typer.Option(..., "--out", help="Project file to write (.qdpx)."),
) -> None:
    """Export codings and transcripts as a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA, QualCoder."""
    from pipeline.qdpx import export_qdpx_files

    sources, written = export_qdpx_files(codings, text_dir, out, codebook)
    typer.echo(f"{sources} transcripts, {written} codings -> {out}")


# --- end of REFI-QDA commands -------------------------------------------------------------------


# --- agreement commands (pipeline/agreement.py) are registered below this line ------------------
# --- end of agreement commands ------------------------------------------------------------------


# --- corpus statistics commands (pipeline/datasheet.py) are registered below this line ----------
# --- end of corpus statistics commands ----------------------------------------------------------


# --- model commands (pipeline/train.py, pipeline/code.py) are registered below this line -------
# --- end of model commands ----------------------------------------------------------------------


def main() -> None:
    """Entry point of the ``imri`` console script."""
    try:
        app(standalone_mode=False)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


if __name__ == "__main__":
    main()
