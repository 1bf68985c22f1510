"""Human review of low-confidence segments: decisions kept safely in ``RUN_DIR/review.db`` and fed back into training.

``review.db`` is SQLite in WAL mode with ``synchronous=FULL``. Its one table, ``decisions``, is the
append-only audit trail: every action of a reviewer on a segment is one row, written in its own
transaction and committed before the app answers, so killing the server at any moment loses no
acknowledged decision and leaves no half-written one. Triggers refuse ``UPDATE`` and ``DELETE``.

Columns: ``id`` (order of the actions), ``segment_id``, ``source``, ``start``, ``end``, ``action``
(``accept`` | ``reject`` | ``change`` | ``skip`` | ``memo`` | ``undo``), ``codes_before`` (the model's
codes, ``;``-joined), ``codes_after`` (the reviewer's codes, ``;``-joined, empty for "no impact"; NULL
for ``skip``, ``memo`` and ``undo``), ``memo``, ``reviewer``, ``model_version`` (``name-version`` of
the model that coded the run), ``decided_at`` (UTC, ISO 8601), ``run_id`` (:func:`run_id` of the run
folder the action was taken in), ``transcript_sha256`` (:func:`transcript_fingerprints`: the
transcript's segmentation and text when the action was taken) and ``undoes`` (for ``undo``: the id
of the action it takes back). Rows written before schema version 2 have NULL in the last three.

An ``undo`` row takes back one earlier action of the same reviewer; nothing is deleted. A reviewer's
*decision* on a segment is their latest accept (the model's codes), reject (no impact) or change
(the codes the reviewer ticked) that has not been undone; skips and memos are history only. Two
reviewers of one run each have their own decision on a segment. A consensus of two reviewers is a
decision of reviewer ``consensus:<who made it>`` (:data:`CONSENSUS`); it never counts as a reviewer in
agreement figures, and it comes first in the final coding (:func:`final_codings`).

Decisions belong to a run: ``imri code`` into a folder that already holds ``review.db`` may code
other transcripts, or the same ones cut differently. A decision *applies* to the current run only
when the run still has its segment (same ``segment_id``) in a transcript with the same fingerprint;
the others are set aside (kept in the audit trail, left out of the app's queue, of exports and of
training). ``review.db`` holds no segment text (the run folder has it) and nothing here logs any.

Training with reviews (``imri train --include-reviews RUN_DIR``, see :func:`merge_reviews`): every
reviewed segment becomes a training target labelled exactly by its decision, "no impact" included,
whoever the chosen gold coders are, and replaces any gold segment it overlaps. Of the transcripts a
run coded, only the reviewed segments are used: the rest carries the model's codes, not a human's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS
from pipeline.model import REVIEW_COLUMNS, read_run_segments, run_texts

REVIEW_DB = "review.db"
ACTIONS = ("accept", "reject", "change", "skip", "memo", "undo")
DECIDING = ("accept", "reject", "change")
SCHEMA_VERSION = 2
MAX_MEMO = 10_000
CONSENSUS = "consensus:"  # reviewer name prefix of a consensus decision: "consensus:<who made it>"
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
    "run_id",
    "transcript_sha256",
    "undoes",
]
_V1_COLUMNS = HISTORY_COLUMNS[:12]

_TABLE = f"""
CREATE TABLE decisions (
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
    run_id TEXT,
    transcript_sha256 TEXT,
    undoes INTEGER REFERENCES decisions (id),
    CHECK ((action IN ('skip', 'memo', 'undo')) = (codes_after IS NULL)),
    CHECK ((action = 'undo') = (undoes IS NOT NULL))
);
CREATE INDEX decisions_by_segment ON decisions (segment_id, id);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
PRAGMA user_version = {SCHEMA_VERSION};
"""

# version 1 -> 2, in one transaction: the same rows and ids in a table that also knows undo and the run
_MIGRATE_V1 = f"""
ALTER TABLE decisions RENAME TO decisions_v1;
DROP TRIGGER IF EXISTS decisions_no_update;
DROP TRIGGER IF EXISTS decisions_no_delete;
DROP INDEX IF EXISTS decisions_by_segment;
{_TABLE}
INSERT INTO decisions ({", ".join(f'"{c}"' for c in _V1_COLUMNS)})
SELECT {", ".join(f'"{c}"' for c in _V1_COLUMNS)} FROM decisions_v1 ORDER BY id;
DROP TABLE decisions_v1;
"""


def split_codes(value: object) -> tuple[str, ...]:
    """``"a;b"`` -> ``("a", "b")``; empty, NaN and None -> ``()``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    return tuple(code for code in str(value).split(";") if code)


