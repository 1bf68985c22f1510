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
#: ``model.json: calibration``: scores are smoothed over turns, then Platt-scaled (older models: the reverse)
CALIBRATION = "platt after turn smoothing"


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

    ``{"encoder": "e5-small", "precision": "int8"}`` gives ``e5-small-int8``
    (:func:`pipeline.embed.encoders.encoder_id`).
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

    ``cache`` is an open :class:`pipeline.embed.encoders.EmbeddingCache` of that encoder to reuse (a run that
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
    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.model.classify import ZeroShotScorer

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
        from pipeline.embed import EmbeddingCache, get_encoder
        from pipeline.model.classify import RidgeScorer

        texts, owners = codebook_texts(codebook)
        vectors = EmbeddingCache(get_encoder(encoder_id)).encode(texts, "query")
        Y = np.zeros((len(texts), len(codebook.impacts)), dtype=np.int8)
        Y[np.arange(len(texts)), owners] = 1
        self.scorer = RidgeScorer(alpha=alpha, min_positives=1).fit(vectors, Y)
        self.dim = vectors.shape[1]

    def fit(self, X: np.ndarray, Y: np.ndarray | None = None) -> CodebookHead:
        """Nothing to learn from a gold set (the scorer interface of :mod:`pipeline.model.classify`)."""
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Scores of segment embeddings (extra feature columns past the embedding are ignored)."""
        return self.scorer.decision(X[:, : self.dim])


def speaking_rows(table: pd.DataFrame, config) -> np.ndarray:
    """Rows whose speech the features read: participant segments, or every row with ``interviewer_context``."""
    if config.interviewer_context:
        return np.ones(len(table), dtype=bool)
    return (table.role != "interviewer").to_numpy()


@dataclass
class PassageTexts:
    """The texts a participant sentence is scored on besides its own: its windows and its turn.

    ``texts`` lists every text to embed (segments first, in row order, then windows, then turns);
    ``windows[i]`` / ``turn[i]`` are indices into ``texts`` of row ``i``'s windows and turn (empty for rows
    that are not read). A window is ``size`` consecutive sentences of one participant turn; a turn with
    no more sentences than that is its own window.
    """

    texts: list[str]
    segments: np.ndarray  # row -> index into texts (-1: not embedded)
    windows: list[list[int]]
    turn: np.ndarray  # row -> index into texts (-1: none)

    @classmethod
    def of(cls, table: pd.DataFrame, speaks: np.ndarray, config) -> PassageTexts:
        text = table.text.astype(str).to_numpy()
        segments = np.full(len(table), -1)
        segments[speaks] = np.arange(int(speaks.sum()))
        texts = list(text[speaks])
        windows: list[list[int]] = [[] for _ in range(len(table))]
        turn = np.full(len(table), -1)
        _, weight_window, weight_turn = config.passage_weights
        if not (weight_window or weight_turn):
            return cls(texts, segments, windows, turn)
        participant = np.flatnonzero(speaks & (table.role != "interviewer").to_numpy())
        keys = turn_keys(table)[participant]
        size = max(int(config.window_sentences), 1)
        for rows in pd.Series(participant).groupby(keys, sort=False).agg(list):
            whole = len(texts)
            texts.append(" ".join(text[rows]))
            turn[rows] = whole
            if len(rows) <= size:
                for row in rows:
                    windows[row] = [whole]
                continue
            for first in range(len(rows) - size + 1):
                texts.append(" ".join(text[rows[first : first + size]]))
                for row in rows[first : first + size]:
                    windows[row].append(len(texts) - 1)
        return cls(texts, segments, windows, turn)

    def mean_vectors(self, vectors: np.ndarray, config) -> np.ndarray:
        """Per row, the weighted mean of its own, its windows' and its turn's embeddings (zeros if not read)."""
        weight_sentence, weight_window, weight_turn = config.passage_weights
        out = np.zeros((len(self.segments), vectors.shape[1]), dtype=np.float32)
        read = self.segments >= 0
        out[read] = vectors[self.segments[read]]
        has_turn = self.turn >= 0
        if not has_turn.any():
            return out
        blended = weight_sentence * out[has_turn] + weight_turn * vectors[self.turn[has_turn]]
        window = np.stack([vectors[self.windows[i]].mean(axis=0) for i in np.flatnonzero(has_turn)])
        out[has_turn] = blended + weight_window * window
        return out


def segment_languages(table: pd.DataFrame) -> np.ndarray:
    """Each segment's language (its transcript's where it has none), ``en`` or ``fr``: which codebook texts apply."""
    language = table.language.astype(object).where(table.language.notna(), table.transcript_language)
    return np.where(language.astype(str) == "fr", "fr", "en")


def codebook_prototypes(codebook: Codebook, encoder_id: str, cache: EmbeddingCache | None = None) -> dict:
    """Per language, each impact's prototype: the normalised mean embedding of its codebook texts in that
    language (name, ``name: definition``, include hints; :meth:`pipeline.codebook.Impact.texts`)."""
    from pipeline.embed import EmbeddingCache, get_encoder

    key = (encoder_id, codebook.sha256, codebook.impact_ids_key)
    if key in _PROTOTYPES:
        return _PROTOTYPES[key]
    cache = cache or EmbeddingCache(get_encoder(encoder_id))
    texts, owners, languages = [], [], []
    for language in ("en", "fr"):
        for j, impact in enumerate(codebook.impacts):
            entries = impact.texts(language)
            texts += entries
            owners += [j] * len(entries)
            languages += [language] * len(entries)
    # one call for both languages (an int8 encoder's vector moves with its batch), kept for the process: every
    # transcript of a run, whichever window it falls in, is scored against the same prototypes
    vectors = cache.encode(texts, "query")
    owners_array, language_array = np.asarray(owners), np.asarray(languages)
    prototypes = {}
    for language in ("en", "fr"):
        mine = language_array == language
        means = np.stack([vectors[mine & (owners_array == j)].mean(axis=0) for j in range(len(codebook.impacts))])
        prototypes[language] = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    _PROTOTYPES[key] = prototypes
    return prototypes


#: prototypes computed in this process, by (encoder id, codebook sha256, impact ids)
_PROTOTYPES: dict[tuple, dict] = {}


def prior_columns(vectors: np.ndarray, languages: np.ndarray, prototypes: dict) -> np.ndarray:
    """The codebook prior: cosine of each row to each impact's prototype in the row's language."""
    out = np.zeros((len(vectors), len(prototypes["en"])), dtype=np.float32)
    for language, prototype in prototypes.items():
        rows = languages == language
        if rows.any():
            out[rows] = vectors[rows] @ prototype.T
    return out


def embed_for_features(
    table: pd.DataFrame, encoder_id: str, config, progress=False, *, cache: EmbeddingCache | None = None
) -> tuple[PassageTexts, np.ndarray]:
    """Every text the features of ``table`` read (segments, windows, turns), embedded in one call."""
    if cache is None:
        from pipeline.embed import EmbeddingCache, get_encoder

        cache = EmbeddingCache(get_encoder(encoder_id))
    elif cache.encoder.id != encoder_id:
        raise ValueError(f"the embedding cache is {cache.encoder.id!r}'s, not {encoder_id!r}'s")
    passages = PassageTexts.of(table, speaking_rows(table, config), config)
    return passages, cache.encode(passages.texts, "query", progress=progress)


def model_features(
    table: pd.DataFrame,
    encoder_id: str,
    config,
    progress: bool = False,
    *,
    questions: str = "asked",
    codebook: Codebook | None = None,
    cache: EmbeddingCache | None = None,
) -> np.ndarray:
    """The classifier's input for a segment table in transcript order, for a :class:`ClassifierConfig`.

    ``[passage embedding, w_c * context, w_q * question, (w_b * codebook similarity), (codebook prior)]``:

    * the passage embedding of a participant sentence is the weighted mean of its own embedding, its
      windows' and its turn's (``sentence_weight``, ``window_weight``, ``turn_weight``);
    * context is the mean of the neighbouring participant segments (every neighbouring segment with
      ``interviewer_context``); the question is the interviewer question's embedding (``question_weight``;
      ``questions`` replaces every question by the guide's, or drops it);
    * the prior (``prior_weight`` > 0) is the similarity to each impact's codebook texts in the segment's
      language, the last columns (:class:`pipeline.model.classify.PriorBlendScorer`).

    With ``interviewer_context`` off and ``question_weight`` 0 (the defaults) nothing an interviewer says
    is embedded or read: a participant segment's features are the same whatever the questions were.
    """
    from pipeline.model.classify import context_features

    passages, vectors = embed_for_features(table, encoder_id, config, progress, cache=cache)
    own = np.zeros((len(table), vectors.shape[1]), dtype=np.float32)
    read = passages.segments >= 0
    own[read] = vectors[passages.segments[read]]
    passage = passages.mean_vectors(vectors, config)
    question_vectors = np.zeros_like(own)
    if config.question_weight:
        _, question_vectors = embed_segments(table, encoder_id, progress, questions, cache=cache)
    speaks = None if config.interviewer_context else read
    X = context_features(
        passage,
        question_vectors,
        table.source.to_numpy(),
        config.context_weight,
        config.question_weight,
        speaks,
        context_vectors=own,
    )
    extra = []
    if config.codebook_weight:
        if codebook is None:
            raise InputError("codebook features need the codebook")
        extra.append(config.codebook_weight * codebook_similarity(passage, codebook, encoder_id, cache=cache))
    if config.prior_weight:
        if codebook is None:
            raise InputError("the codebook prior needs the codebook")
        prototypes = codebook_prototypes(codebook, encoder_id, cache)
        extra.append(prior_columns(passage, segment_languages(table), prototypes))
    return np.hstack([X, *extra]).astype(np.float32) if extra else X


def unit_features(
    vectors: np.ndarray,
    languages: np.ndarray,
    encoder_id: str,
    config,
    codebook: Codebook | None = None,
    *,
    cache: EmbeddingCache | None = None,
) -> np.ndarray:
    """Features of texts scored on their own (a coded passage, a codebook definition): each text is its
    own passage and its own context, and answers no question; the columns of :func:`model_features`."""
    parts = [vectors, config.context_weight * vectors, np.zeros_like(vectors)]
    if config.codebook_weight:
        parts.append(config.codebook_weight * codebook_similarity(vectors, codebook, encoder_id, cache=cache))
    if config.prior_weight:
        parts.append(prior_columns(vectors, languages, codebook_prototypes(codebook, encoder_id, cache)))
    return np.hstack(parts).astype(np.float32)


def score_texts(
    texts: list[str], languages: np.ndarray, model, encoder_id: str, config, codebook, cache=None
) -> np.ndarray:
    """Calibrated probabilities of a fitted :class:`pipeline.model.classify.CalibratedModel` for whole texts."""
    from pipeline.embed import EmbeddingCache, get_encoder

    cache = cache or EmbeddingCache(get_encoder(encoder_id))
    vectors = cache.encode(list(texts), "query")
    return model.predict_proba(unit_features(vectors, np.asarray(languages), encoder_id, config, codebook, cache=cache))


def turn_keys(table: pd.DataFrame) -> np.ndarray:
    """One key per segment naming its turn (``source:turn``), for smoothing over turns."""
    return (table.source.astype(str) + ":" + table.turn.astype(str)).to_numpy()


def training_rows(table: pd.DataFrame, encoder_id: str, config, codebook: Codebook | None, rows: np.ndarray):
    """The extra training rows a configuration asks for (:class:`pipeline.model.classify.TrainingRows`).

    ``question_augment``: the same segments with the guide's generic question and with none;
    ``codebook_examples``: each impact's definition and include hints in each language, labelled with that
    impact, scored on their own (:func:`unit_features`).
    """
    from pipeline.model.classify import TrainingRows

    views = []
    if config.question_augment:
        for mode in ("guide", "none"):
            views.append(model_features(table, encoder_id, config, questions=mode, codebook=codebook)[rows])
    extra = None
    if config.codebook_examples:
        if codebook is None:
            raise InputError("codebook examples need the codebook")
        from pipeline.embed import EmbeddingCache, get_encoder

        texts, owners, languages = [], [], []
        for language in ("en", "fr"):
            for j, impact in enumerate(codebook.impacts):
                entries = impact.texts(language)[1:]  # ``name: definition`` and the include hints
                if language == "fr" and not impact.definition_fr:
                    continue  # no French texts: the English ones are already there
                texts += entries
                owners += [j] * len(entries)
                languages += [language] * len(entries)
        cache = EmbeddingCache(get_encoder(encoder_id))
        vectors = cache.encode(texts, "query")
        X = unit_features(vectors, np.asarray(languages), encoder_id, config, codebook, cache=cache)
        Y = np.zeros((len(texts), len(codebook.impacts)), dtype=np.int8)
        Y[np.arange(len(texts)), owners] = 1
        extra = (X, Y)
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
        return model_features(table, self.encoder_id, self.config, progress, codebook=codebook, cache=cache)

    @property
    def config(self):
        """The :class:`pipeline.model.classify.ClassifierConfig` the model was trained with.

        A model trained before issue 21 has none of its settings in its card: it read its context from every
        neighbouring segment, scored sentences alone and had no prior, and still does.
        """
        from pipeline.model.classify import ClassifierConfig

        before = {
            "interviewer_context": True,
            "question_weight": 0.5,
            "window_weight": 0.0,
            "turn_weight": 0.0,
            "prior_weight": 0.0,
        }
        return ClassifierConfig.from_dict({**before, **self.card["params"]["train"]})

    def predict_proba_features(self, X: np.ndarray, table: pd.DataFrame | None = None) -> np.ndarray:
        """Calibrated probabilities from features; with ``table``, smoothed over turns as the model was."""
        from pipeline.model.classify import platt, smooth_by_turn

        scores = X @ self.arrays["coef"].T + self.arrays["intercept"]
        smoothing = self.card["params"]["train"].get("turn_smoothing", 0.0)
        turns = turn_keys(table) if table is not None else None
        if self.card.get("calibration") != CALIBRATION:  # a model from before issue 22: smoothed after Platt
            return smooth_by_turn(platt(scores, self.arrays["platt_a"], self.arrays["platt_b"]), turns, smoothing)
        return platt(smooth_by_turn(scores, turns, smoothing), self.arrays["platt_a"], self.arrays["platt_b"])

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
