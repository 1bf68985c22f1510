"""Code new transcripts with a trained model (or zero-shot) and build the human review queue.

Writes into the output folder:

* ``segments.csv`` and ``segments.parquet``: the segment table plus ``codes`` (``;``-joined impact
  ids above their thresholds), ``confidence``, ``needs_review`` and one ``p:<impact_id>`` column per
  impact. Interviewer segments stay in the table with empty codes and empty probabilities.
* ``review_queue.csv``: participant segments that need a human, highest priority first.
* ``summary.json``; ``coded.qdpx`` (REFI-QDA project with the suggestions as codings by the model);
  ``model.json`` (a copy of the model's card, so the run says what coded it).

The folder is built beside ``--out`` and swapped in whole (:func:`pipeline.io.build_folder`): a
crash leaves the earlier folder or the new one, never a mix. An earlier run in ``--out`` is replaced,
its ``review.db`` (the reviewers' decisions) kept; any other non-empty folder needs ``--force``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError
from pipeline.params import ParamsSection

#: What ``imri code`` writes into a run folder.
RUN_FILES = frozenset(
    {"segments.csv", "segments.parquet", "review_queue.csv", "summary.json", "model.json", "coded.qdpx", "transcripts"}
)
REVIEW_DB = "review.db"  # = pipeline.review.REVIEW_DB: kept when a run folder is replaced


@dataclass(frozen=True)
class ReviewConfig(ParamsSection):
    """``params.yaml: review``: when a segment goes to a human."""

    section: ClassVar[str] = "review"

    margin: float = 0.3  # a decision whose certainty (0 at the threshold, 1 at 0 or 1) is below this is uncertain
    rare_positives: int = 30  # impacts with fewer training segments than this are "rare"
    close_pair: float = 0.1  # two suggested impacts within this probability of each other


def certainty(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 codes, and the certainty of each decision: 0 at the threshold, 1 at probability 0 or 1."""
    codes = (proba >= thresholds).astype(np.int8)
    above = (proba - thresholds) / np.maximum(1 - thresholds, 1e-9)
    below = (thresholds - proba) / np.maximum(thresholds, 1e-9)
    return codes, np.where(codes == 1, above, below)


