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
from pipeline.report.glossary import GLOSSARY, link_terms, setting
from pipeline.report.reading import (
    HINT_F1,
    LANGUAGE_NAMES,
    MIN_SUPPORT,
    PAIR_NAMES,
    PRECODE_F1,
    REVIEW_PRECISION,
    TIERS,
    ImpactRow,
    Report,
    impact_rows,
    kappa_pairs,
    review_margin,
    review_threshold,
    synthetic,
)

FIGURES = ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage", "learning_curve")
REQUIRED = ("models", "default_model", "calibration", "coverage", "categories")

# --- HTML ---------------------------------------------------------------------------------------


def _kappa_cell(kappa: dict | None) -> str:
    kappa = kappa or {}
    value, ci = kappa.get("value"), kappa.get("ci95") or [None, None]
    if not finite(value):
        return "&ndash;"
    interval = f" <span class='ci'>[{number(ci[0], 2)}, {number(ci[1], 2)}]</span>" if finite(ci[0]) else ""
    return f"{value:.2f}{interval}"


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


def target_figure(name: str) -> str:
    """What a target's figure is, in words, from its name (the names of ``evaluate.transfer_targets``)."""
    if name.startswith("participant probabilities"):
        return "largest change of a participant probability"
    if name.startswith("transfer segment macro-F1"):
        return "macro-F1 over participant sentences"
    if "prior alone" in name:
        auc = "auc" in name.lower()
        return "gain over the codebook prior alone, " + ("in presence AUC" if auc else "in share of coded passages")
    if name.lower().startswith("presence auc"):
        return "presence AUC (area under the ROC curve)"
    if name.startswith("passage"):
        return "share of coded passages"
    return ""


def _settings(entry: dict, default: dict) -> str:
    """How a variant's settings differ from the default model's."""
    settings = {k: v for k, v in (entry.get("settings") or {}).items()}
    base = {**(default.get("train") or {}), "encoder": default.get("encoder")}
    changed = [f"{setting(k)} {html.escape(json.dumps(v))}" for k, v in settings.items() if base.get(k) != v]
    return ", ".join(changed) if changed else "same as the default"


def _points(value: float) -> str:
    return f"{abs(value) * 100:.0f} point{'' if round(abs(value) * 100) == 1 else 's'}"


