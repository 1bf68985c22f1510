"""Human review of low-confidence segments: decisions kept safely in ``RUN_DIR/review.db`` and fed back into training.

``review.db`` is SQLite in WAL mode with ``synchronous=FULL``. Its one table, ``decisions``, is the
append-only audit trail: every action of a reviewer on a segment is one row, written in its own
transaction and committed before the app answers, so killing the server at any moment loses no
acknowledged decision and leaves no half-written one. Triggers refuse ``UPDATE`` and ``DELETE``.

Columns: ``id`` (order of the actions), ``segment_id``, ``source``, ``start``, ``end``, ``action``
(``accept`` | ``reject`` | ``change`` | ``skip`` | ``memo``), ``codes_before`` (the model's codes,
``;``-joined), ``codes_after`` (the reviewer's codes, ``;``-joined, empty for "no impact"; NULL for
``skip`` and ``memo``), ``memo``, ``reviewer``, ``model_version`` (``name-version`` of the model that
coded the run) and ``decided_at`` (UTC, ISO 8601).

A segment's *decision* is its latest ``accept`` (the model's codes), ``reject`` (no impact) or
``change`` (the codes the reviewer ticked). Skips and memos are history only. ``review.db`` holds
no segment text (the run folder has it) and nothing here logs any.

Training with reviews (``imri train --include-reviews RUN_DIR``, see :func:`merge_reviews`): every
reviewed segment becomes a training target labelled exactly by its decision, "no impact" included,
whoever the chosen gold coders are, and replaces any gold segment it overlaps. Of the transcripts a
run coded, only the reviewed segments are used: the rest carries the model's codes, not a human's.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook, load_codebook
from pipeline.corpus import CODING_COLUMNS
from pipeline.errors import InputError

REVIEW_DB = "review.db"
ACTIONS = ("accept", "reject", "change", "skip", "memo")
DECIDING = ("accept", "reject", "change")
SCHEMA_VERSION = 1
MAX_MEMO = 10_000
REVIEW_COLUMNS = [*CODING_COLUMNS, "segment_id", "decided_at", "memo", "run"]
HISTORY_COLUMNS = [
    "id",
    "segment_id",
    "source",
    "start",
    "end",
    "action",
    "codes_before",
    "codes_after",
    "memo",
    "reviewer",
    "model_version",
    "decided_at",
]

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    segment_id TEXT NOT NULL,
    source TEXT NOT NULL,
    start INTEGER NOT NULL CHECK (start >= 0),
    "end" INTEGER NOT NULL CHECK ("end" > start),
    action TEXT NOT NULL CHECK (action IN ({", ".join(f"'{a}'" for a in ACTIONS)})),
    codes_before TEXT NOT NULL,
    codes_after TEXT,
    memo TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL CHECK (reviewer <> ''),
    model_version TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    CHECK ((action IN ('skip', 'memo')) = (codes_after IS NULL))
);
CREATE INDEX IF NOT EXISTS decisions_by_segment ON decisions (segment_id, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

_LATEST = f"""
SELECT d.* FROM decisions AS d
JOIN (SELECT segment_id, MAX(id) AS id FROM decisions
      WHERE action IN ({", ".join(f"'{a}'" for a in DECIDING)}) GROUP BY segment_id) AS latest
ON d.id = latest.id ORDER BY d.id
"""


def split_codes(value: object) -> tuple[str, ...]:
    """``"a;b"`` -> ``("a", "b")``; empty, NaN and None -> ``()``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    return tuple(code for code in str(value).split(";") if code)


# --- the store -----------------------------------------------------------------------------------


