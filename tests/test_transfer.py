"""Shift-robustness: turn top-1, question shift, training rows, turn smoothing, the transfer corpus files."""

import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import load_codebook
from pipeline.errors import InputError
from pipeline.evaluate import turn_top1
from pipeline.ingest import resolve_passages
from pipeline.model import GUIDE_QUESTION, CalibratedModel, RidgeScorer, TrainingRows, question_texts, smooth_by_turn
from tests.conftest import ROOT


def test_turn_top1_worked_example():
    codebook = load_codebook()
    ids = codebook.impact_ids
    k = len(ids)
    growth, providers, conflict = (
        ids.index("being_growth_service_users"),
        ids.index("being_growth_service_providers"),
        ids.index("interacting_conflict"),
    )
    table = pd.DataFrame(
        {
            "source": ["a.txt"] * 5 + ["b.txt"] * 2,
            "turn": [1, 1, 3, 3, 5, 1, 1],
            "transcript_language": ["en"] * 5 + ["fr"] * 2,
        }
    )
    labels = np.zeros((7, k), dtype=np.int8)
    labels[0, growth] = 1  # turn a:1 coded growth (users) only
    labels[2, conflict] = 1  # turn a:3 coded conflict ...
    labels[3, growth] = 1  # ... and growth: two impacts, not counted
    labels[6, providers] = 1  # turn b:1 coded growth (providers); a:5 is uncoded, not counted
    proba = np.zeros((7, k))
    proba[1, growth] = 0.9  # the best impact of a:1, on its other segment: a hit
    proba[5, growth] = 0.8  # b:1's best is growth (users): same category as providers, not the same impact
    proba[6, providers] = 0.7  # providers second: in the top 3
    out = turn_top1(table, proba, labels, codebook)
    assert out["all"]["turns"] == 2
    assert out["en"] == {
        "turns": 1,
        "impact_top1": 1.0,
        "impact_top3": 1.0,
        "category_top1": 1.0,
        "category_top3": 1.0,
    }
    assert out["fr"]["impact_top1"] == 0.0 and out["fr"]["impact_top3"] == 1.0 and out["fr"]["category_top1"] == 1.0
    assert out["all"]["impact_top1"] == 0.5


def test_question_texts_guide_and_none():
    table = pd.DataFrame(
        {
            "question": ["How did the training go?", "", "Comment ça s'est passé?"],
            "transcript_language": ["en", "en", "fr"],
        }
    )
    assert question_texts(table, "asked").tolist() == table.question.tolist()
    assert question_texts(table, "guide").tolist() == [GUIDE_QUESTION["en"], "", GUIDE_QUESTION["fr"]]
    assert question_texts(table, "none").tolist() == ["", "", ""]
    with pytest.raises(InputError):
        question_texts(table, "paraphrase")


def test_smooth_by_turn_mixes_each_row_with_its_turn_max():
    P = np.array([[0.2, 0.0], [0.8, 0.1], [0.4, 0.6]])
    turns = np.array(["a:1", "a:1", "a:2"])
    smoothed = smooth_by_turn(P, turns, 0.5)
    assert np.allclose(smoothed, [[0.5, 0.05], [0.8, 0.1], [0.4, 0.6]])
    assert smooth_by_turn(P, turns, 0.0) is P


def test_extra_rows_give_a_head_to_an_impact_the_data_never_shows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    Y = np.zeros((60, 2), dtype=np.int8)
    Y[:, 0] = X[:, 0] > 0
    groups = np.repeat(np.arange(6), 10)
    extra_X = np.tile([[0.0, 0.0, 0.0, 5.0]], (6, 1))
    extra_Y = np.tile([[0, 1]], (6, 1))
    plain = CalibratedModel(lambda: RidgeScorer(1.0, 3), 3).fit(X, Y, groups)
    with_extra = CalibratedModel(lambda: RidgeScorer(1.0, 3), 3).fit(
        X, Y, groups, rows=TrainingRows(extra=(extra_X, extra_Y))
    )
    assert not plain.scorer_.coef_[1].any()  # no positives: no head
    assert with_extra.scorer_.coef_[1, 3] > 0  # the codebook-style examples taught it
    # views add training rows of the same segments only within each fold
    view = X.copy()
    view[:, 1] = 0
    viewed = CalibratedModel(lambda: RidgeScorer(1.0, 3), 3).fit(X, Y, groups, rows=TrainingRows(views=(view,)))
    assert viewed.oof_proba_.shape == Y.shape


TEXT = (
    "Interviewer: What changed for you?\n"
    "Tenant 1: Well, it’s hard to say. I felt better after the group. I use my plan now.\n"
    "Interviewer: Anything else?\n"
    "Tenant 1: Not really. I felt better after the group.\n"
)


def test_anchored_passages_resolve_to_offsets():
    entries = [{"from": "it's hard to say.", "to": "I use my plan now.", "codes": ["being_growth_service_users"]}]
    (coding,) = resolve_passages(TEXT, entries, "x.txt", "A", "x.A.yaml")
    assert TEXT[coding.start : coding.end] == "it’s hard to say. I felt better after the group. I use my plan now."
    ambiguous = [{"from": "I felt better after the group.", "to": "now.", "codes": ["x"]}]
    with pytest.raises(InputError, match="occurs 2 times"):
        resolve_passages(TEXT, ambiguous, "x.txt", "A", "x.A.yaml")
    with pytest.raises(InputError, match="not found verbatim"):
        resolve_passages(TEXT, [{"from": "never said", "to": "now.", "codes": ["x"]}], "x.txt", "A", "x.A.yaml")


