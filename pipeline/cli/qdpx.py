"""The REFI-QDA commands: ``imri import-qdpx``, ``imri import-qdc`` and ``imri export-qdpx`` (projects and
codebooks exchanged with NVivo, ATLAS.ti, MAXQDA, QualCoder; pipeline/qdpx does the work).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.app import (
    app,
    warn,
)
from pipeline.errors import InputError


def _echo_warnings(warnings: list[str], file: Path) -> None:
    for warning in warnings:
        warn(f"{file}: {warning}")


@app.command("import-qdpx")
def import_qdpx_command(
    file: Path = typer.Argument(..., help="REFI-QDA project (.qdpx) exported by NVivo, ATLAS.ti, MAXQDA, QualCoder..."),
    out: Path = typer.Option(..., "--out", help="Folder for transcripts/, codings.csv and codebook.yaml."),
    code_map: Path | None = typer.Option(
        None, "--map", help="YAML mapping the project's code names (or paths) to codebook ids."
    ),
    level: int | None = typer.Option(
        None, "--level", help="Roll codes up to this depth of the code tree (1: top-level codes only)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out as a whole when it is not empty."),
) -> None:
    """Import a coded REFI-QDA project as transcripts, codings.csv and codebook.yaml."""
    from pipeline.qdpx import import_qdpx

    result = import_qdpx(file, out, code_map=code_map, level=level, force=force)
    _echo_warnings(result.warnings, file)
    if result.replaced:
        typer.echo(result.replaced, err=True)
    typer.echo(f"{result.sources} transcripts, {result.codes} codes, {result.codings} codings -> {out}")


@app.command("import-qdc")
def import_qdc_command(
    file: Path = typer.Argument(..., help="REFI-QDA codebook (.qdc)."),
    out: Path = typer.Option(..., "--out", help="Folder for codebook.yaml."),
    force: bool = typer.Option(False, "--force", help="Replace an existing codebook.yaml."),
) -> None:
    """Import a REFI-QDA codebook (.qdc) as codebook.yaml."""
    from pipeline.qdpx import import_qdc

    result = import_qdc(file, out, force=force)
    _echo_warnings(result.warnings, file)
    if result.replaced:
        typer.echo(result.replaced, err=True)
    typer.echo(f"{result.codes} codes -> {out / 'codebook.yaml'}")


@app.command("export-qdpx")
def export_qdpx_command(
    codings: Path = typer.Option(..., "--codings", help="Codings table (source,start,end,code,coder[,description])."),
    text_dir: Path = typer.Option(..., "--text-dir", help="Folder of the transcripts (*.txt) the codings refer to."),
    codebook: Path | None = typer.Option(None, "--codebook", help="Codebook YAML naming the codes (optional)."),
    lang: str | None = typer.Option(
        None, "--lang", help="Language of the code names: en or fr (default: the transcripts' sidecars, else en)."
    ),
    out: Path = typer.Option(..., "--out", help="Project file to write (.qdpx)."),
) -> None:
    """Export codings and transcripts as a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA, QualCoder."""
    from pipeline.codebook import LANGUAGES
    from pipeline.qdpx import export_qdpx_files

    if lang is not None and lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}")
    sources, written = export_qdpx_files(codings, text_dir, out, codebook, lang)
    typer.echo(f"{sources} transcripts, {written} codings -> {out}")
