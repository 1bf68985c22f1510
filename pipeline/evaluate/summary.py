"""What ``imri evaluate`` prints and writes: the headline tables (gold set, transfer, review effort) and
metrics.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.evaluate.evaluation import SYNTHETIC_NOTE


def timings(results: dict, prefix: str = "") -> dict[str, float]:
    """The ``seconds`` each comparison took, by its path in the results (``models/tfidf-logreg``, ...)."""
    out = {}
    for key, value in results.items():
        if key == "seconds" and isinstance(value, int | float):
            out[prefix.rstrip("/") or "all"] = float(value)
        elif isinstance(value, dict):
            out.update(timings(value, f"{prefix}{key}/"))
    return out


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def write_metrics(results: dict, path: Path) -> None:
    """metrics.json without the timings (:func:`timings`): the same inputs give the same file, byte for byte."""
    import json

    from pipeline.io import atomic_path

    text = json.dumps(_without_seconds(results), indent=2, ensure_ascii=False, allow_nan=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def headline(results: dict) -> str:
    """The headline table: macro/micro F1 overall, by language and cross-lingual, per model; human agreement."""
    lines = [f"{'model':28s} {'macro-F1':>8s} {'micro-F1':>8s} {'en':>6s} {'fr':>6s} {'en->fr':>7s} {'fr->en':>7s}"]
    for name, entry in results["models"].items():
        by_lang, cross = entry.get("by_language", {}), entry.get("cross_lingual", {})
        mark = " *" if name == results.get("default_model") else ""
        lines.append(
            f"{name + mark:28s} {entry['macro_f1']:8.3f} {entry['micro_f1']:8.3f} "
            f"{by_lang.get('en', {}).get('macro_f1', float('nan')):6.3f} "
            f"{by_lang.get('fr', {}).get('macro_f1', float('nan')):6.3f} "
            f"{cross.get('en->fr', {}).get('macro_f1', float('nan')):7.3f} "
            f"{cross.get('fr->en', {}).get('macro_f1', float('nan')):7.3f}"
        )
    pairs = (results.get("human_vs_model") or {}).get("pairs", {})
    if pairs:
        lines.append("")
        lines.append(f"{'agreement (segments, double-coded)':36s} {'kappa (mean over codes)':>24s} {'alpha':>8s}")
        for name, result in pairs.items():
            overall = result.get("overall") or result
            kappa = (overall.get("cohen_kappa") or {}).get("value")
            alpha = (overall.get("krippendorff_alpha") or {}).get("value")
            lines.append(f"{name:36s} {_fmt(kappa):>24s} {_fmt(alpha):>8s}")
    compared = (results.get("units") or {}).get("units", {})
    if compared:
        lines.append("")
        lines.append(f"{'coding unit (default encoder+head)':36s} {'char macro-F1':>14s} {'en':>6s} {'fr':>6s}")
        for unit, entry in compared.items():
            by_lang = entry.get("by_language", {})
            mark = " *" if unit == results["units"]["default"] else ""
            lines.append(
                f"{unit + mark:36s} {entry['macro_f1']:14.3f} "
                f"{by_lang.get('en', {}).get('macro_f1', float('nan')):6.3f} "
                f"{by_lang.get('fr', {}).get('macro_f1', float('nan')):6.3f}"
            )
    lines += transfer_headline(results.get("transfer"))
    lines += review_effort_headline(results.get("review_effort"))
    note = results.get("note", SYNTHETIC_NOTE)
    shown = (
        "Synthetic gold set: not real-world accuracy." if note == SYNTHETIC_NOTE else note[:1].upper() + note[1:] + "."
    )
    lines.append(f"* default model and unit. {shown}")
    return "\n".join(lines)


def transfer_headline(transfer: dict | None) -> list[str]:
    """Lines of the headline for the transfer evaluation: passage figures of every variant, the prior alone,
    the interviewer shift and the targets missed."""
    if not transfer:
        return []
    lines = [
        "",
        f"transfer ({transfer['data']}: {transfer['transcripts']} transcripts never trained on; coder A's passages)",
        f"{'variant':30s} {'score':>6s} {'en cat1/top1/top3':>18s} {'fr cat1/top1/top3':>18s} {'AUC en/fr':>10s} "
        f"{'seg F1':>6s} {'shift':>6s}",
    ]

    def passage_cells(passages: dict) -> list[str]:
        cells = []
        for lang in ("en", "fr"):
            e = passages.get(lang) or {}
            cells.append("/".join(_fmt(e.get(k)) for k in ("category_top1", "impact_top1", "impact_top3")))
        return cells

    rows = {"default *": transfer, **transfer["variants"]}
    for name, entry in rows.items():
        if "not_run" in entry:
            lines.append(f"{name:30s} not run: {entry['not_run']}")
            continue
        passages = entry.get("passages") or {}
        auc = "/".join(_fmt((passages.get(lang) or {}).get("presence_auc"))[1:] for lang in ("en", "fr"))
        en, fr = passage_cells(passages)
        shift = (entry.get("question_shift") or {}).get("max_probability_change")
        lines.append(
            f"{name:30s} {_fmt(entry.get('passage_score')):>6s} {en:>18s} {fr:>18s} {auc:>10s} "
            f"{entry['cross_corpus']['macro_f1']:6.3f} {_fmt(shift):>6s}"
        )
    prior = (transfer.get("passages") or {}).get("nearest_definition") or {}
    en, fr = passage_cells(prior)
    auc = "/".join(_fmt((prior.get(lang) or {}).get("presence_auc"))[1:] for lang in ("en", "fr"))
    lines.append(f"{'codebook prior alone':30s} {'':6s} {en:>18s} {fr:>18s} {auc:>10s}")
    a_b = (transfer["cross_corpus"]["kappa"].get("A vs B") or {}).get("value")
    model_a = (transfer["cross_corpus"]["kappa"].get("model vs A") or {}).get("value")
    lines.append(f"segment kappa on the transfer set: model vs A {_fmt(model_a)}, A vs B {_fmt(a_b)}")
    missed = [name for name, target in transfer.get("targets", {}).items() if not target["met"]]
    lines.append("transfer targets missed: " + ("; ".join(missed) if missed else "none"))
    return lines


def _share(value) -> str:
    return "not reached" if value is None else f"{value:.0%}"


def review_effort_headline(effort: dict | None) -> list[str]:
    """Lines of the headline for the review-effort replay (:func:`pipeline.evaluate.transfer.review_effort`)."""
    if not effort or "not_run" in effort:
        return [] if not effort else ["", f"review effort: not run ({effort['not_run']})"]
    human = effort["a_vs_b"]
    queue = {row["share"]: row for row in effort["queue"]}
    random = {row["share"]: row for row in effort["random"]}
    lines = [
        "",
        f"review effort on the transfer set ({effort['passages']} passages; reviewed passages take coder A's "
        f"codes, measured against coder B; A vs B kappa: segments {_fmt(human.get('segments'))}, "
        f"characters {_fmt(human.get('characters'))})",
        f"{'share of participant text reviewed':42s} {'0%':>6s} {'10%':>6s} {'20%':>6s} {'30%':>6s} {'50%':>6s} "
        f"{'100%':>6s}",
    ]
    for name, rows in (("queue order", queue), (f"random order ({effort['random_seeds']} seeds)", random)):
        for unit in ("segments", "characters"):
            cells = [_fmt((rows.get(share) or {}).get(f"kappa_{unit}")) for share in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)]
            lines.append(f"{name + ', kappa ' + unit:42s} " + " ".join(f"{c:>6s}" for c in cells))
    lines.append(
        f"90% of the A-vs-B kappa at {_share(effort['reviewed_share_at_90pct_human'])} of participant text "
        f"(random order {_share(effort['random_reviewed_share_at_90pct_human'])}); all of it at "
        f"{_share(effort['reviewed_share_at_human'])} (random {_share(effort['random_reviewed_share_at_human'])}); "
        f"review.budget suggested: {effort['recommended_budget']:.2f}"
    )
    return lines


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
