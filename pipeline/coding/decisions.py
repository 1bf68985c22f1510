"""The model's codes for a segment table: its decisions, and the passages a coder reads.

:func:`decide` turns probabilities into 0/1 codes and a confidence per segment (zero-shot scores are
standardised first: :func:`standardise_zero_shot`); :func:`code_segments` adds codes, their names,
confidence, review flags and probabilities to the segment table and builds the review queue
(:mod:`pipeline.coding.queue`). A passage is a participant turn: :func:`passage_table` is ``passages.csv``
(one row per turn, its codes and most probable impacts), and :func:`passage_codings` the model's codings of
``coded.qdpx`` (adjacent sentences of one turn with the same code are one coding)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coding.queue import (
    ReviewConfig,
    certainty,
    passage_keys,
    previous_turn_text,
    review_budget,
    review_priority,
)


def decide(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 codes and a confidence per segment in [0.5, 1]: its least certain decision, rescaled."""
    codes, sure = certainty(proba, thresholds)
    return codes, 0.5 + 0.5 * sure.min(axis=1)


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
