"""The commands on the data themselves, no model involved: ``imri codebook show``, ``imri corpus build``,
``imri corpus stats``, ``imri corpus datasheet`` and ``imri segment`` (transcripts cut into coding units).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.app import (
    CodebookOption,
    InterviewerOption,
    NoSpeakersOption,
    ParamsOption,
    app,
    bundled_if_data,
    codebook_app,
    corpus_app,
    echo_read,
    prints_roles,
    shipped_if_default,
    warn,
)
from pipeline.errors import InputError


@codebook_app.command("show")
def codebook_show(
    codebook: Path | None = CodebookOption,
    lang: str = typer.Option("en", "--lang", help="Language of the names: en or fr."),
    definitions: bool = typer.Option(
        False, "--definitions", help="Also each impact's definition and its include and exclude hints."
    ),
) -> None:
    """Print the codebook as a tree: categories, then their impacts (with --definitions, what each one covers;
    a hint pointing to another impact names it beside its id)."""
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
            if definitions:
                inner = branch + ("    " if i_index == len(impacts) - 1 else "│   ")
                french = lang == "fr"
                definition = (impact.definition_fr if french else "") or impact.definition
                if definition:
                    typer.echo(f"{inner}{book.with_names(' '.join(definition.split()), lang)}")
                for word, hints in (
                    ("include", (impact.include_fr if french else ()) or impact.include),
                    ("exclude", (impact.exclude_fr if french else ()) or impact.exclude),
                ):
                    for hint in hints:
                        typer.echo(f"{inner}{word}: {book.with_names(' '.join(hint.split()), lang)}")


@corpus_app.command("build")
def corpus_build(
    markup: Path = typer.Option(
        Path("data/gold/markup"), help="Folder of marked-up transcripts.", callback=shipped_if_default
    ),
    out: Path = typer.Option(Path("data/gold"), help="Where transcripts/ and codings.csv go."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Compile the marked-up gold transcripts into plain transcripts and codings.csv."""
    from pipeline.codebook import load_codebook
    from pipeline.ingest import build_corpus

    codings = build_corpus(markup, out, load_codebook(codebook))
    typer.echo(f"{len({c.source for c in codings})} transcripts, {len(codings)} codings -> {out}")


@app.command("segment")
@prints_roles
def segment(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Transcripts (.txt .md .docx, Otter/Teams exports, .vtt .srt, Whisper .json) or folders of them.",
        callback=bundled_if_data,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Segment table to write (.csv or .parquet)."),
    unit: str | None = typer.Option(None, help="Coding unit: turn, sentence or window (overrides params)."),
    interviewer: list[str] = InterviewerOption,
    no_speakers_as: str = NoSpeakersOption,
    params: Path | None = ParamsOption,
) -> None:
    """Cut transcripts into coding units with offsets, speaker, role and language."""
    from pipeline.ingest import SegmentConfig, collect_transcripts, read_transcripts, segment_table
    from pipeline.io import TABLE_SUFFIXES, check_output_path, write_table
    from pipeline.params import load_params

    if out.suffix not in TABLE_SUFFIXES:
        raise InputError(f"output must end in {' or '.join(TABLE_SUFFIXES)}", out)
    check_output_path(out)
    section = dict(load_params(params).get("segment") or {})
    if unit:
        section["unit"] = unit
    config = SegmentConfig.from_dict(section)
    files = collect_transcripts(inputs, warn)
    # every file is checked before anything is written
    transcripts = read_transcripts(files, interviewer, no_speakers=no_speakers_as)
    for transcript in transcripts:
        for warning in transcript.warnings:
            warn(warning)
    echo_read(transcripts)
    transcripts = [t for t in transcripts if not t.skipped]
    if not transcripts:
        raise InputError("no transcript with speaker labels to segment (--no-speakers-as participant reads them)")
    table = segment_table(transcripts, config, progress=len(files) > 3)
    write_table(table, out)
    languages = ", ".join(f"{k} {v}" for k, v in table["language"].value_counts().sort_index().items())
    turns = sum(len(t.turns) for t in transcripts)
    typer.echo(f"{len(transcripts)} files, {turns} turns, {len(table)} segments ({languages}) -> {out}")


TransferCorpusOption = typer.Option(
    Path("data/transfer"),
    "--transfer",
    help="Transfer corpus (blind-written, coded by A and B).",
    callback=shipped_if_default,
)
GoldOption = typer.Option(
    Path("data/gold"), "--gold", help="Compiled gold corpus (transcripts/, codings.csv).", callback=shipped_if_default
)
NewStudyOption = typer.Option(
    Path("data/new_study"), "--new-study", help="Folder of uncoded new-study transcripts.", callback=shipped_if_default
)


@corpus_app.command("stats")
def corpus_stats_command(
    gold: Path = GoldOption,
    new_study: Path = NewStudyOption,
    transfer: Path = TransferCorpusOption,
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Print the corpus counts: interviews, words, languages, sites, coded passages per code and coder."""
    import json

    from pipeline.codebook import load_codebook
    from pipeline.report import corpus_stats, format_stats

    stats = corpus_stats(gold, new_study, load_codebook(codebook), transfer)
    typer.echo(json.dumps(stats, indent=2, ensure_ascii=False) if as_json else format_stats(stats).rstrip())


@corpus_app.command("datasheet")
def corpus_datasheet_command(
    gold: Path = GoldOption,
    new_study: Path = NewStudyOption,
    transfer: Path = TransferCorpusOption,
    datasheet: Path = typer.Option(
        Path("data/DATASHEET.md"), "--datasheet", help="Datasheet to update.", callback=shipped_if_default
    ),
    codebook: Path | None = CodebookOption,
) -> None:
    """Regenerate the counts between the generated-section markers of the datasheet."""
    from pipeline.codebook import load_codebook
    from pipeline.report import corpus_stats, update_datasheet

    changed = update_datasheet(datasheet, corpus_stats(gold, new_study, load_codebook(codebook), transfer))
    typer.echo(f"{datasheet}: {'generated section updated' if changed else 'already up to date'}")
