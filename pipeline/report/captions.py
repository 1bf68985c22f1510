"""The figures' captions: what each figure shows, and what to do about it, computed from the metrics.

Each caption_* function gives a (what it shows, what to do) pair of HTML sentences for one figure of
figures.py. calibration_verdict reads the gap per bin of a reliability diagram: the bins holding at
least MIN_BIN_SHARE of the decisions whose probability and observed rate differ by more than
CALIBRATION_GAP are called off the diagonal."""

from __future__ import annotations

import html

import numpy as np

from pipeline.report.formatting import finite, number
from pipeline.report.reading import (
    HINT_F1,
    MIN_BIN_SHARE,
    PRECODE_F1,
    REVIEW_PRECISION,
    TIERS,
    ImpactRow,
    Report,
    bin_gaps,
    kappa_pairs,
    largest_gaps,
    queue_window,
    review_margin,
    review_threshold,
)

CALIBRATION_GAP = 0.05  # a bin whose probability and observed rate differ by more is called off the diagonal


def _impact_list(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(f"<i>{html.escape(n)}</i>" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def caption_per_code(report: Report, rows: list[ImpactRow]) -> tuple[str, str]:
    """The per-impact F1 figure's caption: what it shows, what to do about it."""
    transfer = any(r.transfer_f1 is not None for r in rows)
    models = report.results["models"]
    baselines = [n for n, e in models.items() if e.get("kind") == "baseline"]
    shows = (
        "For each impact, F1 of the default model's codes against coder A's on the gold set "
        "(cross-validated: each transcript scored by a model that never saw it)"
        + (", and on the transfer set, text it was never trained on" if transfer else "")
        + (". Markers are the baselines' F1 on the gold set." if baselines else ".")
        + " Impacts in the order of the table above. The dashed lines are the summary's limits: "
        f"{HINT_F1:.2f} (hints) and {PRECODE_F1:.2f} (pre-code)."
    )
    tiers = {tier: [r.name for r in rows if r.tier == tier] for tier in TIERS}
    parts = [
        f"{len(tiers['precode'])} of {len(rows)} impacts reach {PRECODE_F1:.2f} on every bar"
        + (f" ({_impact_list(tiers['precode'])}): pre-code only these" if tiers["precode"] else ": pre-code none")
        + "; "
        + (
            f"{len(tiers['hint'])} {'reaches' if len(tiers['hint']) == 1 else 'reach'} {HINT_F1:.2f} (hints only); "
            if tiers["hint"]
            else ""
        )
        + (f"code the other {len(tiers['human'])} by hand." if tiers["human"] else "none needs full human coding.")
    ]
    drops = [r for r in rows if r.transfer_f1 is not None and r.transfer_support]
    if drops:
        worst = max(drops, key=lambda r: r.f1 - r.transfer_f1)
        if worst.f1 - worst.transfer_f1 > 0:
            parts.append(
                f"The largest fall from the gold set to the transfer set is <i>{html.escape(worst.name)}</i> "
                f"({worst.f1:.2f} to {worst.transfer_f1:.2f}): its gold-set figure overstates how it codes new text."
            )
    beaten = []
    for r in rows:
        best = max(
            ((models[n]["per_code"].get(r.id, {}).get("f1"), n) for n in baselines),
            key=lambda v: v[0] if finite(v[0]) else -1,
            default=(None, None),
        )
        if finite(best[0]) and best[0] > r.f1:
            beaten.append(r.name)
    if baselines:
        parts.append(
            f"A baseline beats the model on {len(beaten)} impact(s) ({_impact_list(beaten)}): for these, the "
            "simpler method's suggestions are the better start."
            if beaten
            else "The model beats every baseline on every impact."
        )
    if tiers["human"] or tiers["hint"]:
        parts.append(
            "For an impact you need but the model codes poorly, code more examples of it (or review them in the "
            "app), retrain with <code>imri train --include-reviews</code>, then re-evaluate."
        )
    return shows, " ".join(parts)


def caption_confusion(report: Report) -> tuple[str, str]:
    """The category confusion figure's caption: what it shows, what to do about it."""
    confusion = report.results["categories"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    names = confusion["categories"]
    diagonal = [share[i, confusion["columns"].index(c)] for i, c in enumerate(names) if c in confusion["columns"]]
    shows = (
        "Segments coder A gave exactly one category (rows), and the categories the model predicted for "
        "them (columns), as counts and row shares; the last column counts segments the model gave no "
        "code at all. The diagonal is the share whose broad category is right, even where the impact is wrong"
        + (f": here from {min(diagonal):.0%} to {max(diagonal):.0%} of a category's segments." if diagonal else ".")
    )
    off = share.copy()
    for i, c in enumerate(names):
        if c in confusion["columns"]:
            off[i, confusion["columns"].index(c)] = -1
    off[:, -1] = -1
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    missed = int(np.argmax(share[:, -1]))
    todo = []
    if off[i, j] > 0:
        todo.append(
            f"The most frequent mix-up: <i>{html.escape(report.category(names[i]))}</i> coded as "
            f"<i>{html.escape(report.category(confusion['columns'][j]))}</i> ({share[i, j]:.0%} of its segments); "
            "when reviewing, check suggestions of these categories against each other."
        )
    else:
        todo.append("The model never puts a segment in another category than coder A's.")
    if share[missed, -1] > 0:
        todo.append(
            f"<i>{html.escape(report.category(names[missed]))}</i> is most often left without a code "
            f"({share[missed, -1]:.0%} of its segments): look for it in segments the model left uncoded."
        )
    weakest = int(np.argmin(diagonal)) if diagonal else None
    if weakest is not None and diagonal[weakest] < 0.5:
        todo.append(
            f"<i>{html.escape(report.category(names[weakest]))}</i> gets its own category in fewer than half of "
            f"its segments ({diagonal[weakest]:.0%}): do not rely on the model's category there either."
        )
    return shows, " ".join(todo)


def _compare_kappa(model: dict, humans: dict) -> str:
    """How a model-vs-coder kappa compares with the human one, from the values and their intervals."""
    value, human = model["value"], humans["value"]
    ci, human_ci = model.get("ci95") or [None, None], humans.get("ci95") or [None, None]
    if value >= human:
        return "at least as well as"
    if finite(ci[1]) and finite(human_ci[0]) and ci[1] < human_ci[0]:
        return "less well than"
    return "a little less well than (the intervals overlap)"


def caption_agreement(report: Report) -> tuple[str, str]:
    """The agreement figure's caption: the model's kappa against the humans', on each set."""
    gold, transfer = kappa_pairs(report)
    agreement_data = report.results.get("human_vs_model") or {}
    transcripts = len(agreement_data.get("transcripts") or [])
    consensus = "model vs consensus" in gold or "model vs consensus" in transfer
    shows = (
        "Cohen's kappa (agreement beyond chance; 0 = chance, 1 = identical), averaged over impacts, "
        "between each pair of coders"
        + (f" on the {transcripts} gold transcripts that coder A and coder B both coded" if gold else "")
        + (" and on the transfer set" if transfer else "")
        + ", with 95% bootstrap intervals over transcripts. Hatched: coder A vs coder B, two humans, the benchmark."
        + (
            " Model vs consensus compares the model with the two coders' consensus: "
            f"{html.escape(agreement_data.get('consensus') or 'codes both A and B applied')}."
            if consensus
            else ""
        )
    )
    parts, below = [], []
    for label, pairs in (("gold set", gold), ("transfer set", transfer)):
        model, humans = pairs.get("model vs A") or {}, pairs.get("A vs B") or {}
        if finite(model.get("value")) and finite(humans.get("value")):
            verdict = _compare_kappa(model, humans)
            below.append(not verdict.startswith("at least"))
            parts.append(
                f"on the {label} the model agrees with coder A {verdict} coder A and coder B agree "
                f"with each other ({model['value']:.2f} against {humans['value']:.2f})"
            )
    todo = ("; ".join(parts) + ". ") if parts else ""
    todo = todo[:1].upper() + todo[1:]
    if any(below):
        todo += (
            "The model's agreement is below the human one: treat its codes as a first pass that people review, "
            "not as a second coder; report the human-human figure in a methods section, not the model's."
        )
    elif parts:
        todo += (
            "The model agrees with coder A as well as the humans agree with each other here; still report the "
            "human-human figure in a methods section, and check the model on a sample of your own study."
        )
    else:
        todo += "Without both a model-vs-coder and a human-human figure there is no benchmark to compare with."
    return shows, todo


def _range(b: dict) -> str:
    return f"{b['low']:.1f}&ndash;{b['high']:.1f}"


def _gap_phrase(b: dict) -> str:
    side = "over-confident" if b["gap"] > 0 else "under-confident"
    return (
        f"{_range(b)} ({b['share']:.0%} of the decisions: mean probability {b['mean_probability']:.2f}, "
        f"observed rate {b['observed_rate']:.2f}, gap {b['gap']:+.2f}, {side})"
    )


def calibration_verdict(bins: list[dict], label: str) -> tuple[str, list[dict]]:
    """A sentence on the gap per bin of one reliability diagram, and the bins off the diagonal."""
    judged = largest_gaps(bins)
    if not judged:
        return f"No bin of the {label} holds enough decisions to judge.", []
    off = [b for b in judged if abs(b["gap"]) > CALIBRATION_GAP]
    skipped = [b for b in bin_gaps(bins) if b["share"] < MIN_BIN_SHARE]
    note = ""
    if skipped:
        sparse = max(skipped, key=lambda b: abs(b["gap"]))
        note = (
            f" ({len(skipped)} bin(s) with fewer than {MIN_BIN_SHARE:.0%} of the decisions not judged, the largest "
            f"gap among them {sparse['gap']:+.2f} in bin {_range(sparse)})"
        )
    if not off:
        worst = judged[0]
        return (
            f"On the {label}, every bin holding at least {MIN_BIN_SHARE:.0%} of the decisions lies within "
            f"{CALIBRATION_GAP:.2f} of the diagonal{note}; the largest gap is {worst['gap']:+.2f}, in bin "
            f"{_range(worst)}.",
            [],
        )
    named = off[:3]
    sides = {"over" if b["gap"] > 0 else "under" for b in off}
    overall = (
        "over-confident"
        if sides == {"over"}
        else "under-confident"
        if sides == {"under"}
        else "over- and under-confident"
    )
    return (
        f"On the {label} the model is {overall} in {len(off)} of the {len(judged)} bins holding at least "
        f"{MIN_BIN_SHARE:.0%} of the decisions{note}; the largest gaps: "
        + "; ".join(_gap_phrase(b) for b in named)
        + ".",
        off,
    )


def caption_reliability(report: Report) -> tuple[str, str]:
    """The reliability diagram's caption: the gap per bin, and where the review queue works."""
    calibration = report.results["calibration"]
    ece = calibration["ece"]
    bins = calibration.get("reliability") or []
    gaps = bin_gaps(bins)
    crowded = max(gaps, key=lambda b: b["share"]) if gaps else None
    shows = (
        f"Every (segment, impact) probability the {html.escape(report.model(calibration.get('model', '')))} gave "
        "on the gold set (out of fold; its scores become probabilities by Platt scaling), in ten bins, against "
        "how often coder A actually coded that impact there. On the diagonal, a probability of 0.8 comes true 80% "
        f"of the time. ECE (expected calibration error: the average gap, weighted by bin size): {ece:.3f}"
        + (
            f"; bin {_range(crowded)} holds {crowded['share']:.0%} of the decisions, so the ECE says little about "
            "the other bins: the gap per bin (mean probability minus observed rate) is read below."
            if crowded and crowded["share"] > 0.5
            else "."
        )
    )
    sentences = []
    verdict, off = calibration_verdict(bins, "gold set")
    sentences.append(verdict)
    moved = (report.transfer or {}).get("calibration") or {}
    off_moved: list[dict] = []
    if moved.get("reliability"):
        text, off_moved = calibration_verdict(moved["reliability"], "transfer set")
        sentences.append(f"{text} (ECE there {number(moved.get('ece'))}.)")
    window = queue_window(report)
    touched = []
    if window is None:
        sentences.append(
            "The review queue holds the decisions near each impact's cut-off; these metrics do not give the "
            "cut-offs (<code>coverage.thresholds</code>), so where it works cannot be placed on this plot."
        )
    else:
        touched = [b for b in off + off_moved if b["low"] < window["high"] and b["high"] > window["low"]]
        sentences.append(
            f"The cut-offs range from {window['cutoff_low']:.2f} to {window['cutoff_high']:.2f}; with "
            f"<code>review.margin</code> {window['margin']:.2f} ({window['margin_source']}) the review queue works on "
            f"probabilities from {window['low']:.2f} to {window['high']:.2f} (shaded)"
            + (
                ", where "
                + ("bins " if len(touched) > 1 else "bin ")
                + ", ".join(_range(b) for b in touched)
                + (" lie" if len(touched) > 1 else " lies")
                + " off the diagonal."
                if touched
                else f", where every judged bin lies within {CALIBRATION_GAP:.2f} of the diagonal."
            )
        )
    if off or off_moved:
        worst = max(off + off_moved, key=lambda b: abs(b["gap"]))
        todo = (
            f"Do not read the probabilities in <code>segments.csv</code> and the review app as chances: in bin "
            f"{_range(worst)} a probability of about {worst['mean_probability']:.2f} came true "
            f"{worst['observed_rate']:.0%} of the time. "
            + (
                "These are the decisions the review queue shows, so reviewers should take the probability as a "
                "ranking of how likely a code is, not as its chance. "
                if touched
                else "The queue works elsewhere, so the decisions reviewers see are not the worst calibrated. "
                if window is not None
                else ""
            )
            + "Recalibrating (more coded transcripts for the Platt scaling, or a calibration that can bend in the "
            "middle) and re-evaluating is the fix."
        )
    else:
        todo = (
            "The probabilities in <code>segments.csv</code> and the review app can be read as chances, on text "
            "like the gold set's"
            + ("" if moved.get("reliability") else " (calibration on the transfer set is not in these metrics)")
            + "."
        )
    return shows + " " + " ".join(sentences), todo


def caption_coverage(report: Report) -> tuple[str, str]:
    """The review threshold figure's caption: how many segments to auto-accept, and the margin that does it."""
    curve = report.results["coverage"]["curve"]
    chosen = review_threshold(curve)
    shows = (
        "If the most confident segments are accepted without review first, the precision of their "
        "suggested codes (share of suggested codes coder A also gave) and the share of them with exactly "
        "coder A's codes, against the share accepted. The dotted line is the summary's precision limit "
        f"({REVIEW_PRECISION:.2f})."
    )
    if chosen is None:
        best = max((r for r in curve if finite(r.get("precision"))), key=lambda r: r["precision"], default=None)
        todo = (
            f"No share keeps precision at {REVIEW_PRECISION:.2f}"
            + (f" (the best is {best['precision']:.2f}, at the {best['coverage']:.0%} most confident)" if best else "")
            + ": review every segment (<code>review.margin: 1.0</code> in <code>params.yaml</code>)."
        )
    else:
        below = [
            r
            for r in curve
            if r["coverage"] < chosen["coverage"] and finite(r.get("precision")) and r["precision"] < REVIEW_PRECISION
        ]
        after = next((r for r in curve if r["coverage"] > chosen["coverage"]), None)
        todo = (
            f"Auto-accept at most the {chosen['coverage']:.0%} most confident segments (confidence "
            f"&ge; {chosen['min_confidence']:.2f}, precision {chosen['precision']:.2f}): set <code>review.margin: "
            f"{review_margin(chosen['min_confidence']):.2f}</code> in <code>params.yaml</code> so every segment "
            "below it goes to the review queue"
            + (
                f"; accepting {after['coverage']:.0%} would bring precision to {number(after.get('precision'), 2)}"
                if after
                else ""
            )
            + ". "
            + (
                "The curve is not monotone: "
                + ", ".join(
                    f"the {r['coverage']:.0%} most confident alone reach only {r['precision']:.2f}" for r in below
                )
                + ", so the most confident segments are not the most precise; check a sample of them. "
                if below
                else ""
            )
            + "The curve comes from the gold set: check a sample of auto-accepted segments of your own study."
        )
    return shows, todo


def caption_learning_curve(report: Report) -> tuple[str, str]:
    """What the learning curve shows, computed from its points: where each size stands between the prior alone
    and the whole gold set, on the mean of the three passage figures of both languages."""
    curve = report.transfer["learning_curve"]

    def mean(point: dict) -> float:
        values = [
            (point["passages"].get(lang) or {}).get(key)
            for lang in ("en", "fr")
            for key in ("category_top1", "impact_top1", "impact_top3")
        ]
        return float(np.mean([v for v in values if v is not None]))

    first, last = curve[0], curve[-1]
    start, end = mean(first), mean(last)
    steps = [f"{point['transcripts']} transcripts {mean(point):.2f}" for point in curve[1:-1]]
    shows = (
        f"The mean of category top-1, impact top-1 and impact top-3 on the transfer set's coded passages (both "
        f"languages) is {start:.2f} with "
        + ("the codebook prior alone" if first["transcripts"] == 0 else f"{first['transcripts']} transcripts")
        + (f", {', '.join(steps)}," if steps else "")
        + f" and {end:.2f} with all {last['transcripts']} gold transcripts."
    )
    if end - start <= 0.02:
        todo = (
            "Coding more transcripts hardly moved these figures here; check on your own transcripts before coding many."
        )
    else:
        reach = next((p for p in curve if mean(p) >= start + 0.9 * (end - start)), last)
        todo = (
            f"Here {reach['transcripts']} coded transcripts reach 90% of what the whole gold set adds over "
            + ("the prior alone" if first["transcripts"] == 0 else "the smallest set")
            + ". These are synthetic transcripts: measure the same curve on your own coding before planning on it."
        )
    return html.escape(shows), html.escape(todo)
