"""The report's transfer section: how the model does on text it was not written for.

transfer_section lays out the transfer evaluation of the metrics: the default model on the gold set
and on the transfer set, coded passages, the interviewer's words (question shift), turn top-1, the
variants compared, the learning curve, int8 against fp32 and the project's transfer targets, each
table with the sentences that read it. target_figure says what a target's figure is, in words."""

from __future__ import annotations

import html
import json

from pipeline.report.formatting import absent, count, finite, html_table, number, percent
from pipeline.report.glossary import setting
from pipeline.report.reading import LANGUAGE_NAMES, PAIR_NAMES, Report, kappa_pairs, synthetic


def _kappa_cell(kappa: dict | None) -> str:
    kappa = kappa or {}
    value, ci = kappa.get("value"), kappa.get("ci95") or [None, None]
    if not finite(value):
        return "&ndash;"
    interval = f" <span class='ci'>[{number(ci[0], 2)}, {number(ci[1], 2)}]</span>" if finite(ci[0]) else ""
    return f"{value:.2f}{interval}"


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
