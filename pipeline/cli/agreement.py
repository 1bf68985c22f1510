"""``imri agreement``: inter-rater agreement per code between human coders, imri's codes or both
(pipeline/agreement does the work).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.app import (
    ParamsOption,
    app,
    bundled_if_data,
    warn,
)
from pipeline.errors import InputError


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
        callback=bundled_if_data,
    ),
    text_dir: Path | None = typer.Option(
        None, "--text-dir", help="Folder of the transcripts the codings refer to.", callback=bundled_if_data
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
        warn(warning)
    typer.echo(methods_paragraph(result) if methods else format_result(result, fmt, all_metrics))
