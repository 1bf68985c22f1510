"""The review queue: which passages of a coding run a human reads, and in what order.

A passage (a participant turn, or a piece of a long one: :func:`passage_keys`) is worth the decisions a
reviewer is expected to change in it (:func:`expected_changes`), each impact weighted by how much one
corrected decision moves its Cohen's kappa (:func:`kappa_weights`), per character read. :func:`review_budget`
ranks the passages by that value and queues them up to ``review.budget`` of the participant text
(:class:`ReviewConfig`, ``params.yaml: review``); :func:`review_priority` gives each queued segment its reasons
(an uncertain decision, a rare code, two codes close), and :func:`review_summary` says in ``summary.json``
what the queue holds and what is left unreviewed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.params import ParamsSection


@dataclass(frozen=True)
class ReviewConfig(ParamsSection):
    """``params.yaml: review``: how much goes to a human (``budget``), and the reasons a queued segment is given."""

    section: ClassVar[str] = "review"

    # the share of participant text (characters) queued for review: the passages whose review is expected to
    # raise kappa the most per character, highest first (:func:`review_budget`); chosen on the transfer set
    # (reports/metrics.json review_effort: the share reaching 90% of the A-vs-B kappa, at most 0.20)
    budget: float = 0.20
    # a turn of more segments is cut into passages of at most this many consecutive segments (as equal as can be),
    # so a long answer (or a file read as one participant's words) is not one passage larger than the budget
    passage_segments: int = 6
    margin: float = 0.3  # a decision whose certainty (0 at the threshold, 1 at 0 or 1) is below this is uncertain
    rare_positives: int = 30  # impacts with fewer training segments than this are "rare"
    close_pair: float = 0.1  # two suggested impacts within this probability of each other

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int | float) or not 0 <= self.budget <= 1:
            raise InputError(f"review budget must be a share of the participant text from 0 to 1, not {self.budget!r}")
        if (
            isinstance(self.passage_segments, bool)
            or not isinstance(self.passage_segments, int)
            or self.passage_segments < 1
        ):
            raise InputError(f"review passage_segments must be a whole number >= 1, not {self.passage_segments!r}")


def certainty(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 codes, and the certainty of each decision: 0 at the threshold, 1 at probability 0 or 1."""
    codes = (proba >= thresholds).astype(np.int8)
    above = (proba - thresholds) / np.maximum(1 - thresholds, 1e-9)
    below = (thresholds - proba) / np.maximum(thresholds, 1e-9)
    return codes, np.where(codes == 1, above, below)


