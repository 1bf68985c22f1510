"""Reviewed decisions as training labels: what ``imri train --include-reviews RUN_DIR`` adds to a gold set.

A review run is an ``imri code`` output folder (its segment table and transcripts, read here) with the
decisions of ``review.db`` (:func:`pipeline.review.reviewed_codings`, a table of :data:`REVIEW_COLUMNS`).
:func:`merge_reviews` labels each reviewed segment exactly by its latest decision and puts it in place of the
gold segments it overlaps. It lives with training, below the review package, so that training never imports
review.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS

#: the columns of a table of reviewed decisions (:func:`pipeline.review.reviewed_codings`)
REVIEW_COLUMNS = [*CODING_COLUMNS, "segment_id", "decided_at", "memo", "run"]


def read_run_segments(folder: Path) -> pd.DataFrame:
    """The segment table of an ``imri code`` output folder (``segments.parquet``, else ``segments.csv``), checked."""
    from pipeline.io import read_table

    parquet, csv = folder / "segments.parquet", folder / "segments.csv"
    if not parquet.is_file() and not csv.is_file():
        raise InputError("not an `imri code` output folder (no segments.csv)", folder)
    table = pd.read_parquet(parquet) if parquet.is_file() else read_table(csv)
    missing = {"source", "segment_id", "start", "end", "turn", "role", "text", "codes"} - set(table.columns)
    if missing:
        raise InputError(f"segments table lacks column(s): {', '.join(sorted(missing))}", folder)
    table = table.astype({"start": "int64", "end": "int64", "turn": "int64"})
    for column in ("codes", "question", "speaker", "language"):
        if column in table.columns:
            table[column] = table[column].fillna("").astype(str)
    if table.segment_id.duplicated().any():
        raise InputError("segments table repeats a segment_id", folder)
    return table.sort_values(["source", "start"]).reset_index(drop=True)


def _reconstructed_text(segments: pd.DataFrame) -> str:
    """A stand-in transcript: each segment at its offsets, spaces between (labels and line breaks are lost)."""
    chars = [" "] * int(segments.end.max())
    for start, text in zip(segments.start, segments.text.astype(str), strict=True):
        chars[start : start + len(text)] = list(text)
    return "".join(chars)


def run_texts(folder: Path, segments: pd.DataFrame) -> dict[str, str]:
    """The transcripts of a run: from its ``coded.qdpx`` when that matches the segments, else rebuilt."""
    project: dict[str, str] = {}
    if (folder / "coded.qdpx").is_file():
        from pipeline.qdpx import read_qdpx

        with contextlib.suppress(InputError):
            project = read_qdpx(folder / "coded.qdpx").sources
    texts = {}
    for source, rows in segments.groupby("source", sort=True):
        stem = source[:-4] if source.casefold().endswith(".txt") else source  # export_qdpx drops ".txt"
        text = project.get(source, project.get(stem))
        if text is None or any(
            text[s:e] != t for s, e, t in zip(rows.start, rows.end, rows.text.astype(str), strict=True)
        ):
            text = _reconstructed_text(rows)
        texts[source] = text
    return texts


def merge_reviews(
    segments: pd.DataFrame,
    labels: np.ndarray,
    codings: pd.DataFrame,
    texts: dict[str, str],
    reviews: pd.DataFrame,
    codebook: Codebook,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, dict[str, str]]:
    """Add reviewed segments (:func:`reviewed_codings` of one or more runs) to a labelled gold set.

    Each reviewed segment, taken from its run's segment table, is labelled exactly by its latest
    decision across runs ("no impact" included) and replaces every gold segment of the same
    transcript that it overlaps; the unreviewed segments of review runs are left out. Returns the
    segments (transcript order), their labels, the codings with the reviewers' added and the texts
    with the review runs' transcripts added.
    """
    from pipeline.ingest import SEGMENT_COLUMNS

    missing = sorted(set(REVIEW_COLUMNS) - set(reviews.columns))
    if missing:
        raise InputError(f"reviewed decisions lack column(s) {', '.join(missing)} (see review.reviewed_codings)")
    reviews = reviews.assign(code=reviews.code.fillna("").astype(str), run=reviews.run.astype(str))
    codebook.check_codes(set(reviews.code) - {""}, "reviewed decisions")
    # the latest decision of each segment across runs (one decision = rows sharing run and time)
    decided = reviews.drop_duplicates(["run", "segment_id", "decided_at"])
    latest = decided.sort_values("decided_at").drop_duplicates(["source", "start", "end"], keep="last")
    reviews = reviews.merge(latest[["run", "segment_id", "decided_at"]], on=["run", "segment_id", "decided_at"])

    texts = dict(texts)
    rows, ids = [], codebook.impact_ids
    review_labels = np.zeros((len(latest), len(ids)), dtype=labels.dtype)
    column = {code: j for j, code in enumerate(ids)}
    for run_dir, decisions in latest.groupby("run", sort=False):
        table = read_run_segments(Path(run_dir)).set_index("segment_id", drop=False)
        unknown = sorted(set(decisions.segment_id) - set(table.index))
        if unknown:
            raise InputError(f"review.db names segment(s) that segments.csv lacks, first {unknown[0]}", run_dir)
        run_texts_: dict[str, str] | None = None
        for source in sorted(set(decisions.source)):
            if source in texts:
                continue
            run_texts_ = run_texts_ or run_texts(Path(run_dir), table.reset_index(drop=True))
            texts[source] = run_texts_[source]
        picked = table.loc[decisions.segment_id]
        for seg in picked.itertuples():
            if texts[seg.source][seg.start : seg.end] != seg.text:
                raise InputError(
                    f"{seg.source} in this run differs from the transcript of that name in the gold set or another "
                    "run; review runs must code the same text",
                    run_dir,
                )
        rows.append(picked.reindex(columns=list(SEGMENT_COLUMNS)))
    reviewed = pd.concat(rows, ignore_index=True)
    by_span = {(r.source, r.start, r.end): i for i, r in enumerate(reviewed.itertuples())}
    for r in reviews.itertuples():
        if r.code:
            review_labels[by_span[(r.source, r.start, r.end)], column[r.code]] = 1
    review_labels[(reviewed.role == "interviewer").to_numpy()] = 0  # context, never a target (as in labels.py)

    overlapped = np.zeros(len(segments), dtype=bool)
    for r in reviewed.itertuples():
        overlapped |= ((segments.source == r.source) & (segments.start < r.end) & (segments.end > r.start)).to_numpy()
    merged = pd.concat([segments[~overlapped], reviewed], ignore_index=True)
    merged_labels = np.vstack([labels[~overlapped], review_labels])
    order = np.lexsort((merged.start.to_numpy(), merged.source.to_numpy()))
    merged = merged.iloc[order].reset_index(drop=True).astype({"start": "int64", "end": "int64", "turn": "int64"})
    added = reviews[reviews.code != ""][list(CODING_COLUMNS)]
    return merged, merged_labels[order], pd.concat([codings, added], ignore_index=True), texts