def effective(history: pd.DataFrame) -> pd.DataFrame:
    """The actions that still count: ``undo`` rows and the actions they took back left out."""
    if history.empty:
        return history
    undone = set(history.undoes.dropna().astype("int64"))
    return history[(history.action != "undo") & ~history.id.isin(undone)]


def set_aside_count(history: pd.DataFrame) -> int:
    """How many decisions ``history`` holds, counting one per segment, reviewer and transcript version.

    For actions that do not apply to the current run (:func:`applies`): the same segment decided in
    two earlier versions of its transcript counts twice.
    """
    kept = effective(history)
    if kept.empty:
        return 0
    decided = kept[kept.action.isin(DECIDING)]
    return len(
        decided.assign(version=decided.transcript_sha256.fillna("")).drop_duplicates(
            ["segment_id", "reviewer", "version"]
        )
    )


def is_consensus(reviewer: object) -> bool:
    """Whether a ``reviewer`` of ``review.db`` names a consensus decision (``consensus:<who made it>``)."""
    return str(reviewer).startswith(CONSENSUS)


def reviewers_only(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions of reviewers, consensus decisions left out."""
    return decisions[~decisions.reviewer.map(is_consensus)] if len(decisions) else decisions


def latest_decisions(history: pd.DataFrame) -> pd.DataFrame:
    """Each reviewer's decision on each segment (see the module docstring), in the order they were made."""
    kept = effective(history)
    if kept.empty:
        return kept
    decided = kept[kept.action.isin(DECIDING)]
    return decided.drop_duplicates(["segment_id", "reviewer"], keep="last").sort_values("id")


# --- the store -----------------------------------------------------------------------------------


class ReviewStore:
    """``review.db``: the append-only history of review actions (see the module docstring)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError("no review.db here: review the run first with `imri review serve`", self.path.parent)
        try:
            with self.connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    version = self._upgrade(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open the review database ({exc})", self.path) from None
        if version != SCHEMA_VERSION:
            raise InputError(f"not a review database of this version (schema {version})", self.path)

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> int:
        """Create the table in an empty database, or bring a version 1 one to version 2; the version found."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        statements = None
        if "decisions" not in tables and not tables - {"sqlite_sequence"} and version == 0:
            statements = _TABLE
        elif "decisions" in tables and version == 1:
            statements = _MIGRATE_V1
        elif "decisions" not in tables:
            return -1
        for statement in (statements or "").split(";\n"):
            if statement.strip():
                conn.execute(statement)
        return conn.execute("PRAGMA user_version").fetchone()[0]

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
        run_id: str | None = None,
        transcript_sha256: str | None = None,
    ) -> int:
        """Append one action (not ``undo``: see :meth:`undo`) in its own transaction; its id once committed."""
        if action not in ACTIONS or action == "undo":
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
            _now(),
            run_id,
            transcript_sha256,
            None,
        )
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(_INSERT, row)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(cursor.lastrowid)

    def undo(
        self, reviewer: str, keep: Callable[[dict], bool] | None = None, run_id: str | None = None
    ) -> pd.Series | None:
        """Take back ``reviewer``'s latest action still in force (among those ``keep(row)`` accepts).

        Appends an ``undo`` row naming it, in one transaction with the look-up (two tabs undoing at once
        take back two actions, never one twice). Returns the action taken back, or None when none is left.
        """
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "SELECT * FROM decisions WHERE reviewer = ? AND action <> 'undo' AND id NOT IN "
                    "(SELECT undoes FROM decisions WHERE undoes IS NOT NULL) ORDER BY id DESC",
                    (reviewer.strip(),),
                )
                names = [d[0] for d in cursor.description]
                rows = (dict(zip(names, r, strict=True)) for r in cursor)
                found = next((r for r in rows if keep is None or keep(r)), None)
                if found is None:
                    conn.execute("ROLLBACK")
                    return None
                row = (
                    found["segment_id"],
                    found["source"],
                    found["start"],
                    found["end"],
                    "undo",
                    found["codes_before"],
                    None,
                    "",
                    reviewer.strip(),
                    found["model_version"],
                    _now(),
                    run_id,
                    found["transcript_sha256"],
                    found["id"],
                )
                conn.execute(_INSERT, row)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return pd.Series(found)

    def _query(self, sql: str) -> pd.DataFrame:
        with self.connect() as conn:
            frame = pd.read_sql_query(sql, conn)
        frame = frame.astype({"id": "int64", "start": "int64", "end": "int64", "undoes": "Int64"})
        return frame.reindex(columns=HISTORY_COLUMNS)

    def history(self) -> pd.DataFrame:
        """Every action, oldest first (columns :data:`HISTORY_COLUMNS`), undone ones and undos included."""
        return self._query("SELECT * FROM decisions ORDER BY id")

    def decisions(self) -> pd.DataFrame:
        """Each reviewer's latest decision on each segment (:func:`latest_decisions`), whatever the run."""
        return latest_decisions(self.history())

    def integrity(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        with self.connect() as conn:
            return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))


