"""How the report reads the metrics, and the rules it judges them by.

Report holds the metrics with the codebook that names their ids. The summary's rule: each impact is
judged on the lower of its gold-set and transfer-set F1 (impact_rows), and the review threshold is the
largest share of most-confident segments whose suggested codes keep a precision of REVIEW_PRECISION
(review_threshold, review_margin). For calibration: the gap per bin of a reliability diagram
(bin_gaps, largest_gaps) and the probabilities the review queue works on (queue_window)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.codebook import Codebook
from pipeline.report.formatting import finite

#: The summary's rule: an impact is judged on the lower of its gold-set and transfer-set F1.
PRECODE_F1 = 0.70  # at or above: pre-code, reviewers check the queue
HINT_F1 = 0.50  # at or above (below PRECODE_F1): suggestions as hints, a human codes every passage
MIN_SUPPORT = 20  # fewer coded segments than this: too few to judge, human coding
REVIEW_PRECISION = 0.80  # the review threshold keeps auto-accepted codes at least this precise
MIN_BIN_SHARE = 0.01  # calibration bins holding fewer decisions than this share are not judged

TIERS = {
    "precode": "pre-code, review the queue",
    "hint": "suggestions as hints, code every passage",
    "human": "full human coding",
}
BASELINES = {
    "lexical": "word overlap with each impact's coded text (NVivo-style coding patterns)",
    "tfidf-logreg": "TF-IDF words and characters + logistic regression",
    "zero-shot": "zero-shot: the codebook prior alone (similarity to each impact's codebook texts), no gold set",
}
#: Coder pairs of the metrics in words (the data sheet's "coder A", "coder B"; consensus as evaluate defines it).
PAIR_NAMES = {
    "A vs B": "coder A vs coder B\n(two humans)",
    "model vs A": "model vs coder A",
    "model vs B": "model vs coder B",
    "model vs consensus": "model vs consensus\n(codes A and B both gave)",
}
LANGUAGE_NAMES = {"all": "both languages", "en": "English", "fr": "French"}


@dataclass
class ImpactRow:
    """One impact's figures and the summary's verdict on it."""

    id: str
    name: str
    category: str
    support: int
    f1: float
    transfer_f1: float | None
    transfer_support: int | None
    human_kappa: float | None
    judged_f1: float = 0.0
    tier: str = "human"
    reason: str = ""


@dataclass
class Report:
    """The metrics with the codebook that names their ids."""

    results: dict
    codebook: Codebook
    unknown: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        known = set(self.codebook.impact_ids) | set(self.codebook.category_ids)
        ids = list(self.default.get("per_code", {})) + list(self.results["categories"].get("categories", []))
        self.unknown = sorted({i for i in ids if i not in known})

    @property
    def default(self) -> dict:
        return self.results["models"][self.results["default_model"]]

    @property
    def transfer(self) -> dict | None:
        return self.results.get("transfer") or None

    def impact(self, impact_id: str) -> str:
        """The impact's English name, or its id when the codebook does not know it."""
        try:
            return self.codebook.impact(impact_id).name["en"] or impact_id
        except KeyError:
            return impact_id

    def category(self, category_id: str) -> str:
        for category in self.codebook.categories:
            if category.id == category_id:
                return category.name["en"] or category_id
        return category_id

    def category_of(self, impact_id: str) -> str:
        try:
            return self.category(self.codebook.category_of(impact_id))
        except KeyError:
            return ""

    def model(self, name: str) -> str:
        """A model's name in words: baselines described, encoder+head spelled out."""
        entry = self.results["models"].get(name, {})
        if name in BASELINES:
            return BASELINES[name]
        if entry.get("encoder") and entry.get("head"):
            return f"{entry['encoder']} encoder + {entry['head']} head"
        return name


# --- the summary's rule -------------------------------------------------------------------------


def impact_rows(report: Report) -> list[ImpactRow]:
    """Every impact of the default model with its verdict, best first.

    Rule: the judged F1 is the lower of the cross-validated gold-set F1 and the transfer-set F1
    (where coder A coded the impact at least once in the transfer set). Judged F1 at
    least ``PRECODE_F1``: pre-code; at least ``HINT_F1``: hints; below, or fewer than ``MIN_SUPPORT``
    coded gold segments: full human coding.
    """
    transfer_codes = ((report.transfer or {}).get("cross_corpus") or {}).get("per_code") or {}
    human = (((report.results.get("human_vs_model") or {}).get("pairs") or {}).get("A vs B") or {}).get("per_code")
    rows = []
    for impact_id, entry in report.default.get("per_code", {}).items():
        moved = transfer_codes.get(impact_id) or {}
        kappa = (((human or {}).get(impact_id) or {}).get("cohen_kappa") or {}).get("value")
        row = ImpactRow(
            id=impact_id,
            name=report.impact(impact_id),
            category=report.category_of(impact_id),
            support=int(entry.get("support", 0)),
            f1=float(entry["f1"]),
            transfer_f1=None if not moved else float(moved["f1"]),
            transfer_support=None if not moved else int(moved.get("support", 0)),
            human_kappa=None if kappa is None else float(kappa),
        )
        judged = row.f1
        if row.transfer_f1 is not None and row.transfer_support:
            judged = min(judged, row.transfer_f1)
        elif row.transfer_f1 is not None:
            row.reason = "not coded in the transfer set"
        row.judged_f1 = judged
        if row.support < MIN_SUPPORT:
            row.tier, row.reason = "human", f"fewer than {MIN_SUPPORT} coded gold segments"
        elif judged >= PRECODE_F1:
            row.tier = "precode"
        elif judged >= HINT_F1:
            row.tier = "hint"
        else:
            row.tier = "human"
        rows.append(row)
    return sorted(rows, key=lambda r: (-r.judged_f1, r.name))


