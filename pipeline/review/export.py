"""A run's reviewed decisions as codings: the final export, the decisions' export, and training with reviews.

Training with reviews (``imri train --include-reviews RUN_DIR``, see :func:`merge_reviews`): every
reviewed segment becomes a training target labelled exactly by its decision, "no impact" included,
whoever the chosen gold coders are, and replaces any gold segment it overlaps. Of the transcripts a
run coded, only the reviewed segments are used: the rest carries the model's codes, not a human's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS
from pipeline.model import REVIEW_COLUMNS, read_run_segments
from pipeline.review.run import ReviewRun
from pipeline.review.store import (
    CONSENSUS,
    HISTORY_COLUMNS,
    REVIEW_DB,
    ReviewStore,
    applies,
    is_consensus,
    latest_decisions,
    reviewers_only,
    set_aside_count,
    split_codes,
    transcript_fingerprints,
)


def applying_decisions(run_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """The decisions of ``review.db`` that apply to the run in the folder now, and how many were set aside.

    A decision is set aside when its segment is not in the run's segment table, or when its transcript
    was cut or read differently when it was made (see :mod:`pipeline.review.store`). The audit trail keeps it.
    """
    run_dir = Path(run_dir)
    history = ReviewStore(run_dir / REVIEW_DB, create=False).history()
    segments = read_run_segments(run_dir).set_index("segment_id", drop=False)
    mask = applies(history, segments, transcript_fingerprints(segments.reset_index(drop=True)))
    if history.empty:
        return latest_decisions(history), 0
    return latest_decisions(history[mask]), set_aside_count(history[~mask])


def reviewed_codings(run_dir: str | Path) -> pd.DataFrame:
    """Each reviewer's latest decision per reviewed segment of a run, as codings.

    Only decisions that apply to the run now count (:func:`applying_decisions`). Columns
    ``source,start,end,code,coder`` (``coder`` is the reviewer), then ``segment_id``, ``decided_at``,
    ``memo`` and ``run`` (the run folder). A segment decided as carrying no impact has one row with an
    empty ``code``; :func:`merge_reviews` (``imri train --include-reviews``) labels it "no impact",
    and :func:`export_reviews` leaves it out of plain codings.
    """
    return _as_codings(applying_decisions(run_dir)[0], Path(run_dir))


def _as_codings(decisions: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    rows = []
    for d in decisions.itertuples():
        for code in split_codes(d.codes_after) or ("",):
            rows.append((d.source, d.start, d.end, code, d.reviewer, d.segment_id, d.decided_at, d.memo, str(run_dir)))
    frame = pd.DataFrame(rows, columns=REVIEW_COLUMNS)
    return frame.astype({"start": "int64", "end": "int64"})


FINAL_COLUMNS = [*CODING_COLUMNS, "description", "status"]


def model_coder(card: dict) -> str:
    """The coder (REFI-QDA user) of a model's codes: ``imri model <name> <version>``."""
    return f"imri model {card.get('name', 'model')} {card.get('version', '?')}"


