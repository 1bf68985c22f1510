"""The ``imri`` command line: one command per pipeline stage, plus helpers for codebooks and corpora.

Every command turns :class:`~pipeline.errors.InputError` into one line on stderr and exit code 2.
No segment text is ever logged.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path

import typer

from pipeline.errors import InputError

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


def _shipped(ctx: typer.Context, param: typer.CallbackParam, value):
    """An input left at its default: the working folder's when there, else the one shipped with imri."""
    from pipeline.locations import shipped

    source = ctx.get_parameter_source(param.name)  # typer's own copy of click's ParameterSource: compare names
    if value is None or getattr(source, "name", None) != "DEFAULT":
        return value
    return [shipped(v) for v in value] if isinstance(value, list | tuple) else shipped(value)


def _bundled(ctx: typer.Context, param: typer.CallbackParam, value):
    """A path typed as the bundled data names it (``data/...``) and not in the working folder: the repository's,
    so the README's tour runs as written from any folder. Any other path is taken as given."""
    from pipeline.locations import shipped

    def one(path):
        if path is None or Path(path).is_absolute() or Path(path).parts[:1] != ("data",):
            return path
        return shipped(Path(path))

    return [one(v) for v in value] if isinstance(value, list | tuple) else one(value)


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
    markup: Path = typer.Option(Path("data/gold/markup"), help="Folder of marked-up transcripts.", callback=_shipped),
    out: Path = typer.Option(Path("data/gold"), help="Where transcripts/ and codings.csv go."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Compile the marked-up gold transcripts into plain transcripts and codings.csv."""
    from pipeline.codebook import load_codebook
    from pipeline.ingest import build_corpus

    codings = build_corpus(markup, out, load_codebook(codebook))
    typer.echo(f"{len({c.source for c in codings})} transcripts, {len(codings)} codings -> {out}")


ParamsOption = typer.Option(
    None, "--params", help="Parameters file (default: ./params.yaml, else the repository's, else built-in defaults)."
)
GoldListOption = typer.Option(
    [Path("data/gold")],
    "--gold",
    help="Gold folder(s): transcripts/ + codings.csv (default: ./data/gold, else the bundled gold set).",
    callback=_shipped,
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


def _warn(message: str) -> None:
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


def _prints_roles(command):
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


def _echo_read(transcripts) -> None:
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


@app.command("segment")
@_prints_roles
def segment(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Transcripts (.txt .md .docx, Otter/Teams exports, .vtt .srt, Whisper .json) or folders of them.",
        callback=_bundled,
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
    files = collect_transcripts(inputs, _warn)
    # every file is checked before anything is written
    transcripts = read_transcripts(files, interviewer, no_speakers=no_speakers_as)
    for transcript in transcripts:
        for warning in transcript.warnings:
            _warn(warning)
    _echo_read(transcripts)
    transcripts = [t for t in transcripts if not t.skipped]
    if not transcripts:
        raise InputError("no transcript with speaker labels to segment (--no-speakers-as participant reads them)")
    table = segment_table(transcripts, config, progress=len(files) > 3)
    write_table(table, out)
    languages = ", ".join(f"{k} {v}" for k, v in table["language"].value_counts().sort_index().items())
    turns = sum(len(t.turns) for t in transcripts)
    typer.echo(f"{len(transcripts)} files, {turns} turns, {len(table)} segments ({languages}) -> {out}")


# --- REFI-QDA commands (pipeline/qdpx/project.py) are registered below this line -----------------------


def _echo_warnings(warnings: list[str], file: Path) -> None:
    for warning in warnings:
        _warn(f"{file}: {warning}")


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


# --- end of REFI-QDA commands -------------------------------------------------------------------


# --- agreement commands (pipeline/agreement/coefficients.py) are registered below this line ------------------


class _ListOptionsCommand(typer.core.TyperCommand):
    """A command whose ``--coders`` and ``--codes`` take several values in a row (``--coders A B``)."""

    def parse_args(self, ctx, args):
        from pipeline.agreement import expand_list_options

        return super().parse_args(ctx, expand_list_options(args, ("--coders", "--codes")))


@app.command("agreement", cls=_ListOptionsCommand)
def agreement_command(
    inputs: list[Path] | None = typer.Argument(
        None,
        help="Codings tables (source,start,end,code,coder), .qdpx projects and/or imri code output folders.",
        callback=_bundled,
    ),
    text_dir: Path | None = typer.Option(
        None, "--text-dir", help="Folder of the transcripts the codings refer to.", callback=_bundled
    ),
    coders: list[str] | None = typer.Option(
        None, "--coders", help="Coders to compare, two or more: --coders A B, after the inputs (default: all)."
    ),
    codes: list[str] | None = typer.Option(None, "--codes", help="Codes to compare (default: every code used)."),
    unit: str = typer.Option("character", "--unit", help="Unit of analysis: character, segment or document."),
    include_interviewer: bool = typer.Option(False, "--include-interviewer", help="Analyse interviewer text too."),
    ignore_uncoded: bool = typer.Option(False, "--ignore-uncoded", help="Leave out text that no coder coded."),
    overlap: str = typer.Option("either", "--overlap", help="Segment unit: either, segment, span or any."),
    min_overlap: float = typer.Option(0.5, "--min-overlap", help="Segment unit: share of segment/span covered."),
    segments: Path | None = typer.Option(None, "--segments", help="Segment table for --unit segment."),
    long: Path | None = typer.Option(None, "--long", help="Generic reliability data: CSV with unit,coder,value."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    codebook: Path | None = typer.Option(
        None,
        "--codebook",
        help="Codebook YAML that names the codes (optional; default: codebook.yaml beside the codings, else IMRI v1).",
    ),
    lang: str = typer.Option("en", "--lang", help="Language of the code names: en or fr."),
    params: Path | None = ParamsOption,
    fmt: str = typer.Option("text", "--format", help="Output: text (a table), md, csv or json."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    all_metrics: bool = typer.Option(
        False, "--all", help="Every metric (Fleiss' κ, AC1, PABAK, α's interval, units, ids, pooled row)."
    ),
    methods: bool = typer.Option(False, "--methods", help="Print a paragraph for a methods section instead."),
) -> None:
    """Inter-rater agreement per code: % agreement, kappa with 95% CI, Krippendorff's alpha, prevalence."""
    from pipeline.agreement import FORMATS, UnitConfig, format_result, methods_paragraph, run_agreement
    from pipeline.codebook import LANGUAGES

    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}")
    result = run_agreement(
        inputs or [],
        text_dir=text_dir,
        coders=coders,
        codes=codes,
        config=UnitConfig(unit, include_interviewer, ignore_uncoded, overlap, min_overlap),
        long=long,
        segments=segments,
        codebook=codebook,
        params=params,
        n_boot=bootstrap,
        seed=seed,
        language=lang,
    )
    for warning in result.warnings:
        _warn(warning)
    typer.echo(methods_paragraph(result) if methods else format_result(result, fmt, all_metrics))