def review_priority(
    proba: np.ndarray, thresholds: np.ndarray, positives: np.ndarray, config: ReviewConfig
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Priority (higher first), the review flag and the reasons, per segment.

    A segment needs review when one of its decisions is uncertain, when it gets a rare impact, or
    when two suggested impacts are close together. Priority grows with the least certain decision,
    with a bonus for rare impacts and close pairs.
    """
    codes, sure = certainty(proba, thresholds)
    least = sure.min(axis=1)
    near = least < config.margin
    rare = ((positives < config.rare_positives)[None, :] & (codes == 1)).any(axis=1)
    suggested = np.where(codes == 1, proba, 0.0)
    top2 = np.sort(suggested, axis=1)[:, -2:]
    close = (top2[:, 0] > 0) & (top2[:, 1] - top2[:, 0] < config.close_pair)
    needs = near | rare | close
    priority = (1 - least) + 0.3 * rare + 0.2 * close
    labels = (("uncertain decision", near), ("rare code", rare), ("two codes close", close))
    reasons = ["; ".join(name for name, flags in labels if flags[i]) for i in range(len(proba))]
    return priority, needs, reasons


def expected_changes(proba: np.ndarray, thresholds: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per segment, the expected number of its decisions that a reviewer changes (each impact's weighted).

    A decision is the model's 0/1 code for one impact. Read as calibrated, the probability ``p`` says how
    likely the impact is: a code given is wrong with probability ``1 - p``, one not given with ``p``. The
    (``weights``-weighted) sum over impacts is the expected number of codes a reviewer adds or removes.
    """
    coded = proba >= thresholds
    wrong = np.where(coded, 1.0 - proba, proba)
    return (wrong if weights is None else wrong * weights).sum(axis=1)


def kappa_weights(proba: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Per impact, how much one corrected decision moves its Cohen's kappa, relative to the mean impact.

    For a code of prevalence ``π`` over ``n`` units, correcting one decision moves agreement by ``1/n`` and
    kappa by about ``1 / (n · 2π(1 - π))`` (chance agreement ``1 - 2π(1 - π)`` when both codings have that
    prevalence), so a rare impact's errors weigh more in the mean kappa over impacts. ``π`` is the impact's
    mean probability over the segments, kept within ``[floor, 1 - floor]``. The weights average 1.
    """
    if not len(proba):
        return np.ones(proba.shape[1])
    prevalence = np.clip(proba.mean(axis=0), floor, 1.0 - floor)
    weights = 1.0 / (prevalence * (1.0 - prevalence))
    return weights / weights.mean()


@dataclass(frozen=True)
class ReviewPlan:
    """Which passages review reads, and in what order (:func:`review_budget`).

    ``passage`` gives each segment's passage (index into the per-passage arrays); ``value`` is each
    passage's expected (kappa-weighted) decisions changed per character, ``characters`` its length; ``order``
    ranks the passages by value, highest first; ``queued`` marks the passages within the budget.
    """

    passage: np.ndarray
    value: np.ndarray
    characters: np.ndarray
    order: np.ndarray
    queued: np.ndarray

    @property
    def share(self) -> float:
        """The queued share of the text (characters)."""
        total = self.characters.sum()
        return float(self.characters[self.queued].sum() / total) if total else 0.0


def passage_keys(table: pd.DataFrame, most: int) -> np.ndarray:
    """A key per row of a participant segment table (``source``, ``turn``, in text order within a turn): the
    passage review reads it in. A turn of ``n`` segments is one passage, or ``ceil(n / most)`` passages of
    consecutive segments as equal in count as can be."""
    if not len(table):
        return np.zeros(0, dtype=object)
    turn = table.source.astype(str) + "\x1f" + table.turn.astype(str)
    position = turn.groupby(turn, sort=False).cumcount().to_numpy()
    size = turn.map(turn.value_counts()).to_numpy()
    parts = -(-size // most)
    piece = position * parts // size
    return (turn + "\x1f" + pd.Series(piece, index=turn.index).astype(str)).to_numpy()


def passage_values(
    passages: np.ndarray, lengths: np.ndarray, changes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each segment's passage index, and per passage its value and characters.

    ``passages`` holds a key per segment (the same key = the same passage, in first-seen order); a passage's
    value is the mean over its characters of their segment's ``changes`` (the sum over its segments of
    ``length * changes``, over its length): what a reviewer's reading time buys.
    """
    index, _ = pd.factorize(pd.Series(passages, dtype=object), sort=False)
    n = int(index.max()) + 1 if len(index) else 0
    lengths = np.asarray(lengths, dtype=float)
    characters = np.bincount(index, lengths, n)
    weighted = np.bincount(index, lengths * np.asarray(changes, dtype=float), n)
    return index, weighted / np.maximum(characters, 1.0), characters


def within_budget(order: np.ndarray, characters: np.ndarray, budget: float) -> np.ndarray:
    """The passages taken in ``order`` while they fit in ``budget`` (a share of all characters, 0-1).

    A passage that would take the total over the budget is passed over and the next ones are tried
    (a shorter one may still fit), so the queued share is never above the budget.
    """
    if not 0.0 <= budget <= 1.0:
        raise ValueError("the review budget is a share of the participant text, from 0 to 1")
    total = float(characters.sum())
    room = budget * total + 1e-9 * max(total, 1.0)  # all of it at 1.0 despite rounding
    chosen = np.zeros(len(characters), dtype=bool)
    used = 0.0
    for passage in order:
        if used + characters[passage] <= room:
            chosen[passage] = True
            used += characters[passage]
    return chosen


def review_budget(
    passages: np.ndarray, lengths: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, budget: float
) -> ReviewPlan:
    """The review plan of participant segments: passages ranked by the expected gain in mean kappa over
    impacts per character read (:func:`expected_changes` weighted by :func:`kappa_weights`,
    :func:`passage_values`), ties in text order, queued up to ``budget`` of the characters."""
    changes = expected_changes(proba, thresholds, kappa_weights(proba))
    index, value, characters = passage_values(passages, lengths, changes)
    order = np.lexsort((np.arange(len(value)), -value))
    return ReviewPlan(index, value, characters, order, within_budget(order, characters, budget))


def previous_turn_text(table: pd.DataFrame) -> list[str]:
    """For each segment, the text of the turn before its own (the context a reviewer reads first)."""
    context = []
    for _, frame in table.groupby("source", sort=False):
        turn_text = frame.groupby("turn").text.agg(" ".join)
        previous = {
            turn: turn_text.get(prev, "")
            for turn, prev in zip(turn_text.index, [None, *turn_text.index[:-1]], strict=True)
        }
        context += [previous[t] for t in frame.turn]
    return context


def review_summary(segments: pd.DataFrame, review: ReviewConfig | None = None) -> dict:
    """``summary.json: review``: what the queue holds and what is left to the model, unreviewed.

    Counts of passages (participant turns) and segments, shares of the participant text (characters), and
    the mean confidence (:func:`pipeline.coding.decisions.decide`) of the unreviewed segments.
    """
    participant = segments[segments.role == "participant"]
    queued = participant.needs_review.astype(bool).to_numpy()
    lengths = (participant.end - participant.start).to_numpy(dtype=float)
    total = float(lengths.sum())
    review = review or ReviewConfig()
    keys = pd.Series(passage_keys(participant, review.passage_segments), dtype=object)
    passages_queued = int(keys[queued].nunique())
    share = round(float(lengths[queued].sum() / total), 4) if total else 0.0
    left = participant[~queued]
    return {
        "budget": review.budget,
        "passages": f"participant turns, cut into passages of at most {review.passage_segments} segments",
        "ranked_by": "expected gain in kappa per character of the passage: the decisions a reviewer is "
        "expected to change (1 - p for a code given, p for one not given), each impact weighted by "
        "1 / (prevalence (1 - prevalence)), averaged over the passage's characters",
        "queued_passages": passages_queued,
        "queued_segments": int(queued.sum()),
        "queued_share_of_participant_text": share,
        "unreviewed_passages": int(keys.nunique()) - passages_queued,
        "unreviewed_segments": int(len(left)),
        "unreviewed_share_of_participant_text": round(1.0 - share, 4) if total else 0.0,
        "unreviewed_mean_confidence": round(float(left.confidence.astype(float).mean()), 4) if len(left) else None,
        "unreviewed_means": "the model's codes are kept as they are, marked needs_review false in segments.csv",
    }
