"""``imri agreement`` for a methods section: a compact table, interpretation bands, notes and a paragraph.

The default table has, per code: percent agreement, Cohen's kappa (Fleiss' kappa for more than two coders)
with its 95% interval, Krippendorff's alpha and the code's prevalence, each code named as its codebook
names it; ``all_metrics`` adds Fleiss' kappa, Gwet's AC1, PABAK, alpha's interval, the number of units, the
code ids and the pooled row. Kappa is read with the bands of Landis & Koch (1977), alpha with Krippendorff's
(2004) thresholds; a note flags codes whose percent agreement is high while kappa is low because they are
rare (Feinstein & Cicchetti 1990).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipeline.agreement.units import AgreementResult, MetricSet

FORMATS = ("text", "md", "csv", "json")

# Landis & Koch (1977): upper bound of each band (a value at a bound belongs to the band below)
KAPPA_BANDS = ((0.0, "poor"), (0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"))
KAPPA_TOP = "almost perfect"
KAPPA_SOURCE = "Landis & Koch (1977)"
KAPPA_LEGEND = (
    "below 0 poor, 0.00-0.20 slight, 0.21-0.40 fair, 0.41-0.60 moderate, 0.61-0.80 substantial, "
    "0.81-1.00 almost perfect"
)
# Krippendorff (2004, p. 241): rely on variables with alpha >= .800; .667 <= alpha < .800 for tentative conclusions
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.800, 0.667
ALPHA_SOURCE = "Krippendorff (2004)"
ALPHA_LEGEND = "α ≥ 0.800 reliable, 0.667 ≤ α < 0.800 tentative conclusions only, below 0.667 unreliable"
# the prevalence note: percent agreement at least this high while kappa is below this
PARADOX_AGREEMENT, PARADOX_KAPPA = 0.90, 0.60

REFERENCES = {
    "cohen": "Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological "
    "Measurement, 20(1), 37-46.",
    "fleiss": "Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological "
    "Bulletin, 76(5), 378-382.",
    "krippendorff": "Krippendorff, K. (2004). Content analysis: An introduction to its methodology (2nd ed.). Sage.",
    "landis": "Landis, J. R., & Koch, G. G. (1977). The measurement of observer agreement for categorical data. "
    "Biometrics, 33(1), 159-174.",
    "feinstein": "Feinstein, A. R., & Cicchetti, D. V. (1990). High agreement but low kappa: I. The problems of "
    "two paradoxes. Journal of Clinical Epidemiology, 43(6), 543-549.",
}


# --- reading the figures ------------------------------------------------------------------------------


def kappa_band(value: float) -> str:
    """Landis & Koch's (1977) word for a kappa (``n/a`` when undefined)."""
    if value is None or math.isnan(value):
        return "n/a"
    if value < 0:
        return "poor"
    for bound, word in KAPPA_BANDS[1:]:
        if value <= bound + 1e-12:
            return word
    return KAPPA_TOP


def alpha_band(value: float) -> str:
    """Krippendorff's (2004) reading of an alpha: reliable, tentative or unreliable (``n/a`` when undefined)."""
    if value is None or math.isnan(value):
        return "n/a"
    if value >= ALPHA_RELIABLE:
        return "reliable"
    return "tentative" if value >= ALPHA_TENTATIVE else "unreliable"


def unit_words(result: AgreementResult) -> str:
    """The unit of analysis in words: "characters of participant speech", "segments of ...", "documents"."""
    config = result.config
    if config is None:
        return result.unit if result.unit != "unit" else "units"
    speech = "participant and interviewer speech" if config.include_interviewer else "participant speech"
    coded = "coded " if config.ignore_uncoded else ""
    if config.unit == "character":
        return f"{coded}characters of {speech}"
    if config.unit == "segment":
        return f"{coded}segments of {speech}"
    return f"documents ({coded}{speech})" if coded else "documents"


def _kappa_key(result: AgreementResult) -> str:
    return "cohen_kappa" if len(result.coders) == 2 else "fleiss_kappa"


