"""Draw ``reports/metrics.json`` for a researcher: a self-contained ``report.html`` and one PNG per figure.

The page opens with a plain summary (which impacts the model can pre-code, which need full human
coding, at what review threshold, with the rule used), then one section per comparison, each
figure with a caption saying what it shows and what to do about it, the transfer evaluation
(text the model was not written for) and a glossary. Impacts and categories are named as the
codebook names them (metrics carry ids). Sections whose figures are not in the metrics are left
out with a line saying so. The same metrics give the same bytes: no dates, PNGs without a
``Software`` entry.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError

FIGURES = ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage")
REQUIRED = ("models", "default_model", "calibration", "coverage", "categories")

#: The summary's rule: an impact is judged on the lower of its gold-set and transfer-set F1.
PRECODE_F1 = 0.70  # at or above: pre-code, reviewers check the queue
HINT_F1 = 0.50  # at or above (below PRECODE_F1): suggestions as hints, a human codes every passage
MIN_SUPPORT = 20  # fewer coded segments than this: too few to judge, human coding
REVIEW_PRECISION = 0.80  # the review threshold keeps auto-accepted codes at least this precise

TIERS = {
    "precode": "pre-code, review the queue",
    "hint": "suggestions as hints, code every passage",
    "human": "full human coding",
}
BASELINES = {
    "lexical": "word overlap with each impact's coded text (NVivo-style coding patterns)",
    "tfidf-logreg": "TF-IDF words and characters + logistic regression",
    "zero-shot": "zero-shot: a head trained on the codebook's own texts, no gold set",
}
LANGUAGE_NAMES = {"all": "both languages", "en": "English", "fr": "French"}
COLORS = {"gold": "#3b75af", "transfer": "#e08a2c", "human": "#777777"}


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
    good = [row for row in curve if _finite(row.get("precision")) and row["precision"] >= precision]
    return max(good, key=lambda row: row["coverage"]) if good else None


def review_margin(min_confidence: float) -> float:
    """``review.margin`` that sends every segment below ``min_confidence`` to the review queue.

    ``imri code`` queues a segment when its least certain decision is below the margin, and its
    confidence is 0.5 + 0.5 x that certainty (:func:`pipeline.code.decide`); rounded up, so a
    borderline segment is reviewed.
    """
    return min(1.0, math.ceil(round((2 * min_confidence - 1) * 100, 6)) / 100)


# --- figures ------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, the Agg canvas by default

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _wrap(text: str, width: int = 48) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def per_code_f1(report: Report):
    """Per-impact F1 of the default model (gold set, transfer set) with the baselines as markers.

    Impacts in the order of the report's table (best first by the figure the summary judges on).
    """
    ordered = impact_rows(report)
    labels = [_wrap(r.name) for r in ordered]
    models = report.results["models"]
    baselines = [n for n, e in models.items() if e.get("kind") == "baseline"]
    model = report.model(report.results["default_model"])
    series = [(f"{model}: gold set (cross-validated)", [r.f1 for r in ordered], COLORS["gold"])]
    transfer = any(r.transfer_f1 is not None for r in ordered)
    if transfer:
        f1 = [r.transfer_f1 if r.transfer_support else np.nan for r in ordered]
        series.append((f"{model}: transfer set (never trained on)", f1, COLORS["transfer"]))
    fig, ax = _figure(11, 0.45 * len(ordered) + 2.6)
    y = np.arange(len(ordered))
    height = 0.8 / len(series)
    for k, (label, values, color) in enumerate(series):
        offset = y - 0.4 + (k + 0.5) * height
        ax.barh(offset, values, height, label=label, color=color)
        if k == 1:  # a transfer bar of length 0 and a missing one would look alike
            for row, at, value in zip(ordered, offset, values, strict=True):
                if not row.transfer_support:
                    ax.text(0.005, at, "not coded in the transfer set", fontsize=6.5, color="grey", va="center")
                elif value == 0:
                    ax.text(0.005, at, "0", fontsize=6.5, color=color, va="center")
    for name, marker in zip(baselines, "oDs^v", strict=False):
        values = [models[name]["per_code"].get(r.id, {}).get("f1", np.nan) for r in ordered]
        ax.plot(values, y, marker, color="black", fillstyle="none", linestyle="none", label=report.model(name))
    for limit, text in ((HINT_F1, "hints"), (PRECODE_F1, "pre-code")):
        ax.axvline(limit, color="grey", linestyle="--", linewidth=0.8)
        ax.text(limit + 0.005, -0.75, f"{text} {limit:.2f}", fontsize=7, color="grey", ha="left", va="bottom")
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.set_ylim(len(ordered) - 0.5, -1.1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 against coder A (0 = no overlap, 1 = the same codes)")
    ax.set_title("How well each impact is coded")
    handles, names = ax.get_legend_handles_labels()
    bars = [k for k, h in enumerate(handles) if not hasattr(h, "get_marker")]  # the model's bars first
    order = bars + [k for k in range(len(handles)) if k not in bars]
    fig.legend(
        [handles[k] for k in order], [names[k] for k in order], fontsize=7.5, loc="outside lower center", ncols=2
    )
    return fig


def category_confusion(report: Report):
    """Gold category against predicted categories, shares coloured, counts written."""
    confusion = report.results["categories"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    columns = [("no category predicted" if c == "none" else report.category(c)) for c in confusion["columns"]]
    fig, ax = _figure(9, 5.5)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), [_wrap(c, 18) for c in columns], fontsize=8)
    ax.set_yticks(
        range(len(confusion["categories"])),
        [_wrap(report.category(c), 22) for c in confusion["categories"]],
        fontsize=8,
    )
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7.5,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xlabel("category the model predicted (a segment may get several)")
    ax.set_ylabel("category coder A gave\n(segments with one category)")
    ax.set_title("Which categories the model mixes up")
    return fig


def _kappa_pairs(report: Report) -> tuple[dict, dict]:
    gold = {
        name: pair.get("cohen_kappa") or {}
        for name, pair in ((report.results.get("human_vs_model") or {}).get("pairs") or {}).items()
    }
    transfer = ((report.transfer or {}).get("cross_corpus") or {}).get("kappa") or {}
    return gold, transfer


def agreement(report: Report):
    """Mean Cohen's kappa of each coder pair, gold set and transfer set side by side; None without pairs."""
    gold, transfer = _kappa_pairs(report)
    if not gold and not transfer:
        return None
    names = list(dict.fromkeys([*gold, *transfer]))
    series = [
        (s, label, color)
        for s, label, color in (
            (gold, "gold set (double-coded transcripts)", COLORS["gold"]),
            (transfer, "transfer set", COLORS["transfer"]),
        )
        if s
    ]
    fig, ax = _figure(8, 4.5)
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for k, (pairs, label, color) in enumerate(series):
        values, low, high = [], [], []
        for name in names:
            kappa = pairs.get(name) or {}
            value = kappa.get("value")
            ci = kappa.get("ci95") or [value, value]
            values.append(np.nan if value is None else value)
            low.append(0 if value is None or ci[0] is None else max(value - ci[0], 0))
            high.append(0 if value is None or ci[1] is None else max(ci[1] - value, 0))
        hatch = ["//" if n == "A vs B" else "" for n in names]
        bars = ax.bar(x - 0.4 + (k + 0.5) * width, values, width, yerr=[low, high], color=color, capsize=4, label=label)
        for bar, h in zip(bars, hatch, strict=True):
            bar.set_hatch(h)
    ax.set_xticks(x, [n.replace("A vs B", "A vs B\n(two humans)") for n in names], fontsize=8.5)
    ax.set_ylabel("Cohen's kappa, mean over impacts\n(95% interval)")
    ax.set_ylim(0, 1)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=color, label=label) for _, label, color in series], fontsize=8, loc="upper right")
    ax.set_title("Does the model agree with coders as well as they agree with each other?")
    return fig