# --- end of agreement commands ------------------------------------------------------------------


# --- corpus statistics commands (pipeline/report/datasheet.py) are registered below this line ----------

TransferCorpusOption = typer.Option(
    Path("data/transfer"), "--transfer", help="Transfer corpus (blind-written, coded by A and B).", callback=_shipped
)
GoldOption = typer.Option(
    Path("data/gold"), "--gold", help="Compiled gold corpus (transcripts/, codings.csv).", callback=_shipped
)
NewStudyOption = typer.Option(
    Path("data/new_study"), "--new-study", help="Folder of uncoded new-study transcripts.", callback=_shipped
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
        Path("data/DATASHEET.md"), "--datasheet", help="Datasheet to update.", callback=_shipped
    ),
    codebook: Path | None = CodebookOption,
) -> None:
    """Regenerate the counts between the generated-section markers of the datasheet."""
    from pipeline.codebook import load_codebook
    from pipeline.report import corpus_stats, update_datasheet

    changed = update_datasheet(datasheet, corpus_stats(gold, new_study, load_codebook(codebook), transfer))
    typer.echo(f"{datasheet}: {'generated section updated' if changed else 'already up to date'}")


# --- end of corpus statistics commands ----------------------------------------------------------


# --- review commands (pipeline/review/store.py, pipeline/review/app.py) are registered below this line ---
review_cli = typer.Typer(no_args_is_help=False, help="Review low-confidence segments; export and simulate reviews.")
app.add_typer(review_cli, name="review")


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser() or "reviewer"
    except (OSError, KeyError):
        return "reviewer"