_INSERT = (
    'INSERT INTO decisions (segment_id, source, start, "end", action, codes_before, codes_after, memo, reviewer, '
    "model_version, decided_at, run_id, transcript_sha256, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --- which run a decision belongs to -----------------------------------------------------------------


def compute_run_id(folder: str | Path) -> str:
    """A short content hash of a run folder's segment table: the same for the same input and model."""
    folder = Path(folder)
    table = folder / "segments.csv" if (folder / "segments.csv").is_file() else folder / "segments.parquet"
    digest = hashlib.sha256()
    with table.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def transcript_fingerprints(segments: pd.DataFrame) -> dict[str, str]:
    """Per transcript, a hash of its segments (offsets and text): equal when it was cut and read the same."""
    out = {}
    for source, rows in segments.sort_values(["source", "start"]).groupby("source", sort=True):
        digest = hashlib.sha256()
        for start, end, text in zip(rows.start, rows.end, rows.text.astype(str), strict=True):
            digest.update(f"{int(start)}\t{int(end)}\t{text}\n".encode("utf-8", "surrogatepass"))
        out[str(source)] = digest.hexdigest()
    return out


def applies(history: pd.DataFrame, segments: pd.DataFrame, fingerprints: dict[str, str]) -> pd.Series:
    """Which actions apply to this run: their segment is in it, in a transcript with the same fingerprint.

    ``segments`` is indexed by segment id. Actions written before schema version 2 carry no fingerprint:
    they apply when the run still has their segment.
    """
    if history.empty:
        return pd.Series([], dtype=bool, index=history.index)
    sources = segments.source.reindex(history.segment_id).to_numpy()
    present = pd.notna(sources) & (sources == history.source.to_numpy())
    stored = history.transcript_sha256
    same = stored.isna().to_numpy() | (stored.to_numpy() == history.source.map(fingerprints).to_numpy())
    return pd.Series(present & same, index=history.index)


# --- the run being reviewed ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    """An impact's cut-off as the review app knows it: between ``low`` and ``high`` (equal when known).

    ``kind``: ``exact`` (the run lists it), ``estimated`` (one candidate), ``range`` (several) or
    ``above`` (no segment carries the impact: the cut-off lies above ``low``).
    """

    low: float
    high: float
    kind: str

    def text(self, number: Callable[[float], str]) -> str:
        """How the page writes it, numbers formatted by ``number``."""
        if self.kind == "exact":
            return number(self.low)
        if self.kind == "estimated":
            return f"≈ {number(self.low)}"
        if self.kind == "range":
            return f"{number(self.low)}–{number(self.high)}"
        return f"> {number(self.low)}"


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
        segments = read_run_segments(folder)
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

    @cached_property
    def run_id(self) -> str:
        """:func:`compute_run_id` of the folder: stored with every action taken in this run."""
        return compute_run_id(self.folder)

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        """:func:`transcript_fingerprints` of the run's transcripts."""
        return transcript_fingerprints(self.segments.reset_index(drop=True))

    @cached_property
    def thresholds(self) -> dict[str, Cutoff]:
        """Per impact, the model's cut-off (:class:`Cutoff`): what a probability must reach to be suggested.

        A run whose ``model.json`` lists ``thresholds`` (a mapping, or a list in codebook order) gives them
        exactly. Otherwise they are read off the run itself: a participant segment carries an impact
        exactly when its probability reaches the cut-off, so the cut-off lies above the highest
        probability without the impact and at or below the lowest one with it; trained models take
        their cut-offs from :data:`pipeline.model.classify.THRESHOLD_GRID`, so the grid values in that range
        are the candidates (one: ``estimated``; several: ``range``). An impact that no segment carries
        has only a lower bound (``above``).
        """
        ids = self.codebook.impact_ids
        given = self.card.get("thresholds")
        if isinstance(given, dict) and set(given) >= set(ids):
            return {i: Cutoff(float(given[i]), float(given[i]), "exact") for i in ids}
        if isinstance(given, list) and len(given) == len(ids):
            return {i: Cutoff(float(t), float(t), "exact") for i, t in zip(ids, given, strict=True)}
        from pipeline.model import THRESHOLD_GRID

        rows = self.segments[self.segments.role == "participant"]
        out = {}
        for impact_id in ids:
            p = rows[f"p:{impact_id}"].astype(float).fillna(0.0).to_numpy()
            has = rows.codes.map(lambda codes, i=impact_id: i in split_codes(codes)).to_numpy(dtype=bool)
            low = float(p[~has].max()) if (~has).any() else 0.0
            if not has.any():
                out[impact_id] = Cutoff(low, 1.0, "above")
                continue
            high = float(p[has].min())
            grid = [float(t) for t in THRESHOLD_GRID if low < t <= high] or [high]
            out[impact_id] = Cutoff(grid[0], grid[-1], "estimated" if len(grid) == 1 else "range")
        return out

    def suggested(self, segment_id: str) -> tuple[str, ...]:
        """The model's codes for the segment that reach their cut-off: what the review page ticks first.

        ``codes`` in ``segments.csv`` are exactly these; an impact whose probability lies below a known
        cut-off is never ticked, whatever the table says.
        """
        row = self.segment(segment_id)
        return tuple(
            i
            for i in self.model_codes(segment_id)
            if self.thresholds[i].kind != "exact" or float(np.nan_to_num(row[f"p:{i}"])) >= self.thresholds[i].low
        )

    @cached_property
    def transcript_language(self) -> dict[str, str]:
        """Each transcript's language: its ``transcript_language`` column, else most of its segments'."""
        out = {}
        for source, rows in self.segments.groupby("source", sort=True):
            declared = rows.get("transcript_language")
            values = declared.dropna().astype(str) if declared is not None else pd.Series([], dtype=str)
            values = values[values != ""]
            if values.empty and "language" in rows:
                values = rows.language[rows.language != ""]
            out[str(source)] = str(values.mode().iloc[0]) if len(values) else ""
        return out

    def applies_to(self, action: dict) -> bool:
        """Whether one stored action (a row of ``review.db`` as a mapping) applies to this run."""
        segment_id, stored = action["segment_id"], action.get("transcript_sha256")
        return (
            segment_id in self.segments.index
            and self.segments.at[segment_id, "source"] == action["source"]
            and (stored is None or stored == self.fingerprints.get(action["source"]))
        )

    def applying(self, history: pd.DataFrame) -> pd.DataFrame:
        """The actions of ``history`` that apply to this run (:func:`applies`)."""
        return history[applies(history, self.segments, self.fingerprints)] if len(history) else history

    def transcript(self, source: str) -> list[dict]:
        """The turns of one transcript in order: ``turn``, ``speaker``, ``role`` and their ``segments`` rows."""
        rows = self.segments[self.segments.source == source]
        return [
            {
                "turn": int(turn),
                "speaker": str(group.speaker.iloc[0]) if "speaker" in group else "",
                "role": str(group.role.iloc[0]),
                "segments": group,
            }
            for turn, group in rows.groupby("turn", sort=True)
        ]

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


# --- queue, status, progress, agreement ------------------------------------------------------------

STATUSES = ("queued", "skipped", "reviewed", "auto_accepted")  # a participant segment is in exactly one


def pending(run: ReviewRun, history: pd.DataFrame) -> list[str]:
    """Queued segments without a decision, in queue order; skipped ones go after the others.

    ``history`` holds the actions that count for the reviewer (see :meth:`ReviewRun.applying`);
    undone actions are left out here.
    """
    kept = effective(history)
    decided = set(kept[kept.action.isin(DECIDING)].segment_id) if len(kept) else set()
    skipped = set(kept[kept.action == "skip"].segment_id) if len(kept) else set()
    open_ = [s for s in run.queue if s not in decided]
    return [s for s in open_ if s not in skipped] + [s for s in open_ if s in skipped]


def statuses(run: ReviewRun, history: pd.DataFrame) -> pd.Series:
    """Each participant segment's review status (indexed by segment id; interviewer segments left out).

    ``reviewed``: it has a decision; ``skipped``: skipped and not decided since; ``queued``: in the
    review queue, waiting; ``auto_accepted``: outside the queue and not reviewed, so the model's codes
    stand as they are.
    """
    kept = effective(history)
    decided = set(kept[kept.action.isin(DECIDING)].segment_id) if len(kept) else set()
    skipped = set(kept[kept.action == "skip"].segment_id) if len(kept) else set()
    queued = set(run.queue)
    ids = run.segments.segment_id[run.segments.role == "participant"]
    return pd.Series(
        [
            "reviewed" if s in decided else "skipped" if s in skipped else "queued" if s in queued else "auto_accepted"
            for s in ids
        ],
        index=ids.to_numpy(),
        dtype=object,
    )


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
    decisions = latest_decisions(history).drop_duplicates("segment_id", keep="last")
    queued = set(run.queue)
    kept = effective(history)
    skipped = set(kept[kept.action == "skip"].segment_id) if len(kept) else set()
    return {
        "queued": len(run.queue),
        "reviewed": int(decisions.segment_id.isin(queued).sum()) if len(decisions) else 0,
        "skipped": sum(1 for s in pending(run, history) if s in skipped),
        "outside_queue": int((~decisions.segment_id.isin(queued)).sum()) if len(decisions) else 0,
        "actions": len(history),
        "agreement": agreement(decisions),
    }


def _kappas(values: np.ndarray, coders: list[str], ids: list[str], clusters: list[str]) -> dict:
    """Cohen's kappa of two coders per impact, their mean over impacts and pooled (agreement.py, no bootstrap)."""
    from pipeline.agreement import binary_agreement

    result = binary_agreement(values, coders, ids, clusters=clusters, n_boot=0, unit="segment")

    def number(value: float) -> float | None:
        return None if value is None or np.isnan(value) else float(value)

    return {
        "per_impact": {i: number(result.per_code[i]["cohen_kappa"]) for i in ids},
        "mean": number(result.overall["cohen_kappa"]),
        "pooled": number(result.pooled["cohen_kappa"]),
        "percent": number(result.pooled["percent_agreement"]),
    }


def reviewer_agreement(run: ReviewRun, decisions: pd.DataFrame) -> list[dict]:
    """For each pair of reviewers who decided the same segments: their agreement and the model's with each.

    ``decisions`` are :func:`latest_decisions` (one per segment and reviewer). On the segments both
    reviewers decided, every impact is a present/absent rating of each segment; Cohen's kappa
    (:func:`pipeline.agreement.coefficients.binary_agreement`) per impact, its mean over the impacts where it is
    defined, and pooled over every (segment, impact) pair, for reviewer vs reviewer and for the run's
    model (its codes in ``segments.csv``) vs each reviewer. Undefined kappas (an impact nobody used on
    these segments) are ``None``.
    """
    from itertools import combinations

    ids = run.codebook.impact_ids
    column = {code: j for j, code in enumerate(ids)}
    decisions = reviewers_only(decisions)
    by_reviewer = {name: rows.set_index("segment_id") for name, rows in decisions.groupby("reviewer", sort=True)}
    out = []
    for first, second in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[first].index) & set(by_reviewer[second].index))
        if not shared:
            continue
        values = np.zeros((3, len(shared), len(ids)), dtype=np.int8)
        for u, segment_id in enumerate(shared):
            for k, codes in enumerate(
                (
                    by_reviewer[first].at[segment_id, "codes_after"],
                    by_reviewer[second].at[segment_id, "codes_after"],
                    run.segment(segment_id)["codes"],
                )
            ):
                for code in split_codes(codes):
                    if code in column:
                        values[k, u, column[code]] = 1
        clusters = [str(run.segment(s).source) for s in shared]
        out.append(
            {
                "reviewers": (first, second),
                "segments": len(shared),
                "transcripts": len(set(clusters)),
                "between": _kappas(values[[0, 1]], [first, second], ids, clusters),
                "model_first": _kappas(values[[2, 0]], ["model", first], ids, clusters),
                "model_second": _kappas(values[[2, 1]], ["model", second], ids, clusters),
                "used": {i: [int(values[k, :, j].sum()) for k in range(3)] for j, i in enumerate(ids)},
            }
        )
    return out


