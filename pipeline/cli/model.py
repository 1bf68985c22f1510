"""The model commands: ``imri models build`` (the offline encoders), ``imri train``, ``imri code``,
``imri finetune``, ``imri embed``, ``imri evaluate`` and ``imri report`` (train a model on a gold set, code
transcripts with it, and measure and draw how well it codes).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from pipeline.cli.app import (
    CodebookOption,
    GoldListOption,
    InterviewerOption,
    NoSpeakersOption,
    ParamsOption,
    app,
    echo_read,
    prints_roles,
    shipped_if_default,
    warn,
)
from pipeline.errors import InputError

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
@prints_roles
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
@prints_roles
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
        warn,
        interviewer,
        force,
        no_speakers=no_speakers_as,
        **on_ray,
    )
    s = run.summary
    if run.replaced:
        typer.echo(run.replaced)
    echo_read(run.transcripts)
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
@prints_roles
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
@prints_roles
def evaluate(
    gold: Path = typer.Option(
        Path("data/gold"),
        "--gold",
        help="Gold folder: transcripts/ + codings.csv (default: ./data/gold, else the bundled gold set).",
        callback=shipped_if_default,
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
    metrics: Path = typer.Argument(
        Path("reports/metrics.json"), help="Metrics from imri evaluate.", callback=shipped_if_default
    ),
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