def decide(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 codes and a confidence per segment in [0.5, 1]: its least certain decision, rescaled."""
    codes, sure = certainty(proba, thresholds)
    return codes, 0.5 + 0.5 * sure.min(axis=1)


def review_priority(
    proba: np.ndarray, thresholds: np.ndarray, positives: np.ndarray, config: ReviewConfig
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Priority (higher first), the review flag and the reasons, per segment.

    A segment needs review when one of its decisions is uncertain, when it gets a rare impact, or
    when two suggested impacts are close together. Priority grows with the least certain decision,
    with a bonus for rare impacts and close pairs.
    """
    codes, sure = certainty(proba, thresholds)
    least = sure.min(axis=1)
    near = least < config.margin
    rare = ((positives < config.rare_positives)[None, :] & (codes == 1)).any(axis=1)
    suggested = np.where(codes == 1, proba, 0.0)
    top2 = np.sort(suggested, axis=1)[:, -2:]
    close = (top2[:, 0] > 0) & (top2[:, 1] - top2[:, 0] < config.close_pair)
    needs = near | rare | close
    priority = (1 - least) + 0.3 * rare + 0.2 * close
    labels = (("uncertain decision", near), ("rare code", rare), ("two codes close", close))
    reasons = ["; ".join(name for name, flags in labels if flags[i]) for i in range(len(proba))]
    return priority, needs, reasons


def zero_shot_proba(table: pd.DataFrame, codebook: Codebook, encoder_id: str) -> np.ndarray:
    """Uncalibrated zero-shot scores from the codebook alone, standardised per impact.

    The scores come from :class:`pipeline.model.CodebookHead` (a head trained on the codebook's
    own names, definitions and include hints: on the transfer set it ranks impacts better than
    similarity to the nearest definition; see ``transfer.zero_shot`` in reports/metrics.json).
    A segment scores 0.5 for an impact when its score is two standard deviations above that
    impact's mean over the participant segments of this run; these are not probabilities.
    """
    from pipeline.model import CodebookHead, embed_segments

    segments, _ = embed_segments(table, encoder_id)
    sims = CodebookHead(codebook, encoder_id).decision(segments)
    participant = (table.role == "participant").to_numpy()
    reference = sims[participant] if participant.any() else sims
    z = (sims - reference.mean(axis=0)) / np.maximum(reference.std(axis=0), 1e-6)
    return 1.0 / (1.0 + np.exp(-2.0 * (z - 2.0)))


def previous_turn_text(table: pd.DataFrame) -> list[str]:
    """For each segment, the text of the turn before its own (the context a reviewer reads first)."""
    context = []
    for _, frame in table.groupby("source", sort=False):
        turn_text = frame.groupby("turn").text.agg(" ".join)
        previous = {
            turn: turn_text.get(prev, "")
            for turn, prev in zip(turn_text.index, [None, *turn_text.index[:-1]], strict=True)
        }
        context += [previous[t] for t in frame.turn]
    return context


@dataclass
class CodingRun:
    """What ``imri code`` produced (the tables are also written to disk)."""

    segments: pd.DataFrame
    queue: pd.DataFrame
    summary: dict
    # seconds per step (read, segment, embed, classify, write); kept out of the files, which must
    # be the same for the same input and model
    timings: dict[str, float] = field(default_factory=dict)
    replaced: str | None = None  # what the run folder replaced, in words


def code_segments(
    table: pd.DataFrame,
    proba: np.ndarray,
    thresholds: np.ndarray,
    positives: np.ndarray,
    codebook: Codebook,
    review: ReviewConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add codes, confidence, review flags and probabilities to a segment table; build the queue."""
    ids = codebook.impact_ids
    participant = (table.role == "participant").to_numpy()
    codes, confidence = decide(proba, thresholds)
    priority, needs, reasons = review_priority(proba, thresholds, positives, review)
    out = table.reset_index(drop=True).copy()
    id_array = np.asarray(ids)
    out["codes"] = [
        ";".join(id_array[row.astype(bool)]) if p else "" for row, p in zip(codes, participant, strict=True)
    ]
    out["confidence"] = np.where(participant, np.round(confidence, 4), np.nan)
    out["needs_review"] = needs & participant
    probabilities = pd.DataFrame(
        np.round(np.where(participant[:, None], proba, np.nan), 4), columns=[f"p:{i}" for i in ids]
    )
    out = pd.concat([out, probabilities], axis=1)
    order = np.argsort(-proba, axis=1)[:, :3]
    suggestions = [" ; ".join(f"{ids[j]} ({proba[i, j]:.2f})" for j in order[i]) for i in range(len(out))]
    queue = out.loc[
        out.needs_review, ["source", "segment_id", "start", "end", "speaker", "language", "text", "codes", "confidence"]
    ].copy()
    queue.insert(0, "priority", np.round(priority[out.needs_review.to_numpy()], 4))
    rows = np.flatnonzero(out.needs_review.to_numpy())
    queue["reason"] = [reasons[i] for i in rows]
    queue["suggestions"] = [suggestions[i] for i in rows]
    queue["question"] = out.question.iloc[rows].to_numpy()
    queue["context"] = np.asarray(previous_turn_text(out), dtype=object)[rows]
    queue = queue.sort_values(["priority", "segment_id"], ascending=[False, True], kind="mergesort")
    return out, queue.reset_index(drop=True)


def names_language(segments: pd.DataFrame) -> str:
    """The language the run's summary names impacts in: French when most participant segments are French."""
    participant = segments[segments.role == "participant"]
    return "fr" if len(participant) and (participant.language == "fr").mean() > 0.5 else "en"


def summarise(segments: pd.DataFrame, codebook: Codebook, model_name: str) -> dict:
    """``summary.json``: counts of the run, with impacts and categories named as the codebook names them.

    ``codes_per_category`` and ``codes_per_impact`` are lists in codebook order of ``{"id", "name",
    "count"}`` (impacts also give their ``category``); names are in ``names_language``.
    """
    participant = segments[segments.role == "participant"]
    language = names_language(segments)
    applied = [set(codes.split(";")) - {""} for codes in participant.codes.astype(str)]
    per_code = {i: sum(i in codes for codes in applied) for i in codebook.impact_ids}
    per_impact = [
        {"id": impact.id, "name": impact.name[language], "category": impact.category, "count": per_code[impact.id]}
        for impact in codebook.impacts
    ]
    per_category = [
        {
            "id": category.id,
            "name": category.name[language],
            "count": sum(n for i, n in per_code.items() if codebook.category_of(i) == category.id),
        }
        for category in codebook.categories
    ]
    return {
        "model": model_name,
        "transcripts": int(segments.source.nunique()),
        "segments": int(len(segments)),
        "participant_segments": int(len(participant)),
        "coded_segments": int((participant.codes != "").sum()),
        "names_language": language,
        "codes_per_category": per_category,
        "codes_per_impact": per_impact,
        "sent_to_review": int(participant.needs_review.sum()),
        "share_sent_to_review": round(float(participant.needs_review.mean()) if len(participant) else 0.0, 4),
        "languages": {k: int(v) for k, v in participant.language.value_counts().sort_index().items()},
    }


def _is_review_file(name: str) -> bool:
    """``review.db`` and its SQLite journal files: the reviewers' decisions, never deleted by a new run."""
    return name == REVIEW_DB or name.startswith(f"{REVIEW_DB}-")


def _from_earlier_run(name: str) -> bool:
    """What an earlier run left in its folder (staging folders of older versions, the Finder's notes included)."""
    return name in RUN_FILES or _is_review_file(name) or name.startswith(".imri-code-") or name == ".DS_Store"


def _listing(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_run_folder(out: Path, force: bool = False, holds: list[Path] | tuple[Path, ...] = ()) -> str | None:
    """Check ``--out`` before any work; return what writing the run there will replace, in words (or None).

    Refused: a file, a path under a file, a folder that holds an input (``holds``) or the current
    folder, and, without ``force``, a non-empty folder that is not an earlier ``imri code`` run.
    """
    from pipeline.io import check_output_path

    check_output_path(out, "folder")
    where = out.resolve()
    for path in [*holds, Path.cwd()]:
        inside = path.resolve()
        if inside == where or where in inside.parents:
            what = "the current folder" if path == Path.cwd() else str(path)
            raise InputError(f"--out would replace {what}; choose a folder of its own for the run", out)
    if not out.is_dir():
        return None
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return None
    kept = [n for n in names if _is_review_file(n)]
    others = [n for n in names if not _from_earlier_run(n)]
    earlier = "summary.json" in names and bool({"segments.csv", "segments.parquet"} & set(names))
    keeping = f"; its {REVIEW_DB} is kept" if kept else ""
    if earlier and not others:
        return f"replacing the earlier run in {out}{keeping}"
    if not force:
        what = "holds files that imri code did not write" if earlier else "is not empty and is not an imri code run"
        raise InputError(f"{what} ({_listing(others)}); pass --force to replace the folder{keeping}", out)
    return f"replacing {out} and everything in it ({_listing([n for n in names if n not in kept])}){keeping}"


def write_run(
    out_dir: Path,
    segments: pd.DataFrame,
    queue: pd.DataFrame,
    summary: dict,
    card: dict,
    texts: dict[str, str],
    codebook: Codebook,
    gold_codings: pd.DataFrame | None = None,
    built: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Write every output of a run into a staging folder beside ``out_dir``, then swap it in whole.

    ``out_dir`` should have passed :func:`check_run_folder`. The reviewers' ``review.db`` of an earlier
    run there is carried into the new folder; everything else of the old folder goes. Transcripts whose
    text was built from the source (captions, Whisper JSON, .docx) are kept as
    ``transcripts/<source>.txt``: the offsets of ``segments.csv`` refer to that text.
    """
    from pipeline.io import build_folder, write_table
    from pipeline.qdpx import export_qdpx, project_language

    with build_folder(out_dir, keep=_is_review_file) as staging:
        write_table(segments, staging / "segments.csv")
        write_table(segments, staging / "segments.parquet")
        write_table(queue, staging / "review_queue.csv")
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "model.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        coder = f"imri model {card['name']} {card['version']}"
        coded = segments[(segments.role == "participant") & (segments.codes != "")]
        rows = [
            {
                "source": r["source"],
                "start": r["start"],
                "end": r["end"],
                "code": code,
                "coder": coder,
                "description": f"p={r[f'p:{code}']:.3f}",
            }
            for _, r in coded.iterrows()
            for code in r["codes"].split(";")
        ]
        codings = pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder", "description"])
        if gold_codings is not None:
            gold = gold_codings[gold_codings.source.isin(texts)].assign(description="")
            codings = pd.concat([codings, gold[codings.columns]], ignore_index=True)
        by_transcript = segments.drop_duplicates("source")
        language = project_language(
            by_transcript["transcript_language"] if "transcript_language" in segments else segments["language"]
        )
        export_qdpx(
            texts,
            codings,
            staging / "coded.qdpx",
            codebook,
            project_name=f"imri code: {card['name']} {card['version']}",
            language=language,
        )
        if built:
            (staging / "transcripts").mkdir()
            for source in sorted(built):
                (staging / "transcripts" / f"{source}.txt").write_text(texts[source], encoding="utf-8", newline="")


def code_transcripts(
    inputs: list[Path],
    out: Path,
    model_dir: Path | None,
    codebook: Codebook,
    params: dict,
    with_gold: Path | None = None,
    warn=None,
    interviewers: list[str] | tuple[str, ...] = (),
    force: bool = False,
) -> CodingRun:
    """``imri code``: read and segment the inputs, score them (model or zero-shot), write the run folder.

    ``out`` is checked first (:func:`check_run_folder`; ``force`` lets a non-empty folder that is not
    an earlier run be replaced), and every input is read and checked before anything is written.
    ``warn`` receives file warnings.
    """
    from pipeline.ingest import collect_transcripts, load_transcript
    from pipeline.labels import read_codings
    from pipeline.segment import SegmentConfig, segment_table

    holds = [*inputs, *(path for path in (model_dir, with_gold) if path is not None)]
    check_run_folder(out, force, holds)
    review = ReviewConfig.from_dict(params.get("review"))
    if model_dir is not None:
        from pipeline.model import ImpactModel

        impact_model = ImpactModel.load(model_dir)
        impact_model.check_codebook(codebook, model_dir)
        segment_config = SegmentConfig.from_dict(impact_model.card["params"]["segment"])
        # the run's model.json lists the cut-offs, so the review app shows them exactly
        card = {
            **impact_model.card,
            "thresholds": dict(zip(impact_model.impact_ids, map(float, impact_model.thresholds), strict=True)),
        }
    else:
        segment_config = SegmentConfig.from_dict(params.get("segment"))
        encoder_id = (params.get("embed") or {}).get("encoder", "e5-small")
        card = {
            "name": "zero-shot",
            "version": encoder_id,
            "encoder": {"id": encoder_id},
            "codebook": codebook.card(),
            "note": "zero-shot scores come from the codebook alone, standardised; not calibrated probabilities",
            "thresholds": {impact_id: 0.5 for impact_id in codebook.impact_ids},
        }
    gold = read_codings(with_gold, codebook) if with_gold else None
    clock = _Clock()
    transcripts = [load_transcript(p, interviewers=interviewers) for p in collect_transcripts(inputs, warn)]
    for transcript in transcripts:
        for warning in transcript.warnings:
            if warn:
                warn(warning)
    clock.lap("read")
    table = segment_table(transcripts, segment_config, progress=len(transcripts) > 3)
    table = table.sort_values(["source", "start"]).reset_index(drop=True)
    if table.empty:
        raise InputError("the transcripts hold no text to code", out)
    clock.lap("segment")
    if model_dir is not None:
        features = impact_model.features(table, progress=len(table) > 500, codebook=codebook)
        clock.lap("embed")
        proba = impact_model.predict_proba_features(features, table)
        thresholds, positives = impact_model.thresholds, impact_model.arrays["positives"]
    else:
        proba = zero_shot_proba(table, codebook, card["encoder"]["id"])
        clock.lap("embed")
        thresholds, positives = np.full(len(codebook.impacts), 0.5), np.full(len(codebook.impacts), 10**6)
    segments, queue = code_segments(table, proba, thresholds, positives, codebook, review)
    summary = summarise(segments, codebook, f"{card['name']}-{card['version']}")
    clock.lap("classify")
    texts = {t.source: t.text for t in transcripts}
    built = {t.source for t in transcripts if t.built}
    replaced = check_run_folder(out, force, holds)  # again: the folder may have changed while this ran
    write_run(out, segments, queue, summary, card, texts, codebook, gold, built)
    clock.lap("write")
    return CodingRun(segments, queue, summary, clock.laps, replaced)


class _Clock:
    """Seconds between successive laps."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now
