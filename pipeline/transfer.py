"""Shift-robustness: how a model trained on the gold set holds up on text it was not written for.

Three measures, all in ``reports/metrics.json`` under ``transfer`` (``imri evaluate``):

* ``cross_corpus``: trained on the gold set, tested on the blind-written transfer set
  (``data/transfer``, coder A): macro-F1 overall, by language and per impact; Cohen's kappa of the
  model with coder A and with coder B next to A-vs-B, on participant segments.
* ``question_shift``: the gold set's out-of-fold predictions again with every interviewer question
  replaced by the interview guide's generic impact question (``guide``) and with no question
  (``none``), next to the unshifted figure: a model that leans on how questions are worded drops.
* ``turn_top1``: on participant turns of the transfer set that coder A coded with exactly one
  impact, the share whose highest-probability impact (max over the turn's segments) is that impact,
  the share with it in the top three, and the same for its category.

The transfer set never fits anything: no weights, calibration, thresholds or searches. It only
chooses between a few named variants (``evaluate.variants``), each reported in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.classify import ClassifierConfig, cross_validated_proba
from pipeline.codebook import Codebook
from pipeline.train import GoldSet, f1_table


@dataclass
class TransferSet:
    """The transfer set's participant segments with coder A's and coder B's labels."""

    gold: GoldSet  # labelled by coder A
    labels_b: np.ndarray | None  # coder B's labels of the same segments, if B coded them

    @property
    def targets(self) -> np.ndarray:
        return self.gold.targets

    @property
    def table(self) -> pd.DataFrame:
        return self.gold.segments[self.targets].reset_index(drop=True)


def turn_top1(table: pd.DataFrame, proba: np.ndarray, labels: np.ndarray, codebook: Codebook) -> dict:
    """Top-1/top-3 impact and category hits on turns coded with exactly one impact, by language.

    ``table`` holds the participant segments (``source``, ``turn``, ``transcript_language``) in the
    row order of ``proba`` and ``labels``. A turn's score for an impact is the highest over its segments.
    """
    categories = np.array([codebook.category_ids.index(codebook.category_of(i)) for i in codebook.impact_ids])
    key = (table.source.astype(str) + ":" + table.turn.astype(str)).to_numpy()
    hits: dict[str, list[tuple[bool, bool, bool, bool]]] = {}
    for _, rows in pd.Series(np.arange(len(key))).groupby(key, sort=True).indices.items():
        coded = np.flatnonzero(labels[rows].any(axis=0))
        if len(coded) != 1:
            continue
        impact = coded[0]
        order = np.argsort(-proba[rows].max(axis=0), kind="stable")
        category_order = list(dict.fromkeys(categories[order]))  # categories by their best impact
        hit = (
            order[0] == impact,
            impact in order[:3],
            categories[order[0]] == categories[impact],
            categories[impact] in category_order[:3],
        )
        language = str(table.transcript_language.iloc[rows[0]])
        for group in ("all", language):
            hits.setdefault(group, []).append(hit)
    out = {}
    for group, values in sorted(hits.items()):
        array = np.array(values, dtype=float)
        out[group] = {
            "turns": len(values),
            "impact_top1": round(float(array[:, 0].mean()), 4),
            "impact_top3": round(float(array[:, 1].mean()), 4),
            "category_top1": round(float(array[:, 2].mean()), 4),
            "category_top3": round(float(array[:, 3].mean()), 4),
        }
    return out


def mean_kappa(x: np.ndarray, y: np.ndarray, ids: list[str], clusters: np.ndarray, n_boot: int, seed: int) -> dict:
    """Cohen's kappa between two 0/1 label matrices, mean over impacts, with a bootstrap interval."""
    from pipeline.agreement import binary_agreement

    result = binary_agreement(
        np.stack([x, y]).astype(float), coders=["x", "y"], codes=ids, clusters=clusters, n_boot=n_boot, seed=seed
    ).to_dict()
    overall = result.get("overall") or result
    return overall.get("cohen_kappa") or {}


def _macro(Y: np.ndarray, predicted: np.ndarray, ids: list[str]) -> float:
    return round(float(f1_table(Y, predicted, ids)["macro_f1"]), 4)


def _by_language(Y, predicted, languages, ids) -> dict:
    return {
        lang: round(float(f1_table(Y[languages == lang], predicted[languages == lang], ids)["macro_f1"]), 4)
        for lang in sorted(set(languages))
    }


@dataclass
class VariantFeatures:
    """How a variant turns a segment table into features and extra training rows."""

    encoder: str
    config: ClassifierConfig
    codebook: Codebook

    def features(self, table: pd.DataFrame, questions: str = "asked") -> np.ndarray:
        from pipeline.model import model_features

        return model_features(
            table,
            self.encoder,
            self.config.context_weight,
            self.config.question_weight,
            questions=questions,
            codebook=self.codebook,
            codebook_weight=self.config.codebook_weight,
        )