def review_threshold(curve: list[dict], precision: float = REVIEW_PRECISION) -> dict | None:
    """The largest auto-accepted share whose suggested codes keep at least ``precision``, or None."""
    good = [row for row in curve if finite(row.get("precision")) and row["precision"] >= precision]
    return max(good, key=lambda row: row["coverage"]) if good else None


def review_margin(min_confidence: float) -> float:
    """``review.margin`` that sends every segment below ``min_confidence`` to the review queue.

    ``imri code`` queues a segment when its least certain decision is below the margin, and its
    confidence is 0.5 + 0.5 x that certainty (:func:`pipeline.coding.decide`); rounded up, so a
    borderline segment is reviewed.
    """
    return min(1.0, math.ceil(round((2 * min_confidence - 1) * 100, 6)) / 100)


def kappa_pairs(report: Report) -> tuple[dict, dict]:
    """The mean Cohen's kappa of each coder pair: on the gold set, and on the transfer set (each {} where absent)."""
    gold = {
        name: pair.get("cohen_kappa") or {}
        for name, pair in ((report.results.get("human_vs_model") or {}).get("pairs") or {}).items()
    }
    transfer = ((report.transfer or {}).get("cross_corpus") or {}).get("kappa") or {}
    return gold, transfer


def bin_gaps(bins: list[dict]) -> list[dict]:
    """Each non-empty bin of a reliability diagram with its range, its share of the decisions and its gap.

    The gap is the mean predicted probability minus the observed rate: above 0 the model is
    over-confident there, below 0 under-confident.
    """
    total = sum(int(b.get("n") or 0) for b in bins)
    out = []
    for k, b in enumerate(bins):
        n = int(b.get("n") or 0)
        if not n or not finite(b.get("mean_probability")) or not finite(b.get("observed_rate")):
            continue
        low = b.get("low", k / len(bins))
        high = b.get("high", (k + 1) / len(bins))
        out.append(
            {
                "low": float(low),
                "high": float(high),
                "n": n,
                "share": n / total,
                "mean_probability": float(b["mean_probability"]),
                "observed_rate": float(b["observed_rate"]),
                "gap": float(b["mean_probability"]) - float(b["observed_rate"]),
            }
        )
    return out


def largest_gaps(bins: list[dict], min_share: float = MIN_BIN_SHARE) -> list[dict]:
    """The bins holding at least ``min_share`` of the decisions, largest absolute gap first."""
    return sorted((b for b in bin_gaps(bins) if b["share"] >= min_share), key=lambda b: -abs(b["gap"]))


def queue_window(report: Report) -> dict | None:
    """Where the review queue works: the probabilities whose decision lies within the margin of its cut-off.

    A decision's certainty is 0 at its impact's cut-off *t* and 1 at probability 0 or 1
    (:func:`pipeline.coding.queue.certainty`), so a margin *m* queues probabilities from *t*(1 - *m*) to
    *t* + *m*(1 - *t*). The cut-offs are ``coverage.thresholds`` of the metrics (per impact); the margin is
    ``coverage.margin`` where the metrics give it, else the one this report recommends. None without cut-offs.
    """
    coverage = report.results["coverage"]
    thresholds = coverage.get("thresholds")
    values = list(thresholds.values()) if isinstance(thresholds, dict) else list(thresholds or [])
    values = [float(v) for v in values if finite(v)]
    if not values:
        return None
    margin = coverage.get("margin")
    source = "the margin these metrics were computed with"
    if not finite(margin):
        chosen = review_threshold(coverage["curve"])
        margin = 1.0 if chosen is None else review_margin(chosen["min_confidence"])
        source = "the margin this report recommends"
    low, high = min(values), max(values)
    return {
        "cutoff_low": low,
        "cutoff_high": high,
        "margin": float(margin),
        "margin_source": source,
        "low": low * (1 - margin),
        "high": high + margin * (1 - high),
    }


def synthetic(results: dict) -> bool:
    """Whether the metrics come from the bundled synthetic gold set (its ``note`` says so)."""
    return "synthetic" in str(results.get("note", "")).lower()