def _kappa_label(result: AgreementResult) -> str:
    return "Cohen's κ" if len(result.coders) == 2 else "Fleiss' κ"


def _value(metrics: MetricSet, name: str) -> float:
    estimate = metrics.estimates.get(name)
    return math.nan if estimate is None else estimate.value


def _per_code(result: AgreementResult) -> list[tuple[str, MetricSet]]:
    return list(result.per_code.items()) if result.per_code is not None else []


def paradox_codes(result: AgreementResult) -> list[str]:
    """Codes whose percent agreement is high (>= 0.90) while kappa is low (< 0.60): rare codes, as a rule."""
    key = _kappa_key(result)
    return [
        code
        for code, metrics in _per_code(result)
        if _value(metrics, "percent_agreement") >= PARADOX_AGREEMENT and _value(metrics, key) < PARADOX_KAPPA
    ]


def notes(result: AgreementResult) -> list[str]:
    """Plain-language notes for the reader of the table (the prevalence paradox, undefined values)."""
    out = []
    flagged = paradox_codes(result)
    if flagged:
        prevalences = [_value(result.per_code[c], "prevalence") for c in flagged]
        shown = _join([result.name(c) for c in flagged])  # every code, in every format
        out.append(
            f"High agreement, low kappa: for {shown}, percent agreement is at least {PARADOX_AGREEMENT:.0%} while "
            f"{_kappa_label(result)} is below {PARADOX_KAPPA:.2f}. "
            f"{'These codes are' if len(flagged) > 1 else 'This code is'} rare (prevalence "
            f"{_range(prevalences, percent=True)}): when most units are coded by neither coder, agreement expected by "
            "chance is high, so kappa stays low although the coders agree on most units (the prevalence paradox, "
            "Feinstein & Cicchetti 1990). Read kappa together with prevalence; AC1 and PABAK (--all) depend less "
            "on prevalence."
        )
    undefined = [c for c, m in _per_code(result) if math.isnan(_value(m, _kappa_key(result)))]
    if undefined:
        out.append(
            f"n/a: kappa and alpha are undefined for {_join([result.name(c) for c in undefined])} "
            "(no coder, or every coder everywhere, applied the code)."
        )
    return out


def _range(values: list[float], percent: bool = False) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    low, high = min(finite), max(finite)
    show = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.2f}")
    return show(low) if math.isclose(low, high) else f"{show(low)}-{show(high)}"


# --- rows -------------------------------------------------------------------------------------------------


def rows(result: AgreementResult, all_metrics: bool = False) -> list[dict[str, Any]]:
    """One record per code, then the mean over codes (and, with ``all_metrics``, the pooled row).

    Compact keys: ``code, name, percent_agreement, kappa, kappa_ci_low, kappa_ci_high, kappa_band,
    krippendorff_alpha, alpha_band, prevalence``; ``all_metrics`` adds ``n_units``, every metric of
    :data:`pipeline.agreement.coefficients.METRICS` and alpha's interval.
    """
    from pipeline.agreement.coefficients import METRICS

    key = _kappa_key(result)
    labelled: list[tuple[str, str, MetricSet]] = [(code, result.name(code), m) for code, m in _per_code(result)]
    names = [name for _, name, _ in labelled]
    labelled = [
        (code, f"{name} ({code})" if names.count(name) > 1 and name != code else name, m) for code, name, m in labelled
    ]
    if result.per_code is None:
        labelled.append(("(all units)", "All units", result.overall))
    else:
        labelled.append(("(mean over codes)", f"Mean over {len(labelled)} codes", result.overall))
        if all_metrics and result.pooled is not None:
            labelled.append(("(pooled)", "Pooled (every unit x code decision)", result.pooled))
    out = []
    for code, name, metrics in labelled:
        kappa = metrics.estimates.get(key)
        alpha = metrics.estimates.get("krippendorff_alpha")
        record: dict[str, Any] = {
            "code": code,
            "name": name,
            "percent_agreement": _value(metrics, "percent_agreement"),
            "kappa": kappa.value if kappa else math.nan,
            "kappa_ci_low": kappa.ci_low if kappa else math.nan,
            "kappa_ci_high": kappa.ci_high if kappa else math.nan,
            "kappa_band": kappa_band(kappa.value if kappa else math.nan),
            "krippendorff_alpha": _value(metrics, "krippendorff_alpha"),
            "alpha_band": alpha_band(_value(metrics, "krippendorff_alpha")),
            "prevalence": _value(metrics, "prevalence"),
        }
        if all_metrics:
            record["n_units"] = metrics.n_units
            record.update({name_: _value(metrics, name_) for name_ in METRICS})
            record["alpha_ci_low"] = alpha.ci_low if alpha else math.nan
            record["alpha_ci_high"] = alpha.ci_high if alpha else math.nan
        out.append(record)
    return out


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1%}"


