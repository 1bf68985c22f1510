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
from pipeline.report.figures import (
    DRAW,
    figure_png,
)
from pipeline.report.formatting import absent, count, finite, html_table, number, percent
from pipeline.report.glossary import GLOSSARY, link_terms
from pipeline.report.reading import (
    HINT_F1,
    LANGUAGE_NAMES,
    MIN_SUPPORT,
    PRECODE_F1,
    REVIEW_PRECISION,
    TIERS,
    ImpactRow,
    Report,
    impact_rows,
    review_margin,
    review_threshold,
    synthetic,
)
from pipeline.report.transfer import transfer_section

FIGURES = ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage", "learning_curve")
REQUIRED = ("models", "default_model", "calibration", "coverage", "categories")

# --- HTML ---------------------------------------------------------------------------------------


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
        f"({count(results.get('transcripts'))} transcripts, {count(results.get('segments'))} participant "
        "segments, "
        "cross-validated by transcript).",
    ]
    if transfer:
        cross = transfer["cross_corpus"]["macro_f1"]
        missed = [n for n, t in (transfer.get("targets") or {}).items() if not t.get("met")]
        total = len(transfer.get("targets") or {})
        ratio = f", {cross / in_corpus:.0%} of that" if in_corpus else ""
        lines.append(f" On text it was not written for (the transfer set) it reaches {cross:.2f}{ratio}")
        verdict = (
            " Expect real transcripts to be coded less well than the gold-set figures suggest."
            if cross < in_corpus
            else " It keeps its gold-set level on this unfamiliar text; still check it on a sample of your own study."
        )
        lines.append(
            f"; {len(missed)} of {total} transfer targets missed (the project's own acceptance targets, "
            f"<a href='#targets'>listed below</a>).{verdict}</p>"
            if total
            else f".{verdict}</p>"
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


def impact_table(rows: list[ImpactRow]) -> str:
    """The per-impact table: figures, human kappa and the summary's recommendation, best first."""
    transfer = any(r.transfer_f1 is not None for r in rows)
    human = any(r.human_kappa is not None for r in rows)
    headers = ["impact", "category", "coded gold segments", "F1 gold set"]
    headers += ["F1 transfer set"] if transfer else []
    headers += ["kappa coder A vs coder B (humans)"] if human else []
    headers += ["recommendation"]
    body, classes = [], []
    for r in rows:
        cells = [html.escape(r.name), html.escape(r.category), count(r.support), number(r.f1, 2)]
        cells += [number(r.transfer_f1, 2)] if transfer else []
        cells += [number(r.human_kappa, 2)] if human else []
        cells.append(TIERS[r.tier] + (f" ({html.escape(r.reason)})" if r.reason else ""))
        body.append(cells)
        classes.append(r.tier)
    return html_table(headers, body, classes)


def _figure_html(name: str, title: str, png: bytes, caption: tuple[str, str]) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    shows, todo = caption
    return (
        f"<figure id='{name}'><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption><b>What it shows.</b> {shows}<br><b>What to do.</b> {todo}</figcaption></figure>"
    )


def models_section(report: Report) -> str:
    """The models compared on the gold set: the table, the best baseline and the transfer between languages."""
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
            [label, "baseline" if entry.get("kind") == "baseline" else "trained model"] + [number(c) for c in cells]
        )
        classes.append("default" if name == results["default_model"] else "")
    table = html_table(
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
    baselines = {n: e for n, e in results["models"].items() if e.get("kind") == "baseline"}
    default = report.default
    if not baselines:
        note = absent("No baselines were evaluated in this run (<code>evaluate.baselines</code> is empty).")
    else:
        best = max(baselines, key=lambda n: baselines[n]["macro_f1"] if finite(baselines[n].get("macro_f1")) else -1)
        gain = default["macro_f1"] - baselines[best]["macro_f1"]
        note = (
            f"<p>The default model's macro-F1 is {abs(gain):.3f} "
            + ("above" if gain >= 0 else "below")
            + f" that of the best baseline ({html.escape(report.model(best))}, {baselines[best]['macro_f1']:.3f})"
            + (
                ": the trained model earns its place."
                if gain > 0
                else ": the simpler method codes this gold set at least as well; prefer it or find out why."
            )
            + "</p>"
        )
    lang, cross = default.get("by_language", {}), default.get("cross_lingual", {})
    moved = []
    for source, target in (("en", "fr"), ("fr", "en")):
        both = (lang.get(target) or {}).get("macro_f1")
        alone = (cross.get(f"{source}->{target}") or {}).get("macro_f1")
        if finite(both) and finite(alone):
            text = (
                f"trained on {LANGUAGE_NAMES[source]} only, {'it' if moved else 'the default model'} reaches "
                f"{alone:.3f} on {LANGUAGE_NAMES[target]}, "
                f"{abs(both - alone):.3f} {'below' if alone < both else 'above'} training on both ({both:.3f})"
            )
            moved.append((text, alone / both if both else 1.0))
    if moved:
        kept = min(ratio for _, ratio in moved)
        note += (
            "<p>Across languages: "
            + "; ".join(text for text, _ in moved)
            + (
                f". Trained on one language it keeps at least {kept:.0%} of its figure on the other: coded "
                "transcripts in one language carry over to the other."
                if kept >= 0.9
                else f". Trained on one language it keeps as little as {kept:.0%} of its figure on the other: code "
                "some transcripts in each language of your study."
            )
            + "</p>"
        )
    return (
        "<section id='models'><h2>Models compared on the gold set</h2>"
        f"<p>Protocol: {html.escape(results.get('protocol', ''))}. English/French: macro-F1 on that language's "
        "transcripts; en &rarr; fr: trained on the English transcripts only, tested on the French ones.</p>"
        f"{table}{note}</section>"
    )


def units_section(report: Report) -> str:
    """The coding units compared on characters, or a line saying they were not compared."""
    compared = report.results.get("units")
    head = "<section id='units'><h2>Coding units</h2>"
    if not compared:
        return head + absent("Coding units were not compared in this run (<code>evaluate.units</code>).") + "</section>"
    rows, classes = [], []
    for unit, entry in compared["units"].items():
        lang = entry.get("by_language", {})
        rows.append(
            [
                html.escape(unit) + (" <b>(default)</b>" if unit == compared.get("default") else ""),
                count(entry.get("segments")),
                number(entry.get("mean_words"), 1),
                number(entry.get("macro_f1")),
                number(lang.get("en", {}).get("macro_f1")),
                number(lang.get("fr", {}).get("macro_f1")),
                number(entry.get("segment_macro_f1")),
            ]
        )
        classes.append("default" if unit == compared.get("default") else "")
    units = {u: e for u, e in compared["units"].items() if finite(e.get("macro_f1"))}
    finding = ""
    if units:
        best = max(units, key=lambda u: units[u]["macro_f1"])
        by_size = sorted(units, key=lambda u: units[u].get("mean_words") or 0)
        segment = [units[u].get("segment_macro_f1") for u in by_size]
        rising = all(finite(v) for v in segment) and all(b >= a for a, b in zip(segment, segment[1:], strict=False))
        finding = f" On characters, <b>{html.escape(best)}</b> codes best ({units[best]['macro_f1']:.3f})" + (
            f", while on their own segments the coarsest unit, {html.escape(by_size[-1])}, looks best: segment "
            "figures favour coarse units (fewer decisions), so they are not compared."
            if rising and len(by_size) > 1 and by_size[-1] != best
            else "."
        )
    return (
        head + f"<p>{html.escape(compared.get('protocol', ''))}. Units of different sizes cannot be compared on "
        "their own segments (a turn is one decision, its sentences several), so each unit's codes are spread over "
        "the characters of its segments and scored against the coders' coded passages (character macro-F1)."
        f"{finding}</p>"
        + html_table(
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
