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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.embed import EmbeddingCache

HEAD_FILE = "head.npz"
CARD_FILE = "model.json"
HEAD_ARRAYS = ("coef", "intercept", "platt_a", "platt_b", "thresholds", "positives")


#: The interview guide's generic impact question (study.md), by language: what every interviewer
#: question becomes under the ``guide`` question shift and in question-augmented training.
GUIDE_QUESTION = {
    "en": "What has been the impact of implementing this innovation, from your point of view?",
    "fr": "Quel a été l'impact de l'implantation de cette innovation, selon vous?",
}
QUESTION_MODES = ("asked", "guide", "none")


def question_texts(table: pd.DataFrame, mode: str = "asked") -> pd.Series:
    """The question each segment answers: as asked, replaced by the guide's generic one, or none."""
    if mode not in QUESTION_MODES:
        raise InputError(f"question mode must be one of {', '.join(QUESTION_MODES)}")
    asked = table.question.fillna("").astype(str)
    if mode == "asked":
        return asked
    if mode == "none":
        return pd.Series([""] * len(table), index=table.index)
    language = table.transcript_language.fillna("en").astype(str)
    guide = language.map(lambda lang: GUIDE_QUESTION.get(lang, GUIDE_QUESTION["en"]))
    return guide.where(asked != "", "")


def default_encoder_id(params: dict) -> str:
    """The encoder ``params.yaml: embed`` names: ``embed.encoder`` at ``embed.precision`` (``fp32`` | ``int8``).

    ``{"encoder": "e5-small", "precision": "int8"}`` gives ``e5-small-int8`` (:func:`pipeline.embed.encoder_id`).
    """
    from pipeline.embed import encoder_id

    embed = params.get("embed") or {}
    return encoder_id(embed.get("encoder") or "e5-small", embed.get("precision") or "fp32")


