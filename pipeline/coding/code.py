"""Code new transcripts with a trained model (or zero-shot) and build the human review queue.

Writes into the output folder:

* ``segments.csv`` and ``segments.parquet``: the segment table plus ``codes`` (``;``-joined impact
  ids above their thresholds), ``code_names`` (their names in the transcript's language, ``; ``-joined),
  ``confidence``, ``needs_review`` and one ``p:<impact_id>`` column per impact. Interviewer segments stay
  in the table with empty codes and empty probabilities.
* ``passages.csv``: one row per participant turn (the passage a coder reads): its span, speaker, the
  codes of its sentences and its three most probable impacts with names and probabilities.
* ``review_queue.csv``: the segments of the passages (participant turns) whose review is expected to change
  the most, up to ``review.budget`` of the participant text (:func:`review_budget`), highest value first;
  every other participant segment keeps the model's codes, unreviewed, with its confidence. Its top-3
  ``suggestions`` read ``Name [impact_id] (probability)``.
* ``summary.json`` (counts for the run and per transcript, what the queue holds and what is left unreviewed,
  and each impact's most probable coded passages, with their text); ``coded.qdpx`` (REFI-QDA project with the
  suggestions as codings by the model: adjacent
  sentences of one turn with the same code are one coding, a passage);
  ``model.json`` (a copy of the model's card, so the run says what coded it).

The folder is built beside ``--out`` and swapped in whole (:func:`pipeline.io.build_folder`): a
crash leaves the earlier folder or the new one, never a mix. An earlier run in ``--out`` is replaced,
its ``review.db`` (the reviewers' decisions) kept; any other non-empty folder needs ``--force``.

How a run goes (:func:`code_transcripts`): a thread reads every transcript, then segments them one by
one in source order while the main thread embeds and classifies what is ready, so segmentation and
language detection stay off the encoder's path (ONNX Runtime and the tokenizer compute without the
GIL). Segments are embedded in windows of whole transcripts (:data:`EMBED_WINDOW` segments), batches
sorted by length inside each window; token ids and features live one window at a time. What the run
keeps to the end is what it writes: the segment table, the scores and each text's embedding (a few KB
a segment), not the encoder's working memory.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError
from pipeline.params import ParamsSection

if TYPE_CHECKING:
    from pipeline.ingest import SegmentConfig, Transcript

#: What ``imri code`` writes into a run folder.
RUN_FILES = frozenset(
    {
        "segments.csv",
        "segments.parquet",
        "passages.csv",
        "review_queue.csv",
        "summary.json",
        "model.json",
        "coded.qdpx",
        "transcripts",
        "roles.csv",
    }
)
REVIEW_DB = "review.db"  # = pipeline.review.store.REVIEW_DB: kept when a run folder is replaced
#: segments (whole transcripts) embedded in one call, batches sorted by length within it. int8, 2 threads, on
#: segments of the benchmark corpus: one call per transcript 196 segments/s, one call over 6,000 segments 271,
#: windows of 1,000 249 (one run each); a window holds a few MB of token ids and features
EMBED_WINDOW = 4096


def window_rows(table: pd.DataFrame) -> int:
    """What a transcript counts towards a window: its participant segments, whose speech is embedded.

    Interviewer turns do not count, so what the interviewer says never moves a window's boundary (an int8
    encoder's vector of a text moves with the other texts of its call).
    """
    return int((table.role != "interviewer").sum())


@dataclass(frozen=True)
class ReviewConfig(ParamsSection):
    """``params.yaml: review``: how much goes to a human (``budget``), and the reasons a queued segment is given."""

    section: ClassVar[str] = "review"

    # the share of participant text (characters) queued for review: the passages whose review is expected to
    # raise kappa the most per character, highest first (:func:`review_budget`); chosen on the transfer set
    # (reports/metrics.json review_effort: the share reaching 90% of the A-vs-B kappa, at most 0.20)
    budget: float = 0.20
    # a turn of more segments is cut into passages of at most this many consecutive segments (as equal as can be),
    # so a long answer (or a file read as one participant's words) is not one passage larger than the budget
    passage_segments: int = 6
    margin: float = 0.3  # a decision whose certainty (0 at the threshold, 1 at 0 or 1) is below this is uncertain
    rare_positives: int = 30  # impacts with fewer training segments than this are "rare"
    close_pair: float = 0.1  # two suggested impacts within this probability of each other

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int | float) or not 0 <= self.budget <= 1:
            raise InputError(f"review budget must be a share of the participant text from 0 to 1, not {self.budget!r}")
        if (
            isinstance(self.passage_segments, bool)
            or not isinstance(self.passage_segments, int)
            or self.passage_segments < 1
        ):
            raise InputError(f"review passage_segments must be a whole number >= 1, not {self.passage_segments!r}")


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


def expected_changes(proba: np.ndarray, thresholds: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per segment, the expected number of its decisions that a reviewer changes (each impact's weighted).

    A decision is the model's 0/1 code for one impact. Read as calibrated, the probability ``p`` says how
    likely the impact is: a code given is wrong with probability ``1 - p``, one not given with ``p``. The
    (``weights``-weighted) sum over impacts is the expected number of codes a reviewer adds or removes.
    """
    coded = proba >= thresholds
    wrong = np.where(coded, 1.0 - proba, proba)
    return (wrong if weights is None else wrong * weights).sum(axis=1)


