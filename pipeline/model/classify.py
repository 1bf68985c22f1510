"""Multi-label impact classifiers: a scorer per approach, then shared calibration and thresholds.

Every model here is ``scorer -> calibration -> per-code threshold``:

1. a *scorer* gives one raw score per (segment, impact): a logistic-regression head on
   embeddings (the product), TF-IDF + logistic regression, lexical overlap with coded text (in the
   spirit of NVivo's "autocode from existing coding patterns"), or zero-shot similarity to the
   codebook's descriptions;
2. out-of-fold scores from cross-validation **grouped by transcript** fit one Platt sigmoid per
   impact (calibrated probabilities);
3. the threshold of each impact maximises F1 on those out-of-fold probabilities.

The empty set is "no impact". Scorers take plain arrays (features or texts) and 0/1 label matrices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from pipeline.errors import InputError
from pipeline.params import ParamsSection

if TYPE_CHECKING:  # scikit-learn is imported where it fits: `imri code` only applies a fitted head
    from sklearn.linear_model import LogisticRegression

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


@dataclass(frozen=True)
class ClassifierConfig(ParamsSection):
    """``params.yaml: train``."""

    section: ClassVar[str] = "train"

    head: str = "ridge"  # ridge | logreg
    C: float = 1.0  # logreg: inverse regularisation
    alpha: float = 1.0  # ridge: regularisation
    class_weight: str | None = "balanced"
    context_weight: float = 0.5  # neighbouring segments' mean embedding, scaled
    question_weight: float = 0.0  # the interviewer question's embedding, scaled (> 0: the interviewer moves the codes)
    question_augment: bool = False  # also train on each segment with the guide's generic question and with none
    codebook_weight: float = 0.0  # similarity to each impact's codebook texts as extra features, scaled
    codebook_examples: bool = False  # the codebook's definitions and include hints as extra training examples
    turn_smoothing: float = 0.0  # p <- (1 - s) * p + s * (max of p over the segment's turn)
    cv_folds: int = 5  # grouped folds for calibration and thresholds
    min_positives: int = 3  # impacts with fewer positive segments get no head (probability 0)
    # context from every neighbouring segment, interviewer turns included (True: how models before issue 21 read
    # a transcript); False: a participant segment's features come from participant speech only
    interviewer_context: bool = False
    # passage scoring: a participant sentence is scored on the weighted mean of its own embedding, the mean of the
    # windows of ``window_sentences`` consecutive sentences of its turn that hold it, and its whole turn's
    sentence_weight: float = 1.0
    window_weight: float = 1.0
    turn_weight: float = 1.0
    window_sentences: int = 3
    # the codebook prior's share of each decision: similarity to the impact's codebook texts in the segment's
    # language, blended with the trained head (0: the head alone; 1: the prior alone, as with no gold set).
    # These defaults are the ones chosen on the transfer set (params.yaml's train section says the same).
    prior_weight: float = 0.2

    @staticmethod
    def settings(params: dict) -> dict:
        """``params.yaml``'s train section without what is not the classifier's (``coders``, ``encoder``)."""
        return {k: v for k, v in (params.get("train") or {}).items() if k not in ("coders", "encoder")}

    def make_model(self) -> CalibratedModel:
        """A fresh calibrated model with this configuration's scorer and turn smoothing."""
        return CalibratedModel(self.make_scorer, self.cv_folds, self.turn_smoothing)

    def make_scorer(self):
        """A fresh, unfitted scorer for the configured head (blended with the codebook prior when it has a weight)."""
        if self.head == "ridge":
            head = RidgeScorer(self.alpha, self.min_positives)
        elif self.head == "logreg":
            head = LogRegScorer(self.C, self.class_weight, self.min_positives)
        else:
            raise InputError(f"unknown head {self.head!r}: choose ridge or logreg")
        return PriorBlendScorer(head, self.prior_weight) if self.prior_weight else head

    @property
    def passage_weights(self) -> tuple[float, float, float]:
        """(sentence, window, turn) weights, summing to 1."""
        weights = (self.sentence_weight, self.window_weight, self.turn_weight)
        if min(weights) < 0 or not sum(weights):
            raise InputError("train.sentence_weight, window_weight and turn_weight must be >= 0, not all 0")
        return tuple(w / sum(weights) for w in weights)


# --- features --------------------------------------------------------------------------------