def final_codings(run: ReviewRun, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """The whole run's coding after review, as passages (:func:`pipeline.coding.code.passage_codings`).

    Per participant segment: the latest consensus decision where there is one (coder
    ``consensus:<who made it>``, status ``consensus``); else each reviewer's decision (coder = reviewer,
    status ``reviewed``); else, unreviewed, the model's codes (coder :func:`model_coder`, status
    ``unreviewed``, its confidence in the description). Adjacent segments of one turn that one coder
    gave the same code become one coding. ``history``: ``review.db``'s actions (default: read it);
    only those that apply to the run count. Columns :data:`FINAL_COLUMNS`, sorted by source and start.
    """
    from pipeline.coding import passage_codings

    if history is None:
        history = run.store().history() if run.db_path.is_file() else pd.DataFrame(columns=HISTORY_COLUMNS)
    decisions = latest_decisions(run.applying(history))
    participant = run.segments[run.segments.role == "participant"].reset_index(drop=True)
    frames = []
    if len(decisions):
        agreed = decisions[decisions.reviewer.map(is_consensus)].drop_duplicates("segment_id", keep="last")
        human = reviewers_only(decisions)
        human = human[~human.segment_id.isin(set(agreed.segment_id))]
        for table, status in ((agreed, "consensus"), (human, "reviewed")):
            for coder, rows in table.groupby("reviewer", sort=True):
                known = set(run.codebook.impact_ids)  # a code the codebook no longer has cannot be exported
                codes = rows.set_index("segment_id").codes_after.map(
                    lambda c, known=known: ";".join(x for x in split_codes(c) if x in known)
                )
                frame = participant.assign(codes=participant.segment_id.map(codes).fillna(""))
                codings = passage_codings(frame, str(coder))
                who = str(coder)[len(CONSENSUS) :] if status == "consensus" else str(coder)
                description = f"consensus decided by {who}" if status == "consensus" else f"reviewed by {who}"
                frames.append(codings.assign(description=description, status=status))
    reviewed = set(decisions.segment_id) if len(decisions) else set()
    unreviewed = participant.assign(codes=participant.codes.where(~participant.segment_id.isin(reviewed), ""))
    model = passage_codings(unreviewed, model_coder(run.card))
    model["description"] = [f"unreviewed: the model's code, confidence {d}" for d in model.description]
    frames.append(model.assign(status="unreviewed"))
    out = pd.concat(frames, ignore_index=True).reindex(columns=FINAL_COLUMNS)
    out = out.sort_values(["source", "start", "end", "coder", "code"], kind="mergesort").reset_index(drop=True)
    return out.astype({"start": "int64", "end": "int64"})


def export_final(
    run_dir: str | Path, out: str | Path, codebook_path: str | Path | None = None
) -> tuple[pd.DataFrame, int]:
    """``imri review export``: the whole run's coding after review (:func:`final_codings`) as ``.csv``/
    ``.parquet`` or a REFI-QDA ``.qdpx`` project (the run's transcripts, each coder a user, codes named
    by the codebook and nested under their categories). Returns (the codings, decisions set aside)."""
    from pipeline.io import TABLE_SUFFIXES, write_table

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (*TABLE_SUFFIXES, ".qdpx"):
        raise InputError("the export must end in .csv, .parquet or .qdpx", out)
    run = ReviewRun.load(run_dir, codebook_path)
    if run.db_path.is_file():
        history = run.store().history()
        set_aside = set_aside_count(history[~applies(history, run.segments, run.fingerprints)]) if len(history) else 0
    else:
        history, set_aside = pd.DataFrame(columns=HISTORY_COLUMNS), 0
    codings = final_codings(run, history)
    if suffix == ".qdpx":
        from pipeline.qdpx import export_qdpx

        export_qdpx(
            run.texts,
            codings,
            out,
            run.codebook,
            project_name=f"imri: final coding of {Path(run_dir).name}",
            where=run.db_path,
        )
    else:
        write_table(codings, out)
    return codings, set_aside


def export_reviews(
    run_dir: str | Path, out: str | Path, codebook_path: str | Path | None = None
) -> tuple[int, int, int]:
    """Write a run's decisions as codings: ``.csv``/``.parquet`` (``source,start,end,code,code_name,coder,
    description``: the code's name in the codebook, in its transcript's language, and the memo as description)
    or a REFI-QDA ``.qdpx`` project with the run's transcripts and each reviewer as a user. Segments decided
    "no impact" have no coding; decisions that do not apply to the run now (:func:`applying_decisions`) are
    left out. Returns (reviewed segments, codings, decisions set aside)."""
    from pipeline.io import TABLE_SUFFIXES, write_table

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (*TABLE_SUFFIXES, ".qdpx"):
        raise InputError("the export must end in .csv, .parquet or .qdpx", out)
    decisions, set_aside = applying_decisions(run_dir)
    reviews = _as_codings(decisions, Path(run_dir))
    codings = reviews[reviews.code != ""].rename(columns={"memo": "description"})
    codings = codings[[*CODING_COLUMNS, "description"]].reset_index(drop=True)
    if suffix == ".qdpx":
        from pipeline.qdpx import export_qdpx

        run = ReviewRun.load(run_dir, codebook_path)
        export_qdpx(
            run.texts,
            codings,
            out,
            run.codebook,
            project_name=f"imri review of {Path(run_dir).name}",
            where=Path(run_dir) / REVIEW_DB,
        )
    else:
        codings.insert(codings.columns.get_loc("code") + 1, "code_name", _code_names(codings, run_dir, codebook_path))
        write_table(codings, out)
    return reviews.segment_id.nunique(), len(codings), set_aside


def _code_names(codings: pd.DataFrame, run_dir: str | Path, codebook_path: str | Path | None) -> list[str]:
    """The name of each coding's code in the codebook (empty for a code it lacks), in its transcript's language."""
    codebook = load_codebook(codebook_path)
    segments = read_run_segments(Path(run_dir))
    column = "transcript_language" if "transcript_language" in segments else "language"
    languages = segments.groupby("source")[column].first().to_dict()
    names = {(i.id, lang): i.name[lang] for i in codebook.impacts for lang in ("en", "fr")}
    return [
        names.get((code, "fr" if languages.get(source) == "fr" else "en"), "")
        for code, source in zip(codings.code, codings.source, strict=True)
    ]


def export_history(run_dir: str | Path, out: str | Path) -> int:
    """Write the whole audit trail of a run (every action, no segment text) as a table; returns its rows."""
    from pipeline.io import write_table

    history = ReviewStore(Path(run_dir) / REVIEW_DB, create=False).history()
    write_table(history.reindex(columns=HISTORY_COLUMNS), out)
    return len(history)
