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

And ``review_effort`` (top level of metrics.json, :func:`review_effort`): how much of the review queue a
team must read before the coding agrees with a second human as well as two humans agree.

The transfer set never fits anything: no weights, calibration, thresholds or searches. It only
chooses between a few named variants (``evaluate.variants``), each reported in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.model import ClassifierConfig, GoldSet, f1_table


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

        return model_features(table, self.encoder, self.config, questions=questions, codebook=self.codebook)


#: Questions put in the interviewer's place by the interviewer shift (``question_shift``): the guide's own
#: impact question (:data:`pipeline.model.impact_model.GUIDE_QUESTION`), one about something else, and one that leads.
UNRELATED_QUESTION = {
    "en": "What did you have for breakfast this morning, and how did you get here today?",
    "fr": "Qu'avez-vous mangé ce matin, et comment êtes-vous venu ici aujourd'hui?",
}
LEADING_QUESTION = {
    "en": "Wouldn't you say the innovation caused conflict and resistance among the staff?",
    "fr": "Ne diriez-vous pas que l'innovation a causé des conflits et de la résistance dans l'équipe?",
}
INTERVIEWER_SHIFTS = ("guide", "unrelated", "leading", "removed")


def shift_interviewer(table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The segment table with every interviewer turn replaced by one question, or removed (``removed``).

    ``guide``, ``unrelated`` and ``leading`` put that question (in the transcript's language) in every
    interviewer segment and in the ``question`` each participant segment answers. Participant rows keep
    their order, so their features line up with the unshifted table's.
    """
    from pipeline.model import GUIDE_QUESTION

    if mode not in INTERVIEWER_SHIFTS:
        raise ValueError(f"interviewer shift must be one of {INTERVIEWER_SHIFTS}")
    interviewer = (table.role == "interviewer").to_numpy()
    if mode == "removed":
        return table[~interviewer].assign(question="").reset_index(drop=True)
    questions = {"guide": GUIDE_QUESTION, "unrelated": UNRELATED_QUESTION, "leading": LEADING_QUESTION}[mode]
    language = table.transcript_language.fillna("en").astype(str)
    asked = language.map(lambda lang: questions.get(lang, questions["en"]))
    out = table.copy()
    out.loc[interviewer, "text"] = asked[interviewer]
    out["question"] = asked.where(out.question.fillna("").astype(str) != "", "")
    return out


def coded_passages(gold: GoldSet, coder: str = "A") -> pd.DataFrame:
    """The passages a coder coded on participant speech: one row per span (``source, start, end``) with
    its ``codes`` (a tuple), ``text`` and ``language`` (its transcript's)."""
    codings = gold.codings[gold.codings.coder == coder]
    language = gold.segments.drop_duplicates("source").set_index("source").transcript_language
    segments = gold.segments
    rows = []
    for (source, start, end), group in codings.groupby(["source", "start", "end"], sort=True):
        if source not in gold.texts:
            continue
        around = segments[(segments.source == source) & (segments.end > start) & (segments.start < end)]
        overlap = np.clip(np.minimum(around.end, end) - np.maximum(around.start, start), 0, None)
        if not len(around) or overlap[(around.role == "participant").to_numpy()].sum() < 0.5 * overlap.sum():
            continue  # mostly interviewer speech: not a passage the model codes
        rows.append(
            {
                "source": source,
                "start": int(start),
                "end": int(end),
                "codes": tuple(sorted(set(group.code))),
                "text": gold.texts[source][start:end],
                "language": "fr" if language.get(source) == "fr" else "en",
            }
        )
    return pd.DataFrame(rows, columns=["source", "start", "end", "codes", "text", "language"])


def passage_hits(scores: np.ndarray, passages: pd.DataFrame, codebook: Codebook) -> np.ndarray:
    """Per passage, (impact top-1, impact top-3, category top-1) hits of its ranking of impacts."""
    ids = codebook.impact_ids
    categories = np.array([codebook.category_ids.index(codebook.category_of(i)) for i in ids])
    hits = np.zeros((len(passages), 3), dtype=bool)
    for row, codes in enumerate(passages.codes):
        coded = [ids.index(code) for code in codes if code in ids]
        order = np.argsort(-scores[row], kind="stable")
        hits[row] = (order[0] in coded, bool(set(order[:3]) & set(coded)), categories[order[0]] in categories[coded])
    return hits


def passage_figures(
    scores: np.ndarray,
    passages: pd.DataFrame,
    codebook: Codebook,
    sentence_scores: np.ndarray | None = None,
    inside: np.ndarray | None = None,
    sentence_languages: np.ndarray | None = None,
) -> dict:
    """Passage-level figures by language: how the passage's ranking of impacts meets the coder's codes
    (``impact_top1``, ``impact_top3``, ``category_top1``), and ``presence_auc``: how well the highest
    probability of a participant sentence tells whether it lies inside a coded passage (``inside``)."""
    from sklearn.metrics import roc_auc_score

    hits = passage_hits(scores, passages, codebook)
    out = {}
    for language in ("en", "fr"):
        rows = (passages.language == language).to_numpy()
        if not rows.any():
            continue
        entry = {
            "passages": int(rows.sum()),
            "impact_top1": round(float(hits[rows, 0].mean()), 4),
            "impact_top3": round(float(hits[rows, 1].mean()), 4),
            "category_top1": round(float(hits[rows, 2].mean()), 4),
        }
        if sentence_scores is not None:
            mine = sentence_languages == language
            if len(set(inside[mine])) == 2:
                entry["presence_auc"] = round(float(roc_auc_score(inside[mine], sentence_scores[mine].max(axis=1))), 4)
        out[language] = entry
    return out


def _passage_features(passages: pd.DataFrame, features: VariantFeatures) -> np.ndarray:
    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.model import unit_features

    cache = EmbeddingCache(get_encoder(features.encoder))
    vectors = cache.encode(passages.text.tolist(), "query")
    return unit_features(
        vectors, passages.language.to_numpy(), features.encoder, features.config, features.codebook, cache=cache
    )


def evaluate_variant(
    features: VariantFeatures,
    gold: GoldSet,
    transfer: TransferSet,
    n_boot: int = 200,
    seed: int = 0,
    with_per_code: bool = False,
) -> dict:
    """In-corpus CV (segments and passages, out of fold), the interviewer shift, cross-corpus transfer,
    transfer passages and turn top-1 for one model variant."""
    from pipeline.model import grouped_folds, rows_of, training_rows, turn_keys

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
    gold_passages = coded_passages(gold)
    XP = _passage_features(gold_passages, features)
    proba = np.zeros(Y.shape)
    predicted = np.zeros(Y.shape, dtype=np.int8)
    passage_proba = np.zeros((len(gold_passages), len(ids)))
    for train, test in grouped_folds(groups, config.cv_folds):
        model = config.make_model().fit(X[train], Y[train], groups[train], turns[train], rows_of(rows, train))
        proba[test] = model.predict_proba(X[test], turns[test])
        predicted[test] = (proba[test] >= model.thresholds_).astype(np.int8)
        held = gold_passages.source.isin(set(groups[test])).to_numpy()
        if held.any():
            passage_proba[held] = model.predict_proba(XP[held])
    in_corpus = _macro(Y, predicted, ids)
    sentence_languages = np.where(languages == "fr", "fr", "en")
    in_corpus_passages = passage_figures(
        passage_proba, gold_passages, codebook, proba, Y.any(axis=1), sentence_languages
    )

    model = config.make_model().fit(X, Y, groups, turns, rows)
    t_targets = transfer.targets
    t_table = transfer.gold.segments
    XT = features.features(t_table)[t_targets]
    t_turns = turn_keys(t_table)[t_targets]
    proba_t = model.predict_proba(XT, t_turns)
    predicted_t = (proba_t >= model.thresholds_).astype(np.int8)
    YA = transfer.gold.labels[t_targets]
    t_languages = t_table.transcript_language.to_numpy()[t_targets]
    clusters = t_table.source.to_numpy()[t_targets]
    question_shift = {"asked": {"macro_f1": _macro(YA, predicted_t, ids)}}
    for mode in INTERVIEWER_SHIFTS:
        shifted = shift_interviewer(t_table, mode)
        keep = (shifted.role != "interviewer").to_numpy()
        shifted_proba = model.predict_proba(features.features(shifted)[keep], turn_keys(shifted)[keep])
        question_shift[mode] = {
            "macro_f1": _macro(YA, (shifted_proba >= model.thresholds_).astype(np.int8), ids),
            "max_probability_change": round(float(np.abs(shifted_proba - proba_t).max()), 6),
        }
    question_shift["max_probability_change"] = max(
        question_shift[m]["max_probability_change"] for m in INTERVIEWER_SHIFTS
    )
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
    calibration = None
    if with_per_code:
        from pipeline.evaluate.scores import expected_calibration_error

        cross["per_code"] = f1_table(YA, predicted_t, ids)["per_code"]
        ece, diagram = expected_calibration_error(YA, proba_t)
        calibration = {"ece": ece, "reliability": diagram}
    t_passages = coded_passages(transfer.gold)
    t_passage_proba = model.predict_proba(_passage_features(t_passages, features))
    t_sentence_languages = np.where(t_languages == "fr", "fr", "en")
    return {
        "encoder": features.encoder,
        "in_corpus_macro_f1": in_corpus,
        "in_corpus_by_language": _by_language(Y, predicted, languages, ids),
        "in_corpus_passages": in_corpus_passages,
        "question_shift": question_shift,
        "cross_corpus": cross,
        "passages": passage_figures(
            t_passage_proba, t_passages, codebook, proba_t, YA.any(axis=1), t_sentence_languages
        ),
        "passage_hits": passage_hits(t_passage_proba, t_passages, codebook),  # for paired comparisons; not written
        "transfer_scores": (proba_t, model.thresholds_),  # for the review-effort replay; not written
        "turn_top1": turn_top1(transfer.table, proba_t, YA, codebook),
        **({"calibration": calibration} if calibration else {}),
    }


# --- zero-shot: no gold set at all -----------------------------------------------------------------


def prior_alone(transfer: TransferSet, codebook: Codebook, encoder_id: str, config) -> dict:
    """The codebook prior alone (what ``imri code --zero-shot`` scores with): passage figures and turn top-1.

    A passage is ranked by its similarity to each impact's codebook texts in its language (the nearest
    definition); a sentence by the same similarity of its passage embedding (``config``'s windows and turn).
    """
    from dataclasses import replace

    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.model import codebook_prototypes, model_features, prior_columns

    cache = EmbeddingCache(get_encoder(encoder_id))
    prior_config = replace(config, prior_weight=1.0, question_weight=0.0, codebook_weight=0.0)
    k = len(codebook.impacts)
    sentences = model_features(transfer.gold.segments, encoder_id, prior_config, codebook=codebook, cache=cache)
    sentences = sentences[transfer.targets][:, -k:]
    passages = coded_passages(transfer.gold)
    vectors = cache.encode(passages.text.tolist(), "query")
    scores = prior_columns(vectors, passages.language.to_numpy(), codebook_prototypes(codebook, encoder_id, cache))
    YA = transfer.gold.labels[transfer.targets]
    languages = transfer.table.transcript_language.to_numpy()
    figures = passage_figures(
        scores, passages, codebook, sentences, YA.any(axis=1), np.where(languages == "fr", "fr", "en")
    )
    return {
        "encoder": encoder_id,
        "passages": figures,
        "passage_hits": passage_hits(scores, passages, codebook),
        "turn_top1": turn_top1(transfer.table, sentences, YA, codebook),
    }


def codebook_head_rows(transfer: TransferSet, codebook: Codebook, encoder_id: str) -> dict:
    """Turn top-1 on the transfer set of the head trained on the codebook's texts alone (the zero-shot before
    issue 21), for comparison with the prior."""
    from pipeline.model import CodebookHead, embed_segments

    segments, _ = embed_segments(transfer.gold.segments, encoder_id)
    segments = segments[transfer.targets]
    YA = transfer.gold.labels[transfer.targets]
    return {
        "encoder": encoder_id,
        "turn_top1": turn_top1(transfer.table, CodebookHead(codebook, encoder_id).decision(segments), YA, codebook),
    }


def paired_bootstrap(
    hits_a: np.ndarray, hits_b: np.ndarray, clusters: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Mean of ``hits_a - hits_b`` (rows: passages; columns: figures, averaged) with a 95% interval from
    resampling whole transcripts (``clusters``), both variants on the same draw."""
    a, b = hits_a.astype(float).mean(axis=1), hits_b.astype(float).mean(axis=1)
    names, index = np.unique(clusters, return_inverse=True)
    sums_a = np.bincount(index, a, len(names))
    sums_b = np.bincount(index, b, len(names))
    counts = np.bincount(index, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    weights = np.stack([np.bincount(d, minlength=len(names)) for d in draws])
    n = weights @ counts
    diffs = (weights @ sums_a - weights @ sums_b) / np.maximum(n, 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {
        "value": round(float(a.mean() - b.mean()), 4),
        "ci95": [round(float(low), 4), round(float(high), 4)],
        "transcripts": int(len(names)),
        "passages": int(len(a)),
    }


def learning_curve(
    features: VariantFeatures, gold: GoldSet, transfer: TransferSet, sizes, draws: int = 3, seed: int = 0
) -> list[dict]:
    """Transfer passage figures of the configuration trained on ``n`` gold transcripts (half of each language
    where it can), ``draws`` random sets per size, averaged; ``n`` 0 is the codebook prior alone."""
    from pipeline.model import TrainingRows, training_rows, turn_keys

    codebook, config = features.codebook, features.config
    table = gold.segments
    targets = gold.targets
    X_all = features.features(table)
    rows_all = training_rows(table, features.encoder, config, codebook, targets)
    t_passages = coded_passages(transfer.gold)
    XP = _passage_features(t_passages, features)
    language = table.drop_duplicates("source").set_index("source").transcript_language
    by_language = {lang: sorted(language.index[language == lang]) for lang in ("en", "fr")}
    everything = sorted(language.index)
    rng = np.random.default_rng(seed)
    curve = []
    for size in sizes:
        if size == 0:
            figures = prior_alone(transfer, codebook, features.encoder, config)["passages"]
            curve.append({"transcripts": 0, "draws": 1, "passages": figures})
            continue
        size = min(int(size), len(everything))
        results = []
        for _ in range(1 if size == len(everything) else draws):
            if size == len(everything):
                chosen = everything
            else:
                half = size // 2
                chosen = list(rng.choice(by_language["en"], min(half, len(by_language["en"])), replace=False))
                chosen += list(
                    rng.choice(by_language["fr"], min(size - len(chosen), len(by_language["fr"])), replace=False)
                )
            keep = targets & table.source.isin(chosen).to_numpy()
            rows = TrainingRows((), rows_all.extra)
            model = config.make_model().fit(
                X_all[keep], gold.labels[keep], table.source.to_numpy()[keep], turn_keys(table)[keep], rows or None
            )
            results.append(passage_figures(model.predict_proba(XP), t_passages, codebook))
        averaged = {
            lang: {key: round(float(np.mean([r[lang][key] for r in results])), 4) for key in results[0][lang]}
            for lang in results[0]
        }
        curve.append({"transcripts": size, "draws": len(results), "passages": averaged})
    return curve


def load_transfer(folder, codebook: Codebook, segment_config, label_config, interviewers=()) -> TransferSet:
    """Read a transfer folder (``transcripts/`` + ``codings.csv``, coders A and optionally B)."""
    from pipeline.model import load_gold

    both = load_gold([folder], codebook, segment_config, label_config, None, interviewers=interviewers)
    coded_a = both.labelled_by(["A"], codebook.impact_ids, label_config)
    labels_b = None
    if "B" in set(both.codings.coder):
        from pipeline.model import segment_labels

        labels_b = segment_labels(coded_a.segments, both.codings, codebook.impact_ids, ["B"], label_config)
    return TransferSet(coded_a, labels_b)


# --- review effort: how much of the queue to read -----------------------------------------------------

#: the shares of participant text replayed by :func:`review_effort` (0, 5%, ..., 100%)
EFFORT_STEPS = tuple(round(0.05 * k, 2) for k in range(21))
#: random orders averaged for the comparison curve
EFFORT_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class CharacterCodes:
    """Coded characters: the non-space characters of the participant segments of a table.

    ``segment`` is each character's row in the table; ``a`` and ``b`` (characters x impacts, 0/1) whether
    coder A's and coder B's spans of each impact cover it; ``source`` its transcript (for the bootstrap).
    """

    segment: np.ndarray
    a: np.ndarray
    b: np.ndarray
    source: np.ndarray


def character_codes(
    table: pd.DataFrame, codings: pd.DataFrame, texts: dict[str, str], ids: list[str]
) -> CharacterCodes:
    """The :class:`CharacterCodes` of participant segments ``table`` (``source, start, end``) from coders A
    and B's ``codings`` (``source, start, end, code, coder``) of ``texts``."""
    import re

    column = {code: j for j, code in enumerate(ids)}
    segment_rows, a_blocks, b_blocks, sources = [], [], [], []
    for source, rows in table.groupby("source", sort=True).indices.items():
        text = texts[source]
        owner = np.full(len(text), -1, dtype=np.int64)
        for i in rows:
            owner[int(table.start.iat[i]) : int(table.end.iat[i])] = i
        letters = np.zeros(len(text), dtype=bool)
        for match in re.finditer(r"\S+", text):
            letters[match.start() : match.end()] = True
        positions = np.flatnonzero(letters & (owner >= 0))
        segment_rows.append(owner[positions])
        sources.append(np.full(len(positions), source, dtype=object))
        for coder, blocks in (("A", a_blocks), ("B", b_blocks)):
            cover = np.zeros((len(ids), len(text) + 1), dtype=np.int32)
            mine = codings[(codings.source == source) & (codings.coder == coder) & codings.code.isin(column)]
            for code, start, end in zip(mine.code, mine.start, mine.end, strict=True):
                cover[column[code], int(start)] += 1
                cover[column[code], int(end)] -= 1
            blocks.append((np.cumsum(cover[:, :-1], axis=1) > 0)[:, positions].T.astype(np.int8))
    empty = np.zeros((0, len(ids)), dtype=np.int8)
    return CharacterCodes(
        np.concatenate(segment_rows) if segment_rows else np.zeros(0, dtype=np.int64),
        np.concatenate(a_blocks) if a_blocks else empty,
        np.concatenate(b_blocks) if b_blocks else empty,
        np.concatenate(sources) if sources else np.zeros(0, dtype=object),
    )


def _kappa(x: np.ndarray, y: np.ndarray, ids: list[str], clusters: np.ndarray) -> float | None:
    value = mean_kappa(x, y, ids, clusters, 0, 0).get("value")
    return None if value is None else round(float(value), 4)


def replay_review(
    predicted: np.ndarray,
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    passage: np.ndarray,
    characters: np.ndarray,
    order: np.ndarray,
    share: float,
    ids: list[str],
    clusters: np.ndarray,
    chars: CharacterCodes | None = None,
) -> dict:
    """Review replayed on ``share`` of the text: the passages of ``order`` within it
    (:func:`pipeline.coding.within_budget`) take coder A's codes, the others keep the model's (``predicted``);
    the result is measured against coder B (mean Cohen's kappa over impacts) on segments and, with ``chars``,
    on characters (a reviewed passage's characters take A's spans).

    ``passage`` is each segment's passage (index into ``characters``, the passages' lengths).
    """
    from pipeline.coding import within_budget

    reviewed = within_budget(order, characters, share)
    on_segments = reviewed[passage]
    result = np.where(on_segments[:, None], labels_a, predicted)
    row = {
        "share": share,
        "reviewed_share": round(float(characters[reviewed].sum() / max(characters.sum(), 1e-9)), 4),
        "reviewed_passages": int(reviewed.sum()),
        "kappa_segments": _kappa(result, labels_b, ids, clusters),
    }
    if chars is not None:
        on_chars = on_segments[chars.segment]
        result_chars = np.where(on_chars[:, None], chars.a, predicted[chars.segment])
        row["kappa_characters"] = _kappa(result_chars, chars.b, ids, chars.source)
    return row


def _first_share(rows: list[dict], key: str, goal: float | None) -> float | None:
    """The reviewed share of the first row whose ``key`` reaches ``goal`` (None: never, or no goal)."""
    if goal is None:
        return None
    for row in rows:
        if row.get(key) is not None and row[key] >= goal - 1e-9:
            return row["reviewed_share"]
    return None


def effort_curve(
    predicted: np.ndarray,
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    passage: np.ndarray,
    characters: np.ndarray,
    order: np.ndarray,
    ids: list[str],
    clusters: np.ndarray,
    chars: CharacterCodes | None = None,
    steps=EFFORT_STEPS,
    seeds=EFFORT_SEEDS,
) -> dict:
    """:func:`replay_review` at each share of ``steps`` in the queue's ``order`` and in random orders (the
    mean over ``seeds``), next to A-vs-B, with the smallest reviewed share reaching 90% of the A-vs-B kappa
    and all of it.

    The share that reaches a goal is the one where every measured unit (segments, and characters with
    ``chars``) reaches it.
    """
    units = ["segments", *(["characters"] if chars is not None else [])]
    human = {"segments": _kappa(labels_a, labels_b, ids, clusters)}
    if chars is not None:
        human["characters"] = _kappa(chars.a, chars.b, ids, chars.source)
    queue = [
        replay_review(predicted, labels_a, labels_b, passage, characters, order, s, ids, clusters, chars) for s in steps
    ]
    rng = np.random.default_rng(list(seeds)[0] if seeds else 0)
    draws = []
    for _ in seeds:
        shuffled = rng.permutation(len(characters))
        draws.append(
            [
                replay_review(predicted, labels_a, labels_b, passage, characters, shuffled, s, ids, clusters, chars)
                for s in steps
            ]
        )
    random_rows = []
    for i, share in enumerate(steps):
        row = {"share": share}
        for key in ("reviewed_share", *(f"kappa_{u}" for u in units)):
            values = [d[i][key] for d in draws if d[i][key] is not None]
            row[key] = round(float(np.mean(values)), 4) if values else None
        random_rows.append(row)

    def reached(rows: list[dict], fraction: float) -> float | None:
        shares = [_first_share(rows, f"kappa_{u}", None if human[u] is None else fraction * human[u]) for u in units]
        return None if any(s is None for s in shares) else max(shares)

    def by_unit(rows: list[dict], fraction: float) -> dict:
        goal = {u: None if human[u] is None else fraction * human[u] for u in units}
        return {u: _first_share(rows, f"kappa_{u}", goal[u]) for u in units}

    return {
        "a_vs_b": human,
        "queue": queue,
        "random": random_rows,
        "random_seeds": len(seeds),
        "reviewed_share_at_90pct_human": reached(queue, 0.9),
        "reviewed_share_at_human": reached(queue, 1.0),
        "random_reviewed_share_at_90pct_human": reached(random_rows, 0.9),
        "random_reviewed_share_at_human": reached(random_rows, 1.0),
        "by_unit": {
            "queue": {"at_90pct_human": by_unit(queue, 0.9), "at_human": by_unit(queue, 1.0)},
            "random": {"at_90pct_human": by_unit(random_rows, 0.9), "at_human": by_unit(random_rows, 1.0)},
        },
    }


#: the most a default review budget may take (issue 22's target on the bundled new study)
MAX_DEFAULT_BUDGET = 0.20


def review_effort(transfer: TransferSet, proba: np.ndarray, thresholds: np.ndarray, codebook: Codebook) -> dict:
    """``review_effort`` in metrics.json: the review of the transfer set replayed in the queue's order.

    ``proba`` holds the probabilities of the default model trained on the gold set for the transfer set's
    participant segments (``transfer.table``'s rows). Passages (participant turns, cut as ``imri code`` cuts
    them with the default ``review.passage_segments``) are ranked as ``imri code`` ranks them
    (:func:`pipeline.coding.review_budget`); for each share of participant text (characters) from 0 to 1, the
    passages within it take coder A's codes and the others keep the model's, and the result is measured
    against coder B on segments and on characters, next to A-vs-B; and the same for random orders.
    ``recommended_budget`` is the queue's share at 90% of the A-vs-B kappa, at most :data:`MAX_DEFAULT_BUDGET`.
    """
    from pipeline.coding import ReviewConfig, passage_keys, review_budget

    if transfer.labels_b is None:
        return {"not_run": "the transfer set has no second coder (B)"}
    ids = codebook.impact_ids
    table = transfer.table
    targets = transfer.targets
    labels_a = transfer.gold.labels[targets]
    labels_b = transfer.labels_b[targets]
    predicted = (proba >= thresholds).astype(np.int8)
    keys = passage_keys(table, ReviewConfig().passage_segments)  # imri code's passages, at the default size
    lengths = (table.end - table.start).to_numpy()
    plan = review_budget(keys, lengths, proba, thresholds, 1.0)
    chars = character_codes(table, transfer.gold.codings, transfer.gold.texts, ids)
    clusters = table.source.to_numpy()
    curve = effort_curve(predicted, labels_a, labels_b, plan.passage, plan.characters, plan.order, ids, clusters, chars)
    at_90 = curve["reviewed_share_at_90pct_human"]
    step = next((row["share"] for row in curve["queue"] if row["reviewed_share"] == at_90), None)
    return {
        "data": "the transfer set: the default model trained on the gold set; coder A reviews, coder B judges",
        "order": f"passages (participant turns, cut into at most {ReviewConfig().passage_segments} segments) by "
        "expected gain in kappa per character, as imri code queues them",
        "passages": int(len(plan.characters)),
        "segments": int(len(table)),
        **curve,
        "recommended_budget": round(min(step if step is not None else MAX_DEFAULT_BUDGET, MAX_DEFAULT_BUDGET), 2),
        "recommended_by": "the smallest share of the queue reaching 90% of the A-vs-B kappa, "
        f"at most {MAX_DEFAULT_BUDGET}",
    }