def _with_ci(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if math.isnan(low) else f"{value:.3f} [{low:.2f}, {high:.2f}]"


def _columns(result: AgreementResult, all_metrics: bool) -> list[tuple[str, Any]]:
    """(header, record -> cell) for the text and Markdown tables."""
    columns: list[tuple[str, Any]] = [
        ("Code", lambda r: r["name"]),
        ("% agreement", lambda r: _percent(r["percent_agreement"])),
        (f"{_kappa_label(result)} [95% CI]", lambda r: _with_ci(r["kappa"], r["kappa_ci_low"], r["kappa_ci_high"])),
        ("κ band", lambda r: r["kappa_band"]),
        ("Krippendorff's α", lambda r: _number(r["krippendorff_alpha"])),
        ("α band", lambda r: r["alpha_band"]),
    ]
    if result.per_code is not None:
        columns.append(("Prevalence", lambda r: _percent(r["prevalence"])))
    if all_metrics:
        columns[1:1] = [("Id", lambda r: r["code"]), ("Units", lambda r: f"{r['n_units']:,}")]
        columns += [
            (
                "α 95% CI",
                lambda r: (
                    "" if math.isnan(r["alpha_ci_low"]) else f"[{r['alpha_ci_low']:.2f}, {r['alpha_ci_high']:.2f}]"
                ),
            ),
            ("Fleiss' κ", lambda r: _number(r["fleiss_kappa"])),
            ("Gwet's AC1", lambda r: _number(r["gwet_ac1"])),
            ("PABAK", lambda r: _number(r["pabak"])),
        ]
    return columns


def describe(result: AgreementResult) -> list[str]:
    """The lines above the table: who, on what, in which unit, and how intervals were computed."""
    coders = " and ".join([", ".join(result.coders[:-1]), result.coders[-1]]) if len(result.coders) > 1 else ""
    n_units = result.per_code[next(iter(result.per_code))].n_units if result.per_code else result.overall.n_units
    where = f" on {len(result.sources)} transcript{'s' * (len(result.sources) != 1)}" if result.sources else ""
    lines = [
        f"Agreement between coders {coders}{where}; unit: {unit_words(result)} ({n_units:,} per code)."
        if result.per_code
        else f"Agreement between coders {coders}; unit: {unit_words(result)} ({n_units:,})."
    ]
    if result.codebook:
        lines.append(f"Codes named by codebook {result.codebook}.")
    if result.n_boot:
        what = "transcripts" if result.sources else "units"
        lines.append(f"95% CI: percentile bootstrap over {what} ({result.n_boot} resamples, seed {result.seed}).")
    return lines


def legend(result: AgreementResult) -> list[str]:
    """How to read the bands, with their sources."""
    return [
        f"κ band, after {KAPPA_SOURCE}: {KAPPA_LEGEND}.",
        f"α band, after {ALPHA_SOURCE}: {ALPHA_LEGEND}.",
        "The κ bands describe the strength of agreement, the α bands the least reliability at which data should be "
        "relied on: one value can be substantial as κ and unreliable as α.",
    ]


_LEFT = {"Code", "Id", "κ band", "α band"}


def format_text(result: AgreementResult, all_metrics: bool = False) -> str:
    """The terminal table: aligned columns, then the bands and the notes."""
    columns = _columns(result, all_metrics)
    records = rows(result, all_metrics)
    headers = [header for header, _ in columns]
    cells = [headers] + [[str(cell(r)) for _, cell in columns] for r in records]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [*describe(result), ""]
    for n, row in enumerate(cells):
        padded = [c.ljust(w) if h in _LEFT else c.rjust(w) for c, w, h in zip(row, widths, headers, strict=True)]
        lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("-" * len(lines[-1]))
    lines += ["", *legend(result), *notes(result)]
    return "\n".join(lines)


def format_markdown(result: AgreementResult, all_metrics: bool = False) -> str:
    """The table in Markdown, with the description above and the bands and notes below."""
    columns = _columns(result, all_metrics)
    escape = str.maketrans({"|": "\\|"})
    lines = [" ".join(describe(result)), ""]
    lines.append("| " + " | ".join(header for header, _ in columns) + " |")
    lines.append("|" + "|".join("---" if header in _LEFT else "---:" for header, _ in columns) + "|")
    for record in rows(result, all_metrics):
        lines.append("| " + " | ".join(str(cell(record)).translate(escape) for _, cell in columns) + " |")
    lines += ["", *legend(result)]
    if notes(result):
        lines += ["", *notes(result)]
    return "\n".join(lines)


def format_csv(result: AgreementResult, all_metrics: bool = False) -> str:
    """One line per code (and summary rows); numbers unrounded, empty where undefined."""
    from pipeline.io import csv_text

    records = rows(result, all_metrics)
    header = list(records[0])
    cells = ([record.get(k) for k in header] for record in records)
    text = csv_text(header, ([("" if isinstance(v, float) and math.isnan(v) else v) for v in row] for row in cells))
    return text.rstrip("\n")


def report_dict(result: AgreementResult) -> dict[str, Any]:
    """Everything, for ``--format json``: :meth:`AgreementResult.to_dict` plus names, unit, bands and notes."""
    out = result.to_dict()
    out["unit"] = result.config.unit if result.config is not None else "unit"
    out["unit_description"] = unit_words(result)
    out["transcripts"] = len(result.sources)
    out["codebook"] = result.codebook or None
    if result.per_code is not None:
        out["names"] = {code: result.name(code) for code in result.per_code}
        key = _kappa_key(result)
        out["interpretation"] = {
            code: {"kappa": kappa_band(_value(m, key)), "alpha": alpha_band(_value(m, "krippendorff_alpha"))}
            for code, m in result.per_code.items()
        }
    out["bands"] = {
        "kappa": {"source": KAPPA_SOURCE, "bands": KAPPA_LEGEND},
        "alpha": {"source": ALPHA_SOURCE, "bands": ALPHA_LEGEND},
    }
    out["notes"] = notes(result)
    return out


def format_json(result: AgreementResult) -> str:
    """:func:`report_dict` as JSON (no NaN: undefined values are ``null``)."""
    return json.dumps(report_dict(result), indent=2, allow_nan=False, ensure_ascii=False)


def format_result(result: AgreementResult, fmt: str = "text", all_metrics: bool = False) -> str:
    """The result in ``fmt`` (text, md, csv or json)."""
    if fmt == "json":
        return format_json(result)
    if fmt == "csv":
        return format_csv(result, all_metrics)
    if fmt == "md":
        return format_markdown(result, all_metrics)
    return format_text(result, all_metrics)


# --- the methods paragraph -----------------------------------------------------------------------------

_SMALL = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def count_words(n: int) -> str:
    """A count as the paragraph writes every count: words under ten ("no", "one" ... "nine"), numerals from 10."""
    return _SMALL[n] if 0 <= n < len(_SMALL) else f"{n:,}"


def _counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "no code", "one code", "seven codes", "12 codes"."""
    return f"{count_words(n)} {noun if n in (0, 1) else plural or noun + 's'}"


def _software() -> str:
    """imri-autocode's version and the libraries that compute the coefficients, as installed."""
    from importlib.metadata import PackageNotFoundError, version

    import pipeline

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "(version unknown)"

    return (
        f"imri-autocode {pipeline.__version__} (`imri agreement`; coefficients computed with NumPy "
        f"{installed('numpy')} and SciPy {installed('scipy')}, and checked in its test suite against "
        "scikit-learn, statsmodels and the krippendorff package)"
    )


def _figure(estimate: Any, percent: bool = False) -> str:
    """A figure and, when bootstrapped, its 95% interval in brackets: ``0.640 [0.612, 0.663]``, ``98.1% [...]``."""
    value = math.nan if estimate is None else estimate.value
    if math.isnan(value):
        return "undefined"
    show = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.3f}")
    if math.isnan(estimate.ci_low) or math.isnan(estimate.ci_high):
        return show(value)
    return f"{show(value)} [{show(estimate.ci_low)}, {show(estimate.ci_high)}]"


