"""Draw ``reports/metrics.json`` for a researcher: a self-contained ``report.html`` and one PNG per figure.

The page opens with a plain summary (which impacts the model can pre-code, which need full human
coding, at what review threshold, with the rule used), then one section per comparison, each
figure with a caption saying what it shows and what to do about it, the transfer evaluation
(text the model was not written for) and a glossary. Impacts and categories are named as the
codebook names them (metrics carry ids). Sections whose figures are not in the metrics are left
out with a line saying so. The same metrics give the same bytes: no dates, PNGs without a
``Software`` entry.

This module puts the page together: build_report draws the figures (figures.py) with their captions
(captions.py), lays out the sections (sections.py, transfer.py) in the HTML shell with its style, and
links the glossary's terms (glossary.py); write_report reads the metrics file and writes the page and
the PNGs.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.report.captions import (
    caption_agreement,
    caption_confusion,
    caption_coverage,
    caption_learning_curve,
    caption_per_code,
    caption_reliability,
)
from pipeline.report.figures import DRAW, figure_png
from pipeline.report.formatting import absent, count, html_table, number, percent
from pipeline.report.glossary import GLOSSARY, link_terms
from pipeline.report.reading import Report, impact_rows, synthetic
from pipeline.report.sections import impact_table, models_section, summary, units_section
from pipeline.report.transfer import transfer_section

FIGURES = ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage", "learning_curve")
REQUIRED = ("models", "default_model", "calibration", "coverage", "categories")


def _figure_html(name: str, title: str, png: bytes, caption: tuple[str, str]) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    shows, todo = caption
    return (
        f"<figure id='{name}'><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption><b>What it shows.</b> {shows}<br><b>What to do.</b> {todo}</figcaption></figure>"
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
        "learning_curve": "How much must we code?",
    }
    captions = {
        "per_code_f1": lambda: caption_per_code(report, rows),
        "category_confusion": lambda: caption_confusion(report),
        "agreement": lambda: caption_agreement(report),
        "reliability": lambda: caption_reliability(report),
        "coverage": lambda: caption_coverage(report),
        "learning_curve": lambda: caption_learning_curve(report),
    }
    pngs: dict[str, bytes] = {}
    blocks: dict[str, str] = {}
    for name in FIGURES:
        fig = DRAW[name](report)
        if fig is None:
            blocks[name] = absent(
                "No learning curve in these metrics (evaluate.learning_curve with a transfer set)."
                if name == "learning_curve"
                else "No agreement figures in these metrics: the gold set has no second coder (B) and no transfer "
                "set was evaluated."
            )
            continue
        pngs[name] = figure_png(fig)
        blocks[name] = _figure_html(name, titles[name], pngs[name], captions[name]())
    note = ""
    if report.unknown:
        note = absent(
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
    glossary = "".join(f"<dt id='g-{t.slug}'>{t.name}</dt><dd>{t.text}</dd>" for t in GLOSSARY)
    curve = results["coverage"]["curve"]
    curve_table = html_table(
        ["auto-accepted", "segments", "confidence at least", "precision of suggested codes", "exactly coder A's codes"],
        [
            [
                percent(r["coverage"]),
                count(r.get("segments")),
                number(r.get("min_confidence"), 2),
                number(r.get("precision"), 2),
                number(r.get("exact_set_accuracy"), 2),
            ]
            for r in curve
        ],
    )
    warning = (
        "The bundled gold set is synthetic, written for this project: its scores show what the model can do "
        "and how the options compare, not how accurate it will be on your interviews."
        if synthetic(results)
        else "These figures come from the gold set named above, each transcript scored by a model that never saw "
        "it; they describe text like that gold set's, so check a sample of the model's coding of each new study."
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imri-autocode: evaluation report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>
<h1>imri-autocode: evaluation report</h1>
<p class="warn"><b>{html.escape(results.get("note", "")) or "Evaluation figures."}</b>
{warning}</p>
<nav>{nav}</nav>
{note}
{summary(report, rows)}
<section id="impacts"><h2>Per impact</h2>
<p>Codebook {html.escape(codebook.id)} v{html.escape(codebook.version)}; coder A's codes are the reference.
Best first, by the figure the summary judges on. Green: pre-code; red: full human coding.</p>
{impact_table(rows)}
{blocks["per_code_f1"]}</section>
{models_section(report)}
<section id="categories"><h2>Categories</h2>{blocks["category_confusion"]}</section>
<section id="agreement-section"><h2>Agreement with human coders</h2>{blocks["agreement"]}</section>
<section id="calibration"><h2>Calibration</h2>{blocks["reliability"]}</section>
<section id="review"><h2>Review threshold</h2>{blocks["coverage"]}{curve_table}</section>
{units_section(report)}
{transfer_section(report, blocks["learning_curve"])}
<section id="glossary"><h2>Glossary</h2><dl>{glossary}</dl></section>
</body></html>
"""
    return link_terms(page), pngs


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