def embed_segments(
    table: pd.DataFrame,
    encoder_id: str,
    progress: bool = False,
    questions: str = "asked",
    *,
    cache: EmbeddingCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of each segment's text and of the interviewer question it answers (zeros if none).

    ``cache`` is an open :class:`pipeline.embed.EmbeddingCache` of that encoder to reuse (a run that
    embeds transcript by transcript reads the cache's shards once); by default one is opened.
    """
    if cache is None:
        from pipeline.embed import EmbeddingCache, get_encoder

        cache = EmbeddingCache(get_encoder(encoder_id))
    elif cache.encoder.id != encoder_id:
        raise ValueError(f"the embedding cache is {cache.encoder.id!r}'s, not {encoder_id!r}'s")
    segments = cache.encode(table.text.astype(str).tolist(), "query", progress=progress)
    texts = question_texts(table, questions)
    question_vectors = np.zeros_like(segments)
    asked = np.flatnonzero(texts.to_numpy() != "")
    if len(asked):
        question_vectors[asked] = cache.encode(texts.iloc[asked].tolist(), "query", progress=progress)
    return segments, question_vectors


def codebook_texts(codebook: Codebook) -> tuple[list[str], np.ndarray]:
    """Each impact's names (en, fr), ``name: definition`` and include hints, with the impact index of each."""
    texts, owners = [], []
    for j, impact in enumerate(codebook.impacts):
        entries = [impact.name["en"], impact.name["fr"], f"{impact.name['en']}: {impact.definition}", *impact.include]
        texts += entries
        owners += [j] * len(entries)
    return texts, np.asarray(owners)


def codebook_similarity(
    segments: np.ndarray, codebook: Codebook, encoder_id: str, *, cache: EmbeddingCache | None = None
) -> np.ndarray:
    """Per impact, the highest cosine similarity between a segment and that impact's codebook texts."""
    from pipeline.classify import ZeroShotScorer
    from pipeline.embed import EmbeddingCache, get_encoder

    texts, owners = codebook_texts(codebook)
    descriptions = (cache or EmbeddingCache(get_encoder(encoder_id))).encode(texts, "passage")
    return ZeroShotScorer(descriptions, owners, len(codebook.impacts)).decision(segments)


class CodebookHead:
    """Zero-shot from the codebook alone: a ridge head trained on the codebook's own texts.

    Each impact's names (English and French), ``name: definition`` and include hints are training
    examples of that impact (embedded as segments are); the head scores segments on those. Nothing
    comes from a gold set.
    """

    def __init__(self, codebook: Codebook, encoder_id: str, alpha: float = 1.0) -> None:
        from pipeline.classify import RidgeScorer
        from pipeline.embed import EmbeddingCache, get_encoder

        texts, owners = codebook_texts(codebook)
        vectors = EmbeddingCache(get_encoder(encoder_id)).encode(texts, "query")
        Y = np.zeros((len(texts), len(codebook.impacts)), dtype=np.int8)
        Y[np.arange(len(texts)), owners] = 1
        self.scorer = RidgeScorer(alpha=alpha, min_positives=1).fit(vectors, Y)
        self.dim = vectors.shape[1]

    def fit(self, X: np.ndarray, Y: np.ndarray | None = None) -> CodebookHead:
        """Nothing to learn from a gold set (the scorer interface of :mod:`pipeline.classify`)."""
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Scores of segment embeddings (extra feature columns past the embedding are ignored)."""
        return self.scorer.decision(X[:, : self.dim])


def model_features(
    table: pd.DataFrame,
    encoder_id: str,
    context_weight: float,
    question_weight: float,
    progress: bool = False,
    *,
    questions: str = "asked",
    codebook: Codebook | None = None,
    codebook_weight: float = 0.0,
    cache: EmbeddingCache | None = None,
) -> np.ndarray:
    """The classifier's input for a segment table in transcript order (see ``classify.context_features``).

    ``questions`` replaces every interviewer question by the guide's (``guide``) or drops it
    (``none``); ``codebook_weight`` appends the similarity to each impact's codebook texts. With
    ``question_weight`` 0 the questions are not embedded at all (their columns are zeros either way).
    ``cache``: see :func:`embed_segments`.
    """
    from pipeline.classify import context_features

    if not question_weight:
        questions = "none"
    segments, question_vectors = embed_segments(table, encoder_id, progress, questions, cache=cache)
    X = context_features(segments, question_vectors, table.source.to_numpy(), context_weight, question_weight)
    if codebook_weight:
        if codebook is None:
            raise InputError("codebook features need the codebook")
        similarity = codebook_similarity(segments, codebook, encoder_id, cache=cache)
        X = np.hstack([X, codebook_weight * similarity]).astype(np.float32)
    return X


def turn_keys(table: pd.DataFrame) -> np.ndarray:
    """One key per segment naming its turn (``source:turn``), for smoothing over turns."""
    return (table.source.astype(str) + ":" + table.turn.astype(str)).to_numpy()


def training_rows(table: pd.DataFrame, encoder_id: str, config, codebook: Codebook | None, rows: np.ndarray):
    """The extra training rows a configuration asks for (:class:`pipeline.classify.TrainingRows`).

    ``question_augment``: the same segments with the guide's generic question and with none;
    ``codebook_examples``: each impact's definition and include hints, labelled with that impact,
    as a segment whose neighbours are itself and that answers no question.
    """
    from pipeline.classify import TrainingRows

    views = []
    if config.question_augment:
        for mode in ("guide", "none"):
            views.append(
                model_features(
                    table,
                    encoder_id,
                    config.context_weight,
                    config.question_weight,
                    questions=mode,
                    codebook=codebook,
                    codebook_weight=config.codebook_weight,
                )[rows]
            )
    extra = None
    if config.codebook_examples:
        if codebook is None:
            raise InputError("codebook examples need the codebook")
        from pipeline.classify import ZeroShotScorer
        from pipeline.embed import EmbeddingCache, get_encoder

        texts, owners = [], []
        for j, impact in enumerate(codebook.impacts):
            entries = [f"{impact.name['en']}: {impact.definition}", *impact.include]
            texts += entries
            owners += [j] * len(entries)
        vectors = EmbeddingCache(get_encoder(encoder_id)).encode(texts, "query")
        parts = [vectors, config.context_weight * vectors, np.zeros_like(vectors)]
        if config.codebook_weight:
            all_texts, all_owners = codebook_texts(codebook)
            descriptions = EmbeddingCache(get_encoder(encoder_id)).encode(all_texts, "passage")
            sims = ZeroShotScorer(descriptions, all_owners, len(codebook.impacts)).decision(vectors)
            parts.append(config.codebook_weight * sims)
        Y = np.zeros((len(texts), len(codebook.impacts)), dtype=np.int8)
        Y[np.arange(len(texts)), owners] = 1
        extra = (np.hstack(parts).astype(np.float32), Y)
    return TrainingRows(tuple(views), extra)


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

    @property
    def encoder_id(self) -> str:
        """The encoder the head was trained on, which is the one that codes with it (e.g. ``e5-small-int8``)."""
        return self.card["encoder"]["id"]

    def features(
        self,
        table: pd.DataFrame,
        progress: bool = False,
        codebook: Codebook | None = None,
        *,
        cache: EmbeddingCache | None = None,
    ) -> np.ndarray:
        """The model's input for a segment table (the codebook is needed when the model uses it as features).

        ``cache``: an open embedding cache of the model's encoder to reuse (see :func:`embed_segments`).
        """
        train = self.card["params"]["train"]
        return model_features(
            table,
            self.encoder_id,
            train["context_weight"],
            train["question_weight"],
            progress,
            codebook=codebook,
            codebook_weight=train.get("codebook_weight", 0.0),
            cache=cache,
        )

    def predict_proba_features(self, X: np.ndarray, table: pd.DataFrame | None = None) -> np.ndarray:
        """Calibrated probabilities from features; with ``table``, smoothed over turns as the model was."""
        from pipeline.classify import platt, smooth_by_turn

        scores = X @ self.arrays["coef"].T + self.arrays["intercept"]
        proba = platt(scores, self.arrays["platt_a"], self.arrays["platt_b"])
        smoothing = self.card["params"]["train"].get("turn_smoothing", 0.0)
        return smooth_by_turn(proba, turn_keys(table) if table is not None else None, smoothing)

    def predict_proba(
        self, table: pd.DataFrame, progress: bool = False, codebook: Codebook | None = None
    ) -> np.ndarray:
        """Calibrated probability of each impact for each segment (rows in transcript order)."""
        return self.predict_proba_features(self.features(table, progress, codebook), table)

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