class ReviewStore:
    """``review.db``: the append-only history of review actions (see the module docstring)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError("no review.db here: review the run first with `imri review serve`", self.path.parent)
        try:
            with self.connect() as conn:
                if create:
                    conn.executescript(_SCHEMA)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open the review database ({exc})", self.path) from None
        if "decisions" not in tables or version > SCHEMA_VERSION:
            raise InputError(f"not a review database of this version (schema {version})", self.path)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode (transactions are explicit), closed afterwards."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise InputError(f"SQLite cannot use WAL here (journal mode {mode}); use a local disk", self.path)
            conn.execute("PRAGMA synchronous = FULL")  # a commit survives a power cut, not only a crash
            yield conn
        finally:
            conn.close()

    def record(
        self,
        segment_id: str,
        source: str,
        start: int,
        end: int,
        action: str,
        codes_before: tuple[str, ...] | list[str],
        codes_after: tuple[str, ...] | list[str] | None,
        reviewer: str,
        model_version: str,
        memo: str = "",
    ) -> int:
        """Append one action in its own transaction; returns its id once committed."""
        if action not in ACTIONS:
            raise ValueError(f"unknown review action {action!r}")
        if (action in DECIDING) != (codes_after is not None):
            raise ValueError("accept, reject and change carry codes; skip and memo do not")
        if not reviewer.strip():
            raise ValueError("a reviewer name is needed")
        row = (
            segment_id,
            source,
            int(start),
            int(end),
            action,
            ";".join(codes_before),
            None if codes_after is None else ";".join(codes_after),
            memo[:MAX_MEMO],
            reviewer.strip(),
            model_version,
            datetime.now(UTC).isoformat(timespec="microseconds"),
        )
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    'INSERT INTO decisions (segment_id, source, start, "end", action, codes_before, codes_after, '
                    "memo, reviewer, model_version, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(cursor.lastrowid)

    def _query(self, sql: str) -> pd.DataFrame:
        with self.connect() as conn:
            frame = pd.read_sql_query(sql, conn)
        return frame.astype({"id": "int64", "start": "int64", "end": "int64"}) if len(frame) else frame

    def history(self) -> pd.DataFrame:
        """Every action, oldest first (columns :data:`HISTORY_COLUMNS`)."""
        return self._query("SELECT * FROM decisions ORDER BY id")

    def decisions(self) -> pd.DataFrame:
        """The latest accept/reject/change of each segment, in the order they were made."""
        return self._query(_LATEST)

    def integrity(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        with self.connect() as conn:
            return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))


# --- the run being reviewed ----------------------------------------------------------------------


def _read_segments(folder: Path) -> pd.DataFrame:
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


@dataclass
class ReviewRun:
    """An ``imri code`` output folder opened for review: segments, queue, model card, codebook."""

    folder: Path
    card: dict
    segments: pd.DataFrame  # every segment, transcript order, indexed by segment_id
    queue: list[str]  # segment ids of review_queue.csv, highest priority first
    queue_info: dict[str, dict]  # segment id -> priority, reason
    codebook: Codebook

    @classmethod
    def load(cls, folder: str | Path, codebook_path: str | Path | None = None) -> ReviewRun:
        """Open a run folder; a clear :class:`InputError` when it is not one or its codebook differs."""
        from pipeline.io import read_table

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("no such run folder", folder)
        if not (folder / "model.json").is_file() or not (folder / "review_queue.csv").is_file():
            raise InputError("not an `imri code` output folder (model.json or review_queue.csv is missing)", folder)
        try:
            card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            impact_ids = list(card["codebook"]["impact_ids"])
        except (ValueError, KeyError, TypeError):
            raise InputError("model.json is damaged", folder) from None
        codebook = load_codebook(codebook_path)
        if codebook.impact_ids != impact_ids:
            raise InputError(
                f"the run was coded with codebook {card['codebook'].get('id')} v{card['codebook'].get('version')}, "
                f"not {codebook.id} v{codebook.version}: pass its YAML with --codebook",
                folder,
            )
        segments = _read_segments(folder)
        missing = [f"p:{i}" for i in impact_ids if f"p:{i}" not in segments.columns]
        if missing:
            raise InputError(f"segments table lacks probability column(s): {', '.join(missing[:3])}", folder)
        queue = read_table(folder / "review_queue.csv")
        if "segment_id" not in queue.columns:
            raise InputError("review_queue.csv lacks segment_id", folder)
        unknown = sorted(set(queue.segment_id) - set(segments.segment_id))
        if unknown:
            raise InputError(f"review_queue.csv names segment(s) not in segments.csv: {unknown[0]}", folder)
        queue = queue.drop_duplicates("segment_id")
        info = {
            row.segment_id: {
                "priority": float(getattr(row, "priority", 0.0)),
                "reason": str(getattr(row, "reason", "") or ""),
            }
            for row in queue.itertuples()
        }
        return cls(folder, card, segments.set_index("segment_id", drop=False), list(queue.segment_id), info, codebook)

    @property
    def model_version(self) -> str:
        return f"{self.card.get('name', 'model')}-{self.card.get('version', '?')}"

    @property
    def db_path(self) -> Path:
        return self.folder / REVIEW_DB

    def store(self) -> ReviewStore:
        """The run's review database (created on first use)."""
        return ReviewStore(self.db_path)

    @cached_property
    def texts(self) -> dict[str, str]:
        return run_texts(self.folder, self.segments.reset_index(drop=True))

    def segment(self, segment_id: str) -> pd.Series:
        """One segment's row; :class:`KeyError` when the run has no such segment."""
        return self.segments.loc[segment_id]

    def model_codes(self, segment_id: str) -> tuple[str, ...]:
        return split_codes(self.segment(segment_id)["codes"])

    def probabilities(self, segment_id: str) -> list[tuple[str, float]]:
        """``(impact_id, probability)`` for every impact, most probable first."""
        row = self.segment(segment_id)
        pairs = [(i, float(row[f"p:{i}"]) if pd.notna(row[f"p:{i}"]) else 0.0) for i in self.codebook.impact_ids]
        return sorted(pairs, key=lambda pair: -pair[1])

    def _turn_rows(self, source: str, turn: int) -> pd.DataFrame:
        rows = self.segments[self.segments.source == source]
        return rows[rows.turn == turn]

    def turn(self, segment_id: str) -> tuple[str, str, str]:
        """The segment's turn as (text before the segment, the segment, text after it)."""
        row = self.segment(segment_id)
        rows = self._turn_rows(row.source, row.turn)
        text = self.texts[row.source]
        start, end = int(row.start), int(row.end)
        return text[int(rows.start.min()) : start], text[start:end], text[end : int(rows.end.max())]

    def previous_turn(self, segment_id: str) -> tuple[str, str] | None:
        """``(speaker, text)`` of the turn before the segment's own, or None for a first turn."""
        row = self.segment(segment_id)
        rows = self.segments[(self.segments.source == row.source) & (self.segments.turn < row.turn)]
        if rows.empty:
            return None
        rows = rows[rows.turn == rows.turn.max()]
        text = self.texts[row.source][int(rows.start.min()) : int(rows.end.max())]
        return str(rows.speaker.iloc[0]), text


