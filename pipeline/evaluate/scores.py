"""Scores of model codes against coders': F1 summaries, calibration, coverage, confusion, agreement and per transcript.

Pure functions of label arrays and coded spans, shared by the gold-set evaluation (:mod:`pipeline.evaluate.evaluation`)
and the transfer set (:mod:`pipeline.evaluate.transfer`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.model import f1_table


def summary_scores(Y: np.ndarray, predicted: np.ndarray, languages: np.ndarray, ids: list[str]) -> dict:
    """Per-code table, micro/macro F1, and the same by language."""
    scores = f1_table(Y, predicted, ids)
    scores["by_language"] = {
        lang: {
            k: v
            for k, v in f1_table(Y[languages == lang], predicted[languages == lang], ids).items()
            if k != "per_code"
        }
        for lang in sorted(set(languages))
    }
    return scores


def expected_calibration_error(Y: np.ndarray, P: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over every (segment, impact) probability, and the reliability diagram's bins."""
    p, y = P.ravel(), Y.ravel()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece, diagram = 0.0, []
    for b in range(bins):
        rows = which == b
        if not rows.any():
            continue
        confidence, accuracy = float(p[rows].mean()), float(y[rows].mean())
        ece += rows.mean() * abs(confidence - accuracy)
        diagram.append(
            {
                "bin": b,
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(rows.sum()),
                "mean_probability": confidence,
                "observed_rate": accuracy,
            }
        )
    return float(ece), diagram


def coverage_precision(Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Auto-accept the most confident segments first: precision and exact-set accuracy per coverage."""
    from pipeline.coding import decide

    predicted, confidence = decide(P, thresholds)
    order = np.argsort(-confidence, kind="mergesort")
    rows = []
    for coverage in np.round(np.arange(0.1, 1.001, 0.1), 2):
        take = order[: max(1, int(round(coverage * len(order))))]
        tp = int((predicted[take] & Y[take]).sum())
        suggested = int(predicted[take].sum())
        rows.append(
            {
                "coverage": float(coverage),
                "min_confidence": float(confidence[take].min()),
                "precision": tp / suggested if suggested else float("nan"),
                "exact_set_accuracy": float((predicted[take] == Y[take]).all(axis=1).mean()),
                "segments": int(len(take)),
            }
        )
    return rows


def character_scores(
    table: pd.DataFrame,
    predicted: np.ndarray,
    codings: pd.DataFrame,
    texts: dict[str, str],
    impact_ids: list[str],
    coders: list[str],
    languages: dict[str, str],
) -> dict:
    """Per-impact F1 over characters, which every coding unit can be scored on alike.

    ``table`` holds participant segments and ``predicted`` their 0/1 codes. A character counts when
    it is a non-space character of a participant segment: it is predicted as impact c when its
    segment is, and gold when one of ``coders``' spans of c covers it. Counts are summed over
    transcripts, then F1 is macro-averaged over impacts (overall and by transcript language).
    """
    k = len(impact_ids)
    column = {code: j for j, code in enumerate(impact_ids)}
    counts: dict[str, np.ndarray] = {}  # language -> (3, k): true positives, false positives, false negatives
    chosen = codings[codings.coder.isin(coders) & codings.code.isin(column)]
    spans_by_source = {source: rows for source, rows in chosen.groupby("source")}
    for source, rows in table.groupby("source").indices.items():
        text = texts[source]
        inside = np.zeros(len(text), dtype=bool)
        pred = np.zeros((k, len(text)), dtype=bool)
        for i in rows:
            start, end = int(table.start.iat[i]), int(table.end.iat[i])
            inside[start:end] = True
            pred[predicted[i].astype(bool), start:end] = True
        letters = np.zeros(len(text), dtype=bool)
        for match in re.finditer(r"\S+", text):
            letters[match.start() : match.end()] = True
        inside &= letters
        gold = np.zeros((k, len(text)), dtype=bool)
        spans = spans_by_source.get(source)
        if spans is not None:
            for code, start, end in zip(spans.code, spans.start, spans.end, strict=True):
                gold[column[code], int(start) : int(end)] = True
        gold &= inside
        pred &= inside
        found = np.stack([(gold & pred).sum(axis=1), (~gold & pred).sum(axis=1), (gold & ~pred).sum(axis=1)])
        for key in ("all", languages.get(source, "")):
            counts[key] = counts.get(key, np.zeros((3, k), dtype=np.int64)) + found

    def scores(c: np.ndarray) -> dict:
        tp, fp, fn = c
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        return {
            "macro_f1": float(f1.mean()),
            "micro_f1": float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)),
            "per_code": {code: float(f1[j]) for j, code in enumerate(impact_ids)},
        }

    out = scores(counts.pop("all"))
    out["by_language"] = {
        lang: {key: value for key, value in scores(c).items() if key != "per_code"}
        for lang, c in sorted(counts.items())
        if lang
    }
    return out


def category_confusion(Y: np.ndarray, predicted: np.ndarray, codebook) -> dict:
    """Categories derived from impacts: for segments with exactly one gold category, what was predicted."""
    categories = codebook.category_ids
    member = np.array([[codebook.category_of(i) == c for i in codebook.impact_ids] for c in categories]).T
    gold_cat = (Y @ member) > 0
    pred_cat = (predicted @ member) > 0
    matrix = np.zeros((len(categories), len(categories) + 1), dtype=int)  # last column: no category predicted
    for row in np.flatnonzero(gold_cat.sum(axis=1) == 1):
        g = int(np.flatnonzero(gold_cat[row])[0])
        hits = np.flatnonzero(pred_cat[row])
        if len(hits) == 0:
            matrix[g, -1] += 1
        for h in hits:
            matrix[g, h] += 1
    return {"categories": categories, "columns": [*categories, "none"], "matrix": matrix.tolist()}