def _transfer_readings(report: Report, kappa: dict) -> dict[str, str]:
    """The sentences of the transfer section that read its figures (each empty where its figures are absent)."""
    transfer = report.transfer or {}
    out = dict.fromkeys(("kappa", "passages", "shift", "turns", "variants", "curve"), "")
    model, humans = (kappa.get("model vs A") or {}).get("value"), (kappa.get("A vs B") or {}).get("value")
    if finite(model) and finite(humans) and humans > 0:
        out["kappa"] = (
            f" Here the model agrees with coder A at {model:.2f}, {model / humans:.0%} of the {humans:.2f} at which "
            "the two coders agree"
            + (": on this text it is not a substitute for a second coder." if model < humans else ".")
        )
    passages = transfer.get("passages") or {}
    prior, in_corpus = passages.get("nearest_definition") or {}, transfer.get("in_corpus_passages") or {}
    sentences = []
    for lang in ("en", "fr"):
        entry = passages.get(lang) or {}
        value = entry.get("impact_top1")
        if not finite(value):
            continue
        parts = []
        alone = (prior.get(lang) or {}).get("impact_top1")
        if finite(alone):
            parts.append(
                f"{_points(value - alone)} {'above' if value >= alone else 'below'} the codebook prior alone "
                f"({alone:.0%})"
            )
        own = (in_corpus.get(lang) or {}).get("impact_top1")
        if finite(own):
            parts.append(
                f"{_points(own - value)} {'below' if value <= own else 'above'} its figure on the gold set ({own:.0%})"
            )
        sentences.append(
            f"in {LANGUAGE_NAMES[lang]} the model ranks one of coder A's impacts first for {value:.0%} of the coded "
            "passages" + (", " + " and ".join(parts) if parts else "")
        )
    if sentences:
        out["passages"] = " Read from the table: " + "; ".join(sentences) + "."
    change = (transfer.get("question_shift") or {}).get("max_probability_change")
    if finite(change):
        out["shift"] = (
            f" Here the largest change of any participant probability is {change:.6f}: the codes do not depend on "
            "what the interviewer said."
            if change <= 1e-6
            else f" Here a participant probability moves by up to {change:.3f} when the interviewer's words change: "
            "the codes depend on the questions asked, so a study asking other questions will be coded differently."
        )
    turns = (transfer.get("turn_top1") or {}).get("all") or {}
    if finite(turns.get("impact_top1")):
        out["turns"] = (
            f" Over both languages the model's most probable impact is coder A's for {turns['impact_top1']:.0%} of "
            "such turns, and coder A's impact is among its three most probable for "
            f"{percent(turns.get('impact_top3'))}."
        )
    scored = {"default model": transfer.get("passage_score")}
    scored.update(
        {n: e.get("passage_score") for n, e in (transfer.get("variants") or {}).items() if "not_run" not in e}
    )
    scored = {n: v for n, v in scored.items() if finite(v)}
    if len(scored) > 1 and "default model" in scored:
        best = max(scored, key=lambda n: scored[n])
        out["variants"] = (
            f" Of the {len(scored)} variants run, the default has the highest passage score "
            f"({scored['default model']:.3f})."
            if best == "default model" or scored[best] <= scored["default model"]
            else f" Variant <i>{html.escape(best)}</i> scores higher ({scored[best]:.3f}) than the default "
            f"({scored['default model']:.3f}): the default should be chosen again."
        )
    curve = [
        p for p in transfer.get("learning_curve") or [] if finite((p["passages"].get("en") or {}).get("impact_top1"))
    ]
    if len(curve) > 1:
        first, last = curve[0], curve[-1]
        rows = []
        for lang in ("en", "fr"):
            a = (first["passages"].get(lang) or {}).get("impact_top1")
            b = (last["passages"].get(lang) or {}).get("impact_top1")
            if finite(a) and finite(b):
                rows.append(f"{LANGUAGE_NAMES[lang]} {a:.0%} to {b:.0%}")
        out["curve"] = (
            f" From {first['transcripts']} to {last['transcripts']} gold transcripts, impact top-1 goes from "
            + ", ".join(rows)
            + "."
        )
    return out


