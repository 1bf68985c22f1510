"""The run being reviewed (``ReviewRun``): its segments, queue, cut-offs and codebook, and what came of its review.

Which decisions apply to the run, which segments are still queued, progress and agreement (reviewers with the
model, pairs of reviewers with each other: Cohen's kappa, the disagreements to reconcile), and the decisions as
codings: the final coding (``imri review export``), the reviews' export, and the reviewed codings training reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS
from pipeline.model import REVIEW_COLUMNS, read_run_segments, run_texts
from pipeline.review.store import (
    CONSENSUS,
    DECIDING,
    HISTORY_COLUMNS,
    REVIEW_DB,
    ReviewStore,
    effective,
    is_consensus,
    latest_decisions,
    reviewers_only,
    set_aside_count,
    split_codes,
)


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
    (:func:`pipeline.agreement.binary_agreement`) per impact, its mean over the impacts where it is
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
    """The whole run's coding after review, as passages (:func:`pipeline.coding.passage_codings`).

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
