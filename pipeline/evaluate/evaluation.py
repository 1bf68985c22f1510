"""Evaluate models against the gold set the way coders are evaluated.

Every figure comes from cross-validation grouped by transcript: a transcript's predictions come
from a model (with its own calibration and thresholds) that never saw it. Outputs one metrics
dictionary (``reports/metrics.json``) that the report stage draws.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.model.classify import (
    CalibratedModel,
    ClassifierConfig,
    LexicalScorer,
    PriorBlendScorer,
    RidgeScorer,
    TfidfLogRegScorer,
    cross_validated_proba,
)
from pipeline.model.labels import LabelConfig
from pipeline.model.train import GoldSet, f1_table
from pipeline.params import ParamsSection, label_coders


@dataclass(frozen=True)
class EvaluateConfig(ParamsSection):
    """``params.yaml: evaluate``."""

    section: ClassVar[str] = "evaluate"

    encoders: list[str] = field(default_factory=lambda: ["e5-small", "use-m3", "minilm-en"])
    heads: list[str] = field(default_factory=lambda: ["ridge"])
    baselines: list[str] = field(default_factory=lambda: ["lexical", "tfidf-logreg", "zero-shot"])
    units: list[str] = field(default_factory=lambda: ["sentence", "window", "turn"])  # compared on characters
    transfer: str | None = (
        None  # a second coded corpus never trained on (data/transfer): see pipeline/evaluate/transfer.py
    )
    variants: dict[str, dict] = field(default_factory=dict)  # name -> train-section overrides, compared on transfer
    learning_curve: list[int] = field(default_factory=lambda: [0, 4, 8, 16, 33])  # gold transcripts trained on
    bootstrap: int = 1000
    seed: int = 0
    calibration_bins: int = 10


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
    from pipeline.coding.code import decide

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


@dataclass
class ModelInputs:
    """What a configured model trains and predicts on: features of the training targets, their
    turns (for smoothing) and extra training rows (:func:`pipeline.model.impact_model.training_rows`)."""

    X: np.ndarray
    turns: np.ndarray | None = None
    rows: object = None

    @classmethod
    def build(cls, gold: GoldSet, encoder: str, config: ClassifierConfig, codebook) -> ModelInputs:
        from pipeline.model.impact_model import model_features, training_rows, turn_keys

        targets = gold.targets
        X = model_features(gold.segments, encoder, config, codebook=codebook)[targets]
        rows = training_rows(gold.segments, encoder, config, codebook, targets)
        return cls(X, turn_keys(gold.segments)[targets], rows)

    def subset(self, index: np.ndarray) -> ModelInputs:
        from pipeline.model.classify import TrainingRows

        rows = self.rows
        if rows:
            rows = TrainingRows(tuple(view[index] for view in rows.views), rows.extra)
        return ModelInputs(self.X[index], None if self.turns is None else self.turns[index], rows or None)


def _cross_lingual(make_model, X, Y, groups, languages, ids: list[str], inputs: ModelInputs | None = None) -> dict:
    """Train on one language's transcripts, test on the other's (both directions)."""
    results = {}
    for train_lang, test_lang in (("en", "fr"), ("fr", "en")):
        train, test = languages == train_lang, languages == test_lang
        if not train.any() or not test.any():
            continue
        if inputs is None:
            model = make_model().fit(X[train], Y[train], groups[train])
            predicted = model.predict(X[test])
        else:
            fit_on, test_on = inputs.subset(np.flatnonzero(train)), inputs.subset(np.flatnonzero(test))
            model = make_model().fit(fit_on.X, Y[train], groups[train], fit_on.turns, fit_on.rows)
            predicted = model.predict(test_on.X, test_on.turns)
        scores = f1_table(Y[test], predicted, ids)
        results[f"{train_lang}->{test_lang}"] = {k: v for k, v in scores.items() if k != "per_code"}
    return results


@dataclass
class EvaluationInputs:
    """The gold set restricted to training targets, ready for cross-validation."""

    gold: GoldSet
    Y: np.ndarray
    groups: np.ndarray
    languages: np.ndarray
    table: pd.DataFrame  # participant segments, transcript order

    @classmethod
    def from_gold(cls, gold: GoldSet) -> EvaluationInputs:
        targets = gold.targets
        # transcript language for the by-language split: code-switched sentences follow their interview
        table = gold.segments[targets].reset_index(drop=True)
        return cls(gold, gold.labels[targets], table.source.to_numpy(), table.transcript_language.to_numpy(), table)


#: metrics.json's ``note`` on the bundled synthetic gold set
SYNTHETIC_NOTE = "synthetic gold set: these are not real-world accuracy figures"


def evaluate(
    gold: GoldSet,
    codebook,
    params: dict,
    progress: bool = False,
    gold_for_unit: Callable[[str], GoldSet] | None = None,
    transfer=None,
    note: str = SYNTHETIC_NOTE,
) -> dict:
    """Every comparison of the evaluation, as one JSON-ready dictionary.

    ``note`` says whose gold set the figures come from (``imri evaluate``:
    :func:`pipeline.locations.scores_note`); the default is the bundled synthetic set's.

    ``gold_for_unit(unit)`` loads the same gold set cut into another coding unit; with it, the
    default encoder and head are also compared across ``evaluate.units`` (:func:`compare_units`).
    ``transfer`` (a :class:`pipeline.evaluate.transfer.TransferSet`) adds the shift-robustness figures.
    """
    from pipeline.model.impact_model import default_encoder_id, model_features

    config = EvaluateConfig.from_dict(params.get("evaluate"))
    train_params = ClassifierConfig.settings(params)
    base = ClassifierConfig.from_dict(train_params)
    default_encoder = default_encoder_id(params)
    coders = label_coders(params)  # whose codings labelled ``gold``
    data = EvaluationInputs.from_gold(gold)
    ids = codebook.impact_ids
    targets = gold.targets
    results: dict = {
        "protocol": f"nested cross-validation grouped by transcript, {base.cv_folds} folds; "
        "calibration and thresholds fitted inside each training fold",
        "transcripts": int(len(set(data.groups))),
        "segments": int(len(data.Y)),
        "label_coders": coders,
        "models": {},
        "note": note,
    }
    features: dict[str, np.ndarray] = {}
    default_run = None
    for encoder in config.encoders:
        # embed.encoder listed here is evaluated at embed.precision (e5-small -> e5-small-int8 under int8)
        encoder = default_encoder if encoder == (params.get("embed") or {}).get("encoder", "e5-small") else encoder
        inputs = ModelInputs.build(gold, encoder, base, codebook)
        X = features[encoder] = inputs.X
        # heads are compared on the default encoder; other encoders use the configured head
        for head in config.heads if encoder == default_encoder else [base.head]:
            head_config = ClassifierConfig(**{**base.__dict__, "head": head})
            started = time.perf_counter()
            make_model = head_config.make_model
            proba, predicted = cross_validated_proba(
                make_model, X, data.Y, data.groups, base.cv_folds, inputs.turns, inputs.rows
            )
            name = f"{encoder}+{head}"
            entry = summary_scores(data.Y, predicted, data.languages, ids)
            entry.update(
                {"kind": "model", "encoder": encoder, "head": head, "seconds": round(time.perf_counter() - started, 1)}
            )
            entry["cross_lingual"] = _cross_lingual(make_model, X, data.Y, data.groups, data.languages, ids, inputs)
            results["models"][name] = entry
            if encoder == default_encoder and head == base.head:
                default_run = (name, proba, predicted, make_model, inputs)
    texts = data.table.text.to_numpy()
    for baseline in config.baselines:
        started = time.perf_counter()
        if baseline == "lexical":
            factory, X = LexicalScorer, texts
        elif baseline == "tfidf-logreg":
            factory, X = TfidfLogRegScorer, texts
        elif baseline == "zero-shot":
            # what `imri code --zero-shot` scores with: the codebook prior alone, on the default passages
            prior = ClassifierConfig.from_dict({**train_params, "prior_weight": 1.0, "question_weight": 0.0})
            X = model_features(gold.segments, default_encoder, prior, codebook=codebook)[targets]

            def factory() -> PriorBlendScorer:
                return PriorBlendScorer(RidgeScorer(), 1.0)
        else:
            raise InputError(f"unknown baseline {baseline!r}: choose lexical, tfidf-logreg or zero-shot")

        def make_model(f=factory) -> CalibratedModel:
            return CalibratedModel(f, base.cv_folds)

        _, predicted = cross_validated_proba(make_model, X, data.Y, data.groups, base.cv_folds)
        entry = summary_scores(data.Y, predicted, data.languages, ids)
        entry.update({"kind": "baseline", "seconds": round(time.perf_counter() - started, 1)})
        entry["cross_lingual"] = _cross_lingual(make_model, X, data.Y, data.groups, data.languages, ids)
        results["models"][baseline] = entry
    if default_run is None:
        raise InputError(f"evaluate.encoders/heads must include the default model {default_encoder}+{base.head}")
    name, proba, predicted, make_model, default_inputs = default_run
    results["default_model"] = name
    # calibration and review coverage of the default model (thresholds from a full fit, for the curve only)
    ece, diagram = expected_calibration_error(data.Y, proba, config.calibration_bins)
    results["calibration"] = {"model": name, "ece": ece, "reliability": diagram}
    thresholds = (
        make_model().fit(default_inputs.X, data.Y, data.groups, default_inputs.turns, default_inputs.rows).thresholds_
    )
    results["coverage"] = {
        "model": name,
        "curve": coverage_precision(data.Y, proba, thresholds),
        # where the review queue works: around each cut-off, review.margin wide (pipeline.coding.code.ReviewConfig)
        "thresholds": dict(zip(ids, map(float, thresholds), strict=True)),
        "margin": float((params.get("review") or {}).get("margin", 0.3)),
    }
    results["categories"] = category_confusion(data.Y, predicted, codebook)
    labels = LabelConfig.from_dict(params.get("labels"))
    results["human_vs_model"] = human_model_agreement(gold, predicted, codebook, config, labels)
    results["per_transcript"] = per_transcript(data, predicted, ids)
    if gold_for_unit is not None and config.units:
        unit = (params.get("segment") or {}).get("unit", "sentence")
        results["units"] = compare_units(
            config.units, unit, gold, predicted, gold_for_unit, make_model, base, default_encoder, coders, codebook
        )
    if transfer is not None:
        results["transfer"] = evaluate_transfer(gold, transfer, codebook, params, progress)
        results["review_effort"] = results["transfer"].pop("review_effort")
    return results


#: The targets of the transfer evaluation (issue 21), checked and reported with the figures.
TRANSFER_TARGETS = {
    "macro_f1_min": 0.35,
    "category_top1_min": 0.80,
    "impact_top3_min": 0.85,
    "presence_auc_min": 0.85,
}


def passage_score(passages: dict) -> float:
    """What the transfer set chooses the default by: the mean over languages of the passages' category
    top-1, impact top-1, impact top-3 and presence AUC (each figure of :func:`pipeline.evaluate.transfer.passage_figures`)."""
    keys = ("category_top1", "impact_top1", "impact_top3", "presence_auc")
    values = [entry[key] for entry in passages.values() for key in keys if key in entry]
    return round(float(np.mean(values)), 4) if values else float("nan")


def evaluate_transfer(gold: GoldSet, transfer, codebook, params: dict, progress: bool = False) -> dict:
    """``transfer`` in metrics.json: the default model's figures, every named variant, the prior alone,
    the learning curve and int8 against fp32 (paired bootstrap over transfer transcripts)."""
    from pipeline.evaluate.transfer import (
        VariantFeatures,
        codebook_head_rows,
        evaluate_variant,
        learning_curve,
        paired_bootstrap,
        prior_alone,
        review_effort,
    )
    from pipeline.model.embed import ENCODERS, INT8_ENCODERS
    from pipeline.model.impact_model import default_encoder_id

    config = EvaluateConfig.from_dict(params.get("evaluate"))
    train_params = ClassifierConfig.settings(params)
    default_encoder = default_encoder_id(params)
    clusters = None
    scores: list[tuple[np.ndarray, np.ndarray]] = []  # each run's transfer probabilities and thresholds

    def run(overrides: dict, per_code: bool = False) -> dict:
        overrides = dict(overrides)
        encoder = overrides.pop("encoder", default_encoder)
        variant = ClassifierConfig.from_dict({**train_params, **overrides})
        started = time.perf_counter()
        out = evaluate_variant(
            VariantFeatures(encoder, variant, codebook), gold, transfer, config.bootstrap, config.seed, per_code
        )
        scores.append(out.pop("transfer_scores"))
        out["settings"] = {"encoder": encoder, **overrides}
        out["passage_score"] = passage_score(out["passages"])
        out["seconds"] = round(time.perf_counter() - started, 1)
        return out

    if progress:
        print("transfer: default", flush=True)
    default = run({}, per_code=True)
    variants, hits = {}, {"default": default.pop("passage_hits")}
    for name, overrides in config.variants.items():
        overrides = dict(overrides or {})
        encoder = overrides.get("encoder", default_encoder)
        if encoder in ENCODERS and not _encoder_available(encoder):
            variants[name] = {"settings": overrides, "not_run": f"encoder {encoder} is not built here (imri finetune)"}
            continue
        if progress:
            print(f"transfer: variant {name}", flush=True)
        variants[name] = run(overrides)
        hits[name] = variants[name].pop("passage_hits")
    table = transfer.table
    base = ClassifierConfig.from_dict(train_params)
    prior = prior_alone(transfer, codebook, default_encoder, base)
    prior_hits = prior.pop("passage_hits")
    from pipeline.evaluate.transfer import coded_passages

    clusters = coded_passages(transfer.gold).source.to_numpy()
    out = {
        "data": config.transfer,
        "note": "the transfer set never fits anything; it only chooses between the named variants",
        "transcripts": int(table.source.nunique()),
        "segments": int(len(table)),
        "default": {"train": train_params, "encoder": default_encoder},
        "cross_corpus": default["cross_corpus"],
        "question_shift": default["question_shift"],
        "turn_top1": default["turn_top1"],
        "calibration": default["calibration"],
        "in_corpus_macro_f1": default["in_corpus_macro_f1"],
        "in_corpus_passages": default["in_corpus_passages"],
        "passages": {**default["passages"], "nearest_definition": prior["passages"]},
        "passage_score": default["passage_score"],
        "chosen_by": "passage_score: mean over languages of category top-1, impact top-1, impact top-3 and "
        "presence AUC on the transfer set's coded passages",
        "variants": variants,
        "zero_shot": {
            "codebook prior (imri code --zero-shot)": prior,
            "codebook head": codebook_head_rows(transfer, codebook, default_encoder),
        },
        "prior_vs_default": paired_bootstrap(hits["default"], prior_hits, clusters, config.bootstrap, config.seed),
    }
    if progress:
        print("transfer: learning curve", flush=True)
    out["learning_curve"] = learning_curve(
        VariantFeatures(default_encoder, base, codebook), gold, transfer, config.learning_curve, seed=config.seed
    )
    # int8 against fp32: the default and the variant that differs from it only by the other precision's encoder
    fp32_of = {int8: fp32 for fp32, int8 in INT8_ENCODERS.items()}
    twin = INT8_ENCODERS.get(default_encoder) or fp32_of.get(default_encoder)
    twins = [name for name, v in config.variants.items() if (v or {}).get("encoder") == twin and name in hits]
    matching = [n for n in twins if set(config.variants[n]) == {"encoder"}]
    if matching:
        fp32_hits, int8_hits = hits["default"], hits[matching[0]]
        if default_encoder in fp32_of:
            fp32_hits, int8_hits = int8_hits, fp32_hits
        loss = paired_bootstrap(fp32_hits, int8_hits, clusters, config.bootstrap, config.seed)
        out["int8"] = {
            "variant": matching[0],
            "default_precision": "int8" if default_encoder in fp32_of else "fp32",
            "loss": loss,
            "rule": "int8 becomes the default encoder unless the 95% interval of its loss (fp32 minus int8, mean of "
            "the passages' impact top-1, top-3 and category top-1 hits, resampling transcripts) lies wholly above 0",
            "int8_should_be_default": bool(loss["ci95"][0] <= 0),
        }
    out["targets"] = transfer_targets(out)
    if progress:
        print("transfer: review effort", flush=True)
    proba, thresholds = scores[0]  # the default's
    out["review_effort"] = review_effort(transfer, proba, thresholds, codebook)  # moved to the top level
    return out


def _encoder_available(encoder: str) -> bool:
    """Whether an encoder that is built on demand from another (the fine-tuned e5-small) exists here."""
    if encoder != "e5-small-ft":
        return True
    from pipeline.model.finetune import finetuned_dir

    return finetuned_dir().is_dir()


def transfer_targets(transfer: dict) -> dict:
    """Each target of the transfer evaluation (issue 21) with the figure it is judged on and whether it is met."""
    t = TRANSFER_TARGETS
    shift, cross = transfer["question_shift"], transfer["cross_corpus"]
    passages = transfer["passages"]
    prior = passages.get("nearest_definition", {})
    rows = {
        "participant probabilities unchanged by the interviewer (max change <= 1e-6)": (
            shift["max_probability_change"],
            shift["max_probability_change"] <= 1e-6,
        ),
        f"transfer segment macro-F1 >= {t['macro_f1_min']}": (
            cross["macro_f1"],
            cross["macro_f1"] >= t["macro_f1_min"],
        ),
    }
    for language in ("en", "fr"):
        entry, alone = passages.get(language), prior.get(language, {})
        if not entry:
            continue
        for key, bound in (("category_top1", t["category_top1_min"]), ("impact_top3", t["impact_top3_min"])):
            rows[f"passage {key.replace('_', ' ')} >= {bound} ({language})"] = (entry[key], entry[key] >= bound)
        for key in ("category_top1", "impact_top1", "impact_top3", "presence_auc"):
            if key in entry and key in alone:
                gain = round(entry[key] - alone[key], 4)
                rows[f"passage {key.replace('_', ' ')} >= prior alone + 0.10 ({language})"] = (gain, gain >= 0.10)
        if "presence_auc" in entry:
            rows[f"presence AUC >= {t['presence_auc_min']} ({language})"] = (
                entry["presence_auc"],
                entry["presence_auc"] >= t["presence_auc_min"],
            )
    previous = (transfer.get("variants") or {}).get("previous-default") or {}
    before, after = previous.get("in_corpus_passages") or {}, transfer.get("in_corpus_passages") or {}
    for language in ("en", "fr"):
        if before.get(language) and after.get(language):
            keys = [k for k in ("category_top1", "impact_top1", "impact_top3", "presence_auc") if k in before[language]]
            loss = round(max(before[language][k] - after[language][k] for k in keys), 4)
            rows[f"gold-set passage figures lose at most 0.02 against the previous default ({language})"] = (
                loss,
                loss <= 0.02,
            )
    return {name: {"value": value, "met": bool(met)} for name, (value, met) in rows.items()}


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


def compare_units(
    units: list[str],
    default_unit: str,
    gold: GoldSet,
    default_predicted: np.ndarray,
    gold_for_unit: Callable[[str], GoldSet],
    make_model,
    base: ClassifierConfig,
    encoder: str,
    coders: list[str],
    codebook,
) -> dict:
    """The default encoder and head on each coding unit, scored on characters (:func:`character_scores`).

    Segment-level F1 cannot compare units (a turn is one decision, its sentences several), so each
    unit's out-of-fold predictions are spread over the characters of their segments and scored
    against coder spans. Labels, calibration and thresholds follow each unit's own segments.
    """
    impact_ids = codebook.impact_ids
    out: dict = {
        "protocol": "default encoder and head, grouped cross-validation per unit; F1 over the non-space "
        "characters of participant segments against coder spans",
        "default": default_unit,
        "units": {},
    }
    for unit in dict.fromkeys([default_unit, *units]):
        started = time.perf_counter()
        unit_gold = gold if unit == default_unit else gold_for_unit(unit)
        data = EvaluationInputs.from_gold(unit_gold)
        if unit == default_unit:
            predicted = default_predicted
        else:
            inputs = ModelInputs.build(unit_gold, encoder, base, codebook)
            _, predicted = cross_validated_proba(
                make_model, inputs.X, data.Y, data.groups, base.cv_folds, inputs.turns, inputs.rows
            )
        languages = dict(zip(data.table.source, data.table.transcript_language, strict=True))
        entry = character_scores(
            data.table, predicted, unit_gold.codings, unit_gold.texts, impact_ids, coders, languages
        )
        words = data.table.text.str.split().str.len()
        entry.update(
            {
                "segments": int(len(data.table)),
                "mean_words": float(words.mean()),
                "segment_macro_f1": f1_table(data.Y, predicted, impact_ids)["macro_f1"],
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        out["units"][unit] = entry
    out["best"] = max(out["units"], key=lambda u: out["units"][u]["macro_f1"])
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


def human_model_agreement(
    gold: GoldSet, predicted: np.ndarray, codebook, config: EvaluateConfig, label_config: LabelConfig
) -> dict:
    """On double-coded transcripts: A-vs-B, model-vs-A, model-vs-B, model-vs-consensus (segment unit).

    Coders' spans become segment labels with the same rule as training labels; the model's labels
    are its out-of-fold predictions.
    """
    from pipeline.evaluate.agreement import binary_agreement
    from pipeline.model.labels import segment_labels

    codings = gold.codings
    coders = sorted(set(codings.coder))
    if not {"A", "B"} <= set(coders):
        return {}
    double = sorted(set(codings[codings.coder == "B"].source) & set(codings[codings.coder == "A"].source))
    seg = gold.segments
    rows = (seg.role == "participant").to_numpy() & seg.source.isin(double).to_numpy()
    ids = codebook.impact_ids
    a = segment_labels(seg, codings, ids, ["A"], label_config)[rows]
    b = segment_labels(seg, codings, ids, ["B"], label_config)[rows]
    target_index = np.flatnonzero(gold.targets)
    model = np.zeros_like(gold.labels)
    model[target_index] = predicted
    model = model[rows]
    consensus = a & b
    clusters = seg.source.to_numpy()[rows]
    pairs = {
        "A vs B": (a, b),
        "model vs A": (model, a),
        "model vs B": (model, b),
        "model vs consensus": (model, consensus),
    }
    out = {"transcripts": double, "segments": int(rows.sum()), "consensus": "codes both A and B applied", "pairs": {}}
    for name, (x, y) in pairs.items():
        values = np.stack([x, y]).astype(float)  # coders x units x codes
        result = binary_agreement(
            values, coders=name.split(" vs "), codes=ids, clusters=clusters, n_boot=config.bootstrap, seed=config.seed
        )
        out["pairs"][name] = result.to_dict()
    return out


def per_transcript(data: EvaluationInputs, predicted: np.ndarray, ids: list[str]) -> dict:
    """Micro-F1 per transcript, with its language."""
    from sklearn.metrics import f1_score

    out = {}
    for source in sorted(set(data.groups)):
        rows = data.groups == source
        out[source] = {
            "language": str(data.languages[rows][0]),
            "segments": int(rows.sum()),
            "micro_f1": float(f1_score(data.Y[rows], predicted[rows], average="micro", zero_division=0)),
        }
    return out


def timings(results: dict, prefix: str = "") -> dict[str, float]:
    """The ``seconds`` each comparison took, by its path in the results (``models/tfidf-logreg``, ...)."""
    out = {}
    for key, value in results.items():
        if key == "seconds" and isinstance(value, int | float):
            out[prefix.rstrip("/") or "all"] = float(value)
        elif isinstance(value, dict):
            out.update(timings(value, f"{prefix}{key}/"))
    return out


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def write_metrics(results: dict, path: Path) -> None:
    """metrics.json without the timings (:func:`timings`): the same inputs give the same file, byte for byte."""
    import json

    from pipeline.io import atomic_path

    text = json.dumps(_without_seconds(results), indent=2, ensure_ascii=False, allow_nan=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def headline(results: dict) -> str:
    """The headline table: macro/micro F1 overall, by language and cross-lingual, per model; human agreement."""
    lines = [f"{'model':28s} {'macro-F1':>8s} {'micro-F1':>8s} {'en':>6s} {'fr':>6s} {'en->fr':>7s} {'fr->en':>7s}"]
    for name, entry in results["models"].items():
        by_lang, cross = entry.get("by_language", {}), entry.get("cross_lingual", {})
        mark = " *" if name == results.get("default_model") else ""
        lines.append(
            f"{name + mark:28s} {entry['macro_f1']:8.3f} {entry['micro_f1']:8.3f} "
            f"{by_lang.get('en', {}).get('macro_f1', float('nan')):6.3f} "
            f"{by_lang.get('fr', {}).get('macro_f1', float('nan')):6.3f} "
            f"{cross.get('en->fr', {}).get('macro_f1', float('nan')):7.3f} "
            f"{cross.get('fr->en', {}).get('macro_f1', float('nan')):7.3f}"
        )
    pairs = (results.get("human_vs_model") or {}).get("pairs", {})
    if pairs:
        lines.append("")
        lines.append(f"{'agreement (segments, double-coded)':36s} {'kappa (mean over codes)':>24s} {'alpha':>8s}")
        for name, result in pairs.items():
            overall = result.get("overall") or result
            kappa = (overall.get("cohen_kappa") or {}).get("value")
            alpha = (overall.get("krippendorff_alpha") or {}).get("value")
            lines.append(f"{name:36s} {_fmt(kappa):>24s} {_fmt(alpha):>8s}")
    compared = (results.get("units") or {}).get("units", {})
    if compared:
        lines.append("")
        lines.append(f"{'coding unit (default encoder+head)':36s} {'char macro-F1':>14s} {'en':>6s} {'fr':>6s}")
        for unit, entry in compared.items():
            by_lang = entry.get("by_language", {})
            mark = " *" if unit == results["units"]["default"] else ""
            lines.append(
                f"{unit + mark:36s} {entry['macro_f1']:14.3f} "
                f"{by_lang.get('en', {}).get('macro_f1', float('nan')):6.3f} "
                f"{by_lang.get('fr', {}).get('macro_f1', float('nan')):6.3f}"
            )
    lines += transfer_headline(results.get("transfer"))
    lines += review_effort_headline(results.get("review_effort"))
    note = results.get("note", SYNTHETIC_NOTE)
    shown = (
        "Synthetic gold set: not real-world accuracy." if note == SYNTHETIC_NOTE else note[:1].upper() + note[1:] + "."
    )
    lines.append(f"* default model and unit. {shown}")
    return "\n".join(lines)


def transfer_headline(transfer: dict | None) -> list[str]:
    """Lines of the headline for the transfer evaluation: passage figures of every variant, the prior alone,
    the interviewer shift and the targets missed."""
    if not transfer:
        return []
    lines = [
        "",
        f"transfer ({transfer['data']}: {transfer['transcripts']} transcripts never trained on; coder A's passages)",
        f"{'variant':30s} {'score':>6s} {'en cat1/top1/top3':>18s} {'fr cat1/top1/top3':>18s} {'AUC en/fr':>10s} "
        f"{'seg F1':>6s} {'shift':>6s}",
    ]

    def passage_cells(passages: dict) -> list[str]:
        cells = []
        for lang in ("en", "fr"):
            e = passages.get(lang) or {}
            cells.append("/".join(_fmt(e.get(k)) for k in ("category_top1", "impact_top1", "impact_top3")))
        return cells

    rows = {"default *": transfer, **transfer["variants"]}
    for name, entry in rows.items():
        if "not_run" in entry:
            lines.append(f"{name:30s} not run: {entry['not_run']}")
            continue
        passages = entry.get("passages") or {}
        auc = "/".join(_fmt((passages.get(lang) or {}).get("presence_auc"))[1:] for lang in ("en", "fr"))
        en, fr = passage_cells(passages)
        shift = (entry.get("question_shift") or {}).get("max_probability_change")
        lines.append(
            f"{name:30s} {_fmt(entry.get('passage_score')):>6s} {en:>18s} {fr:>18s} {auc:>10s} "
            f"{entry['cross_corpus']['macro_f1']:6.3f} {_fmt(shift):>6s}"
        )
    prior = (transfer.get("passages") or {}).get("nearest_definition") or {}
    en, fr = passage_cells(prior)
    auc = "/".join(_fmt((prior.get(lang) or {}).get("presence_auc"))[1:] for lang in ("en", "fr"))
    lines.append(f"{'codebook prior alone':30s} {'':6s} {en:>18s} {fr:>18s} {auc:>10s}")
    a_b = (transfer["cross_corpus"]["kappa"].get("A vs B") or {}).get("value")
    model_a = (transfer["cross_corpus"]["kappa"].get("model vs A") or {}).get("value")
    lines.append(f"segment kappa on the transfer set: model vs A {_fmt(model_a)}, A vs B {_fmt(a_b)}")
    missed = [name for name, target in transfer.get("targets", {}).items() if not target["met"]]
    lines.append("transfer targets missed: " + ("; ".join(missed) if missed else "none"))
    return lines


def _share(value) -> str:
    return "not reached" if value is None else f"{value:.0%}"


def review_effort_headline(effort: dict | None) -> list[str]:
    """Lines of the headline for the review-effort replay (:func:`pipeline.evaluate.transfer.review_effort`)."""
    if not effort or "not_run" in effort:
        return [] if not effort else ["", f"review effort: not run ({effort['not_run']})"]
    human = effort["a_vs_b"]
    queue = {row["share"]: row for row in effort["queue"]}
    random = {row["share"]: row for row in effort["random"]}
    lines = [
        "",
        f"review effort on the transfer set ({effort['passages']} passages; reviewed passages take coder A's "
        f"codes, measured against coder B; A vs B kappa: segments {_fmt(human.get('segments'))}, "
        f"characters {_fmt(human.get('characters'))})",
        f"{'share of participant text reviewed':42s} {'0%':>6s} {'10%':>6s} {'20%':>6s} {'30%':>6s} {'50%':>6s} "
        f"{'100%':>6s}",
    ]
    for name, rows in (("queue order", queue), (f"random order ({effort['random_seeds']} seeds)", random)):
        for unit in ("segments", "characters"):
            cells = [_fmt((rows.get(share) or {}).get(f"kappa_{unit}")) for share in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)]
            lines.append(f"{name + ', kappa ' + unit:42s} " + " ".join(f"{c:>6s}" for c in cells))
    lines.append(
        f"90% of the A-vs-B kappa at {_share(effort['reviewed_share_at_90pct_human'])} of participant text "
        f"(random order {_share(effort['random_reviewed_share_at_90pct_human'])}); all of it at "
        f"{_share(effort['reviewed_share_at_human'])} (random {_share(effort['random_reviewed_share_at_human'])}); "
        f"review.budget suggested: {effort['recommended_budget']:.2f}"
    )
    return lines


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