def reliability(report: Report):
    """Reliability diagram: predicted probability against observed frequency."""
    calibration = report.results["calibration"]
    bins = calibration.get("reliability") or []
    fig, ax = _figure(5.5, 5.5)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(
        [b["mean_probability"] for b in bins],
        [b["observed_rate"] for b in bins],
        "o-",
        color=COLORS["gold"],
        label=f"{report.model(calibration.get('model', ''))} (ECE {calibration['ece']:.3f})",
    )
    ax.set_xlabel("probability the model gave an impact")
    ax.set_ylabel("share of those (segment, impact) pairs coder A coded")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Can the probabilities be taken at face value?")
    return fig


def coverage(report: Report):
    """Precision and exact-set share against the share of segments auto-accepted; the chosen threshold marked."""
    curve = report.results["coverage"]["curve"]
    chosen = review_threshold(curve)
    fig, ax = _figure(7, 4.5)
    x = [row["coverage"] for row in curve]
    ax.plot(x, [row["precision"] for row in curve], "o-", color=COLORS["gold"], label="precision of suggested codes")
    ax.plot(
        x,
        [row["exact_set_accuracy"] for row in curve],
        "s-",
        color="#5a9e5a",
        label="segments with exactly coder A's codes",
    )
    ax.axhline(REVIEW_PRECISION, color="grey", linestyle=":", linewidth=1)
    ax.text(0.02, REVIEW_PRECISION + 0.01, f"precision {REVIEW_PRECISION:.2f}", fontsize=7, color="grey")
    if chosen is not None:
        ax.axvline(chosen["coverage"], color="black", linestyle="--", linewidth=0.8)
        ax.annotate(
            f"auto-accept {chosen['coverage']:.0%}\n(confidence >= {chosen['min_confidence']:.2f})",
            (chosen["coverage"], chosen["precision"]),
            xytext=(8, -40),
            textcoords="offset points",
            fontsize=7.5,
        )
    ax.set_xlabel("share of segments auto-accepted, most confident first")
    ax.set_ylabel("share right")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("How many segments can skip review?")
    return fig


DRAW = {
    "per_code_f1": per_code_f1,
    "category_confusion": category_confusion,
    "agreement": agreement,
    "reliability": reliability,
    "coverage": coverage,
}


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, with no ``Software`` (or date) entry so equal figures give equal bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png", metadata={"Software": None})
    return buffer.getvalue()


# --- captions: what a figure shows, what to do about it -----------------------------------------


def _caption_per_code(report: Report, rows: list[ImpactRow]) -> tuple[str, str]:
    transfer = any(r.transfer_f1 is not None for r in rows)
    shows = (
        "For each impact, how well the default model's codes match coder A's on the gold set "
        "(cross-validated: each transcript scored by a model that never saw it)"
        + (", and on the transfer set, text it was never trained on" if transfer else "")
        + (
            ". Markers are the baselines."
            if any(e.get("kind") == "baseline" for e in report.results["models"].values())
            else "."
        )
        + " Impacts in the order of the table above. The dashed lines are the summary's limits: "
        f"{HINT_F1:.2f} (hints) and {PRECODE_F1:.2f} (pre-code)."
    )
    low = [r.name for r in rows if r.tier == "human"]
    todo = (
        f"Pre-code only the impacts whose bars all pass {PRECODE_F1:.2f}. "
        + (f"Code the {len(low)} impacts marked for full human coding by hand. " if low else "")
        + "For an impact you need but the model codes poorly, code more examples of it (or review "
        "them in the app) and retrain with <code>imri train --include-reviews</code>, then re-evaluate."
    )
    return shows, todo