# --- queue, progress, agreement --------------------------------------------------------------------


def pending(run: ReviewRun, history: pd.DataFrame) -> list[str]:
    """Queued segments without a decision, in queue order; skipped ones go after the others."""
    decided = set(history[history.action.isin(DECIDING)].segment_id) if len(history) else set()
    skipped = set(history[history.action == "skip"].segment_id) if len(history) else set()
    open_ = [s for s in run.queue if s not in decided]
    return [s for s in open_ if s not in skipped] + [s for s in open_ if s in skipped]


def agreement(decisions: pd.DataFrame) -> dict:
    """How far the reviewer agreed with the model so far, over decided segments.

    ``exact``: segments where the reviewer kept exactly the model's codes; ``precision``: share of
    the model's codes the reviewer kept; ``recall``: share of the reviewer's codes the model had
    suggested; ``f1``: their harmonic mean (micro-averaged over codes; "no impact" on both sides
    counts in ``exact`` only).
    """
    n = len(decisions)
    if not n:
        return {"segments": 0, "exact": 0, "exact_share": None, "precision": None, "recall": None, "f1": None}
    before = [set(split_codes(c)) for c in decisions.codes_before]
    after = [set(split_codes(c)) for c in decisions.codes_after]
    both = sum(len(b & a) for b, a in zip(before, after, strict=True))
    model, human = sum(map(len, before)), sum(map(len, after))
    exact = sum(b == a for b, a in zip(before, after, strict=True))
    return {
        "segments": n,
        "exact": exact,
        "exact_share": exact / n,
        "precision": both / model if model else None,
        "recall": both / human if human else None,
        "f1": 2 * both / (model + human) if model + human else None,
    }