def kappa_weights(proba: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Per impact, how much one corrected decision moves its Cohen's kappa, relative to the mean impact.

    For a code of prevalence ``π`` over ``n`` units, correcting one decision moves agreement by ``1/n`` and
    kappa by about ``1 / (n · 2π(1 - π))`` (chance agreement ``1 - 2π(1 - π)`` when both codings have that
    prevalence), so a rare impact's errors weigh more in the mean kappa over impacts. ``π`` is the impact's
    mean probability over the segments, kept within ``[floor, 1 - floor]``. The weights average 1.
    """
    if not len(proba):
        return np.ones(proba.shape[1])
    prevalence = np.clip(proba.mean(axis=0), floor, 1.0 - floor)
    weights = 1.0 / (prevalence * (1.0 - prevalence))
    return weights / weights.mean()


@dataclass(frozen=True)
class ReviewPlan:
    """Which passages review reads, and in what order (:func:`review_budget`).

    ``passage`` gives each segment's passage (index into the per-passage arrays); ``value`` is each
    passage's expected (kappa-weighted) decisions changed per character, ``characters`` its length; ``order``
    ranks the passages by value, highest first; ``queued`` marks the passages within the budget.
    """

    passage: np.ndarray
    value: np.ndarray
    characters: np.ndarray
    order: np.ndarray
    queued: np.ndarray

    @property
    def share(self) -> float:
        """The queued share of the text (characters)."""
        total = self.characters.sum()
        return float(self.characters[self.queued].sum() / total) if total else 0.0


def passage_keys(table: pd.DataFrame, most: int) -> np.ndarray:
    """A key per row of a participant segment table (``source``, ``turn``, in text order within a turn): the
    passage review reads it in. A turn of ``n`` segments is one passage, or ``ceil(n / most)`` passages of
    consecutive segments as equal in count as can be."""
    if not len(table):
        return np.zeros(0, dtype=object)
    turn = table.source.astype(str) + "\x1f" + table.turn.astype(str)
    position = turn.groupby(turn, sort=False).cumcount().to_numpy()
    size = turn.map(turn.value_counts()).to_numpy()
    parts = -(-size // most)
    piece = position * parts // size
    return (turn + "\x1f" + pd.Series(piece, index=turn.index).astype(str)).to_numpy()


def passage_values(
    passages: np.ndarray, lengths: np.ndarray, changes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each segment's passage index, and per passage its value and characters.

    ``passages`` holds a key per segment (the same key = the same passage, in first-seen order); a passage's
    value is the mean over its characters of their segment's ``changes`` (the sum over its segments of
    ``length * changes``, over its length): what a reviewer's reading time buys.
    """
    index, _ = pd.factorize(pd.Series(passages, dtype=object), sort=False)
    n = int(index.max()) + 1 if len(index) else 0
    lengths = np.asarray(lengths, dtype=float)
    characters = np.bincount(index, lengths, n)
    weighted = np.bincount(index, lengths * np.asarray(changes, dtype=float), n)
    return index, weighted / np.maximum(characters, 1.0), characters


def within_budget(order: np.ndarray, characters: np.ndarray, budget: float) -> np.ndarray:
    """The passages taken in ``order`` while they fit in ``budget`` (a share of all characters, 0-1).

    A passage that would take the total over the budget is passed over and the next ones are tried
    (a shorter one may still fit), so the queued share is never above the budget.
    """
    if not 0.0 <= budget <= 1.0:
        raise ValueError("the review budget is a share of the participant text, from 0 to 1")
    total = float(characters.sum())
    room = budget * total + 1e-9 * max(total, 1.0)  # all of it at 1.0 despite rounding
    chosen = np.zeros(len(characters), dtype=bool)
    used = 0.0
    for passage in order:
        if used + characters[passage] <= room:
            chosen[passage] = True
            used += characters[passage]
    return chosen


def review_budget(
    passages: np.ndarray, lengths: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, budget: float
) -> ReviewPlan:
    """The review plan of participant segments: passages ranked by the expected gain in mean kappa over
    impacts per character read (:func:`expected_changes` weighted by :func:`kappa_weights`,
    :func:`passage_values`), ties in text order, queued up to ``budget`` of the characters."""
    changes = expected_changes(proba, thresholds, kappa_weights(proba))
    index, value, characters = passage_values(passages, lengths, changes)
    order = np.lexsort((np.arange(len(value)), -value))
    return ReviewPlan(index, value, characters, order, within_budget(order, characters, budget))


def standardise_zero_shot(scores: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Uncalibrated zero-shot scores from the codebook alone, standardised per impact.

    The scores are the codebook prior (:func:`pipeline.model.impact_model.prior_columns`): the similarity of each
    segment's passage embedding to each impact's codebook texts in its language; see
    ``transfer.zero_shot`` in reports/metrics.json for how it ranks on the transfer set. A segment
    scores 0.5 for an impact when its score is two standard deviations above that impact's mean over
    the participant segments of this run; these are not probabilities.
    """
    participant = (table.role == "participant").to_numpy()
    reference = scores[participant] if participant.any() else scores
    z = (scores - reference.mean(axis=0)) / np.maximum(reference.std(axis=0), 1e-6)
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
    transcripts: list = field(default_factory=list)  # every transcript read (skipped ones too), for the CLI


def code_segments(
    table: pd.DataFrame,
    proba: np.ndarray,
    thresholds: np.ndarray,
    positives: np.ndarray,
    codebook: Codebook,
    review: ReviewConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add codes, confidence, review flags and probabilities to a segment table; build the queue.

    The queue (``needs_review``) holds the participant passages (turns) of :func:`review_budget` within
    ``review.budget``, highest value first, each passage's segments in text order; its ``priority`` is the
    passage's value (expected kappa-weighted decisions changed per character), its ``reason`` what else makes
    the segment doubtful (:func:`review_priority`). Every other participant segment keeps the model's codes,
    unreviewed.
    """
    ids = codebook.impact_ids
    participant = (table.role == "participant").to_numpy()
    codes, confidence = decide(proba, thresholds)
    _, _, reasons = review_priority(proba, thresholds, positives, review)
    out = table.reset_index(drop=True).copy()
    needs = np.zeros(len(out), dtype=bool)
    priority = np.zeros(len(out))
    rows = np.flatnonzero(participant)
    if len(rows):
        keys = passage_keys(out.iloc[rows], review.passage_segments)
        lengths = (out.end - out.start).to_numpy()[rows]
        plan = review_budget(keys, lengths, proba[rows], thresholds, review.budget)
        needs[rows] = plan.queued[plan.passage]
        priority[rows] = plan.value[plan.passage]
    id_array = np.asarray(ids)
    out["codes"] = [
        ";".join(id_array[row.astype(bool)]) if p else "" for row, p in zip(codes, participant, strict=True)
    ]
    out.insert(out.columns.get_loc("codes") + 1, "code_names", code_names(out, codebook))
    out["confidence"] = np.where(participant, np.round(confidence, 4), np.nan)
    out["needs_review"] = needs & participant
    probabilities = pd.DataFrame(
        np.round(np.where(participant[:, None], proba, np.nan), 4), columns=[f"p:{i}" for i in ids]
    )
    out = pd.concat([out, probabilities], axis=1)
    order = np.argsort(-proba, axis=1)[:, :3]
    languages = _names_languages(out)
    names = {lang: [impact.name[lang] for impact in codebook.impacts] for lang in set(languages)}
    suggestions = [
        " ; ".join(f"{names[languages[i]][j]} [{ids[j]}] ({proba[i, j]:.2f})" for j in order[i])
        for i in range(len(out))
    ]
    columns = ["source", "segment_id", "start", "end", "speaker", "language", "text", "codes", "code_names"]
    queue = out.loc[out.needs_review, [*columns, "confidence"]].copy()
    queue.insert(0, "priority", np.round(priority[out.needs_review.to_numpy()], 4))
    rows = np.flatnonzero(out.needs_review.to_numpy())
    queue["reason"] = [reasons[i] for i in rows]  # may be empty: the passage as a whole is worth reviewing
    queue["suggestions"] = [suggestions[i] for i in rows]
    queue["question"] = out.question.iloc[rows].to_numpy()
    queue["context"] = np.asarray(previous_turn_text(out), dtype=object)[rows]
    queue["_value"] = priority[rows]  # unrounded: passages of equal rounded value stay whole
    queue = queue.sort_values(["_value", "source", "start"], ascending=[False, True, True], kind="mergesort")
    return out, queue.drop(columns="_value").reset_index(drop=True)


def _names_languages(segments: pd.DataFrame) -> list[str]:
    """The language each segment's impacts are named in: its transcript's (``en`` unless French)."""
    column = "transcript_language" if "transcript_language" in segments else "language"
    return ["fr" if language == "fr" else "en" for language in segments[column]]


def code_names(segments: pd.DataFrame, codebook: Codebook) -> list[str]:
    """``code_names`` of a coded segment table: the names of its ``codes``, ``; ``-joined, in the language of
    the segment's transcript (the ids stay in ``codes``, for programs)."""
    named = {(impact.id, lang): impact.name[lang] for impact in codebook.impacts for lang in ("en", "fr")}
    return [
        "; ".join(named[code, lang] for code in str(codes).split(";") if code)
        for codes, lang in zip(segments.codes, _names_languages(segments), strict=True)
    ]


def passage_table(segments: pd.DataFrame, codebook: Codebook, top: int = 3) -> pd.DataFrame:
    """``passages.csv``: one row per participant turn (the passage a coder reads), with the codes of its
    sentences and its ``top`` impacts, each named in the turn's language, with its probability (the
    highest of its sentences').

    ``segments`` is the coded segment table of :func:`code_segments` (``codes`` and ``p:<id>`` columns).
    """
    ids = codebook.impact_ids
    columns = ["source", "start", "end", "speaker", "role", "language", "segments", "codes", "code_names"]
    for rank in range(1, top + 1):
        columns += [f"top{rank}", f"top{rank}_name", f"top{rank}_p"]
    participant = segments[segments.role == "participant"]
    if participant.empty:
        return pd.DataFrame(columns=columns)
    keys = [participant.source.to_numpy(), participant.turn.to_numpy()]
    coded = participant.codes.astype(str).str.get_dummies(sep=";").reindex(columns=ids, fill_value=0)
    coded_turns = coded.groupby(keys, sort=False).max()
    best = participant[[f"p:{i}" for i in ids]].groupby(keys, sort=False).max()
    language = "transcript_language" if "transcript_language" in participant else "language"
    first = participant.groupby(keys, sort=False).agg(
        start=("start", "min"),
        end=("end", "max"),
        speaker=("speaker", "first"),
        language=(language, "first"),
        segments=("start", "size"),
    )
    order = np.argsort(-best.to_numpy(dtype=float), axis=1, kind="stable")[:, :top]
    rows = []
    for n, ((source, _), turn) in enumerate(first.iterrows()):
        language = "fr" if turn.language == "fr" else "en"
        codes = [i for i, flag in zip(ids, coded_turns.iloc[n].to_numpy(), strict=True) if flag]
        row = {
            "source": source,
            "start": int(turn.start),
            "end": int(turn.end),
            "speaker": turn.speaker,
            "role": "participant",
            "language": language,
            "segments": int(turn.segments),
            "codes": ";".join(codes),
            "code_names": "; ".join(codebook.impact(i).name[language] for i in codes),
        }
        for rank, j in enumerate(order[n], start=1):
            row[f"top{rank}"] = ids[j]
            row[f"top{rank}_name"] = codebook.impacts[j].name[language]
            row[f"top{rank}_p"] = round(float(best.iat[n, j]), 4)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns).sort_values(["source", "start"], kind="mergesort").reset_index(drop=True)


def passage_codings(segments: pd.DataFrame, coder: str) -> pd.DataFrame:
    """The model's codings as passages: adjacent participant sentences of one turn with the same code become
    one coding (``source, start, end, code, coder, description``; the description gives the highest
    probability of its sentences)."""
    rows = []
    participant = segments[(segments.role == "participant")].reset_index(drop=True)
    open_codings: dict[str, dict] = {}
    previous = None
    for index, segment in enumerate(participant.itertuples(index=False)):
        same_turn = previous is not None and (previous.source, previous.turn) == (segment.source, segment.turn)
        codes = set(str(segment.codes).split(";")) - {""}
        for code in list(open_codings):
            if not (same_turn and code in codes):
                rows.append(open_codings.pop(code))
        for code in sorted(codes):
            p = float(participant.at[index, f"p:{code}"])
            if code in open_codings:
                open_codings[code]["end"] = int(segment.end)
                open_codings[code]["p"] = max(open_codings[code]["p"], p)
            else:
                open_codings[code] = {
                    "source": segment.source,
                    "start": int(segment.start),
                    "end": int(segment.end),
                    "code": code,
                    "p": p,
                }
        previous = segment
    rows += open_codings.values()
    codings = pd.DataFrame(rows, columns=["source", "start", "end", "code", "p"])
    codings = codings.sort_values(["source", "start", "code"], kind="mergesort").reset_index(drop=True)
    codings["coder"] = coder
    codings["description"] = [f"p={p:.3f}" for p in codings.p]
    return codings[["source", "start", "end", "code", "coder", "description"]]


def names_language(segments: pd.DataFrame) -> str:
    """The language the run's summary names impacts in: French when most participant segments are French."""
    participant = segments[segments.role == "participant"]
    return "fr" if len(participant) and (participant.language == "fr").mean() > 0.5 else "en"


def review_summary(segments: pd.DataFrame, review: ReviewConfig | None = None) -> dict:
    """``summary.json: review``: what the queue holds and what is left to the model, unreviewed.

    Counts of passages (participant turns) and segments, shares of the participant text (characters), and
    the mean confidence (:func:`decide`) of the unreviewed segments.
    """
    participant = segments[segments.role == "participant"]
    queued = participant.needs_review.astype(bool).to_numpy()
    lengths = (participant.end - participant.start).to_numpy(dtype=float)
    total = float(lengths.sum())
    review = review or ReviewConfig()
    keys = pd.Series(passage_keys(participant, review.passage_segments), dtype=object)
    passages_queued = int(keys[queued].nunique())
    share = round(float(lengths[queued].sum() / total), 4) if total else 0.0
    left = participant[~queued]
    return {
        "budget": review.budget,
        "passages": f"participant turns, cut into passages of at most {review.passage_segments} segments",
        "ranked_by": "expected gain in kappa per character of the passage: the decisions a reviewer is "
        "expected to change (1 - p for a code given, p for one not given), each impact weighted by "
        "1 / (prevalence (1 - prevalence)), averaged over the passage's characters",
        "queued_passages": passages_queued,
        "queued_segments": int(queued.sum()),
        "queued_share_of_participant_text": share,
        "unreviewed_passages": int(keys.nunique()) - passages_queued,
        "unreviewed_segments": int(len(left)),
        "unreviewed_share_of_participant_text": round(1.0 - share, 4) if total else 0.0,
        "unreviewed_mean_confidence": round(float(left.confidence.astype(float).mean()), 4) if len(left) else None,
        "unreviewed_means": "the model's codes are kept as they are, marked needs_review false in segments.csv",
    }


def summarise(segments: pd.DataFrame, codebook: Codebook, model_name: str, review: ReviewConfig | None = None) -> dict:
    """``summary.json``: counts of the run, with impacts and categories named as the codebook names them.

    ``codes_per_category`` and ``codes_per_impact`` are lists in codebook order of ``{"id", "name",
    "count"}`` (impacts also give their ``category``); names are in ``names_language``. ``per_transcript``
    gives the same counts for each transcript (impacts it got at least once), and ``confident_passages``
    each impact's most probable coded passages (:func:`confident_passages`). ``review`` says what the queue
    holds within ``review.budget`` and what is left unreviewed (:func:`review_summary`).
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
        "participant_passages": int(participant.groupby(["source", "turn"]).ngroups) if len(participant) else 0,
        "coded_segments": int((participant.codes != "").sum()),
        "names_language": language,
        "codes_per_category": per_category,
        "codes_per_impact": per_impact,
        "sent_to_review": int(participant.needs_review.sum()),
        "share_sent_to_review": round(float(participant.needs_review.mean()) if len(participant) else 0.0, 4),
        "review": review_summary(segments, review),
        "languages": {k: int(v) for k, v in participant.language.value_counts().sort_index().items()},
        "per_transcript": per_transcript(segments, codebook, language),
        "confident_passages": confident_passages(segments, codebook, language),
    }


def per_transcript(segments: pd.DataFrame, codebook: Codebook, language: str) -> list[dict]:
    """``summary.json: per_transcript``: for each transcript (by source), its segments, participant segments,
    coded segments, segments sent to review and the impacts it got (codebook order, named in ``language``)."""
    rows = []
    for source, frame in segments.groupby("source", sort=True):
        participant = frame[frame.role == "participant"]
        applied = [set(str(codes).split(";")) - {""} for codes in participant.codes]
        counts = [(impact, sum(impact.id in codes for codes in applied)) for impact in codebook.impacts]
        rows.append(
            {
                "source": source,
                "segments": int(len(frame)),
                "participant_segments": int(len(participant)),
                "coded_segments": int(sum(bool(codes) for codes in applied)),
                "sent_to_review": int(participant.needs_review.sum()),
                "codes_per_impact": [
                    {"id": impact.id, "name": impact.name[language], "count": n} for impact, n in counts if n
                ],
            }
        )
    return rows


def confident_passages(segments: pd.DataFrame, codebook: Codebook, language: str, top: int = 3) -> list[dict]:
    """``summary.json: confident_passages``: per impact (codebook order, named in ``language``), its ``top``
    passages (participant turns, as in ``passages.csv``) that carry it, most probable first: source, start,
    end, speaker, the probability (the highest of the turn's sentences) and the passage's text."""
    participant = segments[segments.role == "participant"]
    keys = [participant.source.to_numpy(), participant.turn.to_numpy()]
    turns = participant.groupby(keys, sort=True).agg(
        start=("start", "min"), end=("end", "max"), speaker=("speaker", "first"), text=("text", " ".join)
    )
    coded = participant.codes.astype(str).str.get_dummies(sep=";").reindex(columns=codebook.impact_ids, fill_value=0)
    out = []
    for impact in codebook.impacts:
        carries = coded[impact.id].astype(bool)
        probability = participant[f"p:{impact.id}"].where(carries).groupby(keys, sort=True).max().dropna()
        best = probability.sort_values(ascending=False, kind="mergesort").head(top)  # ties: source, then turn
        passages = [
            {
                "source": source,
                "start": int(turns.at[(source, turn), "start"]),
                "end": int(turns.at[(source, turn), "end"]),
                "speaker": turns.at[(source, turn), "speaker"],
                "p": round(float(p), 4),
                "text": turns.at[(source, turn), "text"],
            }
            for (source, turn), p in best.items()
        ]
        out.append({"id": impact.id, "name": impact.name[language], "passages": passages})
    return out


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
    roles: list[dict] | None = None,
) -> None:
    """Write every output of a run into a staging folder beside ``out_dir``, then swap it in whole.

    ``out_dir`` should have passed :func:`check_run_folder`. The reviewers' ``review.db`` of an earlier
    run there is carried into the new folder; everything else of the old folder goes. Transcripts whose
    text was built from the source (captions, Whisper JSON, .docx) are kept as
    ``transcripts/<source>.txt``: the offsets of ``segments.csv`` refer to that text. ``roles``
    (:func:`pipeline.ingest.transcripts.role_rows`) are kept as ``roles.csv``: who interviews in each file, and
    how decided.
    """
    from pipeline.io import build_folder, write_table
    from pipeline.qdpx import export_qdpx, project_language

    with build_folder(out_dir, keep=_is_review_file) as staging:
        write_table(segments, staging / "segments.csv")
        write_table(segments, staging / "segments.parquet")
        write_table(passage_table(segments, codebook), staging / "passages.csv")
        write_table(queue, staging / "review_queue.csv")
        if roles is not None:
            write_table(pd.DataFrame(roles, columns=["source", "speaker", "role", "how"]), staging / "roles.csv")
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "model.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        codings = passage_codings(segments, f"imri model {card['name']} {card['version']}")
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


def run_setup(model_dir: Path | None, codebook: Codebook, params: dict):
    """The model (or None for zero-shot), its segment parameters, the encoder that codes and the run's card.

    Returns ``(impact_model, segment_config, encoder_id, card)``: a model codes with the encoder it was
    trained on, zero-shot with ``embed.encoder`` at ``embed.precision``; the card (the run's ``model.json``)
    lists the cut-offs. Both engines (this module and :mod:`pipeline.coding.ray_engine`) set a run up with it.
    """
    from pipeline.ingest import SegmentConfig

    if model_dir is not None:
        from pipeline.model import ImpactModel

        impact_model = ImpactModel.load(model_dir)
        impact_model.check_codebook(codebook, model_dir)
        # the run's model.json lists the cut-offs, so the review app shows them exactly
        card = {
            **impact_model.card,
            "thresholds": dict(zip(impact_model.impact_ids, map(float, impact_model.thresholds), strict=True)),
        }
        # the encoder the heads were trained on codes with them (model.json names it: e5-small-int8, e5-small...)
        return (
            impact_model,
            SegmentConfig.from_dict(impact_model.card["params"]["segment"]),
            impact_model.encoder_id,
            card,
        )
    from pipeline.model import default_encoder_id

    encoder_id = default_encoder_id(params)
    card = {
        "name": "zero-shot",
        "version": encoder_id,
        "encoder": {"id": encoder_id},
        "codebook": codebook.card(),
        "note": "zero-shot scores come from the codebook alone, standardised; not calibrated probabilities",
        "thresholds": {impact_id: 0.5 for impact_id in codebook.impact_ids},
    }
    return None, SegmentConfig.from_dict(params.get("segment")), encoder_id, card


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
    *,
    progress: bool | None = None,
    stream: bool = True,
    no_speakers: str = "skip",
) -> CodingRun:
    """``imri code``: read and segment the inputs, score them (model or zero-shot), write the run folder.

    ``out`` is checked first (:func:`check_run_folder`; ``force`` lets a non-empty folder that is not
    an earlier run be replaced), and every input is read and checked before anything is written.
    ``warn`` receives file warnings. ``progress``: one bar over the segments with an ETA (None: on a
    terminal only). A model codes with the encoder it was trained on (its card's ``encoder.id``);
    zero-shot with ``embed.encoder`` at ``embed.precision``.

    ``stream`` (the default) overlaps segmentation with embedding and embeds window by window (see the
    module's notes); ``stream=False`` segments everything, then embeds everything in one call. Given
    the same embeddings (the cache) both write the same files byte for byte. ``no_speakers``: what a file
    without speaker labels is (``--no-speakers-as``: skipped, or one participant's words).
    """
    holds = [*inputs, *(path for path in (model_dir, with_gold) if path is not None)]
    check_run_folder(out, force, holds)
    review = ReviewConfig.from_dict(params.get("review"))
    clock = Clock()
    impact_model, segment_config, encoder_id, card = run_setup(model_dir, codebook, params)
    from pipeline.model import read_codings

    gold = read_codings(with_gold, codebook) if with_gold else None
    reading = (interviewers, no_speakers)
    coded = (_code_streaming if stream else _code_whole)(
        inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock
    )
    transcripts, table, proba = coded
    if table.empty:
        raise InputError("the transcripts hold no text to code", out)
    if impact_model is not None:
        thresholds, positives = impact_model.thresholds, impact_model.arrays["positives"]
    else:
        proba = standardise_zero_shot(proba, table)
        thresholds, positives = np.full(len(codebook.impacts), 0.5), np.full(len(codebook.impacts), 10**6)
    segments, queue = code_segments(table, proba, thresholds, positives, codebook, review)
    summary = summarise(segments, codebook, f"{card['name']}-{card['version']}", review)
    clock.lap("classify")
    from pipeline.ingest import role_rows

    texts = {t.source: t.text for t in transcripts if not t.skipped}
    built = {t.source for t in transcripts if t.built and not t.skipped}
    replaced = check_run_folder(out, force, holds)  # again: the folder may have changed while this ran
    write_run(out, segments, queue, summary, card, texts, codebook, gold, built, role_rows(transcripts))
    clock.lap("write")
    return CodingRun(segments, queue, summary, clock.laps, replaced, transcripts)


def _read_all(inputs: list[Path], reading, warn) -> list[Transcript]:
    """Every transcript read and checked (a bad one raises), in input order, roles decided across them
    (``reading``: ``--interviewer`` labels and ``--no-speakers-as``); their warnings to ``warn``."""
    from pipeline.ingest import collect_transcripts, read_transcripts

    interviewers, no_speakers = reading
    transcripts = read_transcripts(collect_transcripts(inputs, warn), interviewers, no_speakers=no_speakers)
    for transcript in transcripts:
        for warning in transcript.warnings:
            if warn:
                warn(warning)
    return transcripts


class Scorer:
    """Scores segment tables: the model's probabilities, or the codebook head's raw scores (zero-shot).

    ``impact_model`` is None for zero-shot (its raw scores are standardised over the whole run afterwards,
    :func:`standardise_zero_shot`). :meth:`embed` fills an embedding cache with what :meth:`scores` needs
    for a window of whole transcripts in one encoder call; :meth:`scores` then reads it transcript by
    transcript. The local engine and the Ray engine's actors (:mod:`pipeline.coding.ray_engine`) both score with it.
    """

    def __init__(self, impact_model, encoder_id: str, codebook: Codebook) -> None:
        from pipeline.model import ClassifierConfig

        self.impact_model, self.encoder_id, self.codebook = impact_model, encoder_id, codebook
        # zero-shot: the codebook prior alone, on passages as the default configuration reads them
        self.config = impact_model.config if impact_model is not None else ClassifierConfig(prior_weight=1.0)

    def embed(self, table: pd.DataFrame, progress=False, cache=None) -> None:
        """Embed what :meth:`scores` will need for ``table`` into ``cache``, in one call (batches sorted over it)."""
        from pipeline.model import embed_for_features, embed_segments

        embed_for_features(table, self.encoder_id, self.config, progress, cache=cache)
        if self.config.question_weight:
            embed_segments(table, self.encoder_id, progress, "asked", cache=cache)

    def scores(self, table: pd.DataFrame, progress=False, cache=None) -> np.ndarray:
        """Scores of a segment table in transcript order (one transcript or several)."""
        if self.impact_model is not None:
            features = self.impact_model.features(table, progress=progress, codebook=self.codebook, cache=cache)
            return self.impact_model.predict_proba_features(features, table)
        from pipeline.model import model_features

        features = model_features(table, self.encoder_id, self.config, progress, codebook=self.codebook, cache=cache)
        return features[:, -len(self.codebook.impacts) :]  # the prior's columns: similarity to the codebook


def _code_whole(inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock):
    """Read everything, segment everything, embed and score everything at once (``stream=False``)."""
    from pipeline.ingest import segment_table

    transcripts = _read_all(inputs, reading, warn)
    clock.lap("read")
    table = segment_table(transcripts, segment_config, progress=bool(progress))
    table = table.sort_values(["source", "start"]).reset_index(drop=True)
    clock.lap("segment")
    if table.empty:
        return transcripts, table, np.zeros((0, len(codebook.impacts)))
    scores = Scorer(impact_model, encoder_id, codebook).scores(table, bool(progress))
    clock.lap("embed")
    return transcripts, table, scores


def _code_streaming(inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock):
    """Segment on a thread of its own while this one embeds and scores window after window (the default)."""
    from tqdm.auto import tqdm

    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.ingest import import_spacy

    import_spacy()  # here, before any thread may import torch (see import_spacy)
    segmenting = _Segmenting(inputs, reading, segment_config, ahead=2 * EMBED_WINDOW)
    segmenting.start()
    bar = None
    try:
        encoder = get_encoder(encoder_id)
        encoder.encode(["…"], "query")  # loads the encoder now (and any first-call set-up), not in the first window
        clock.lap("load")
        age = _process_age()
        if age is not None:  # imports and model loading, from the process's start: first in the list
            clock.laps = {"start": round(age, 3), **clock.laps}
        transcripts = segmenting.read(warn)
        bar = tqdm(total=None, unit="segment", desc="coding", disable=None if progress is None else not progress)
        told = _Told(bar, segmenting)
        # one cache for the run, its shards read once; a window with any text not cached is embedded whole, so
        # its vectors depend on its own texts, not on what earlier windows embedded (the Ray engine's too)
        cache = EmbeddingCache(encoder, whole_calls=True)
        scorer = Scorer(impact_model, encoder_id, codebook)
        tables, scores, window, waited, embedded = [], [], [], 0.0, 0.0
        while True:
            started = time.perf_counter()
            frame = segmenting.next()
            waited += time.perf_counter() - started
            if frame is not None:
                window.append(frame)
                if sum(map(window_rows, window)) < EMBED_WINDOW:
                    continue
            if window:
                table = pd.concat(window, ignore_index=True) if len(window) > 1 else window[0]
                started = time.perf_counter()
                scorer.embed(table, told.tell, cache)
                # then transcript by transcript from the cache: features and scores stay small
                scores.extend(scorer.scores(one, cache=cache) for one in window)
                embedded += time.perf_counter() - started
                tables.extend(window)
                told.window_done(len(table))
                window = []
                _give_back_memory()
            if frame is None:
                break
    finally:
        segmenting.stop()
        if bar is not None:
            bar.close()
    # read and segment ran on their own thread, beside load and embed; "waiting" is this thread's wait for them
    clock.laps.update(segmenting.seconds)
    clock.laps.update({"embed": round(embedded, 3), "waiting": round(waited, 3)})
    clock.mark()
    if not tables:
        from pipeline.ingest import segment_frame

        return transcripts, segment_frame([]), np.zeros((0, len(codebook.impacts)))
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return transcripts, table, np.vstack(scores)


class _Told:
    """The run's one progress bar: segments embedded so far, over the segments expected."""

    def __init__(self, bar, segmenting: _Segmenting) -> None:
        self.bar, self.segmenting = bar, segmenting
        self.done = 0  # segments of finished windows
        self.inside = 0  # texts embedded in the current window (capped at its size when it ends)

    def tell(self, count: int) -> None:
        self.inside += count
        self._show()

    def window_done(self, segments: int) -> None:
        self.done += segments
        self.inside = 0
        self._show()

    def _show(self) -> None:
        total = self.segmenting.expected()
        if total is not None:
            self.bar.total = max(total, self.done)
        self.bar.n = min(self.done + self.inside, self.bar.total or self.done + self.inside)
        self.bar.refresh()


class _Segmenting(threading.Thread):
    """Reads every transcript, then segments them in source order, at most ``ahead`` segments ahead.

    The main thread takes whole transcripts' segment tables (rows sorted by start) with :meth:`next`.
    A problem (an :class:`InputError` naming the file) is raised in the main thread, reading problems
    first, in input order, as a run that reads everything first reports them.
    """

    def __init__(self, inputs: list[Path], reading, config: SegmentConfig, ahead: int) -> None:
        super().__init__(name="imri-segment", daemon=True)
        self.inputs, self.reading, self.config, self.ahead = inputs, reading, config, ahead
        self.seconds = {"read": 0.0, "segment": 0.0}
        self._ready: collections.deque[pd.DataFrame | None] = collections.deque()
        self._changed = threading.Condition()
        self._queued = 0  # segments segmented and not taken yet
        self._stopped = False
        self._transcripts: list[Transcript] | None = None
        self._error: BaseException | None = None
        self._characters = [0, 0]  # of all transcripts, of those segmented so far
        self._segmented = 0

    def run(self) -> None:
        from pipeline.ingest import Segmenter, segment_frame

        try:
            started = time.perf_counter()
            transcripts = _read_all(self.inputs, self.reading, None)
            self.seconds["read"] = round(time.perf_counter() - started, 3)
            with self._changed:
                self._transcripts = transcripts
                self._characters[0] = sum(len(t.text) for t in transcripts)
                self._changed.notify_all()
            segmenter = Segmenter(self.config)
            for transcript in sorted(transcripts, key=lambda t: t.source):  # the run's order: by source, then start
                if self._stopped:
                    return
                started = time.perf_counter()
                frame = segment_frame(segmenter.segment(transcript))
                frame = frame.sort_values("start").reset_index(drop=True)
                self.seconds["segment"] = round(self.seconds["segment"] + time.perf_counter() - started, 3)
                with self._changed:
                    while self._queued >= self.ahead and not self._stopped:
                        self._changed.wait()
                    if self._stopped:
                        return
                    self._characters[1] += len(transcript.text)
                    self._segmented += len(frame)
                    if len(frame):
                        self._ready.append(frame)
                        self._queued += len(frame)
                    self._changed.notify_all()
            with self._changed:
                self._ready.append(None)
                self._changed.notify_all()
        except BaseException as error:  # noqa: BLE001  (handed to the main thread, which raises it)
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _wait_for(self, ready) -> None:
        with self._changed:
            while not ready() and self._error is None:
                self._changed.wait()
            if self._error is not None:
                raise self._error

    def read(self, warn=None) -> list[Transcript]:
        """Every transcript, once all are read (their warnings to ``warn``, in input order)."""
        self._wait_for(lambda: self._transcripts is not None)
        for transcript in self._transcripts:
            for warning in transcript.warnings:
                if warn:
                    warn(warning)
        return self._transcripts

    def next(self) -> pd.DataFrame | None:
        """The next transcript's segment table (never an empty one), or None after the last."""
        self._wait_for(lambda: bool(self._ready))
        with self._changed:
            frame = self._ready.popleft()
            if frame is not None:
                self._queued -= len(frame)
            self._changed.notify_all()
        return frame

    def expected(self) -> int | None:
        """Segments of the run: exact once all are segmented, else estimated from the characters so far."""
        done = self._ready and self._ready[-1] is None
        total, seen = self._characters
        if done or (seen and seen == total):
            return self._segmented
        return round(self._segmented * total / seen) if seen else None

    def stop(self) -> None:
        """Stop segmenting (the run ended or failed)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _give_back_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A window's transient arrays and token lists, once freed, stay in the heap between what the run keeps,
    so resident memory would creep up window after window.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Seconds between successive laps."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

    def mark(self) -> None:
        """Start the next lap now (after laps recorded some other way)."""
        self._last = time.perf_counter()
