"""The report's figures: one matplotlib drawing per PNG, and the PNG bytes of a figure.

DRAW maps each figure's name to the function that draws it from a Report; a function returns None
where the metrics lack its data (agreement without coder pairs, learning_curve without the curve).
Figures are drawn without pyplot (no global state) and saved without a ``Software`` or date entry,
so the same metrics give the same bytes."""

from __future__ import annotations

import io
import textwrap

import numpy as np

from pipeline.report.formatting import number
from pipeline.report.reading import (
    HINT_F1,
    LANGUAGE_NAMES,
    PAIR_NAMES,
    PRECODE_F1,
    REVIEW_PRECISION,
    Report,
    bin_gaps,
    impact_rows,
    kappa_pairs,
    queue_window,
    review_threshold,
)

COLORS = {"gold": "#3b75af", "transfer": "#e08a2c", "human": "#777777"}


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


def agreement(report: Report):
    """Mean Cohen's kappa of each coder pair, gold set and transfer set side by side; None without pairs."""
    gold, transfer = kappa_pairs(report)
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
    ax.set_xticks(x, [PAIR_NAMES.get(n, n) for n in names], fontsize=8.5)
    ax.set_ylabel("Cohen's kappa, mean over impacts\n(0 = chance, 1 = identical; 95% interval)")
    ax.set_ylim(0, 1)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=color, label=label) for _, label, color in series], fontsize=8, loc="upper right")
    ax.set_title("Does the model agree with coders as well as they agree with each other?")
    return fig


def reliability(report: Report):
    """Reliability diagram: predicted probability against observed frequency, gold set (and transfer set);
    the probabilities the review queue works on shaded where the cut-offs are known."""
    calibration = report.results["calibration"]
    fig, ax = _figure(5.5, 5.5)
    window = queue_window(report)
    if window is not None:
        ax.axvspan(
            window["low"], window["high"], color="#f2e3c6", alpha=0.6, label="probabilities the review queue works on"
        )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated (the diagonal)")
    series = [("gold set, out of fold", calibration, COLORS["gold"], "o-")]
    moved = (report.transfer or {}).get("calibration")
    if moved and moved.get("reliability"):
        series.append(("transfer set", moved, COLORS["transfer"], "s-"))
    for label, entry, color, style in series:
        bins = bin_gaps(entry.get("reliability") or [])
        ax.plot(
            [b["mean_probability"] for b in bins],
            [b["observed_rate"] for b in bins],
            style,
            color=color,
            label=f"{label} (ECE {number(entry.get('ece'))})",
        )
    ax.set_xlabel("mean probability the model gave an impact, per bin of 0.1")
    ax.set_ylabel("share of those (segment, impact) pairs that coder A coded")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7.5, loc="upper left")
    ax.set_title("Can the probabilities be taken at face value?")
    return fig


def coverage(report: Report):
    """Precision and exact-set share against the share of segments auto-accepted; the chosen threshold marked."""
    curve = report.results["coverage"]["curve"]
    chosen = review_threshold(curve)
    fig, ax = _figure(7, 4.5)
    x = [row["coverage"] for row in curve]
    ax.plot(
        x,
        [row["precision"] for row in curve],
        "o-",
        color=COLORS["gold"],
        label="precision: share of suggested codes coder A also gave",
    )
    ax.plot(
        x,
        [row["exact_set_accuracy"] for row in curve],
        "s-",
        color="#5a9e5a",
        label="exact: share of accepted segments with exactly coder A's codes",
    )
    ax.axhline(REVIEW_PRECISION, color="grey", linestyle=":", linewidth=1)
    ax.text(
        1.0, REVIEW_PRECISION + 0.01, f"precision limit {REVIEW_PRECISION:.2f}", fontsize=7, color="grey", ha="right"
    )
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
    ax.set_ylabel("share of codes or segments agreeing with coder A\n(the legend says which)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("How many segments can skip review?")
    return fig


def learning_curve(report: Report):
    """Transfer passage figures against the number of gold transcripts trained on; None without the curve."""
    curve = (report.transfer or {}).get("learning_curve") or []
    if len(curve) < 2:
        return None
    fig, axes = _figure(9, 3.8)
    fig.clf()
    axes = fig.subplots(1, 2, sharey=True)
    sizes = [point["transcripts"] for point in curve]
    styles = (
        ("category_top1", "category top-1", "o-"),
        ("impact_top1", "impact top-1", "s-"),
        ("impact_top3", "impact top-3", "^-"),
    )
    for ax, lang in zip(axes, ("en", "fr"), strict=True):
        for key, label, style in styles:
            ax.plot(sizes, [(p["passages"].get(lang) or {}).get(key, np.nan) for p in curve], style, label=label)
        ax.set_title(f"{LANGUAGE_NAMES[lang]} passages of the transfer set")
        ax.set_xlabel("gold transcripts coded and trained on (0: the codebook prior alone)")
        ax.set_xticks(sizes)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of coder A's coded passages")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("How much must we code? Passage figures by the size of the gold set")
    fig.tight_layout()
    return fig


DRAW = {
    "per_code_f1": per_code_f1,
    "category_confusion": category_confusion,
    "agreement": agreement,
    "reliability": reliability,
    "coverage": coverage,
    "learning_curve": learning_curve,
}


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, with no ``Software`` (or date) entry so equal figures give equal bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png", metadata={"Software": None})
    return buffer.getvalue()