def neighbour_mean(vectors: np.ndarray, sources: np.ndarray, speaks: np.ndarray | None = None) -> np.ndarray:
    """Mean of the previous and next row of the same transcript; zeros for a row with neither.

    ``speaks`` (a mask) restricts both the rows and their neighbours to those rows (participant speech):
    the neighbours of a participant segment are then the participant segments around it, whatever
    the interviewer said in between, and the other rows get zeros.
    """
    out = np.zeros_like(vectors)
    rows = np.arange(len(vectors)) if speaks is None else np.flatnonzero(speaks)
    if not len(rows):
        return out
    own, where = vectors[rows], sources[rows]
    neighbours = np.zeros_like(own)
    counts = np.zeros((len(rows), 1), dtype=np.float32)
    same_prev = np.r_[False, where[1:] == where[:-1]]
    same_next = np.r_[where[:-1] == where[1:], False]
    neighbours[same_prev] += own[np.flatnonzero(same_prev) - 1]
    counts[same_prev] += 1
    neighbours[same_next] += own[np.flatnonzero(same_next) + 1]
    counts[same_next] += 1
    out[rows] = neighbours / np.maximum(counts, 1)
    return out


def context_features(
    segment_vectors: np.ndarray,
    question_vectors: np.ndarray,
    sources: np.ndarray,
    context_weight: float,
    question_weight: float,
    speaks: np.ndarray | None = None,
    context_vectors: np.ndarray | None = None,
) -> np.ndarray:
    """``[segment, w_c * mean(previous, next segment of the same transcript), w_q * question]``.

    Rows must be in transcript order (sorted by source, then start). ``speaks``: see
    :func:`neighbour_mean`. ``context_vectors`` are what the neighbours contribute (default: ``segment_vectors``).
    """
    context = neighbour_mean(segment_vectors if context_vectors is None else context_vectors, sources, speaks)
    return np.hstack([segment_vectors, context_weight * context, question_weight * question_vectors]).astype(np.float32)


# --- scorers ---------------------------------------------------------------------------------


class LogRegScorer:
    """One class-weighted logistic regression per impact on dense features."""

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", min_positives: int = 3) -> None:
        self.C, self.class_weight, self.min_positives = C, class_weight, min_positives

    def fit(self, X: np.ndarray, Y: np.ndarray) -> LogRegScorer:
        from sklearn.linear_model import LogisticRegression

        k = Y.shape[1]
        self.coef_ = np.zeros((k, X.shape[1]), dtype=np.float64)
        self.intercept_ = np.full(k, -10.0)  # impacts without a head score as "never"
        for j in range(k):
            if Y[:, j].sum() < self.min_positives or Y[:, j].sum() == len(Y):
                continue
            head = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=3000)
            head.fit(X, Y[:, j])
            self.coef_[j], self.intercept_[j] = head.coef_[0], head.intercept_[0]
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_


class RidgeScorer:
    """Multi-output ridge regression on ±1 targets: every impact in one linear solve.

    Much faster than one logistic regression per impact, so nested grouped cross-validation stays
    cheap on a laptop; its scores are calibrated by Platt scaling like every other scorer's.
    """

    def __init__(self, alpha: float = 1.0, min_positives: int = 3) -> None:
        self.alpha, self.min_positives = alpha, min_positives

    def fit(self, X: np.ndarray, Y: np.ndarray) -> RidgeScorer:
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=self.alpha).fit(X, 2.0 * Y - 1.0)
        self.coef_, self.intercept_ = np.atleast_2d(model.coef_).astype(np.float64), np.asarray(model.intercept_)
        rare = Y.sum(axis=0) < self.min_positives
        self.coef_[rare], self.intercept_[rare] = 0.0, -10.0
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_