def transfer_section(report: Report, curve_figure: str = "") -> str:
    """Cross-corpus next to in-corpus, question shift, turn top-1, variants, zero-shot and the targets."""
    head = "<section id='transfer'><h2>Transfer to text it was not written for</h2>"
    transfer = report.transfer
    if not transfer:
        return (
            head
            + absent(
                "The transfer evaluation is not in these metrics (run <code>imri evaluate</code> with "
                "<code>evaluate.transfer</code> set, e.g. <code>data/transfer</code>)."
            )
            + "</section>"
        )
    default = report.default
    cross = transfer["cross_corpus"]
    gold_kappa, transfer_kappa = kappa_pairs(report)
    intro = (
        "<p>"
        + (
            "The bundled gold set was written by authors who knew the code of every passage, so its coded passages "
            "are explicit and short. "
            if synthetic(report.results)
            else ""
        )
        + f"The transfer set (<code>{html.escape(str(transfer.get('data') or ''))}</code>: "
        f"{count(transfer.get('transcripts'))} transcripts, {count(transfer.get('segments'))} participant "
        "segments) "
        "was written without the codebook and then coded by coder A and coder B, who saw only the codebook "
        "and the transcript. The model is trained on the whole gold set and tested there. The transfer set "
        "never fits anything (no weights, calibration or cut-offs): it only chooses between the named "
        "variants below.</p>"
        + (
            "<p class='warn'><b>Both the gold set and the transfer set are synthetic.</b> These figures compare "
            "models and show how much is lost on unfamiliar text; they are not real-world accuracy.</p>"
            if synthetic(report.results)
            else "<p class='warn'>These figures compare models and show how much is lost on text the model was "
            "not written for.</p>"
        )
    )
    rows = [
        ["macro-F1", number(default.get("macro_f1")), number(cross.get("macro_f1"))],
        ["micro-F1", number(default.get("micro_f1")), number(cross.get("micro_f1"))],
    ]
    for lang in ("en", "fr"):
        rows.append(
            [
                f"macro-F1, {LANGUAGE_NAMES[lang]}",
                number((default.get("by_language", {}).get(lang) or {}).get("macro_f1")),
                number((cross.get("by_language") or {}).get(lang)),
            ]
        )
    for pair in ("model vs A", "model vs B", "A vs B"):
        rows.append(
            [
                f"Cohen's kappa, {PAIR_NAMES[pair].split(chr(10))[0]} (95% interval)",
                _kappa_cell(gold_kappa.get(pair)),
                _kappa_cell(transfer_kappa.get(pair)),
            ]
        )
    side = html_table(["default model", "gold set (cross-validated)", "transfer set"], rows)

    shift = transfer["question_shift"]
    shift_names = {
        "guide": "replaced by the interview guide's impact question",
        "unrelated": "replaced by an unrelated question",
        "leading": "replaced by a leading question (conflict and resistance)",
        "removed": "removed",
    }
    shift_table = html_table(
        ["interviewer turns", "macro-F1 (transfer set)", "largest change of a participant probability"],
        [["as asked", number((shift.get("asked") or {}).get("macro_f1")), ""]]
        + [
            [
                text,
                number((shift.get(mode) or {}).get("macro_f1")),
                number((shift.get(mode) or {}).get("max_probability_change"), 6),
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
                        count(entry.get("passages")),
                        percent(entry.get("category_top1")),
                        percent(entry.get("impact_top1")),
                        percent(entry.get("impact_top3")),
                        number(entry.get("presence_auc"), 2),
                    ]
                )
    passage_table = html_table(
        ["model, data (language)", "coded passages", "category top-1", "impact top-1", "impact top-3", "presence AUC"],
        passage_rows,
    )
    top = transfer.get("turn_top1") or {}
    top_rows = [
        [
            LANGUAGE_NAMES.get(group, html.escape(group)),
            count(entry.get("turns")),
            percent(entry.get("impact_top1")),
            percent(entry.get("impact_top3")),
            percent(entry.get("category_top1")),
            percent(entry.get("category_top3")),
        ]
        for group, entry in sorted(top.items(), key=lambda kv: (kv[0] != "all", kv[0]))
    ]
    top_table = html_table(
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
            number(entry.get("passage_score")),
        ]
        for lang in ("en", "fr"):
            e = p.get(lang) or {}
            cells.append(
                f"{percent(e.get('category_top1'))} / {percent(e.get('impact_top1'))} / {percent(e.get('impact_top3'))}"
            )
        cells += [
            "/".join(number((p.get(lang) or {}).get("presence_auc"), 2) for lang in ("en", "fr")),
            number(c.get("macro_f1")),
            number(((c.get("kappa") or {}).get("model vs A") or {}).get("value"), 2),
            number(entry.get("in_corpus_macro_f1")),
            number((entry.get("question_shift") or {}).get("max_probability_change"), 3),
        ]
        variant_rows.append(cells)
        classes.append("default" if name == "default model" else "")
    variants = html_table(
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
    curve_table = html_table(
        [
            "gold transcripts trained on",
            "random sets",
            "English: category top-1 / impact top-1 / top-3",
            "French: category top-1 / impact top-1 / top-3",
        ],
        [
            [
                "0 (codebook prior alone)" if point["transcripts"] == 0 else count(point["transcripts"]),
                count(point.get("draws")),
                *(
                    "{} / {} / {}".format(
                        *(
                            percent((point["passages"].get(lang) or {}).get(k))
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
            f"{count(loss['passages'])} coded passages of {count(loss['transcripts'])} "
            f"transfer transcripts: {number(loss['value'])} (95% interval {number(loss['ci95'][0])} to "
            f"{number(loss['ci95'][1])}). The rule: {html.escape(int8['rule'])}; the interval "
            f"{'lies wholly above 0' if loss['ci95'][0] > 0 else 'reaches 0 or below'}, {verdict}.</p>"
        )
    targets = transfer.get("targets") or {}
    target_rows, target_classes = [], []
    for name, target in targets.items():
        figure = target_figure(name)
        met = bool(target.get("met"))
        target_rows.append(
            [
                html.escape(name),
                number(target.get("value")) + (f" <span class='ci'>({figure})</span>" if figure else ""),
                "<span class='met'>&#10003; met</span>" if met else "<span class='missed'>&#10007; MISSED</span>",
            ]
        )
        target_classes.append("" if met else "missedrow")
    missed = sum(not t.get("met") for t in targets.values())
    target_part = (
        "<h3 id='targets'>Targets</h3><p>These targets are the project's own acceptance targets for the transfer "
        "evaluation, set in its issues (the model issue, 21): bounds the project chose to judge its model by, "
        "not a published standard and not a claim about your data. Each row gives the figure it judges. "
        f"{missed} of {len(targets)} targets missed.</p>"
        + html_table(["target", "figure judged", "result"], target_rows, target_classes)
        if targets
        else absent("No targets in these metrics.")
    )
    readings = _transfer_readings(report, transfer_kappa)
    return (
        head
        + intro
        + "<h3>The default model, on the gold set and on the transfer set</h3>"
        + "<p>Kappa on the transfer set compares the model's codes with coder A's and coder B's on its "
        "participant segments; coder A vs coder B is how much two humans agree on the same text, the benchmark."
        + readings["kappa"]
        + "</p>"
        + side
        + "<h3>Coded passages</h3><p>Coders code passages, not sentences, and the model scores each participant "
        "sentence on the passage around it (passage scoring). For each passage coder A coded "
        "(on participant speech), the model ranks the impacts for the passage as a whole: <i>category top-1</i> "
        "is the share whose first-ranked impact lies in a category coder A used there, <i>impact top-1</i> the "
        "share whose first-ranked impact is one coder A used, <i>impact top-3</i> the share with one of coder "
        "A's impacts among the first three. <i>Presence AUC</i>: how well a participant sentence's highest "
        "probability tells whether coder A coded it at all (0.5 is chance, 1 perfect). The codebook prior "
        "alone ranks by similarity to each impact's codebook texts in the passage's language (what "
        "<code>imri code --zero-shot</code> does)."
        + readings["passages"]
        + "</p>"
        + passage_table
        + "<h3>The interviewer's words</h3><p>The trained model scored the transfer set again with every "
        "interviewer turn replaced by one question, and with none (the interviewer shift). A model that reads only "
        "participant speech gives the same probabilities whatever the interviewer says."
        + readings["shift"]
        + "</p>"
        + shift_table
        + "<h3>Turn top-1 on the transfer set</h3><p>Participant turns coder A coded with exactly one impact: "
        "the share whose most probable impact (highest over the turn's segments) is that impact (top-1), the "
        "share with it among the three most probable (top-3), and the same for its category."
        + readings["turns"]
        + "</p>"
        + top_table
        + "<h3>Variants compared on transfer</h3><p>Named variants of the training settings (the "
        "<code>train</code> section of <code>params.yaml</code>), each trained on the gold set and judged on "
        "the transfer set. The default is the variant with the highest <i>passage score</i>: the mean over "
        "languages of category top-1, impact top-1, impact top-3 and presence AUC on coded passages."
        + readings["variants"]
        + "</p>"
        + variants
        + "<h3>How much must we code?</h3><p>The default configuration trained on a few gold transcripts "
        "(half English, half French, several random sets averaged), judged on the transfer set's coded "
        "passages; 0 is the codebook prior alone."
        + readings["curve"]
        + "</p>"
        + curve_figure
        + curve_table
        + int8_part
        + target_part
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
