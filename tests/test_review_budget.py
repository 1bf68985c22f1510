"""The review budget (which passages ``imri code`` queues) and the review-effort replay (``imri evaluate``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import load_codebook
from pipeline.coding import (
    ReviewConfig,
    code_segments,
    expected_changes,
    kappa_weights,
    passage_keys,
    review_budget,
    summarise,
    within_budget,
)
from pipeline.errors import InputError
from pipeline.evaluate import CharacterCodes, character_codes, effort_curve, mean_kappa, replay_review

BOOK = load_codebook()
IDS = BOOK.impact_ids


# --- the budget: a worked example -------------------------------------------------------------------


def tiny_table() -> tuple[pd.DataFrame, np.ndarray]:
    """Three participant passages (turns 1, 2, 3) and an interviewer question, two impacts in play.

    Lengths: turn 1 one segment of 10 characters, turn 2 two of 10 and 30, turn 3 one of 20 (70 in all).
    """
    table = pd.DataFrame(
        {
            "source": ["a.txt"] * 5,
            "segment_id": [f"a.txt#{i}" for i in range(5)],
            "start": [0, 20, 40, 50, 90],
            "end": [18, 30, 50, 80, 110],
            "speaker": ["I", "P", "P", "P", "P"],
            "role": ["interviewer", "participant", "participant", "participant", "participant"],
            "turn": [0, 1, 2, 2, 3],
            "language": ["en"] * 5,
            "text": ["q", "x", "y", "z", "w"],
            "question": ["", "q", "q", "q", "q"],
        }
    )
    proba = np.full((5, len(IDS)), 0.0)
    a, b = 0, 1  # two impacts; every other impact is certain (probability 0)
    proba[0, [a, b]] = [0.5, 0.5]  # interviewer: never queued
    proba[1, [a, b]] = [0.5, 0.1]  # turn 1
    proba[2, [a, b]] = [0.9, 0.1]  # turn 2
    proba[3, [a, b]] = [0.4, 0.0]
    proba[4, [a, b]] = [0.7, 0.45]  # turn 3
    return table, proba


def test_expected_changes_and_kappa_weights_by_hand():
    _, proba = tiny_table()
    participant = proba[1:]
    thresholds = np.full(len(IDS), 0.5)
    # a code given is wrong with 1 - p, one not given with p
    assert expected_changes(participant, thresholds)[:, None].round(6).ravel().tolist() == [0.6, 0.2, 0.4, 0.75]
    weights = kappa_weights(participant)
    # prevalence of impact a: mean p = 0.625; of b: 0.1625; the others 0 -> floor 0.01
    raw = np.array([1 / (0.625 * 0.375), 1 / (0.1625 * 0.8375)] + [1 / (0.01 * 0.99)] * (len(IDS) - 2))
    assert np.allclose(weights, raw / raw.mean())
    assert weights.mean() == pytest.approx(1.0)


def test_budget_queues_the_most_valuable_passages_that_fit():
    table, proba = tiny_table()
    thresholds = np.full(len(IDS), 0.5)
    rows = np.arange(1, 5)
    keys = table.turn.to_numpy()[rows]
    lengths = (table.end - table.start).to_numpy()[rows]
    weights = kappa_weights(proba[rows])
    changes = expected_changes(proba[rows], thresholds, weights)
    # by hand: a passage's value is its characters' mean of their segment's expected (weighted) changes
    values = [changes[0], (10 * changes[1] + 30 * changes[2]) / 40, changes[3]]
    plan = review_budget(keys, lengths, proba[rows], thresholds, 0.5)
    assert np.allclose(plan.value, values)
    assert plan.characters.tolist() == [10, 40, 20]
    assert plan.order.tolist() == [2, 0, 1]  # turn 3, turn 1, turn 2
    # 0.5 of 70 characters = 35: turn 3 (20) and turn 1 (10) fit, turn 2 (40) does not
    assert plan.queued.tolist() == [True, False, True]
    assert plan.share == pytest.approx(30 / 70)
    # 0.25 = 17.5 characters: turn 3 (20) is passed over, turn 1 (10) still fits
    assert review_budget(keys, lengths, proba[rows], thresholds, 0.25).queued.tolist() == [True, False, False]
    assert not review_budget(keys, lengths, proba[rows], thresholds, 0.0).queued.any()
    assert review_budget(keys, lengths, proba[rows], thresholds, 1.0).queued.all()


def test_code_segments_queue_and_summary_follow_the_budget():
    table, proba = tiny_table()
    thresholds, positives = np.full(len(IDS), 0.5), np.full(len(IDS), 100)
    segments, queue = code_segments(table, proba, thresholds, positives, BOOK, ReviewConfig(budget=0.5))
    # turn 3's segment first, then turn 1's; turn 2 and the interviewer are not queued
    assert queue.segment_id.tolist() == ["a.txt#4", "a.txt#1"]
    assert queue.priority.is_monotonic_decreasing
    assert segments.needs_review.tolist() == [False, True, False, False, True]
    review = summarise(segments, BOOK, "test-1", ReviewConfig(budget=0.5))["review"]
    assert review["budget"] == 0.5
    assert (review["queued_passages"], review["queued_segments"]) == (2, 2)
    assert (review["unreviewed_passages"], review["unreviewed_segments"]) == (1, 2)
    assert review["queued_share_of_participant_text"] == pytest.approx(round(30 / 70, 4))
    assert review["queued_share_of_participant_text"] + review["unreviewed_share_of_participant_text"] == 1.0
    # turn 2's confidences: [0.9, 0.1] -> least certain 0.8 -> 0.9; [0.4, 0.0] -> 0.2 -> 0.6
    assert review["unreviewed_mean_confidence"] == pytest.approx(0.75)
    # a whole passage is queued or not: its segments go together, in text order
    table2 = pd.concat([table, table.assign(source="b.txt", segment_id=table.segment_id.str.replace("a", "b"))])
    proba2 = np.vstack([proba, proba])
    _, queue2 = code_segments(
        table2.reset_index(drop=True), proba2, thresholds, positives, BOOK, ReviewConfig(budget=1.0)
    )
    assert len(queue2) == 8
    turns = list(zip(queue2.source, table2.set_index("segment_id").loc[queue2.segment_id].turn, strict=True))
    assert [t for i, t in enumerate(turns) if i == 0 or t != turns[i - 1]] == list(dict.fromkeys(turns))


def test_long_turns_are_cut_into_passages_so_a_monologue_can_be_queued():
    turns = [0] * 13 + [1] * 6 + [2]
    table = pd.DataFrame({"source": ["m.txt"] * 20, "turn": turns})
    keys = passage_keys(table, 6)
    sizes = pd.Series(keys).value_counts(sort=False).tolist()
    assert sizes == [5, 4, 4, 6, 1]  # 13 segments: 3 passages of consecutive segments; 6 and 1 stay whole
    assert all(keys[i] == keys[i + 1] or keys[i + 1] not in keys[:i] for i in range(19))  # consecutive
    # a file read as one participant's words is one turn: cut, a part of it fits a 20% budget
    monologue = pd.DataFrame(
        {
            "source": ["m.txt"] * 12,
            "segment_id": [f"m.txt#{i}" for i in range(12)],
            "start": np.arange(12) * 10,
            "end": np.arange(12) * 10 + 9,
            "speaker": ["P"] * 12,
            "role": ["participant"] * 12,
            "turn": [0] * 12,
            "language": ["en"] * 12,
            "text": ["s"] * 12,
            "question": [""] * 12,
        }
    )
    proba = np.random.default_rng(1).uniform(0, 1, (12, len(IDS)))
    thresholds, positives = np.full(len(IDS), 0.5), np.full(len(IDS), 100)
    segments, queue = code_segments(
        monologue, proba, thresholds, positives, BOOK, ReviewConfig(budget=0.2, passage_segments=2)
    )
    assert len(queue) == 2 and segments.needs_review.sum() == 2  # one passage of 2 of 12 equal segments
    whole, _ = code_segments(
        monologue, proba, thresholds, positives, BOOK, ReviewConfig(budget=0.2, passage_segments=12)
    )
    assert not whole.needs_review.any()  # one passage of all 12: larger than the budget


def test_never_above_the_budget_on_random_tables():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        characters = rng.integers(1, 500, n).astype(float)
        order = rng.permutation(n)
        budget = float(rng.uniform(0, 1))
        chosen = within_budget(order, characters, budget)
        assert characters[chosen].sum() <= budget * characters.sum() + 1e-6
        # nothing left out would still have fitted after what was taken before it in the order
        used = 0.0
        for passage in order:
            if chosen[passage]:
                used += characters[passage]
            else:
                assert used + characters[passage] > budget * characters.sum()
    assert within_budget(np.arange(3), np.array([1.0, 1.0, 1.0]), 1.0).all()


@pytest.mark.parametrize("budget", [-0.1, 1.5, "half", True])
def test_a_budget_outside_0_1_is_refused(budget):
    with pytest.raises(InputError, match="review budget"):
        ReviewConfig.from_dict({"budget": budget})
    with pytest.raises(InputError, match="passage_segments"):
        ReviewConfig.from_dict({"passage_segments": 0})


# --- the review-effort replay -----------------------------------------------------------------------


def synthetic(seed: int = 0):
    """Six transcripts of ten passages of two segments; the model is right except in passages 0 to 5."""
    rng = np.random.default_rng(seed)
    n, k = 120, 3
    labels_a = (rng.uniform(size=(n, k)) < 0.3).astype(np.int8)
    labels_b = labels_a.copy()
    flip = rng.uniform(size=(n, k)) < 0.1
    labels_b[flip] = 1 - labels_b[flip]
    passage = np.repeat(np.arange(60), 2)
    predicted = labels_a.copy()
    predicted[passage < 6] = 1 - predicted[passage < 6]  # the model errs in passages 0 to 5 only
    characters = np.full(60, 10.0)
    clusters = np.repeat([f"t{i}" for i in range(6)], 20)
    return predicted, labels_a, labels_b, passage, characters, clusters, [f"c{j}" for j in range(k)]


def test_replay_at_0_is_the_model_and_at_1_is_coder_a():
    predicted, a, b, passage, characters, clusters, ids = synthetic()
    order = np.arange(60)[::-1]  # any order
    none = replay_review(predicted, a, b, passage, characters, order, 0.0, ids, clusters)
    everything = replay_review(predicted, a, b, passage, characters, order, 1.0, ids, clusters)
    model_b = mean_kappa(predicted, b, ids, clusters, 0, 0)["value"]
    a_b = mean_kappa(a, b, ids, clusters, 0, 0)["value"]
    assert model_b < a_b
    assert none["kappa_segments"] == pytest.approx(model_b, abs=1e-4)
    assert (none["reviewed_share"], none["reviewed_passages"]) == (0.0, 0)
    assert everything["kappa_segments"] == pytest.approx(a_b, abs=1e-4)
    assert (everything["reviewed_share"], everything["reviewed_passages"]) == (1.0, 60)


def test_effort_curve_finds_where_review_reaches_the_humans():
    predicted, a, b, passage, characters, clusters, ids = synthetic()
    # characters: each segment is two characters; A's and B's codes cover them as their segment's codes
    twice = np.repeat(np.arange(120), 2)
    chars = CharacterCodes(twice, a[twice], b[twice], clusters[twice])
    first = np.arange(60)  # the queue reads the six wrong passages first
    steps = (0.0, 0.05, 0.1, 0.5, 1.0)
    curve = effort_curve(predicted, a, b, passage, characters, first, ids, clusters, chars, steps=steps)
    a_b = mean_kappa(a, b, ids, clusters, 0, 0)["value"]
    assert curve["a_vs_b"]["segments"] == pytest.approx(a_b, abs=1e-4)
    assert curve["a_vs_b"]["characters"] == pytest.approx(a_b, abs=1e-4)  # the same codes, each unit twice
    assert [row["share"] for row in curve["queue"]] == list(steps)
    assert curve["queue"][0]["kappa_segments"] < 0.9 * a_b  # the model alone is below 90% of the humans
    # 5% of 60 passages = 3 of the wrong ones reviewed; 10% = all six, so the result is coder A's coding
    assert [row["reviewed_passages"] for row in curve["queue"]] == [0, 3, 6, 30, 60]
    assert curve["queue"][2]["kappa_segments"] == pytest.approx(a_b, abs=1e-4)
    assert curve["queue"][2]["kappa_characters"] == pytest.approx(a_b, abs=1e-4)
    assert curve["queue"][1]["kappa_segments"] < a_b
    assert curve["reviewed_share_at_human"] == 0.1
    halfway = curve["queue"][1]
    reached = min(halfway["kappa_segments"], halfway["kappa_characters"]) >= 0.9 * a_b
    assert curve["reviewed_share_at_90pct_human"] == (0.05 if reached else 0.1)
    # in random orders the six wrong passages are rarely all among the first six
    assert curve["random_seeds"] == 5
    assert curve["random"][0]["kappa_segments"] == curve["queue"][0]["kappa_segments"]
    assert curve["random"][2]["kappa_segments"] < a_b
    assert curve["random_reviewed_share_at_human"] > 0.1
    last = curve["queue"][-1]
    assert last["kappa_segments"] == pytest.approx(a_b, abs=1e-4)
    worst = np.arange(60)[::-1]  # the wrong passages last: human agreement only at 100%
    late = effort_curve(
        predicted, a, b, passage, characters, worst, ids, clusters, None, steps=(0.0, 0.5, 1.0), seeds=()
    )
    assert late["reviewed_share_at_human"] == 1.0
    assert "characters" not in late["a_vs_b"]


def test_character_codes_keep_participant_letters_and_both_coders_spans():
    texts = {"t.txt": "Q? ab cd\nef"}
    table = pd.DataFrame({"source": ["t.txt", "t.txt"], "start": [3, 9], "end": [8, 11]})
    codings = pd.DataFrame(
        {
            "source": ["t.txt"] * 3,
            "start": [3, 6, 0],
            "end": [5, 11, 2],
            "code": ["x", "y", "x"],
            "coder": ["A", "B", "B"],
        }
    )
    chars = character_codes(table, codings, texts, ["x", "y"])
    # letters a b c d (segment 0) and e f (segment 1); the space and the question are left out
    assert chars.segment.tolist() == [0, 0, 0, 0, 1, 1]
    assert chars.a.tolist() == [[1, 0], [1, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    assert chars.b.tolist() == [[0, 0], [0, 0], [0, 1], [0, 1], [0, 1], [0, 1]]
    assert set(chars.source) == {"t.txt"}


def test_review_effort_on_a_tiny_transfer_set_and_its_headline():
    """review_effort end to end on two transcripts coded by A and B (spans = whole segments), and the lines
    imri evaluate prints from it."""
    from pipeline.evaluate import TransferSet, review_effort, review_effort_headline
    from pipeline.model import GoldSet

    rng = np.random.default_rng(3)
    rows, codings, texts = [], [], {}
    for source in ("t1.txt", "t2.txt"):
        text = " ".join(f"Sentence number {i:02d} here." for i in range(40))
        texts[source] = text
        for i in range(40):
            start = i * 25  # "Sentence number 07 here." and a space
            rows.append({"source": source, "start": start, "end": start + 24, "turn": i // 4, "role": "participant"})
            for coder, share in (("A", 0.3), ("B", 0.3)):
                for j in np.flatnonzero(rng.uniform(size=3) < share):
                    codings.append((source, start, start + 24, IDS[j], coder))
    segments = pd.DataFrame(rows).assign(transcript_language="en")
    codings = pd.DataFrame(codings, columns=["source", "start", "end", "code", "coder"])

    def labels(coder: str) -> np.ndarray:
        out = np.zeros((len(segments), len(IDS)), dtype=np.int8)
        index = {(s, a): n for n, (s, a) in enumerate(zip(segments.source, segments.start, strict=True))}
        for c in codings[codings.coder == coder].itertuples():
            out[index[(c.source, c.start)], IDS.index(c.code)] = 1
        return out

    transfer = TransferSet(GoldSet(segments, labels("A"), codings, texts, "x"), labels("B"))
    proba = np.clip(labels("A") * 0.6 + rng.uniform(0, 0.5, (len(segments), len(IDS))), 0, 1)
    thresholds = np.full(len(IDS), 0.55)
    effort = review_effort(transfer, proba, thresholds, BOOK)
    a_b = mean_kappa(labels("A"), labels("B"), IDS, segments.source.to_numpy(), 0, 0)["value"]
    assert effort["a_vs_b"]["segments"] == pytest.approx(a_b, abs=1e-4)
    assert effort["a_vs_b"]["characters"] is not None
    assert effort["passages"] == 20 and effort["segments"] == 80
    assert [row["share"] for row in effort["queue"]] == [round(0.05 * k, 2) for k in range(21)]
    assert all(row["reviewed_share"] <= row["share"] + 1e-9 for row in effort["queue"])
    assert effort["queue"][-1]["kappa_segments"] == pytest.approx(a_b, abs=1e-4)
    assert effort["reviewed_share_at_human"] is not None and effort["reviewed_share_at_human"] <= 1.0
    assert effort["recommended_budget"] <= 0.20
    lines = "\n".join(review_effort_headline(effort))
    assert f"90% of the A-vs-B kappa at {effort['reviewed_share_at_90pct_human']:.0%}" in lines
    assert f"review.budget suggested: {effort['recommended_budget']:.2f}" in lines
    no_b = review_effort(TransferSet(transfer.gold, None), proba, thresholds, BOOK)
    assert "not_run" in no_b and "not run" in "\n".join(review_effort_headline(no_b))