def _caption_confusion(report: Report) -> tuple[str, str]:
    confusion = report.results["categories"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shows = (
        "Segments coder A gave exactly one category (rows), and the categories the model predicted for "
        "them (columns), as counts and row shares; the last column counts segments the model gave no "
        "code at all. A strong diagonal means the broad category is right even where the impact is wrong."
    )
    off = share.copy()
    for i in range(min(off.shape)):
        off[i, i] = -1
    off[:, -1] = -1
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    names = confusion["categories"]
    missed = int(np.argmax(share[:, -1]))
    todo = (
        f"The most frequent mix-up: <i>{html.escape(report.category(names[i]))}</i> coded as "
        f"<i>{html.escape(report.category(confusion['columns'][j]))}</i> ({share[i, j]:.0%} of its segments); "
        "when reviewing, check suggestions of these categories against each other. "
        f"<i>{html.escape(report.category(names[missed]))}</i> is most often left without a code "
        f"({share[missed, -1]:.0%}): look for it in segments the model left uncoded."
    )
    return shows, todo


def _caption_agreement(report: Report) -> tuple[str, str]:
    gold, transfer = _kappa_pairs(report)
    transcripts = len((report.results.get("human_vs_model") or {}).get("transcripts") or [])
    shows = (
        "Cohen's kappa (agreement beyond chance; 0 = chance, 1 = identical), averaged over impacts, "
        "between each pair of coders"
        + (f" on the {transcripts} gold transcripts that coders A and B both coded" if gold else "")
        + (" and on the transfer set" if transfer else "")
        + ", with 95% bootstrap intervals over transcripts. Hatched: the two human coders, the benchmark."
    )
    parts = []
    for label, pairs in (("gold set", gold), ("transfer set", transfer)):
        model, humans = (pairs.get("model vs A") or {}).get("value"), (pairs.get("A vs B") or {}).get("value")
        if model is not None and humans is not None:
            verdict = "as well as" if model >= humans else "less well than"
            parts.append(
                f"on the {label} the model agrees with coder A {verdict} the two coders agree "
                f"with each other ({model:.2f} against {humans:.2f})"
            )
    todo = (("; ".join(parts).capitalize() + ". ") if parts else "") + (
        "Where the model's bar is below the human one, treat it as a first pass that people review, "
        "not as a second coder; report the human-human figure in a methods section, not the model's."
    )
    return shows, todo


def _caption_reliability(report: Report) -> tuple[str, str]:
    ece = report.results["calibration"]["ece"]
    shows = (
        "Every (segment, impact) probability the model gave, in ten bins, against how often coder A "
        "actually coded that impact there. On the diagonal, a probability of 0.8 comes true 80% of the "
        f"time. Expected calibration error (ECE, the average gap weighted by bin size): {ece:.3f}."
    )
    if ece <= 0.05:
        todo = (
            "The points lie close to the diagonal: the probabilities in <code>segments.csv</code> and the "
            "review app can be read as chances, on text like the gold set's."
        )
    else:
        todo = (
            "The points stray from the diagonal: use the probabilities to rank segments, not as chances; "
            "a larger gold set usually calibrates better."
        )
    return shows, todo


def _caption_coverage(report: Report) -> tuple[str, str]:
    curve = report.results["coverage"]["curve"]
    chosen = review_threshold(curve)
    shows = (
        "If the most confident segments are accepted without review first, the precision of their "
        "suggested codes (share of suggested codes coder A also gave) and the share of them with exactly "
        "coder A's codes, against the share accepted. The dotted line is the summary's precision "
        f"target ({REVIEW_PRECISION:.2f})."
    )
    if chosen is None:
        todo = (
            f"No share keeps precision at {REVIEW_PRECISION:.2f}: review every segment "
            "(<code>review.margin: 1.0</code> in <code>params.yaml</code>)."
        )
    else:
        todo = (
            f"Auto-accept at most the {chosen['coverage']:.0%} most confident segments (confidence "
            f"&ge; {chosen['min_confidence']:.2f}): set <code>review.margin: "
            f"{review_margin(chosen['min_confidence']):.2f}</code> in <code>params.yaml</code> so every segment "
            "below it goes to the review queue. Accept fewer if your study needs higher precision; the curve "
            "comes from the gold set, so check a sample of auto-accepted segments of your own study."
        )
    return shows, todo


# --- HTML ---------------------------------------------------------------------------------------


def _finite(value) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def _num(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "&ndash;"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _pct(value) -> str:
    return f"{value:.0%}" if _finite(value) else "&ndash;"


def _kappa_cell(kappa: dict | None) -> str:
    kappa = kappa or {}
    value, ci = kappa.get("value"), kappa.get("ci95") or [None, None]
    if not _finite(value):
        return "&ndash;"
    interval = f" <span class='ci'>[{_num(ci[0], 2)}, {_num(ci[1], 2)}]</span>" if _finite(ci[0]) else ""
    return f"{value:.2f}{interval}"


def _align(cell: str) -> str:
    """Numbers (and their dashes) right-aligned, words left."""
    return " class='n'" if re.match(r"(-?[0-9]|&ndash;|<span class='(met|missed)')", cell) else ""


def _table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """An HTML table; cells are HTML already (escape text before)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for k, row in enumerate(rows):
        css = f" class='{row_classes[k]}'" if row_classes and row_classes[k] else ""
        body.append(f"<tr{css}>" + "".join(f"<td{_align(c)}>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _absent(text: str) -> str:
    return f"<p class='absent'>{text}</p>"


def _names(rows: list[ImpactRow]) -> str:
    if not rows:
        return "none"
    return ", ".join(
        f"<i>{html.escape(r.name)}</i> ({r.judged_f1:.2f}{'; ' + html.escape(r.reason) if r.reason else ''})"
        for r in rows
    )


def summary(report: Report, rows: list[ImpactRow]) -> str:
    """The plain summary at the top of the report, with the rule it applies."""
    results = report.results
    tiers = {tier: [r for r in rows if r.tier == tier] for tier in TIERS}
    transfer = report.transfer
    judged = "the lower of its gold-set F1 and its transfer-set F1" if transfer else "its gold-set F1"
    items = [
        f"<li><b>Pre-code</b> (the model codes, people review its queue): {_names(tiers['precode'])}.</li>",
        f"<li><b>Use suggestions as hints only</b> (a person codes every passage, the suggestions "
        f"pointing the way): {_names(tiers['hint'])}.</li>",
        f"<li><b>Full human coding</b> (the model's codes for these are not good enough to start "
        f"from): {_names(tiers['human'])}.</li>",
    ]
    chosen = review_threshold(results["coverage"]["curve"])
    if chosen is None:
        threshold = (
            f"<b>Review threshold:</b> no share of segments keeps the precision of suggested codes at "
            f"{REVIEW_PRECISION:.2f}; review every segment."
        )
    else:
        threshold = (
            f"<b>Review threshold:</b> accept without review only segments with confidence &ge; "
            f"{chosen['min_confidence']:.2f} (the {chosen['coverage']:.0%} most confident; precision of their "
            f"suggested codes {chosen['precision']:.2f}) and review everything below it: "
            f"<code>review.margin: {review_margin(chosen['min_confidence']):.2f}</code> in "
            "<code>params.yaml</code>. Even there, review the impacts marked for hints or human coding."
        )
    in_corpus = report.default["macro_f1"]
    lines = [
        f"<p>The default model, <b>{html.escape(report.model(results['default_model']))}</b>, "
        f"reaches macro-F1 {in_corpus:.2f} on the gold set "
        f"({_count(results.get('transcripts'))} transcripts, {_count(results.get('segments'))} participant "
        "segments, "
        "cross-validated by transcript).",
    ]
    if transfer:
        cross = transfer["cross_corpus"]["macro_f1"]
        missed = [n for n, t in (transfer.get("targets") or {}).items() if not t.get("met")]
        total = len(transfer.get("targets") or {})
        ratio = f", {cross / in_corpus:.0%} of that" if in_corpus else ""
        lines.append(f" On text it was not written for (the transfer set) it reaches {cross:.2f}{ratio}")
        lines.append(
            f"; {len(missed)} of {total} transfer targets missed. Expect real transcripts to be coded "
            "less well than the gold set figures suggest.</p>"
            if total
            else ".</p>"
        )
    else:
        lines.append(
            " Its transfer to text it was not written for was not measured in this run, so the figures "
            "below are likely an upper bound for real transcripts.</p>"
        )
    rule = (
        f"<p class='rule'><b>Rule used.</b> Each impact is judged on {judged}"
        + (" (where coder A coded it at least once in the transfer set)" if transfer else "")
        + f", the figure in brackets above: at least {PRECODE_F1:.2f}: pre-code; {HINT_F1:.2f} to "
        f"{PRECODE_F1:.2f}: hints; below {HINT_F1:.2f}, or fewer than {MIN_SUPPORT} coded gold segments: "
        "full human coding. The review threshold is the largest share of most-confident segments whose "
        f"suggested codes keep a precision of at least {REVIEW_PRECISION:.2f} on the gold set (figure "
        "<a href='#coverage'>Review threshold</a>). These limits are this report's convention, not a "
        "standard: a team may draw its own from the table below.</p>"
    )
    return (
        "<section id='summary'><h2>In short</h2>"
        + "".join(lines)
        + f"<ul>{''.join(items)}</ul><p>{threshold}</p>{rule}</section>"
    )


def _impact_table(rows: list[ImpactRow]) -> str:
    transfer = any(r.transfer_f1 is not None for r in rows)
    human = any(r.human_kappa is not None for r in rows)
    headers = ["impact", "category", "coded gold segments", "F1 gold set"]
    headers += ["F1 transfer set"] if transfer else []
    headers += ["kappa A vs B (humans)"] if human else []
    headers += ["recommendation"]
    body, classes = [], []
    for r in rows:
        cells = [html.escape(r.name), html.escape(r.category), _count(r.support), _num(r.f1, 2)]
        cells += [_num(r.transfer_f1, 2)] if transfer else []
        cells += [_num(r.human_kappa, 2)] if human else []
        cells.append(TIERS[r.tier] + (f" ({html.escape(r.reason)})" if r.reason else ""))
        body.append(cells)
        classes.append(r.tier)
    return _table(headers, body, classes)


def _figure_html(name: str, title: str, png: bytes, caption: tuple[str, str]) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    shows, todo = caption
    return (
        f"<figure id='{name}'><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption><b>What it shows.</b> {shows}<br><b>What to do.</b> {todo}</figcaption></figure>"
    )


def _models_section(report: Report) -> str:
    results = report.results
    rows, classes = [], []
    for name, entry in results["models"].items():
        lang, cross = entry.get("by_language", {}), entry.get("cross_lingual", {})
        cells = [
            entry.get("macro_f1"),
            entry.get("micro_f1"),
            lang.get("en", {}).get("macro_f1"),
            lang.get("fr", {}).get("macro_f1"),
            cross.get("en->fr", {}).get("macro_f1"),
            cross.get("fr->en", {}).get("macro_f1"),
        ]
        label = html.escape(report.model(name)) + (" <b>(default)</b>" if name == results["default_model"] else "")
        rows.append(
            [label, "baseline" if entry.get("kind") == "baseline" else "trained model"] + [_num(c) for c in cells]
        )
        classes.append("default" if name == results["default_model"] else "")
    table = _table(
        [
            "model",
            "kind",
            "macro-F1",
            "micro-F1",
            "English",
            "French",
            "trained en &rarr; tested fr",
            "trained fr &rarr; tested en",
        ],
        rows,
        classes,
    )
    note = ""
    if not any(e.get("kind") == "baseline" for e in results["models"].values()):
        note = _absent("No baselines were evaluated in this run (<code>evaluate.baselines</code> is empty).")
    return (
        "<section id='models'><h2>Models compared on the gold set</h2>"
        f"<p>Protocol: {html.escape(results.get('protocol', ''))}. English/French: macro-F1 on that language's "
        "transcripts; en &rarr; fr: trained on the English transcripts only, tested on the French ones.</p>"
        f"{table}{note}</section>"
    )


def _units_section(report: Report) -> str:
    compared = report.results.get("units")
    head = "<section id='units'><h2>Coding units</h2>"
    if not compared:
        return (
            head + _absent("Coding units were not compared in this run (<code>evaluate.units</code>).") + "</section>"
        )
    rows, classes = [], []
    for unit, entry in compared["units"].items():
        lang = entry.get("by_language", {})
        rows.append(
            [
                html.escape(unit) + (" <b>(default)</b>" if unit == compared.get("default") else ""),
                _count(entry.get("segments")),
                _num(entry.get("mean_words"), 1),
                _num(entry.get("macro_f1")),
                _num(lang.get("en", {}).get("macro_f1")),
                _num(lang.get("fr", {}).get("macro_f1")),
                _num(entry.get("segment_macro_f1")),
            ]
        )
        classes.append("default" if unit == compared.get("default") else "")
    return (
        head + f"<p>{html.escape(compared.get('protocol', ''))}. Coarser units look better on their own segments "
        "(fewer, easier decisions) but place codes less precisely; the character figure compares them fairly.</p>"
        + _table(
            [
                "unit",
                "segments",
                "words per segment",
                "character macro-F1",
                "English",
                "French",
                "segment macro-F1 (own unit)",
            ],
            rows,
            classes,
        )
        + "</section>"
    )


TARGET_FIGURES = (
    ("participant probabilities", "largest change of a probability"),
    ("transfer segment macro-F1", "macro-F1 over participant sentences"),
    ("passage", "share of coded passages"),
    ("presence AUC", "area under the ROC curve"),
)


def _settings(entry: dict, default: dict) -> str:
    """How a variant's settings differ from the default model's."""
    settings = {k: v for k, v in (entry.get("settings") or {}).items()}
    base = {**(default.get("train") or {}), "encoder": default.get("encoder")}
    changed = [f"{k} {json.dumps(v)}" for k, v in settings.items() if base.get(k) != v]
    return html.escape(", ".join(changed)) if changed else "same as the default"


def transfer_section(report: Report) -> str:
    """Cross-corpus next to in-corpus, question shift, turn top-1, variants, zero-shot and the targets."""
    head = "<section id='transfer'><h2>Transfer to text it was not written for</h2>"
    transfer = report.transfer
    if not transfer:
        return (
            head
            + _absent(
                "The transfer evaluation is not in these metrics (run <code>imri evaluate</code> with "
                "<code>evaluate.transfer</code> set, e.g. <code>data/transfer</code>)."
            )
            + "</section>"
        )
    default = report.default
    cross = transfer["cross_corpus"]
    gold_kappa, transfer_kappa = _kappa_pairs(report)
    intro = (
        f"<p>The gold set was written by authors who knew the code of every passage, so its coded passages "
        f"are explicit and short. The transfer set (<code>{html.escape(str(transfer.get('data') or ''))}</code>: "
        f"{_count(transfer.get('transcripts'))} transcripts, {_count(transfer.get('segments'))} participant "
        "segments) "
        "was written without the codebook and then coded by two coders, A and B, who saw only the codebook "
        "and the transcript. The model is trained on the whole gold set and tested there. The transfer set "
        "never fits anything (no weights, calibration or thresholds): it only chooses between the named "
        "variants below.</p>"
        "<p class='warn'><b>Both the gold set and the transfer set are synthetic.</b> These figures compare "
        "models and show how much is lost on unfamiliar text; they are not real-world accuracy.</p>"
    )
    rows = [
        ["macro-F1", _num(default.get("macro_f1")), _num(cross.get("macro_f1"))],
        ["micro-F1", _num(default.get("micro_f1")), _num(cross.get("micro_f1"))],
    ]
    for lang in ("en", "fr"):
        rows.append(
            [
                f"macro-F1, {LANGUAGE_NAMES[lang]}",
                _num((default.get("by_language", {}).get(lang) or {}).get("macro_f1")),
                _num((cross.get("by_language") or {}).get(lang)),
            ]
        )
    for pair in ("model vs A", "model vs B", "A vs B"):
        rows.append(
            [
                f"Cohen's kappa, {pair} (95% interval)",
                _kappa_cell(gold_kappa.get(pair)),
                _kappa_cell(transfer_kappa.get(pair)),
            ]
        )
    side = _table(["default model", "gold set (cross-validated)", "transfer set"], rows)

    shift = transfer["question_shift"]
    shift_names = {
        "guide": "replaced by the interview guide's impact question",
        "unrelated": "replaced by an unrelated question",
        "leading": "replaced by a leading question (conflict and resistance)",
        "removed": "removed",
    }
    shift_table = _table(
        ["interviewer turns", "macro-F1 (transfer set)", "largest change of a participant probability"],
        [["as asked", _num((shift.get("asked") or {}).get("macro_f1")), ""]]
        + [
            [
                text,
                _num((shift.get(mode) or {}).get("macro_f1")),
                _num((shift.get(mode) or {}).get("max_probability_change"), 6),
            ]
            for mode, text in shift_names.items()
            if mode in shift
        ],
    )
    passages = transfer.get("passages") or {}
    prior = passages.get("nearest_definition") or {}
    in_corpus = transfer.get("in_corpus_passages") or {}
    passage_rows = []
    for lang in ("en", "fr"):
        for label, entry in (
            ("default model, transfer set", passages.get(lang)),
            ("codebook prior alone, transfer set", prior.get(lang)),
            ("default model, gold set (out of fold)", in_corpus.get(lang)),
        ):
            if entry:
                passage_rows.append(
                    [
                        f"{label} ({LANGUAGE_NAMES[lang]})",
                        _count(entry.get("passages")),
                        _pct(entry.get("category_top1")),
                        _pct(entry.get("impact_top1")),
                        _pct(entry.get("impact_top3")),
                        _num(entry.get("presence_auc"), 2),
                    ]
                )
    passage_table = _table(
        ["model, data (language)", "coded passages", "category top-1", "impact top-1", "impact top-3", "presence AUC"],
        passage_rows,
    )
    top = transfer.get("turn_top1") or {}
    top_rows = [
        [
            LANGUAGE_NAMES.get(group, html.escape(group)),
            _count(entry.get("turns")),
            _pct(entry.get("impact_top1")),
            _pct(entry.get("impact_top3")),
            _pct(entry.get("category_top1")),
            _pct(entry.get("category_top3")),
        ]
        for group, entry in sorted(top.items(), key=lambda kv: (kv[0] != "all", kv[0]))
    ]
    top_table = _table(
        ["language", "turns with one impact", "impact top-1", "impact top-3", "category top-1", "category top-3"],
        top_rows,
    )
    variant_rows, classes = [], []
    entries = {"default model": transfer, **(transfer.get("variants") or {})}
    for name, entry in entries.items():
        if "not_run" in entry:
            variant_rows.append([html.escape(name), _settings(entry, transfer.get("default") or {})] + [""] * 8)
            variant_rows[-1][2] = "not run: " + html.escape(entry["not_run"])
            classes.append("")
            continue
        p, c = entry.get("passages") or {}, entry["cross_corpus"]
        cells = [
            html.escape(name),
            "" if name == "default model" else _settings(entry, transfer.get("default") or {}),
            _num(entry.get("passage_score")),
        ]
        for lang in ("en", "fr"):
            e = p.get(lang) or {}
            cells.append(
                f"{_pct(e.get('category_top1'))} / {_pct(e.get('impact_top1'))} / {_pct(e.get('impact_top3'))}"
            )
        cells += [
            "/".join(_num((p.get(lang) or {}).get("presence_auc"), 2) for lang in ("en", "fr")),
            _num(c.get("macro_f1")),
            _num(((c.get("kappa") or {}).get("model vs A") or {}).get("value"), 2),
            _num(entry.get("in_corpus_macro_f1")),
            _num((entry.get("question_shift") or {}).get("max_probability_change"), 3),
        ]
        variant_rows.append(cells)
        classes.append("default" if name == "default model" else "")
    variants = _table(
        [
            "variant",
            "differs from the default in",
            "passage score (chooses)",
            "English passages: category top-1 / impact top-1 / top-3",
            "French passages: category top-1 / impact top-1 / top-3",
            "presence AUC en/fr",
            "segment macro-F1 (transfer)",
            "kappa vs A (transfer)",
            "segment macro-F1 (gold, cross-validated)",
            "largest probability change, interviewer shifted",
        ],
        variant_rows,
        classes,
    )
    curve = transfer.get("learning_curve") or []
    curve_table = _table(
        [
            "gold transcripts trained on",
            "random sets",
            "English: category top-1 / impact top-1 / top-3",
            "French: category top-1 / impact top-1 / top-3",
        ],
        [
            [
                "0 (codebook prior alone)" if point["transcripts"] == 0 else _count(point["transcripts"]),
                _count(point.get("draws")),
                *(
                    "{} / {} / {}".format(
                        *(
                            _pct((point["passages"].get(lang) or {}).get(k))
                            for k in ("category_top1", "impact_top1", "impact_top3")
                        )
                    )
                    for lang in ("en", "fr")
                ),
            ]
            for point in curve
        ],
    )
    int8 = transfer.get("int8")
    int8_part = ""
    if int8:
        loss = int8["loss"]
        verdict = (
            "so int8 should be the default encoder"
            if int8["int8_should_be_default"]
            else "so fp32 stays the default encoder"
        )
        int8_part = (
            "<h3>int8 against fp32</h3><p>Loss of the int8 encoder (variant "
            f"<code>{html.escape(int8['variant'])}</code>) against the default, on the "
            f"{_count(loss['passages'])} coded passages of {_count(loss['transcripts'])} "
            f"transfer transcripts: {_num(loss['value'])} (95% interval {_num(loss['ci95'][0])} to "
            f"{_num(loss['ci95'][1])}). The rule: {html.escape(int8['rule'])}; the interval "
            f"{'lies wholly above 0' if loss['ci95'][0] > 0 else 'reaches 0 or below'}, {verdict}.</p>"
        )
    targets = transfer.get("targets") or {}
    target_rows, target_classes = [], []
    for name, target in targets.items():
        figure = next((what for prefix, what in TARGET_FIGURES if name.startswith(prefix)), "")
        met = bool(target.get("met"))
        target_rows.append(
            [
                html.escape(name),
                _num(target.get("value")) + (f" <span class='ci'>({figure})</span>" if figure else ""),
                "<span class='met'>&#10003; met</span>" if met else "<span class='missed'>&#10007; MISSED</span>",
            ]
        )
        target_classes.append("" if met else "missedrow")
    missed = sum(not t.get("met") for t in targets.values())
    target_part = (
        f"<h3>Targets</h3><p>{missed} of {len(targets)} targets missed.</p>"
        + _table(["target", "figure judged", "result"], target_rows, target_classes)
        if targets
        else _absent("No targets in these metrics.")
    )
    return (
        head
        + intro
        + "<h3>The default model, on the gold set and on the transfer set</h3>"
        + "<p>Kappa on the transfer set compares the model's codes with coder A's and coder B's on its "
        "participant segments; A vs B is how much two humans agree on the same text, the benchmark.</p>"
        + side
        + "<h3>Coded passages</h3><p>Coders code passages, not sentences. For each passage coder A coded "
        "(on participant speech), the model ranks the impacts for the passage as a whole: <i>category top-1</i> "
        "is the share whose first-ranked impact lies in a category coder A used there, <i>impact top-1</i> the "
        "share whose first-ranked impact is one coder A used, <i>impact top-3</i> the share with one of coder "
        "A's impacts among the first three. <i>Presence AUC</i>: how well a participant sentence's highest "
        "probability tells whether coder A coded it at all (0.5 is chance, 1 perfect). The codebook prior "
        "alone ranks by similarity to each impact's codebook texts in the passage's language (what "
        "<code>imri code --zero-shot</code> does).</p>"
        + passage_table
        + "<h3>The interviewer's words</h3><p>The trained model scored the transfer set again with every "
        "interviewer turn replaced by one question, and with none. A model that reads only participant "
        "speech gives the same probabilities whatever the interviewer says (largest change 0).</p>"
        + shift_table
        + "<h3>Turn top-1 on the transfer set</h3><p>Participant turns coder A coded with exactly one impact: "
        "the share whose most probable impact (highest over the turn's segments) is that impact (top-1), the "
        "share with it among the three most probable (top-3), and the same for its category.</p>"
        + top_table
        + "<h3>Variants compared on transfer</h3><p>Named variants of the training settings (the "
        "<code>train</code> section of <code>params.yaml</code>), each trained on the gold set and judged on "
        "the transfer set. The default is the variant with the highest <i>passage score</i>: the mean over "
        "languages of category top-1, impact top-1, impact top-3 and presence AUC on coded passages.</p>"
        + variants
        + "<h3>How much must we code?</h3><p>The default configuration trained on a few gold transcripts "
        "(half English, half French, several random sets averaged), judged on the transfer set's coded "
        "passages; 0 is the codebook prior alone.</p>" + curve_table + int8_part + target_part + "</section>"
    )


GLOSSARY = (
    (
        "Precision, recall, F1",
        "Precision: of the codes the model gave, the share the coder also gave. Recall: "
        "of the codes the coder gave, the share the model found. F1: their harmonic mean, from 0 (no overlap) "
        "to 1 (the same codes). <b>Macro-F1</b> averages F1 over impacts (each impact counts the same); "
        "<b>micro-F1</b> pools every decision (frequent impacts count more).",
    ),
    (
        "Cohen's kappa",
        "Agreement between two coders beyond what chance would give: 0 = chance, 1 = identical. "
        "Here averaged over impacts, each impact a yes/no decision per segment. Low kappa with high % "
        "agreement is usual for rare codes: most segments are agreed 'not this impact'.",
    ),
    (
        "Krippendorff's alpha",
        "Another chance-corrected agreement statistic (0 = chance, 1 = perfect), which "
        "allows any number of coders and missing codings; for two coders on yes/no codes it is close to kappa. "
        "<code>imri agreement</code> reports it.",
    ),
    (
        "Calibration",
        "Whether the probabilities mean what they say: of the segments given 0.8 for an impact, "
        "about 80% should have it. The <b>expected calibration error (ECE)</b> is the average gap, 0 = perfect.",
    ),
    (
        "Confidence",
        "Per segment, how far its least certain impact decision is from that impact's threshold, "
        "from 0.5 (on a threshold) to 1 (every decision clear-cut).",
    ),
    (
        "Coverage",
        "The share of segments accepted without human review, the most confident first. More "
        "coverage saves review time and lets more errors through.",
    ),
    (
        "Review threshold",
        "The confidence below which a segment goes to a person "
        "(<code>review.margin</code> = 2 &times; confidence &minus; 1).",
    ),
    (
        "Cross-validation by transcript",
        "Each transcript is coded by a model trained on the other transcripts "
        "only, so no score comes from text the model saw.",
    ),
    ("Gold set", "Transcripts coded by people, from which the model learns. The bundled one is synthetic."),
    (
        "Transfer set",
        "A second coded corpus the model never trains on, written without the codebook and coded "
        "afterwards by two coders: a check of how the model does on text it was not written for. Synthetic too.",
    ),
    (
        "Question shift",
        "The same evaluation with the interviewer's questions replaced by a generic impact "
        "question, or removed: how much the model depends on the wording of the gold set's questions.",
    ),
    (
        "Turn top-1 / top-3",
        "On participant turns coded with one impact, the share where the model's most "
        "probable impact is the coded one (top-1) or among its three most probable (top-3). Category top-1: "
        "the same for the impact's category.",
    ),
    (
        "Baseline",
        "A simpler method the model should beat: word overlap with coded text (as NVivo's coding "
        "patterns), TF-IDF + logistic regression, or zero-shot from the codebook alone.",
    ),
)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1060px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td.n{text-align:right;white-space:nowrap}
tr.default td{font-weight:bold}tr.precode td{background:#eaf5ea}tr.human td{background:#fbeeee}
tr.zeroshot td{color:#555;font-style:italic}tr.missedrow td{background:#fbeeee}
.ci{color:#666;font-size:.88em;font-weight:normal}.met{color:#1e7b1e;font-weight:bold}
.missed{color:#b00020;font-weight:bold}.absent{color:#666;font-style:italic}
.warn{background:#fff6dc;border-left:4px solid #e0a800;padding:.5em .8em}
.rule{font-size:.92em;color:#444}#summary{background:#f7f9fc;border:1px solid #dde4ee;padding:.2em 1em 1em}
figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.93em;color:#333;background:#fafafa;border-left:3px solid #3b75af;padding:.4em .8em}
dt{font-weight:bold;margin-top:.5em}nav a{margin-right:1em}
"""


def build_report(results: dict, codebook: Codebook) -> tuple[str, dict[str, bytes]]:
    """The HTML page and the PNG of each figure drawn (a figure without data is left out)."""
    report = Report(results, codebook)
    rows = impact_rows(report)
    titles = {
        "per_code_f1": "How well each impact is coded",
        "category_confusion": "Which categories the model mixes up",
        "agreement": "Agreement with human coders",
        "reliability": "Calibration",
        "coverage": "Review threshold",
    }
    captions = {
        "per_code_f1": lambda: _caption_per_code(report, rows),
        "category_confusion": lambda: _caption_confusion(report),
        "agreement": lambda: _caption_agreement(report),
        "reliability": lambda: _caption_reliability(report),
        "coverage": lambda: _caption_coverage(report),
    }
    pngs: dict[str, bytes] = {}
    blocks: dict[str, str] = {}
    for name in FIGURES:
        fig = DRAW[name](report)
        if fig is None:
            blocks[name] = _absent(
                "No agreement figures in these metrics: the gold set has no second coder (B) and no transfer "
                "set was evaluated."
            )
            continue
        pngs[name] = figure_png(fig)
        blocks[name] = _figure_html(name, titles[name], pngs[name], captions[name]())
    note = ""
    if report.unknown:
        note = _absent(
            f"{len(report.unknown)} id(s) in the metrics are not in codebook {html.escape(codebook.id)} "
            f"v{html.escape(codebook.version)} and are shown as ids: {html.escape(', '.join(report.unknown[:10]))} "
            "(pass the codebook the model was evaluated with: <code>imri report --codebook</code>)."
        )
    nav = "".join(
        f"<a href='#{anchor}'>{text}</a>"
        for anchor, text in (
            ("summary", "In short"),
            ("impacts", "Per impact"),
            ("models", "Models"),
            ("categories", "Categories"),
            ("agreement-section", "Agreement"),
            ("calibration", "Calibration"),
            ("review", "Review threshold"),
            ("units", "Coding units"),
            ("transfer", "Transfer"),
            ("glossary", "Glossary"),
        )
    )
    glossary = "".join(f"<dt>{term}</dt><dd>{text}</dd>" for term, text in GLOSSARY)
    curve = results["coverage"]["curve"]
    curve_table = _table(
        ["auto-accepted", "segments", "confidence at least", "precision of suggested codes", "exactly coder A's codes"],
        [
            [
                _pct(r["coverage"]),
                _count(r.get("segments")),
                _num(r.get("min_confidence"), 2),
                _num(r.get("precision"), 2),
                _num(r.get("exact_set_accuracy"), 2),
            ]
            for r in curve
        ],
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imri-autocode: evaluation report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>
<h1>imri-autocode: evaluation report</h1>
<p class="warn"><b>{html.escape(results.get("note", "")) or "Evaluation figures."}</b>
The bundled gold set is synthetic, written for this project: its scores show what the model can do
and how the options compare, not how accurate it will be on your interviews.</p>
<nav>{nav}</nav>
{note}
{summary(report, rows)}
<section id="impacts"><h2>Per impact</h2>
<p>Codebook {html.escape(codebook.id)} v{html.escape(codebook.version)}; coder A's codes are the reference.
Best first, by the figure the summary judges on. Green: pre-code; red: full human coding.</p>
{_impact_table(rows)}
{blocks["per_code_f1"]}</section>
{_models_section(report)}
<section id="categories"><h2>Categories</h2>{blocks["category_confusion"]}</section>
<section id="agreement-section"><h2>Agreement with human coders</h2>{blocks["agreement"]}</section>
<section id="calibration"><h2>Calibration</h2>{blocks["reliability"]}</section>
<section id="review"><h2>Review threshold</h2>{blocks["coverage"]}{curve_table}</section>
{_units_section(report)}
{transfer_section(report)}
<section id="glossary"><h2>Glossary</h2><dl>{glossary}</dl></section>
</body></html>
"""
    return page, pngs


def write_report(metrics_path: str | Path, out_dir: str | Path, codebook: str | Path | Codebook | None = None) -> Path:
    """Write ``report.html`` (images embedded) and one PNG per drawn figure for a metrics file.

    ``codebook`` names the impacts and categories (default: the bundled IMRI v1). A figure whose
    data is absent is not drawn, and a PNG of it left by an earlier report is removed.
    """
    from pipeline.io import atomic_path

    metrics_path, out_dir = Path(metrics_path), Path(out_dir)
    try:
        results = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read metrics ({type(exc).__name__})", metrics_path) from None
    if not isinstance(results, dict):
        raise InputError("not an imri evaluate metrics file (not a JSON object)", metrics_path)
    missing = [k for k in REQUIRED if k not in results]
    if missing:
        raise InputError(f"not an imri evaluate metrics file (no {', '.join(missing)})", metrics_path)
    book = codebook if isinstance(codebook, Codebook) else load_codebook(codebook)
    try:
        page, pngs = build_report(results, book)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(
            f"metrics file is incomplete or malformed ({type(exc).__name__}: {exc})", metrics_path
        ) from None
    for name in FIGURES:  # atomic_path makes the folder, or says in one line why it cannot
        if name in pngs:
            with atomic_path(out_dir / f"{name}.png") as tmp:
                tmp.write_bytes(pngs[name])
        else:
            (out_dir / f"{name}.png").unlink(missing_ok=True)
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out_dir / "report.html"
