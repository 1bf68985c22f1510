"""The ``imri review`` group: ``serve`` (the local review app), ``export`` (the run's final coding, the
reviewers' codings or the audit trail) and ``simulate`` (active learning replayed on the gold set).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.app import (
    CodebookOption,
    GoldListOption,
    ParamsOption,
    app,
)
from pipeline.errors import InputError

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
