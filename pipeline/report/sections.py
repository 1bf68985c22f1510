"""The report's sections on the gold set: the summary, the per-impact table, the models and the coding units.

summary is the plain summary at the top of the page (which impacts to pre-code, which to code by hand,
the review threshold, the rule used); impact_table the per-impact table it judges from; models_section
and units_section compare the models, and the coding units, on the gold set."""

from __future__ import annotations

import html

from pipeline.report.formatting import absent, count, finite, html_table, number
from pipeline.report.reading import (
    HINT_F1,
    LANGUAGE_NAMES,
    MIN_SUPPORT,
    PRECODE_F1,
    REVIEW_PRECISION,
    TIERS,
    ImpactRow,
    Report,
    review_margin,
    review_threshold,
)


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