def disagreements(decisions: pd.DataFrame, first: str, second: str, among: list[str] | None = None) -> list[dict]:
    """The segments two reviewers both decided with different codes (in ``among``'s order when given).

    ``decisions``: :func:`latest_decisions` of every reviewer, consensus decisions included; ``among``:
    the segments to compare (blind review: the queue). Each item: ``segment_id``, both reviewers'
    codes (``first``, ``second``) and the latest consensus decision on the segment (``consensus``: its
    codes, ``by``: who made it, or None while it waits).
    """
    if decisions.empty:
        return []
    mine = {name: rows.set_index("segment_id").codes_after for name, rows in decisions.groupby("reviewer")}
    if first not in mine or second not in mine:
        return []
    agreed = decisions[decisions.reviewer.map(is_consensus)].drop_duplicates("segment_id", keep="last")
    consensus = {r.segment_id: (split_codes(r.codes_after), r.reviewer[len(CONSENSUS) :]) for r in agreed.itertuples()}
    out = []
    for segment_id in mine[first].index if among is None else among:
        if segment_id not in mine[first].index or segment_id not in mine[second].index:
            continue
        a, b = split_codes(mine[first][segment_id]), split_codes(mine[second][segment_id])
        if set(a) == set(b):
            continue
        decided = consensus.get(segment_id)
        out.append(
            {
                "segment_id": segment_id,
                "first": a,
                "second": b,
                "consensus": decided[0] if decided else None,
                "by": decided[1] if decided else None,
            }
        )
    return out


