"""Draw ``reports/metrics.json``: one PNG per figure and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

FIGURES = ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Lay out, write as PNG and close (pyplot keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    _plt().close(fig)


def per_code_f1(results: dict, path: Path) -> None:
    plt = _plt()
    names = [results["default_model"]] + [n for n, e in results["models"].items() if e.get("kind") == "baseline"]
    codes = list(results["models"][results["default_model"]]["per_code"])
    fig, ax = plt.subplots(figsize=(10, 7))
    height = 0.8 / len(names)
    for k, name in enumerate(names):
        f1 = [results["models"][name]["per_code"][c]["f1"] for c in codes]
        ax.barh(np.arange(len(codes)) + k * height, f1, height, label=name)
    ax.set_yticks(np.arange(len(codes)) + 0.4 - height / 2, codes, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("F1 (cross-validated by transcript)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Per-impact F1 on the synthetic gold set")
    _save(fig, path)


def category_confusion(results: dict, path: Path) -> None:
    plt = _plt()
    confusion = results["categories"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(
        range(len(confusion["columns"])),
        [c.replace("ways_of_", "") for c in confusion["columns"]],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_yticks(
        range(len(confusion["categories"])), [c.replace("ways_of_", "") for c in confusion["categories"]], fontsize=8
    )
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted category (a segment may get several)")
    ax.set_ylabel("gold category (segments with one gold category)")
    ax.set_title(f"Category confusion, {results['default_model']}")
    _save(fig, path)


def agreement(results: dict, path: Path) -> None:
    plt = _plt()
    pairs = (results.get("human_vs_model") or {}).get("pairs", {})
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(pairs)
    values, lows, highs = [], [], []
    for name in names:
        kappa = pairs[name].get("cohen_kappa") or {}
        value = kappa.get("value")
        ci = kappa.get("ci95") or [value, value]
        values.append(np.nan if value is None else value)
        lows.append(0 if value is None or ci[0] is None else value - ci[0])
        highs.append(0 if value is None or ci[1] is None else ci[1] - value)
    colors = ["#777777" if n == "A vs B" else "#3b75af" for n in names]
    ax.bar(names, values, yerr=[lows, highs], color=colors, capsize=4)
    ax.set_ylabel("Cohen's kappa, mean over impacts (95% CI)")
    ax.set_ylim(0, 1)
    ax.set_title("Human-human vs model-human agreement (double-coded transcripts)")
    _save(fig, path)


def reliability(results: dict, path: Path) -> None:
    plt = _plt()
    calibration = results["calibration"]
    bins = calibration["reliability"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(
        [b["mean_probability"] for b in bins],
        [b["observed_rate"] for b in bins],
        "o-",
        label=f"{calibration['model']} (ECE {calibration['ece']:.3f})",
    )
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(fontsize=8)
    ax.set_title("Reliability diagram")
    _save(fig, path)


def coverage(results: dict, path: Path) -> None:
    plt = _plt()
    curve = results["coverage"]["curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [row["coverage"] for row in curve]
    ax.plot(x, [row["precision"] for row in curve], "o-", label="precision of suggested codes")
    ax.plot(x, [row["exact_set_accuracy"] for row in curve], "s-", label="segments with exactly the gold codes")
    ax.set_xlabel("share of segments auto-accepted (most confident first)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Coverage vs precision for the review threshold")
    _save(fig, path)


DRAW = {
    "per_code_f1": per_code_f1,
    "category_confusion": category_confusion,
    "agreement": agreement,
    "reliability": reliability,
    "coverage": coverage,
}


def _model_table(results: dict) -> str:
    rows = []
    for name, entry in results["models"].items():
        lang, cross = entry.get("by_language", {}), entry.get("cross_lingual", {})
        cells = [
            entry["macro_f1"],
            entry["micro_f1"],
            lang.get("en", {}).get("macro_f1"),
            lang.get("fr", {}).get("macro_f1"),
            cross.get("en->fr", {}).get("macro_f1"),
            cross.get("fr->en", {}).get("macro_f1"),
        ]
        shown = "".join(f"<td>{'' if c is None else f'{c:.3f}'}</td>" for c in cells)
        strong = " style='font-weight:bold'" if name == results["default_model"] else ""
        rows.append(f"<tr{strong}><td>{html.escape(name)}</td><td>{entry.get('kind', '')}</td>{shown}</tr>")
    return (
        "<table><tr><th>model</th><th>kind</th><th>macro-F1</th><th>micro-F1</th><th>en</th><th>fr</th>"
        "<th>en&rarr;fr</th><th>fr&rarr;en</th></tr>" + "".join(rows) + "</table>"
    )


def _unit_table(results: dict) -> str:
    compared = results.get("units")
    if not compared:
        return ""
    rows = []
    for unit, entry in compared["units"].items():
        lang = entry.get("by_language", {})
        cells = [
            entry["macro_f1"],
            entry["micro_f1"],
            lang.get("en", {}).get("macro_f1"),
            lang.get("fr", {}).get("macro_f1"),
            entry["segment_macro_f1"],
        ]
        shown = "".join(f"<td>{'' if c is None else f'{c:.3f}'}</td>" for c in cells)
        strong = " style='font-weight:bold'" if unit == compared["default"] else ""
        rows.append(
            f"<tr{strong}><td>{html.escape(unit)}</td><td>{entry['segments']}</td>"
            f"<td>{entry['mean_words']:.1f}</td>{shown}</tr>"
        )
    return (
        f"<h2>coding units</h2><p>{html.escape(compared['protocol'])}.</p>"
        "<table><tr><th>unit</th><th>segments</th><th>words/segment</th><th>character macro-F1</th>"
        "<th>character micro-F1</th><th>en</th><th>fr</th><th>segment macro-F1 (own unit)</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def write_report(metrics_path: str | Path, out_dir: str | Path) -> Path:
    """Write the PNGs and ``report.html`` (images embedded) for a metrics file."""
    from pipeline.io import atomic_path

    metrics_path, out_dir = Path(metrics_path), Path(out_dir)
    try:
        results = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read metrics ({type(exc).__name__})", metrics_path) from None
    missing = [k for k in ("models", "default_model", "calibration", "coverage", "categories") if k not in results]
    if missing:
        raise InputError(f"not an imri evaluate metrics file (no {', '.join(missing)})", metrics_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for name in FIGURES:
        with atomic_path(out_dir / f"{name}.png") as tmp:
            DRAW[name](results, tmp)
        encoded = base64.b64encode((out_dir / f"{name}.png").read_bytes()).decode("ascii")
        images.append(f"<h2>{name.replace('_', ' ')}</h2><img alt='{name}' src='data:image/png;base64,{encoded}'>")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>imri-autocode evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}
</style></head><body><h1>imri-autocode evaluation</h1>
<p><b>{html.escape(results.get("note", ""))}</b></p>
<p>Protocol: {html.escape(results.get("protocol", ""))}. {results.get("transcripts")} transcripts,
{results.get("segments")} participant segments. Default model: <b>{html.escape(results["default_model"])}</b>;
expected calibration error {results["calibration"]["ece"]:.3f}.</p>
{_model_table(results)}
{_unit_table(results)}
{"".join(images)}
</body></html>
"""
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out_dir / "report.html"