def test_the_bundled_transfer_codings_are_what_the_coder_files_say(tmp_path):
    """codings.csv is compiled from the coders' files; rebuilding gives the same table."""
    import shutil

    from pipeline.ingest import build_coded_folder

    folder = tmp_path / "transfer"
    shutil.copytree(ROOT / "data" / "transfer" / "transcripts", folder / "transcripts")
    shutil.copytree(ROOT / "data" / "transfer" / "codings", folder / "codings")
    build_coded_folder(folder)
    rebuilt = pd.read_csv(folder / "codings.csv")
    bundled = pd.read_csv(ROOT / "data" / "transfer" / "codings.csv")
    pd.testing.assert_frame_equal(rebuilt, bundled)
    assert set(rebuilt.coder) == {"A", "B"} and rebuilt.source.nunique() == 16


def test_prior_blend_is_one_linear_map_and_weight_one_is_the_prior_alone():
    from pipeline.model import PriorBlendScorer, RidgeScorer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    prior = rng.normal(size=(60, 3)).astype(np.float32)
    Y = (rng.random((60, 3)) < 0.3).astype(np.int8)
    features = np.hstack([X, prior])
    blend = PriorBlendScorer(RidgeScorer(1.0, 1), 0.3).fit(features, Y)
    head = RidgeScorer(1.0, 1).fit(X, Y).decision(X)
    z = lambda a: (a - a.mean(axis=0)) / a.std(axis=0)  # noqa: E731
    np.testing.assert_allclose(blend.decision(features), 0.7 * z(head) + 0.3 * z(prior), atol=1e-5)
    alone = PriorBlendScorer(RidgeScorer(1.0, 1), 1.0).fit(features, Y)
    np.testing.assert_allclose(alone.decision(features), z(prior), atol=1e-5)
    # nothing is learned from the labels
    other = PriorBlendScorer(RidgeScorer(1.0, 1), 1.0).fit(features, 1 - Y)
    np.testing.assert_allclose(other.decision(features), alone.decision(features))


def test_passage_texts_windows_and_turns():
    from pipeline.model import ClassifierConfig, PassageTexts

    table = pd.DataFrame(
        {
            "source": ["a.txt"] * 6,
            "turn": [0, 1, 1, 1, 1, 2],
            "role": ["interviewer", "participant", "participant", "participant", "participant", "participant"],
            "text": ["Q?", "s1", "s2", "s3", "s4", "t1"],
        }
    )
    config = ClassifierConfig(window_weight=1.0, turn_weight=1.0, window_sentences=3)
    speaks = (table.role == "participant").to_numpy()
    passages = PassageTexts.of(table, speaks, config)
    texts = passages.texts
    assert passages.segments.tolist() == [-1, 0, 1, 2, 3, 4]  # the interviewer's question is not read
    assert texts[passages.turn[1]] == "s1 s2 s3 s4" and texts[passages.turn[5]] == "t1"
    assert [texts[i] for i in passages.windows[1]] == ["s1 s2 s3"]
    assert [texts[i] for i in passages.windows[2]] == ["s1 s2 s3", "s2 s3 s4"]
    assert [texts[i] for i in passages.windows[5]] == ["t1"]  # a short turn is its own window
    vectors = np.eye(len(texts), dtype=np.float32)
    mean = passages.mean_vectors(vectors, config)
    expected = (
        vectors[1] + vectors[passages.turn[2]] + (vectors[passages.windows[2][0]] + vectors[passages.windows[2][1]]) / 2
    ) / 3
    np.testing.assert_allclose(mean[2], expected)
    assert not mean[0].any()


def test_passage_hits_and_paired_bootstrap():
    from pipeline.evaluate import paired_bootstrap, passage_hits

    codebook = load_codebook()
    ids = codebook.impact_ids
    passages = pd.DataFrame({"codes": [(ids[0],), (ids[1], ids[5])], "language": ["en", "fr"]})
    scores = np.zeros((2, len(ids)))
    scores[0, ids.index(ids[2])] = 1.0  # first passage: wrong first, right impact second
    scores[0, 0] = 0.5
    scores[1, 5] = 1.0  # second passage: one of its two codes first
    hits = passage_hits(scores, passages, codebook)
    category_0 = codebook.category_of(ids[0]) == codebook.category_of(ids[2])
    assert hits.tolist() == [[False, True, category_0], [True, True, True]]
    a = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 1]], dtype=bool)
    same = paired_bootstrap(a, a, np.array(["x", "x", "y", "z"]), 200)
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0]
    better = paired_bootstrap(a, np.zeros_like(a), np.array(["x", "x", "y", "z"]), 200)
    assert better["value"] == round(float(a.mean(axis=1).mean()), 4)
    assert 0 <= better["ci95"][0] < better["value"] < better["ci95"][1]


def test_turn_smoothing_comes_before_calibration():
    """Platt scaling is fitted on the smoothed scores, so the out-of-fold probabilities match the observed rate
    of each impact (a logistic fit's mean equals its labels' mean); smoothing after it pushed them up."""
    rng = np.random.default_rng(1)
    n, groups = 600, np.repeat(np.arange(12), 50)
    turns = np.repeat(np.arange(150), 4)
    X = rng.normal(size=(n, 6))
    Y = ((X[:, :3] + rng.normal(scale=1.5, size=(n, 3))) > 1.2).astype(np.int8)
    model = CalibratedModel(lambda: RidgeScorer(1.0, 1), 4, turn_smoothing=0.5).fit(X, Y, groups, turns)
    np.testing.assert_allclose(model.oof_proba_.mean(axis=0), Y.mean(axis=0), atol=2e-3)
    # and prediction smooths the same way before the same Platt parameters
    proba = model.predict_proba(X, turns)
    scores = smooth_by_turn(model.scorer_.decision(X), turns, 0.5)
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-(scores * model.platt_a_ + model.platt_b_))))