class PriorBlendScorer:
    """A trained head blended with the codebook prior: ``(1 - w) z(head) + w z(prior)``, per impact.

    The last ``n_impacts`` feature columns hold the prior (similarity of the segment to each impact's
    codebook texts, :func:`pipeline.model.impact_model.prior_columns`); the head is fitted on the other columns. Both
    are standardised with their training rows' mean and spread, so the weight is a share of evidence
    whatever the scales; Platt scaling then turns the blend into probabilities. ``weight`` 1 is the prior
    alone (nothing is fitted but the standardisation).
    """

    def __init__(self, head, weight: float) -> None:
        if not 0 <= weight <= 1:
            raise InputError(f"train.prior_weight must lie between 0 and 1, not {weight}")
        self.head, self.weight = head, weight

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return X[:, : -self.n_impacts_], X[:, -self.n_impacts_ :]

    def fit(self, X: np.ndarray, Y: np.ndarray) -> PriorBlendScorer:
        self.n_impacts_ = Y.shape[1]
        features, prior = self._split(X)
        self.head_columns_ = features.shape[1]
        self.prior_scale_ = (prior.mean(axis=0), np.maximum(prior.std(axis=0), 1e-9))
        if self.weight < 1:
            self.head.fit(features, Y)
            head = self.head.decision(features)
            self.head_scale_ = (head.mean(axis=0), np.maximum(head.std(axis=0), 1e-9))
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_

    @property
    def coef_(self) -> np.ndarray:
        """The blend as one linear map over every feature column (what a model folder stores)."""
        k = self.n_impacts_
        prior = np.diag(self.weight / self.prior_scale_[1])
        if self.weight == 1:
            return np.hstack([np.zeros((k, self.head_columns_)), prior])
        head = (1 - self.weight) * self.head.coef_ / self.head_scale_[1][:, None]
        return np.hstack([head, prior])

    @property
    def intercept_(self) -> np.ndarray:
        intercept = -self.weight * self.prior_scale_[0] / self.prior_scale_[1]
        if self.weight < 1:
            intercept = (
                intercept + (1 - self.weight) * (self.head.intercept_ - self.head_scale_[0]) / self.head_scale_[1]
            )
        return intercept


class TfidfLogRegScorer:
    """TF-IDF (word 1-2 grams + character 3-5 grams) and one logistic regression per impact."""

    def __init__(self, C: float = 4.0, min_positives: int = 3) -> None:
        self.C, self.min_positives = C, min_positives

    def fit(self, texts: np.ndarray, Y: np.ndarray) -> TfidfLogRegScorer:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union

        self.vectorizer_ = make_union(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents=None),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True, max_features=50000),
        )
        X = self.vectorizer_.fit_transform(list(texts))
        self.heads_: list[LogisticRegression | None] = []
        for j in range(Y.shape[1]):
            if Y[:, j].sum() < self.min_positives:
                self.heads_.append(None)
                continue
            head = LogisticRegression(C=self.C, class_weight="balanced", solver="liblinear", dual=True)
            # the dual problem: far more n-grams than segments (gold set: 29,069 x 4,146), 21 heads in 0.9 s
            # against 22.4 s for the primal, the same L2-regularised model. On labels the n-grams barely
            # separate (a team's own codes) liblinear stops at its 100 iterations and warns once per head and
            # fold, dozens of lines in `imri evaluate`; the baseline is that capped fit (its figures as
            # reported), so the warning says nothing to the user
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.heads_.append(head.fit(X, Y[:, j]))
        return self

    def decision(self, texts: np.ndarray) -> np.ndarray:
        X = self.vectorizer_.transform(list(texts))
        return np.column_stack(
            [h.decision_function(X) if h is not None else np.full(X.shape[0], -10.0) for h in self.heads_]
        )


_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmers():
    """Snowball stemmers for English and French (built once: building them is slow)."""
    import snowballstemmer

    return snowballstemmer.stemmer("english"), snowballstemmer.stemmer("french")


class LexicalScorer:
    """Word-stem overlap with each impact's coded text (NVivo-style "coding patterns").

    Each impact gets a profile: the stems over-represented in its coded segments compared with
    all segments (log-odds, positive only). A segment's score is the profile weight of its stems,
    normalised by its length.
    """

    def __init__(self, min_count: int = 2) -> None:
        self.min_count = min_count

    @staticmethod
    @lru_cache(maxsize=200_000)  # cross-validation sees each text many times
    def _stems(text: str) -> frozenset[str]:
        english, french = _stemmers()
        words = [w.lower() for w in _WORD.findall(text)]
        return frozenset(english.stemWords(words)) | frozenset(french.stemWords(words))

    def fit(self, texts: np.ndarray, Y: np.ndarray) -> LexicalScorer:
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer_ = CountVectorizer(analyzer=self._stems, binary=True, min_df=self.min_count)
        X = self.vectorizer_.fit_transform(list(texts)).astype(np.float64)
        background = (np.asarray(X.sum(axis=0)).ravel() + 1) / (X.shape[0] + 2)
        profiles = []
        for j in range(Y.shape[1]):
            rows = Y[:, j].astype(bool)
            inside = (np.asarray(X[rows].sum(axis=0)).ravel() + 0.5) / (rows.sum() + 1)
            profiles.append(np.clip(np.log(inside / background), 0, None) if rows.any() else np.zeros(X.shape[1]))
        self.profiles_ = np.vstack(profiles)
        return self

    def decision(self, texts: np.ndarray) -> np.ndarray:
        X = self.vectorizer_.transform(list(texts)).astype(np.float64)
        lengths = np.sqrt(np.asarray(X.sum(axis=1)).ravel() + 1)
        return np.asarray(X @ self.profiles_.T) / lengths[:, None]