def evaluate_variant(
    features: VariantFeatures,
    gold: GoldSet,
    transfer: TransferSet,
    n_boot: int = 200,
    seed: int = 0,
    with_per_code: bool = False,
) -> dict:
    """In-corpus CV, question shift, cross-corpus transfer and turn top-1 for one model variant."""
    from pipeline.model import training_rows, turn_keys

    codebook, config = features.codebook, features.config
    ids = codebook.impact_ids
    targets = gold.targets
    table = gold.segments
    X = features.features(table)[targets]
    Y = gold.labels[targets]
    groups = table.source.to_numpy()[targets]
    languages = table.transcript_language.to_numpy()[targets]
    turns = turn_keys(table)[targets]
    rows = training_rows(table, features.encoder, config, codebook, targets)
    shifted = {mode: features.features(table, mode)[targets] for mode in ("guide", "none")}
    _, predicted, shifted_predicted = cross_validated_proba(
        config.make_model, X, Y, groups, config.cv_folds, turns, rows, shifted
    )
    in_corpus = _macro(Y, predicted, ids)
    question_shift = {"asked": in_corpus}
    for mode, values in shifted_predicted.items():
        question_shift[mode] = _macro(Y, values, ids)
        question_shift[f"drop_{mode}"] = round(in_corpus - question_shift[mode], 4)

    model = config.make_model().fit(X, Y, groups, turns, rows)
    t_targets = transfer.targets
    t_table = transfer.gold.segments
    XT = features.features(t_table)[t_targets]
    t_turns = turn_keys(t_table)[t_targets]
    proba = model.predict_proba(XT, t_turns)
    predicted_t = (proba >= model.thresholds_).astype(np.int8)
    YA = transfer.gold.labels[t_targets]
    t_languages = t_table.transcript_language.to_numpy()[t_targets]
    clusters = t_table.source.to_numpy()[t_targets]
    cross = {
        "macro_f1": _macro(YA, predicted_t, ids),
        "micro_f1": round(float(f1_table(YA, predicted_t, ids)["micro_f1"]), 4),
        "by_language": _by_language(YA, predicted_t, t_languages, ids),
        "kappa": {"model vs A": mean_kappa(predicted_t, YA, ids, clusters, n_boot, seed)},
    }
    if transfer.labels_b is not None:
        YB = transfer.labels_b[t_targets]
        cross["kappa"]["model vs B"] = mean_kappa(predicted_t, YB, ids, clusters, n_boot, seed)
        cross["kappa"]["A vs B"] = mean_kappa(YA, YB, ids, clusters, n_boot, seed)
    if with_per_code:
        cross["per_code"] = f1_table(YA, predicted_t, ids)["per_code"]
    return {
        "encoder": features.encoder,
        "in_corpus_macro_f1": in_corpus,
        "in_corpus_by_language": _by_language(Y, predicted, languages, ids),
        "question_shift": question_shift,
        "cross_corpus": cross,
        "turn_top1": turn_top1(transfer.table, proba, YA, codebook),
    }


# --- zero-shot: no gold set at all -----------------------------------------------------------------


def nearest_definition_scores(segments: np.ndarray, codebook: Codebook, encoder_id: str) -> np.ndarray:
    """Cosine similarity of each segment to each impact's ``name: definition`` (the reference zero-shot)."""
    from pipeline.embed import EmbeddingCache, get_encoder

    texts = [f"{impact.name['en']}: {impact.definition}" for impact in codebook.impacts]
    definitions = EmbeddingCache(get_encoder(encoder_id)).encode(texts, "passage")
    return segments @ definitions.T


def zero_shot_rows(transfer: TransferSet, codebook: Codebook, encoder_id: str) -> dict:
    """Turn top-1 on the transfer set for nearest-definition similarity and the codebook head."""
    from pipeline.model import CodebookHead, embed_segments

    segments, _ = embed_segments(transfer.gold.segments, encoder_id)
    segments = segments[transfer.targets]
    YA = transfer.gold.labels[transfer.targets]
    return {
        "nearest-definition": {
            "encoder": encoder_id,
            "turn_top1": turn_top1(
                transfer.table, nearest_definition_scores(segments, codebook, encoder_id), YA, codebook
            ),
        },
        "zero-shot (codebook head)": {
            "encoder": encoder_id,
            "turn_top1": turn_top1(transfer.table, CodebookHead(codebook, encoder_id).decision(segments), YA, codebook),
        },
    }


def load_transfer(folder, codebook: Codebook, segment_config, label_config, interviewers=()) -> TransferSet:
    """Read a transfer folder (``transcripts/`` + ``codings.csv``, coders A and optionally B)."""
    from pipeline.train import load_gold

    both = load_gold([folder], codebook, segment_config, label_config, None, interviewers=interviewers)
    coded_a = both.labelled_by(["A"], codebook.impact_ids, label_config)
    labels_b = None
    if "B" in set(both.codings.coder):
        from pipeline.labels import segment_labels

        labels_b = segment_labels(coded_a.segments, both.codings, codebook.impact_ids, ["B"], label_config)
    return TransferSet(coded_a, labels_b)