def _unit_rule(result: AgreementResult) -> str:
    config = result.config
    if config is None:
        return ""
    if config.unit == "character":
        rule = "each code being present or absent at each character"
    elif config.unit == "segment":
        share = f"{config.min_overlap:.0%}"
        rule = {
            "either": f"a code counting as present in a segment when a coder's passages covered at least {share} of "
            f"the segment or at least {share} of one passage lay inside it",
            "segment": "a code counting as present in a segment when a coder's passages covered at least "
            f"{share} of it",
            "span": f"a code counting as present in a segment when at least {share} of one of a coder's passages lay "
            "inside it",
            "any": "a code counting as present in a segment when a coder's passage overlapped it at all",
        }[config.overlap]
    else:
        rule = "a code counting as present in a transcript when a coder applied it anywhere in it"
    excluded = "" if config.include_interviewer else "; interviewer turns were left out"
    uncoded = "; text that no coder coded was left out" if config.ignore_uncoded else ""
    return rule + excluded + uncoded


def _unit_reason(result: AgreementResult) -> str:
    """Why this unit of analysis (one sentence), or "" for generic data."""
    unit = result.config.unit if result.config is not None else None
    if unit == "character":
        return (
            "Characters were used as units because the coders marked passages of any length rather than "
            "predefined segments: each character counts once, so a disagreement weighs as much as the text it "
            "covers and no rule for cutting the text into segments is needed (the unit of NVivo's coding comparison)."
        )
    if unit == "segment":
        return (
            "Segments (the coding units of the segment table, sentences of one speaker) were used as units, so "
            "that each counts once whatever its length, as when codes are assigned segment by segment."
        )
    if unit == "document":
        return (
            "Transcripts were used as units: the question is whether the coders agree that a code applies somewhere "
            "in an interview, not where."
        )
    return ""