def progress(run: ReviewRun, history: pd.DataFrame) -> dict:
    """Reviewed / queued, skipped, decisions outside the queue, and model-reviewer agreement."""
    decisions = history[history.action.isin(DECIDING)].drop_duplicates("segment_id", keep="last")
    queued = set(run.queue)
    skipped = set(history[history.action == "skip"].segment_id) if len(history) else set()
    return {
        "queued": len(run.queue),
        "reviewed": int(decisions.segment_id.isin(queued).sum()),
        "skipped": sum(1 for s in pending(run, history) if s in skipped),
        "outside_queue": int((~decisions.segment_id.isin(queued)).sum()),
        "actions": len(history),
        "agreement": agreement(decisions),
    }


# --- reviewed decisions as codings: export and training ------------------------------------------


def reviewed_codings(run_dir: str | Path) -> pd.DataFrame:
    """The latest decision per reviewed segment of a run, as codings.

    Columns ``source,start,end,code,coder`` (``coder`` is the reviewer), then ``segment_id``,
    ``decided_at``, ``memo`` and ``run`` (the run folder). A segment decided as carrying no impact
    has one row with an empty ``code``; :func:`merge_reviews` (``imri train --include-reviews``)
    labels it "no impact", and :func:`export_reviews` leaves it out of plain codings.
    """
    run_dir = Path(run_dir)
    decisions = ReviewStore(run_dir / REVIEW_DB, create=False).decisions()
    rows = []
    for d in decisions.itertuples():
        for code in split_codes(d.codes_after) or ("",):
            rows.append((d.source, d.start, d.end, code, d.reviewer, d.segment_id, d.decided_at, d.memo, str(run_dir)))
    frame = pd.DataFrame(rows, columns=REVIEW_COLUMNS)
    return frame.astype({"start": "int64", "end": "int64"})


def export_reviews(run_dir: str | Path, out: str | Path, codebook_path: str | Path | None = None) -> tuple[int, int]:
    """Write a run's decisions as codings: ``.csv``/``.parquet`` (``source,start,end,code,coder,description``,
    the memo as description) or a REFI-QDA ``.qdpx`` project with the run's transcripts and each
    reviewer as a user. Segments decided "no impact" have no coding. Returns (decisions, codings)."""
    from pipeline.io import TABLE_SUFFIXES, write_table

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (*TABLE_SUFFIXES, ".qdpx"):
        raise InputError("the export must end in .csv, .parquet or .qdpx", out)
    reviews = reviewed_codings(run_dir)
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
        write_table(codings, out)
    return reviews.segment_id.nunique(), len(codings)


def export_history(run_dir: str | Path, out: str | Path) -> int:
    """Write the whole audit trail of a run (every action, no segment text) as a table; returns its rows."""
    from pipeline.io import write_table

    history = ReviewStore(Path(run_dir) / REVIEW_DB, create=False).history()
    write_table(history.reindex(columns=HISTORY_COLUMNS), out)
    return len(history)


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
    from pipeline.segment import SEGMENT_COLUMNS

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
        table = _read_segments(Path(run_dir)).set_index("segment_id", drop=False)
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


# --- simulate the active-learning loop on the gold set ---------------------------------------------


