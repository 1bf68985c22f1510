"""A trained impact model: its folder format and its use on a segment table.

A model folder holds no pickle, only plain arrays and JSON (safe to open from anyone):

* ``head.npz``: ``coef`` (impacts x features), ``intercept``, ``platt_a``, ``platt_b``,
  ``thresholds``, ``positives`` (training segments per impact);
* ``model.json``: name, version, encoder, codebook id/version/sha256 and impact ids, the
  segment/label/train parameters, training-data hash, library versions, cross-validated metrics, date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError

HEAD_FILE = "head.npz"
CARD_FILE = "model.json"
HEAD_ARRAYS = ("coef", "intercept", "platt_a", "platt_b", "thresholds", "positives")


def embed_segments(table: pd.DataFrame, encoder_id: str, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of each segment's text and of the interviewer question it answers (zeros if none)."""
    from pipeline.embed import EmbeddingCache, get_encoder

    cache = EmbeddingCache(get_encoder(encoder_id))
    segments = cache.encode(table.text.astype(str).tolist(), "query", progress=progress)
    questions = table.question.fillna("").astype(str)
    question_vectors = np.zeros_like(segments)
    asked = np.flatnonzero(questions.to_numpy() != "")
    if len(asked):
        question_vectors[asked] = cache.encode(questions.iloc[asked].tolist(), "query", progress=progress)
    return segments, question_vectors


def model_features(
    table: pd.DataFrame, encoder_id: str, context_weight: float, question_weight: float, progress: bool = False
) -> np.ndarray:
    """The classifier's input for a segment table in transcript order (see ``classify.context_features``)."""
    from pipeline.classify import context_features

    segments, questions = embed_segments(table, encoder_id, progress)
    return context_features(segments, questions, table.source.to_numpy(), context_weight, question_weight)


@dataclass
class ImpactModel:
    """A fitted linear head with Platt calibration and per-impact thresholds, plus its card."""

    card: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def impact_ids(self) -> list[str]:
        return list(self.card["codebook"]["impact_ids"])

    @property
    def thresholds(self) -> np.ndarray:
        return self.arrays["thresholds"]

    @property
    def name(self) -> str:
        return f"{self.card['name']}-{self.card['version']}"

    def features(self, table: pd.DataFrame, progress: bool = False) -> np.ndarray:
        train = self.card["params"]["train"]
        return model_features(
            table, self.card["encoder"]["id"], train["context_weight"], train["question_weight"], progress
        )

    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        from pipeline.classify import platt

        scores = X @ self.arrays["coef"].T + self.arrays["intercept"]
        return platt(scores, self.arrays["platt_a"], self.arrays["platt_b"])

    def predict_proba(self, table: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """Calibrated probability of each impact for each segment (rows in transcript order)."""
        return self.predict_proba_features(self.features(table, progress))

    def check_codebook(self, codebook: Codebook, where: str | Path | None = None) -> None:
        """Refuse a codebook other than the one the model was trained with."""
        trained = self.card["codebook"]
        if trained["sha256"] != codebook.sha256 or trained["impact_ids"] != codebook.impact_ids:
            raise InputError(
                f"model was trained with codebook {trained['id']} v{trained['version']} "
                f"(sha256 {trained['sha256'][:12]}), not {codebook.id} v{codebook.version} "
                f"(sha256 {codebook.sha256[:12]}); retrain it with `imri train --codebook ...`",
                where,
            )

    def save(self, folder: str | Path) -> Path:
        """Write ``head.npz`` and ``model.json`` into ``folder`` (replaced as a whole, atomically)."""
        import shutil
        import tempfile

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            np.savez(staging / HEAD_FILE, **{k: self.arrays[k] for k in HEAD_ARRAYS})
            (staging / CARD_FILE).write_text(
                json.dumps(self.card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                folder.rename(old)
                staging.rename(folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ImpactModel:
        """Load a model folder; a clear error if it is missing or not a model."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("no model folder here; build one with `imri train` (or `make demo`)", folder)
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
            with np.load(folder / HEAD_FILE, allow_pickle=False) as head:
                arrays = {k: head[k] for k in HEAD_ARRAYS}
        except FileNotFoundError as exc:
            raise InputError(f"not a model folder: {Path(exc.filename).name} is missing", folder) from None
        except (ValueError, KeyError, OSError) as exc:
            raise InputError(f"damaged model folder ({type(exc).__name__}: {str(exc)[:80]})", folder) from None
        for key in ("name", "version", "encoder", "codebook", "params"):
            if key not in card:
                raise InputError(f"model.json lacks {key!r}", folder)
        k = len(card["codebook"]["impact_ids"])
        if arrays["coef"].shape[0] != k or any(len(arrays[a]) != k for a in HEAD_ARRAYS if a != "coef"):
            raise InputError("head.npz does not match the impacts in model.json", folder)
        return cls(card, arrays)