def _coders_sentence(result: AgreementResult, what: str) -> str:
    """Who coded what, as far as the data say; never that they coded independently (the data do not record it)."""
    coders = _join(list(result.coders))
    opening = f"{count_words(len(result.coders)).capitalize()} coders ({coders})"
    counts = {coder: result.transcripts_by_coder.get(coder) for coder in result.coders}
    if result.per_code is None or not result.sources:
        return f"{opening} rated {what}; whether they rated independently of each other is not recorded in the data."
    if len(set(counts.values())) == 1:
        done = f"each coded {_counted(len(result.sources), 'transcript')}"
    else:
        done = (
            f"coded {_counted(len(result.sources), 'transcript')} between them ("
            + _join([f"{coder} {count_words(n or 0)}" for coder, n in counts.items()])
            + ")"
        )
    return f"{opening} {done} {what}; whether they coded independently of each other is not recorded in the codings."


def _bands_sentence(result: AgreementResult, codes: list[str]) -> list[str]:
    """How many codes fall in each kappa band and each alpha band, and why both readings can hold at once."""
    key = _kappa_key(result)
    kappa_words = [kappa_band(_value(result.per_code[c], key)) for c in codes]
    alpha_words = [alpha_band(_value(result.per_code[c], "krippendorff_alpha")) for c in codes]
    order = [KAPPA_TOP, *(word for _, word in reversed(KAPPA_BANDS)), "n/a"]
    listed = [
        f"{'undefined' if word == 'n/a' else word} for {_counted(kappa_words.count(word), 'code')}"
        for word in order
        if kappa_words.count(word)
    ]
    out = [f"In the terms of Landis and Koch (1977), agreement by kappa was {_join(listed)}."] if listed else []
    alpha_parts = [
        f"{_counted(alpha_words.count('reliable'), 'code')} reached α ≥ {ALPHA_RELIABLE:.3f}",
        f"{_counted(alpha_words.count('tentative'), 'code')} reached {ALPHA_TENTATIVE:.3f} ≤ α < "
        f"{ALPHA_RELIABLE:.3f} (tentative conclusions only)",
        f"{_counted(alpha_words.count('unreliable'), 'code')} fell below {ALPHA_TENTATIVE:.3f}",
    ]
    if alpha_words.count("n/a"):
        alpha_parts.append(f"alpha was undefined for {_counted(alpha_words.count('n/a'), 'code')}")
    out.append(f"By Krippendorff's (2004) criteria, {_join(alpha_parts)}.")
    explain = (
        "The two readings answer different questions: Landis and Koch's bands describe the strength of agreement "
        "(0.61-0.80 is called substantial), whereas Krippendorff's thresholds are the least reliability at which "
        "data should be relied on, so the same value can be substantial as kappa and too low as alpha."
    )
    discordant = [
        c
        for c, k, a in zip(codes, kappa_words, alpha_words, strict=True)
        if k in ("moderate", "substantial", KAPPA_TOP) and a == "unreliable"
    ]
    if discordant:
        code = max(discordant, key=lambda c: _value(result.per_code[c], key))
        metrics = result.per_code[code]
        explain += (
            f" For example, {result.name(code)} had kappa {_figure(metrics.estimates.get(key))} "
            f"({kappa_band(_value(metrics, key))}) and alpha {_figure(metrics.estimates.get('krippendorff_alpha'))}"
            f" (below {ALPHA_TENTATIVE:.3f})."
        )
    out.append(explain)
    return out