@dataclass(frozen=True)
class SimulationConfig:
    """``imri review simulate``: how the review loop is replayed on the gold set."""

    rounds: int = 8  # review rounds after the initial model
    batch: int = 25  # segments the "reviewer" answers per round
    initial_transcripts: int = 4  # fully labelled transcripts the first model is trained on
    test_share: float = 0.3  # share of the transcripts held out as the fixed test set
    repeats: int = 3  # different initial pools and random draws; results are averaged
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.batch < 1 or self.initial_transcripts < 2 or self.repeats < 1:
            raise InputError("simulate needs rounds >= 1, batch >= 1, initial >= 2 transcripts and repeats >= 1")
        if not 0 < self.test_share < 1:
            raise InputError("test share must lie between 0 and 1")


def simulate(
    X: np.ndarray,
    Y: np.ndarray,
    groups: np.ndarray,
    impact_ids: list[str],
    make_model,
    config: SimulationConfig,
) -> pd.DataFrame:
    """Replay the review loop: uncertainty-ordered vs random queues, macro-F1 on a fixed test set per round.

    ``X``, ``Y`` and ``groups`` (transcript of each row) are the gold set's participant segments;
    ``make_model()`` returns an unfitted :class:`~pipeline.classify.CalibratedModel`. Test transcripts
    are held out once; in each repeat a few other transcripts form the initial labelled pool and the
    rest of their segments the unlabelled pool. Each round the model is refitted on the labelled
    pool and scored on the test set, then the "reviewer" answers ``batch`` segments of the unlabelled
    pool from their gold labels: the ones the review queue would put first (highest
    :func:`pipeline.code.review_priority`) or a random draw. One row per strategy, repeat and round.
    """
    from pipeline.code import ReviewConfig, review_priority
    from pipeline.train import f1_table

    transcripts = np.array(sorted(set(groups)))
    rng = np.random.default_rng(config.seed)
    n_test = max(1, round(config.test_share * len(transcripts)))
    if len(transcripts) - n_test < config.initial_transcripts + 1:
        raise InputError(
            f"simulate needs more transcripts: {len(transcripts)} in the gold set, {n_test} held out for testing, "
            f"{config.initial_transcripts} for the initial pool and at least one to review"
        )
    test_sources = set(rng.choice(transcripts, n_test, replace=False))
    test = np.isin(groups, list(test_sources))
    pool_sources = np.array([t for t in transcripts if t not in test_sources])
    review_config = ReviewConfig()
    records = []
    for repeat in range(config.repeats):
        rng = np.random.default_rng(config.seed + 1 + repeat)
        initial = set(rng.choice(pool_sources, config.initial_transcripts, replace=False))
        start_labelled = np.flatnonzero(np.isin(groups, list(initial)))
        for strategy in ("uncertainty", "random"):
            draw = np.random.default_rng(config.seed + 1000 + repeat)
            labelled = set(start_labelled.tolist())
            unlabelled = np.flatnonzero(~test & ~np.isin(groups, list(initial)))
            for round_ in range(config.rounds + 1):
                rows = np.array(sorted(labelled))
                model = make_model().fit(X[rows], Y[rows], groups[rows])
                predicted = (model.predict_proba(X[test]) >= model.thresholds_).astype(np.int8)
                scores = f1_table(Y[test], predicted, impact_ids)
                records.append(
                    {
                        "strategy": strategy,
                        "repeat": repeat,
                        "round": round_,
                        "reviewed": len(rows) - len(start_labelled),
                        "labelled": len(rows),
                        "macro_f1": scores["macro_f1"],
                        "micro_f1": scores["micro_f1"],
                    }
                )
                if round_ == config.rounds or not len(unlabelled):
                    break
                take = min(config.batch, len(unlabelled))
                if strategy == "uncertainty":
                    proba = model.predict_proba(X[unlabelled])
                    priority, _, _ = review_priority(proba, model.thresholds_, Y[rows].sum(axis=0), review_config)
                    chosen = unlabelled[np.argsort(-priority, kind="stable")[:take]]
                else:
                    chosen = draw.choice(unlabelled, take, replace=False)
                labelled.update(chosen.tolist())
                unlabelled = np.setdiff1d(unlabelled, chosen)
    return pd.DataFrame.from_records(records)