class ZeroShotScorer:
    """Cosine similarity between a segment and its closest description of each impact.

    ``descriptions`` is a ``(n_descriptions, dim)`` matrix of embedded codebook texts (names,
    definitions and include hints, English and French) and ``owners`` the impact index of each row.
    Nothing is learned from labels.
    """

    def __init__(self, descriptions: np.ndarray, owners: np.ndarray, n_impacts: int) -> None:
        self.descriptions, self.owners, self.n_impacts = descriptions, owners, n_impacts

    def fit(self, X: np.ndarray, Y: np.ndarray | None = None) -> ZeroShotScorer:
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        sims = X[:, : self.descriptions.shape[1]] @ self.descriptions.T
        scores = np.full((len(X), self.n_impacts), -1.0)
        for j in range(self.n_impacts):
            rows = self.owners == j
            if rows.any():
                scores[:, j] = sims[:, rows].max(axis=1)
        return scores


# --- calibration and thresholds ----------------------------------------------------------------


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``p = 1 / (1 + exp(-(a * s + b)))`` fitted on out-of-fold scores."""
    if y.min() == y.max():
        return 0.0, (8.0 if y.max() else -8.0)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def platt(scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(scores * a + b)))


def best_thresholds(Y: np.ndarray, P: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Per impact, the threshold on the grid that maximises F1 (0.5 for impacts with no positives)."""
    thresholds = np.full(Y.shape[1], 0.5)
    for j in range(Y.shape[1]):
        y = Y[:, j].astype(bool)
        if not y.any():
            continue
        predicted = P[:, j][:, None] >= grid[None, :]
        tp = (predicted & y[:, None]).sum(axis=0)
        f1 = 2 * tp / np.maximum(predicted.sum(axis=0) + y.sum(), 1)
        thresholds[j] = grid[int(np.argmax(f1))]
    return thresholds