def methods_paragraph(result: AgreementResult) -> str:
    """A paragraph to paste into a methods section (figures from ``result``), then its references.

    It names the software and its version, the unit of analysis and why, reports every figure with its 95%
    bootstrap interval in brackets (when bootstrapped), writes counts as words under ten and numerals from 10,
    explains the kappa and alpha bands side by side and lists every code it singles out. It says what the data
    show about the coders (who coded how many transcripts), not that they coded independently.
    """
    two = len(result.coders) == 2
    kappa_name = "Cohen's kappa (Cohen, 1960)" if two else "Fleiss' kappa (Fleiss, 1971)"
    cited = ["cohen" if two else "fleiss", "krippendorff", "landis"]
    key = _kappa_key(result)
    if result.n_boot:
        intervals = (
            "; 95% confidence intervals, in brackets after each figure, are percentile bootstrap intervals over "
            f"{'transcripts' if result.sources else 'units'} ({result.n_boot:,} resamples, seed {result.seed})"
        )
    else:
        intervals = "; no confidence intervals were computed"
    software = f"The figures were computed with {_software()}."
    if result.per_code is None:
        o = result.overall
        sentences = [
            _coders_sentence(result, f"{o.n_units:,} units"),
            software,
            f"We report percent agreement, {kappa_name} and Krippendorff's alpha for nominal data "
            f"(Krippendorff, 2004){intervals}.",
            f"Percent agreement was {_figure(o.estimates.get('percent_agreement'), percent=True)}, kappa "
            f"{_figure(o.estimates.get(key))} ({kappa_band(_value(o, key))} agreement in the terms of Landis and "
            f"Koch, 1977) and alpha {_figure(o.estimates.get('krippendorff_alpha'))} "
            f"({alpha_band(_value(o, 'krippendorff_alpha'))} by Krippendorff's, 2004, criteria).",
        ]
        return " ".join(sentences) + "\n\nReferences\n" + "\n".join(REFERENCES[k] for k in sorted(cited))
    codes = list(result.per_code)
    n_units = result.per_code[codes[0]].n_units if codes else 0
    book = f" of codebook {result.codebook}" if result.codebook else ""
    unit_noun = "units" if result.config is None or result.config.unit != "character" else "characters"
    overall = result.overall.estimates
    sentences = [
        _coders_sentence(result, f"with {_counted(len(codes), 'code')}{book}"),
        software,
        f"Agreement was computed for each code separately on {unit_words(result)} ({n_units:,} {unit_noun}), "
        f"{_unit_rule(result)}.",
    ]
    reason = _unit_reason(result)
    if reason:
        sentences.append(reason)
    sentences.append(
        f"We report percent agreement, {kappa_name}, Krippendorff's alpha for nominal data (Krippendorff, 2004) and "
        f"each code's prevalence (the share of units coded with it){intervals}."
    )
    sentences.append(
        f"Over the {_counted(len(codes), 'code')}, mean percent agreement was "
        f"{_figure(overall.get('percent_agreement'), percent=True)}, mean kappa {_figure(overall.get(key))} "
        f"and mean alpha {_figure(overall.get('krippendorff_alpha'))}."
    )
    defined = [c for c in codes if not math.isnan(_value(result.per_code[c], key))]
    if len(defined) > 1:
        ranges = []
        for metric, name in ((key, "kappa"), ("krippendorff_alpha", "alpha")):
            values = [c for c in codes if not math.isnan(_value(result.per_code[c], metric))]
            low = min(values, key=lambda c: _value(result.per_code[c], metric))
            high = max(values, key=lambda c: _value(result.per_code[c], metric))
            ranges.append(
                f"{name} from {_figure(result.per_code[low].estimates[metric])} to "
                f"{_figure(result.per_code[high].estimates[metric])}"
            )
        sentences.append(f"Per code, {ranges[0].replace(' from ', ' ranged from ', 1)} and {ranges[1]}.")
    prevalence = _value(result.overall, "prevalence")
    if result.config is not None and result.config.unit != "document" and prevalence < 0.25:
        sentences.append(
            f"Mean prevalence was {_figure(overall.get('prevalence'), percent=True)}: for any one code, most "
            f"{unit_noun} were coded with it by neither coder, so the high percent agreement mostly reflects "
            "agreement on text that neither coder coded with that code; kappa and alpha discount the agreement "
            "expected by chance and are the figures to read."
        )
    sentences += _bands_sentence(result, codes)
    flagged = paradox_codes(result)
    if flagged:
        cited.append("feinstein")
        low = min(flagged, key=lambda c: _value(result.per_code[c], "prevalence"))
        high = max(flagged, key=lambda c: _value(result.per_code[c], "prevalence"))
        shown = _figure(result.per_code[low].estimates.get("prevalence"), percent=True)
        if low != high:
            shown = f"from {shown} to {_figure(result.per_code[high].estimates.get('prevalence'), percent=True)}"
        names = _join_names([result.name(c) for c in flagged])
        sentences.append(
            f"For {_counted(len(flagged), 'code')} ({names}), percent agreement was at least "
            f"{PARADOX_AGREEMENT:.0%} while kappa was below {PARADOX_KAPPA:.2f}; "
            f"{'these codes were' if len(flagged) > 1 else 'this code was'} rare (prevalence {shown}), which lowers "
            "kappa for a given level of agreement (Feinstein & Cicchetti, 1990)."
        )
    return " ".join(sentences) + "\n\nReferences\n" + "\n".join(REFERENCES[k] for k in sorted(cited))


def _join_names(names: list[str]) -> str:
    """Code names joined as :func:`_join` does, with semicolons when a name holds a comma itself."""
    if any("," in name for name in names) and len(names) > 2:
        return "; ".join(names[:-1]) + "; and " + names[-1]
    return _join(names)


def _join(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c" (every item: lists are never cut short)."""
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
