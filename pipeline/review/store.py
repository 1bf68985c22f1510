"""The decisions store: reviewers' actions kept safely in ``RUN_DIR/review.db``, and fed back into training.

``review.db`` is SQLite in WAL mode with ``synchronous=FULL``. Its one table, ``decisions``, is the
append-only audit trail: every action of a reviewer on a segment is one row, written in its own
transaction and committed before the app answers, so killing the server at any moment loses no
acknowledged decision and leaves no half-written one. Triggers refuse ``UPDATE`` and ``DELETE``.

Columns: ``id`` (order of the actions), ``segment_id``, ``source``, ``start``, ``end``, ``action``
(``accept`` | ``reject`` | ``change`` | ``skip`` | ``memo`` | ``undo``), ``codes_before`` (the model's
codes, ``;``-joined), ``codes_after`` (the reviewer's codes, ``;``-joined, empty for "no impact"; NULL
for ``skip``, ``memo`` and ``undo``), ``memo``, ``reviewer``, ``model_version`` (``name-version`` of
the model that coded the run), ``decided_at`` (UTC, ISO 8601), ``run_id`` (:func:`.run.compute_run_id` of the run
folder the action was taken in), ``transcript_sha256`` (:func:`.run.transcript_fingerprints`: the
transcript's segmentation and text when the action was taken) and ``undoes`` (for ``undo``: the id
of the action it takes back). Rows written before schema version 2 have NULL in the last three.

An ``undo`` row takes back one earlier action of the same reviewer; nothing is deleted. A reviewer's
*decision* on a segment is their latest accept (the model's codes), reject (no impact) or change
(the codes the reviewer ticked) that has not been undone; skips and memos are history only. Two
reviewers of one run each have their own decision on a segment. A consensus of two reviewers is a
decision of reviewer ``consensus:<who made it>`` (:data:`CONSENSUS`); it never counts as a reviewer in
agreement figures, and it comes first in the final coding (:func:`.run.final_codings`).

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
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError

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