def grouped_folds(groups: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that never split one transcript between training and test."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise InputError("cross-validation needs at least two transcripts")
    return list(GroupKFold(n_splits=min(n_splits, n_groups)).split(np.zeros(len(groups)), groups=groups))


def smooth_by_turn(P: np.ndarray, turns: np.ndarray | None, weight: float) -> np.ndarray:
    """``(1 - weight) * P + weight * (max of P over the rows of the same turn)``.

    Coders code passages, not sentences: a sentence inside a passage that is clearly about an
    impact takes part of that evidence. ``turns`` holds one key per row (e.g. ``source:turn``).
    """
    if not weight or turns is None or len(P) == 0:
        return P
    import pandas as pd

    turn_max = pd.DataFrame(P).groupby(np.asarray(turns)).transform("max").to_numpy()
    return (1.0 - weight) * P + weight * turn_max


@dataclass
class TrainingRows:
    """Rows a model trains on besides the data it is calibrated on.

    ``views`` are other feature matrices of the same rows (for example the same segments with the
    guide's generic question, or with none): within each fold only the training rows' views are
    added. ``extra`` are ``(X, Y)`` rows that are always in training and never scored (the
    codebook's own texts as examples).
    """

    views: tuple[np.ndarray, ...] = ()
    extra: tuple[np.ndarray, np.ndarray] | None = None

    def stack(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``X``/``Y`` (restricted to ``rows``) with the views of those rows and the extra rows."""
        rows = np.arange(len(Y)) if rows is None else rows
        xs, ys = [X[rows]], [Y[rows]]
        for view in self.views:
            xs.append(view[rows])
            ys.append(Y[rows])
        if self.extra is not None:
            xs.append(self.extra[0])
            ys.append(self.extra[1])
        return np.vstack(xs), np.vstack(ys)

    def __bool__(self) -> bool:
        return bool(self.views) or self.extra is not None


@dataclass
class CalibratedModel:
    """A scorer factory wrapped with grouped-CV Platt calibration and per-impact thresholds.

    ``fit(X, Y, groups)``: out-of-fold scores (grouped folds) -> optional smoothing over each turn ->
    Platt per impact -> thresholds, then the scorer refitted on all data.
    ``predict_proba`` / ``predict`` as in scikit-learn (``turns`` keys rows by turn when smoothing).
    """

    make_scorer: object  # callable returning a fresh scorer
    cv_folds: int = 5
    turn_smoothing: float = 0.0
    oof_proba_: np.ndarray | None = None

    def fit(
        self,
        X,
        Y: np.ndarray,
        groups: np.ndarray,
        turns: np.ndarray | None = None,
        rows: TrainingRows | None = None,
    ) -> CalibratedModel:
        Y = np.asarray(Y)
        rows = rows or TrainingRows()
        oof = np.zeros(Y.shape, dtype=np.float64)
        for train, test in grouped_folds(np.asarray(groups), self.cv_folds):
            if rows:
                scorer = self.make_scorer().fit(*rows.stack(X, Y, train))
            else:
                scorer = self.make_scorer().fit(_take(X, train), Y[train])
            oof[test] = scorer.decision(_take(X, test))
        # smoothed over turns first, then calibrated: Platt scaling sees the scores it will turn into probabilities
        # (smoothing calibrated probabilities pushed them up: 0.45 predicted for 0.23 observed out of fold)
        oof = smooth_by_turn(oof, turns, self.turn_smoothing)
        params = [fit_platt(oof[:, j], Y[:, j]) for j in range(Y.shape[1])]
        self.platt_a_ = np.array([p[0] for p in params])
        self.platt_b_ = np.array([p[1] for p in params])
        self.oof_proba_ = platt(oof, self.platt_a_, self.platt_b_)
        self.thresholds_ = best_thresholds(Y, self.oof_proba_)
        self.scorer_ = self.make_scorer().fit(*rows.stack(X, Y)) if rows else self.make_scorer().fit(X, Y)
        return self

    def predict_proba(self, X, turns: np.ndarray | None = None) -> np.ndarray:
        scores = smooth_by_turn(self.scorer_.decision(X), turns, self.turn_smoothing)
        return platt(scores, self.platt_a_, self.platt_b_)

    def predict(self, X, turns: np.ndarray | None = None) -> np.ndarray:
        return (self.predict_proba(X, turns) >= self.thresholds_).astype(np.int8)


def _take(X, rows: np.ndarray):
    return X[rows] if not isinstance(X, list) else [X[i] for i in rows]


def rows_of(rows: TrainingRows | None, index: np.ndarray) -> TrainingRows | None:
    """The training rows restricted to the rows ``index`` (their views; the extra rows stay whole)."""
    if not rows:
        return None
    return TrainingRows(tuple(view[index] for view in rows.views), rows.extra)


def cross_validated_proba(
    make_model,
    X,
    Y: np.ndarray,
    groups: np.ndarray,
    n_splits: int = 5,
    turns: np.ndarray | None = None,
    rows: TrainingRows | None = None,
    shifted: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Nested, grouped cross-validation: each transcript's probabilities and 0/1 predictions come
    from a model (with its own calibration and thresholds) that never saw that transcript.

    ``shifted`` maps a name to other features of the same rows (e.g. with every question replaced):
    each fold's model also predicts those, and a third value ``{name: 0/1 predictions}`` is returned.
    """
    proba = np.zeros(Y.shape, dtype=np.float64)
    predicted = np.zeros(Y.shape, dtype=np.int8)
    shifted_predicted = {name: np.zeros(Y.shape, dtype=np.int8) for name in shifted or {}}
    groups = np.asarray(groups)
    for train, test in grouped_folds(groups, n_splits):
        model = make_model().fit(
            _take(X, train),
            Y[train],
            groups[train],
            None if turns is None else turns[train],
            rows_of(rows, train),
        )
        test_turns = None if turns is None else turns[test]
        proba[test] = model.predict_proba(_take(X, test), test_turns)
        predicted[test] = (proba[test] >= model.thresholds_).astype(np.int8)
        for name, features in (shifted or {}).items():
            shifted_predicted[name][test] = model.predict(features[test], test_turns)
    if shifted is not None:
        return proba, predicted, shifted_predicted
    return proba, predicted