def simulation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean (and standard deviation over repeats) of macro-F1 per round, one column pair per strategy."""
    summary = results.groupby(["round", "strategy"]).agg(
        reviewed=("reviewed", "mean"), mean=("macro_f1", "mean"), sd=("macro_f1", "std")
    )
    table = summary.unstack("strategy")
    out = pd.DataFrame({"round": table.index, "reviewed": table[("reviewed", "uncertainty")].round().astype(int)})
    for strategy in ("uncertainty", "random"):
        out[f"{strategy}_macro_f1"] = table[("mean", strategy)].round(4).to_numpy()
        out[f"{strategy}_sd"] = table[("sd", strategy)].fillna(0).round(4).to_numpy()
    return out.reset_index(drop=True)


def plot_simulation(table: pd.DataFrame, out: Path, title: str) -> Path:
    """Macro-F1 against reviewed segments for both queues, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.io import atomic_path

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for strategy, colour in (("uncertainty", "#1f6f8b"), ("random", "#c05a28")):
        mean, sd = table[f"{strategy}_macro_f1"], table[f"{strategy}_sd"]
        axes.plot(table.reviewed, mean, marker="o", color=colour, label=f"{strategy} queue")
        axes.fill_between(table.reviewed, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)
    axes.set_xlabel("segments reviewed")
    axes.set_ylabel("macro-F1 on held-out transcripts")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return out


def run_simulation(
    gold_dirs: list[Path],
    out: Path,
    params: dict,
    config: SimulationConfig,
    encoder: str | None = None,
    codebook_path: str | Path | None = None,
    coders: list[str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """``imri review simulate``: load the gold set, embed it, replay the loop, write the results.

    Writes ``simulation.csv`` (the table returned: mean and sd of macro-F1 per round and queue),
    ``simulation_rounds.csv`` (every repeat) and ``simulation.png`` into ``out``.
    """
    from pipeline.classify import CalibratedModel, ClassifierConfig
    from pipeline.io import write_table
    from pipeline.labels import LabelConfig
    from pipeline.model import model_features
    from pipeline.segment import SegmentConfig
    from pipeline.train import gold_codebook, load_gold

    codebook = gold_codebook(gold_dirs[0], codebook_path)
    train = dict(params.get("train") or {})
    encoder_id = encoder or train.get("encoder") or (params.get("embed") or {}).get("encoder", "use-m3")
    coders = coders or train.get("coders") or ["A"]
    classifier = ClassifierConfig.from_dict({k: v for k, v in train.items() if k not in ("encoder", "coders")})
    segment_config = SegmentConfig.from_dict(params.get("segment"))
    gold = load_gold(
        gold_dirs, codebook, segment_config, LabelConfig.from_dict(params.get("labels")), coders, progress=progress
    )
    X = model_features(gold.segments, encoder_id, classifier.context_weight, classifier.question_weight, progress)
    targets = gold.targets
    results = simulate(
        X[targets],
        gold.labels[targets],
        gold.segments.source.to_numpy()[targets],
        codebook.impact_ids,
        lambda: CalibratedModel(classifier.make_scorer, classifier.cv_folds),
        config,
    )
    table = simulation_table(results)
    out = Path(out)
    write_table(table, out / "simulation.csv")
    write_table(results, out / "simulation_rounds.csv")
    n_test = max(1, round(config.test_share * len(gold.texts)))
    title = (
        f"{encoder_id}, {len(gold.texts) - n_test} pool / {n_test} test transcripts, "
        f"{config.batch} reviews per round, {config.repeats} repeat{'s' if config.repeats > 1 else ''}"
    )
    plot_simulation(table, out / "simulation.png", title)
    return table
