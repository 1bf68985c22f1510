"""Evaluate models against the gold set the way coders are evaluated.

Every figure comes from cross-validation grouped by transcript: a transcript's predictions come
from a model (with its own calibration and thresholds) that never saw it. Outputs one metrics
dictionary (``reports/metrics.json``) that the report stage draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.evaluate.scores import (
    category_confusion,
    character_scores,
    coverage_precision,
    expected_calibration_error,
    summary_scores,
)
from pipeline.model import (
    CalibratedModel,
    ClassifierConfig,
    GoldSet,
    LabelConfig,
    LexicalScorer,
    PriorBlendScorer,
    RidgeScorer,
    TfidfLogRegScorer,
    cross_validated_proba,
    f1_table,
)
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


@dataclass
class ModelInputs:
    """What a configured model trains and predicts on: features of the training targets, their
    turns (for smoothing) and extra training rows (:func:`pipeline.model.impact_model.training_rows`)."""

    X: np.ndarray
    turns: np.ndarray | None = None
    rows: object = None

    @classmethod
    def build(cls, gold: GoldSet, encoder: str, config: ClassifierConfig, codebook) -> ModelInputs:
        from pipeline.model import model_features, training_rows, turn_keys

        targets = gold.targets
        X = model_features(gold.segments, encoder, config, codebook=codebook)[targets]
        rows = training_rows(gold.segments, encoder, config, codebook, targets)
        return cls(X, turn_keys(gold.segments)[targets], rows)

    def subset(self, index: np.ndarray) -> ModelInputs:
        from pipeline.model import TrainingRows

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
    from pipeline.model import default_encoder_id, model_features

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
        # where the review queue works: around each cut-off, review.margin wide (pipeline.coding.ReviewConfig)
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
    top-1, impact top-1, impact top-3 and presence AUC (each figure of
    :func:`pipeline.evaluate.transfer.passage_figures`)."""
    keys = ("category_top1", "impact_top1", "impact_top3", "presence_auc")
    values = [entry[key] for entry in passages.values() for key in keys if key in entry]
    return round(float(np.mean(values)), 4) if values else float("nan")


def evaluate_transfer(gold: GoldSet, transfer, codebook, params: dict, progress: bool = False) -> dict:
    """``transfer`` in metrics.json: the default model's figures, every named variant, the prior alone,
    the learning curve and int8 against fp32 (paired bootstrap over transfer transcripts)."""
    from pipeline.embed import ENCODERS, INT8_ENCODERS
    from pipeline.evaluate.transfer import (
        VariantFeatures,
        codebook_head_rows,
        evaluate_variant,
        learning_curve,
        paired_bootstrap,
        prior_alone,
        review_effort,
    )
    from pipeline.model import default_encoder_id

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
    from pipeline.embed import finetuned_dir

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


def human_model_agreement(
    gold: GoldSet, predicted: np.ndarray, codebook, config: EvaluateConfig, label_config: LabelConfig
) -> dict:
    """On double-coded transcripts: A-vs-B, model-vs-A, model-vs-B, model-vs-consensus (segment unit).

    Coders' spans become segment labels with the same rule as training labels; the model's labels
    are its out-of-fold predictions.
    """
    from pipeline.agreement import binary_agreement
    from pipeline.model import segment_labels

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