# --- reviewed decisions as codings: export and training ------------------------------------------


def applying_decisions(run_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """The decisions of ``review.db`` that apply to the run in the folder now, and how many were set aside.

    A decision is set aside when its segment is not in the run's segment table, or when its transcript
    was cut or read differently when it was made (see the module docstring). The audit trail keeps it.
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
    ``make_model()`` returns an unfitted :class:`~pipeline.model.classify.CalibratedModel`. Test transcripts
    are held out once; in each repeat a few other transcripts form the initial labelled pool and the
    rest of their segments the unlabelled pool. Each round the model is refitted on the labelled
    pool and scored on the test set, then the "reviewer" answers ``batch`` segments of the unlabelled
    pool from their gold labels: the ones the review queue would put first (highest
    :func:`pipeline.coding.code.review_priority`) or a random draw. One row per strategy, repeat and round.
    """
    from pipeline.coding import ReviewConfig, review_priority
    from pipeline.model import f1_table

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
    from pipeline.ingest import SegmentConfig
    from pipeline.io import write_table
    from pipeline.model import CalibratedModel, ClassifierConfig, LabelConfig, gold_codebook, load_gold, model_features
    from pipeline.params import label_coders

    codebook = gold_codebook(gold_dirs[0], codebook_path)
    train = dict(params.get("train") or {})
    encoder_id = encoder or train.get("encoder") or (params.get("embed") or {}).get("encoder", "use-m3")
    coders = label_coders(params, coders)
    classifier = ClassifierConfig.from_dict(ClassifierConfig.settings(params))
    segment_config = SegmentConfig.from_dict(params.get("segment"))
    gold = load_gold(
        gold_dirs, codebook, segment_config, LabelConfig.from_dict(params.get("labels")), coders, progress=progress
    )
    X = model_features(gold.segments, encoder_id, classifier, progress, codebook=codebook)
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