@review_cli.command("serve")
def review_serve(
    run_dir: Path = typer.Argument(..., help="Output folder of imri code (segments.csv, review_queue.csv)."),
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Your name in the audit trail (default: login)."),
    blind: bool = typer.Option(
        False, "--blind", help="See only your own decisions (two reviewers coding the same run independently)."
    ),
    codebook: Path | None = CodebookOption,
) -> None:
    """Start the local review app on 127.0.0.1; the first line printed is its address, with this server's
    secret (other addresses get 403). Ctrl+C stops it."""
    from pipeline.review import serve

    if not 0 <= port <= 65535:
        raise InputError("--port must lie between 0 and 65535")
    serve(run_dir, port, reviewer or _login_name(), codebook, echo=typer.echo, blind=blind)


@review_cli.command("export")
def review_export(
    run_dir: Path = typer.Argument(..., help="Run folder of imri code (with review.db once reviewed)."),
    out: Path = typer.Option(..., "--out", help="Codings to write: .csv (or .parquet) or a .qdpx project."),
    reviews_only: bool = typer.Option(
        False, "--reviews-only", help="Only the reviewers' own codings (coder = reviewer), for imri agreement."
    ),
    history: bool = typer.Option(False, "--history", help="Write the whole audit trail (every action) instead."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Export the run's final coding: reviewed decisions, consensus where there is one, and the model's codes
    on unreviewed text (coder "imri model <name> <version>", marked unreviewed, with its confidence), as
    passages. --reviews-only: the reviewers' codings alone; --history: the audit trail."""
    from pipeline.review import export_final, export_history, export_reviews

    if history:
        typer.echo(f"{export_history(run_dir, out)} review actions -> {out}")
        return
    if reviews_only:
        decisions, codings, set_aside = export_reviews(run_dir, out, codebook)
        typer.echo(f"{decisions} reviewed segments, {codings} codings -> {out}")
    else:
        final, set_aside = export_final(run_dir, out, codebook)
        counts = final.status.value_counts()
        typer.echo(
            f"{len(final)} codings -> {out}: {counts.get('reviewed', 0)} reviewed, {counts.get('consensus', 0)} "
            f"consensus, {counts.get('unreviewed', 0)} unreviewed (the model's codes)"
        )
    if set_aside:
        typer.echo(
            f"{set_aside} earlier decision(s) left out: their segment is not in the run now in {run_dir} "
            "(kept in review.db; `--history` exports every action)"
        )


@review_cli.command("simulate")
def review_simulate(
    gold: list[Path] = GoldListOption,
    out: Path = typer.Option(Path("runs/review-simulation"), "--out", help="Folder for the table and the PNG."),
    encoder: str = typer.Option("use-m3", "--encoder", help="Encoder id (use-m3 is the fast one)."),
    coder: list[str] = typer.Option([], "--coder", help="Coder(s) whose codings answer for the reviewer (default: A)."),
    rounds: int = typer.Option(8, "--rounds", help="Review rounds after the first model."),
    batch: int = typer.Option(25, "--batch", help="Segments reviewed per round."),
    initial: int = typer.Option(4, "--initial", help="Fully labelled transcripts the first model learns from."),
    test_share: float = typer.Option(0.3, "--test-share", help="Share of transcripts held out for testing."),
    repeats: int = typer.Option(3, "--repeats", help="Repeats with other initial pools and random draws."),
    seed: int = typer.Option(0, "--seed", help="Seed of the splits and draws."),
    codebook: Path | None = CodebookOption,
    params: Path | None = ParamsOption,
) -> None:
    """Replay active learning on the gold set: macro-F1 per round, uncertainty-ordered vs random queue."""
    from pipeline.params import load_params
    from pipeline.review import SimulationConfig, run_simulation

    config = SimulationConfig(rounds, batch, initial, test_share, repeats, seed)
    table = run_simulation(gold, out, load_params(params), config, encoder, codebook, coder or None, progress=True)
    typer.echo(table.to_string(index=False))
    typer.echo(f"-> {out / 'simulation.csv'}, {out / 'simulation.png'}")


# --- end of review commands ---------------------------------------------------------------------


# --- model commands (pipeline/model/train.py, pipeline/coding/code.py) are registered below this line -------
models_app = typer.Typer(no_args_is_help=False, help="Build the offline encoders.")
app.add_typer(models_app, name="models")


@models_app.command("build")
def models_build() -> None:
    """Build the offline models into the user's cache, once: e5-small, its int8 build, spaCy's French tokenizer."""
    from pipeline.embed import build_e5_small, build_e5_small_int8, default_e5_dir, default_e5_int8_dir
    from pipeline.ingest import build_french_tokenizer

    typer.echo(f"e5-small ready in {build_e5_small(default_e5_dir())}")
    typer.echo(f"e5-small-int8 ready in {build_e5_small_int8(default_e5_int8_dir())}")
    typer.echo(f"spaCy French tokenizer rules ready in {build_french_tokenizer()}")


def _read_review_codings(run_dirs: list[Path]):
    import pandas as pd

    from pipeline.review import reviewed_codings

    return pd.concat([reviewed_codings(run_dir) for run_dir in run_dirs], ignore_index=True) if run_dirs else None


@app.command("train")
@_prints_roles
def train(
    gold: list[Path] = GoldListOption,
    out: Path | None = typer.Option(
        None, "--out", help="Model folder to write (default: models/<name>-<version>, a new folder)."
    ),
    codebook: Path | None = CodebookOption,
    coder: list[str] = typer.Option([], "--coder", help="Coder(s) whose codings are the labels (default: A)."),
    encoder: str | None = typer.Option(
        None, help="Encoder id (overrides embed.encoder/precision): e5-small, e5-small-int8, use-m3, minilm-en."
    ),
    include_reviews: list[Path] = typer.Option([], "--include-reviews", help="Run folder(s) with review.db."),
    interviewer: list[str] = InterviewerOption,
    params: Path | None = ParamsOption,
    force: bool = typer.Option(False, "--force", help="Write over a model folder that is already there."),
) -> None:
    """Train the impact model on a gold set and cross-validate it by transcript.

    Never writes over another model folder: an --out that is already there needs --force; without --out
    the model goes to models/<name>-<version>, a new folder for each version.
    """
    from pipeline.locations import ModelDestination
    from pipeline.model import train_model
    from pipeline.params import load_params

    settings = load_params(params)
    if encoder:
        settings.setdefault("train", {})["encoder"] = encoder
    destination = ModelDestination(out, force)
    try:
        card = train_model(
            gold,
            destination.folder,
            settings,
            codebook,
            coder or None,
            _read_review_codings(include_reviews),
            progress=True,
            interviewers=interviewer,
        )
    except BaseException:
        destination.discard()
        raise
    out = destination.place(card)
    metrics = card["cv_metrics"]
    languages = ", ".join(f"{k} {v['macro_f1']:.3f}" for k, v in metrics["by_language"].items())
    typer.echo(
        f"trained {card['name']} {card['version']} ({card['encoder']['id']}) on "
        f"{card['training_data']['target_segments']} participant segments of "
        f"{card['training_data']['transcripts']} transcripts -> {out}"
    )
    typer.echo(
        f"cross-validated macro-F1 {metrics['macro_f1']:.3f}, micro-F1 {metrics['micro_f1']:.3f} "
        f"(by language: {languages}); head fitted in {card['timings_s']['fit_head']} s"
    )


@app.command("code")
@_prints_roles
def code(
    inputs: list[Path] = typer.Argument(..., help="Transcripts or folders of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="Model folder from imri train (default: ./models/imri-default, else the repository's, else the "
        "user's, trained once from the bundled gold set).",
    ),
    zero_shot: bool = typer.Option(False, "--zero-shot", help="No gold set yet: similarity to the codebook."),
    codebook: Path | None = CodebookOption,
    with_gold: Path | None = typer.Option(None, "--with-gold", help="Codings CSV to add to coded.qdpx."),
    interviewer: list[str] = InterviewerOption,
    no_speakers_as: str = NoSpeakersOption,
    params: Path | None = ParamsOption,
    force: bool = typer.Option(
        False, "--force", help="Replace --out even when it is a non-empty folder that is not an earlier run."
    ),
    engine: str = typer.Option("local", "--engine", help="local, or ray: on a Ray cluster (docs/scale-out.md)."),
    address: str | None = typer.Option(
        None, "--address", help="--engine ray: the cluster to join (auto, HOST:PORT); default: a local Ray instance."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="--engine ray: encoder actors, one CPU each (default: one per CPU of the cluster)."
    ),
) -> None:
    """Code transcripts: segments with suggested impacts, a review queue, a summary and a .qdpx project.

    --out is built aside and swapped in whole. An earlier run there is replaced (its review.db kept);
    any other non-empty folder needs --force. --engine ray gives the same run folder (docs/scale-out.md).
    """
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts
    from pipeline.params import load_params

    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be local or ray, not {engine!r}")
    on_ray = {}
    if engine == "ray":
        from pipeline.coding import code_transcripts_ray as code_transcripts

        on_ray = {"address": address, "workers": workers}
    elif address is not None or workers is not None:
        raise InputError("--address and --workers need --engine ray")
    if model is None and not zero_shot:
        from pipeline.coding import check_run_folder
        from pipeline.ingest import collect_transcripts
        from pipeline.model import default_model

        # what the user gave is checked before the default model is looked for (or trained): a misuse is one line
        collect_transcripts(inputs)
        check_run_folder(out, force, inputs)
        if engine == "ray":
            from pipeline.coding import import_ray

            import_ray()
        model = default_model(lambda line: typer.echo(line, err=True))
        typer.echo(f"model: {model} (the default; --model chooses another)", err=True)
    run = code_transcripts(
        inputs,
        out,
        None if zero_shot else model,
        load_codebook(codebook),
        load_params(params),
        with_gold,
        _warn,
        interviewer,
        force,
        no_speakers=no_speakers_as,
        **on_ray,
    )
    s = run.summary
    if run.replaced:
        typer.echo(run.replaced)
    _echo_read(run.transcripts)
    if on_ray:
        actors = f"{run.workers} worker{'s' if run.workers != 1 else ''}"
        typer.echo(f"ray: {actors}, transcripts embedded on {run.nodes} node(s) ({run.address})")
    typer.echo(
        f"{s['transcripts']} transcripts, {s['segments']} segments ({s['participant_segments']} participant), "
        f"{s['coded_segments']} coded by {s['model']}"
    )
    typer.echo("codes per category and impact:")
    for category in s["codes_per_category"]:
        typer.echo(f"  {category['count']:5d}  {category['name']}")
        for impact in s["codes_per_impact"]:
            if impact["category"] == category["id"]:
                typer.echo(f"  {impact['count']:5d}    {impact['name']}")
    queue = out / "review_queue.csv"
    r = s["review"]
    budget = f"review.budget {r['budget']:.0%}" if r["budget"] is not None else "no budget"
    typer.echo(
        f"{s['sent_to_review']} segments to review in {r['queued_passages']} passages, "
        f"{r['queued_share_of_participant_text']:.1%} of participant text ({budget}; the passages whose review "
        f"should raise agreement the most) -> {queue}"
    )
    confidence = r["unreviewed_mean_confidence"]
    typer.echo(
        f"not queued: {r['unreviewed_segments']} segments in {r['unreviewed_passages']} passages, "
        f"{r['unreviewed_share_of_participant_text']:.1%} of participant text, keep the model's codes unreviewed"
        + (f" (mean confidence {confidence:.2f})" if confidence is not None else "")
    )
    typer.echo("seconds: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in run.timings.items()))


@app.command("finetune")
@_prints_roles
def finetune(
    gold: list[Path] = GoldListOption,
    out: Path | None = typer.Option(None, "--out", help="Folder of the fine-tuned encoder (default: the user cache)."),
    codebook: Path | None = CodebookOption,
    coder: list[str] = typer.Option([], "--coder", help="Coder(s) whose codings are the labels (default: A)."),
    interviewer: list[str] = InterviewerOption,
    params: Path | None = ParamsOption,
) -> None:
    """Fine-tune e5-small on a gold set (coded segments and passages -> their impact's definition).

    Then use `embed.encoder: e5-small-ft`.
    """
    from pipeline.embed import FinetuneConfig, finetune_e5, finetuned_dir
    from pipeline.ingest import SegmentConfig
    from pipeline.model import LabelConfig, gold_codebook, load_gold
    from pipeline.params import label_coders, load_params

    settings = load_params(params)
    book = gold_codebook(gold[0], codebook)
    labels = LabelConfig.from_dict(settings.get("labels"))
    segment = SegmentConfig.from_dict(settings.get("segment"))
    coders = label_coders(settings, coder)
    data = load_gold(gold, book, segment, labels, coders, interviewers=interviewer)
    from pipeline.evaluate import coded_passages
    from pipeline.model import segment_languages

    targets = data.targets
    target = out or finetuned_dir()
    tables = [coded_passages(data, who) for who in coders]
    passages = [(r.text, r.codes, r.language) for table in tables for r in table.itertuples()]
    info = finetune_e5(
        data.segments.text.astype(str).to_numpy()[targets].tolist(),
        data.labels[targets],
        book,
        target,
        FinetuneConfig.from_dict(settings.get("finetune")),
        data.data_hash,
        list(segment_languages(data.segments)[targets]),
        passages,
    )
    typer.echo(
        f"fine-tuned e5-small on {info['pairs']} pairs (coded segments and {info['passages']} passages, and the "
        f"codebook's include hints, each with its impact's definition) in {info['seconds']:.0f} s -> {target}"
    )


@app.command("embed")
def embed(
    segments: Path = typer.Argument(..., help="Segment table from imri segment (.csv or .parquet)."),
    encoder: list[str] = typer.Option(
        [], "--encoder", help="Encoder id(s) (default: evaluate.encoders, embed.encoder at embed.precision)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write a JSON summary of what was embedded."),
    params: Path | None = ParamsOption,
) -> None:
    """Embed segments and their questions into the embedding cache (re-runs embed only new text)."""
    import json

    from pipeline.evaluate import EvaluateConfig
    from pipeline.io import atomic_path, read_table
    from pipeline.model import default_encoder_id, embed_segments
    from pipeline.params import load_params

    settings = load_params(params)
    default = default_encoder_id(settings)
    configured = (settings.get("embed") or {}).get("encoder") or "e5-small"
    # as imri evaluate reads them: embed.encoder in that list is the encoder at embed.precision
    encoders = encoder or [
        default if e == configured else e for e in EvaluateConfig.from_dict(settings.get("evaluate")).encoders
    ]
    table = read_table(segments)
    for column in ("source", "text", "question"):
        if column not in table.columns:
            raise InputError(f"not a segment table: no {column!r} column", segments)
    report = {}
    for encoder_id in encoders:
        started = time.perf_counter()
        vectors, _ = embed_segments(table, encoder_id, progress=True)
        seconds = time.perf_counter() - started
        # no timings in the file: it is a DVC dependency and must only change when the embeddings do
        report[encoder_id] = {
            "segments": len(table),
            "dim": int(vectors.shape[1]),
            "texts_sha256": _texts_digest(table),
        }
        typer.echo(f"{encoder_id}: {len(table)} segments, {vectors.shape[1]}-d, {seconds:.1f} s")
    if out:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _texts_digest(table) -> str:
    import hashlib

    digest = hashlib.sha256()
    for text, question in zip(table.text.astype(str), table.question.fillna("").astype(str), strict=True):
        digest.update(text.encode("utf-8") + b"\0" + question.encode("utf-8") + b"\0")
    return digest.hexdigest()


@app.command("evaluate")
@_prints_roles
def evaluate(
    gold: Path = typer.Option(
        Path("data/gold"),
        "--gold",
        help="Gold folder: transcripts/ + codings.csv (default: ./data/gold, else the bundled gold set).",
        callback=_shipped,
    ),
    out: Path = typer.Option(Path("reports/metrics.json"), "--out", help="Metrics JSON to write."),
    codebook: Path | None = CodebookOption,
    transfer: Path | None = typer.Option(
        None,
        "--transfer",
        help="A second coded corpus never trained on (default: evaluate.transfer): shift-robustness figures.",
    ),
    interviewer: list[str] = InterviewerOption,
    params: Path | None = ParamsOption,
    coder: list[str] = typer.Option(
        [], "--coder", help="Coder(s) whose codings are the labels, as for imri train (default: train.coders, else A)."
    ),
) -> None:
    """Cross-validate every encoder, head and baseline by transcript; compare with human agreement."""
    from pipeline.evaluate import evaluate as run_evaluation
    from pipeline.evaluate import headline, timings, write_metrics
    from pipeline.ingest import SegmentConfig
    from pipeline.model import LabelConfig, gold_codebook, load_gold
    from pipeline.params import label_coders, load_params

    settings = load_params(params)
    book = gold_codebook(gold, codebook)
    coders = label_coders(settings, coder)
    settings.setdefault("train", {})["coders"] = coders  # the per-unit and human-agreement figures use them too
    labels = LabelConfig.from_dict(settings.get("labels"))

    def gold_for_unit(unit: str = "sentence"):
        segment = SegmentConfig.from_dict({**(settings.get("segment") or {}), "unit": unit})
        return load_gold([gold], book, segment, labels, None, interviewers=interviewer).labelled_by(
            coders, book.impact_ids, labels
        )

    data = gold_for_unit((settings.get("segment") or {}).get("unit", "sentence"))
    from pipeline.locations import shipped

    transfer_dir = transfer or (settings.get("evaluate") or {}).get("transfer")
    transfer_dir = shipped(Path(transfer_dir)) if transfer_dir and not transfer else transfer_dir
    transfer_set = None
    if transfer_dir:
        from pipeline.evaluate import load_transfer

        segment = SegmentConfig.from_dict(settings.get("segment") or {})
        transfer_set = load_transfer(Path(transfer_dir), book, segment, labels, interviewer)
        settings.setdefault("evaluate", {})["transfer"] = str(transfer_dir)
    from pipeline.evaluate import SYNTHETIC_NOTE
    from pipeline.locations import scores_note

    results = run_evaluation(
        data,
        book,
        settings,
        progress=True,
        gold_for_unit=gold_for_unit,
        transfer=transfer_set,
        note=scores_note([gold], SYNTHETIC_NOTE),
    )
    write_metrics(results, out)
    typer.echo(headline(results))
    typer.echo("seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings(results).items()))


@app.command("report")
def report(
    metrics: Path = typer.Argument(Path("reports/metrics.json"), help="Metrics from imri evaluate.", callback=_shipped),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for report.html and the PNGs."),
    headline_only: bool = typer.Option(False, "--headline", help="Only print the headline table."),
    codebook: Path | None = CodebookOption,
) -> None:
    """Draw the evaluation: a self-contained report.html and one PNG per figure, impacts named by the codebook."""
    import json

    from pipeline.evaluate import headline
    from pipeline.report import write_report

    if not headline_only:
        typer.echo(f"report -> {write_report(metrics, out, codebook)}")
    try:
        typer.echo(headline(json.loads(metrics.read_text(encoding="utf-8"))))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read metrics ({type(exc).__name__})", metrics) from None


# --- end of model commands ----------------------------------------------------------------------


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


if __name__ == "__main__":
    main()
