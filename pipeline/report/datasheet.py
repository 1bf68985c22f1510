"""Count what the gold corpus holds, and write those counts into ``data/DATASHEET.md``.

``corpus_stats`` reads the compiled gold corpus (``transcripts/*.txt`` with their ``.meta.yaml``
sidecars, and ``codings.csv``) and, optionally, the uncoded transcripts of a new study. It returns
plain, JSON-ready dictionaries; ``format_stats`` prints them for a terminal and
``render_generated`` as the Markdown of the datasheet's generated section, which
``update_datasheet`` swaps in between the ``<!-- generated: start -->`` and
``<!-- generated: end -->`` markers, leaving the hand-written prose around them untouched.

Definitions used throughout:

* a *word* is a whitespace-separated token of the plain transcript (speaker labels included);
* a *passage* is one coder's span: ``codings.csv`` has one row per code, so rows are grouped by
  ``(source, start, end, coder)``; a passage with two codes counts once for each code in the
  per-code tables;
* the language of a passage is its transcript's ``language`` (sidecar);
* *participant text* is the non-whitespace characters of participant turns (speaker labels and
  interviewer turns excluded, as found by :func:`pipeline.ingest.transcripts.read_transcripts`); the uncoded
  share is the part of it that no coder-A passage covers.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import INTERVIEW_TYPES, Coding, collect_transcripts, read_codings, read_transcripts

#: Canonical orders (the study's design); values outside them are listed after, sorted.
LANGUAGE_ORDER = ("en", "fr")
SITE_ORDER = (
    "quebec",
    "ontario",
    "manitoba_1",
    "manitoba_2",
    "new_brunswick_1",
    "new_brunswick_2",
    "british_columbia",
)
INNOVATION_ORDER = ("peer_support", "staff_recovery_training", "family_support_group", "wrap")
STAKEHOLDER_ORDER = (
    "tenants",
    "family_members",
    "service_providers",
    "managers",
    "housing_proprietors",
    "knowledge_users",
    "other_actors",
)
GENERATED_START = "<!-- generated: start -->"
GENERATED_END = "<!-- generated: end -->"
CODING_MARKS = ("[[", "]]", "<<", ">>")

Passage = tuple[str, int, int, str]  # source, start, end, coder


# --- reading ---------------------------------------------------------------------------------------


def group_passages(rows: Iterable[Coding]) -> dict[Passage, set[str]]:
    """Group coding rows into passages: ``(source, start, end, coder) -> {codes}``."""
    passages: dict[Passage, set[str]] = defaultdict(set)
    for row in rows:
        passages[(row.source, row.start, row.end, row.coder)].add(row.code)
    return dict(passages)


def _ordered(keys: Iterable[str], order: tuple[str, ...]) -> list[str]:
    keys = set(keys)
    return [k for k in order if k in keys] + sorted(k for k in keys if k not in order)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


# --- counting --------------------------------------------------------------------------------------


def _group_counts(interviews: list[dict], key: str, order: tuple[str, ...]) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for value in _ordered((i[key] for i in interviews), order):
        members = [i for i in interviews if i[key] == value]
        entry = {"interviews": len(members), "words": sum(i["words"] for i in members)}
        if key != "language":
            entry.update({lang: sum(i["language"] == lang for i in members) for lang in LANGUAGE_ORDER})
        groups[value] = entry
    return groups


def gold_stats(gold: str | Path, codebook: Codebook | None = None) -> dict:
    """Counts of the compiled gold corpus in ``gold`` (``transcripts/`` and ``codings.csv``)."""
    gold = Path(gold)
    codebook = codebook or load_codebook()
    transcripts_dir = gold / "transcripts"
    if not transcripts_dir.is_dir():
        raise InputError("no transcripts/ folder (run `imri corpus build` first)", gold)
    transcripts = read_transcripts(collect_transcripts([transcripts_dir]), no_speakers="participant")
    by_source = {t.source: t for t in transcripts}
    rows = read_codings(gold / "codings.csv")
    unknown_sources = sorted({r.source for r in rows} - set(by_source))
    if unknown_sources:
        raise InputError(f"codings refer to missing transcript(s): {', '.join(unknown_sources[:5])}", gold)
    passages = group_passages(rows)
    language_of = {t.source: t.meta.get("language", "unknown") for t in transcripts}

    # per interview
    interviews = []
    covered_by_a: dict[str, bytearray] = {t.source: bytearray(len(t.text)) for t in transcripts}
    for (source, start, end, coder), _codes in passages.items():
        if coder == "A":
            covered_by_a[source][start:end] = b"\x01" * (end - start)
    participant_chars = uncoded_chars = 0
    for t in transcripts:
        meta = t.meta
        covered = covered_by_a[t.source]
        p_chars = p_uncoded = 0
        for turn in t.turns:
            if turn.role != "participant":
                continue
            for k in range(turn.start, turn.end):
                if not t.text[k].isspace():
                    p_chars += 1
                    p_uncoded += not covered[k]
        participant_chars += p_chars
        uncoded_chars += p_uncoded
        mine = [key for key in passages if key[0] == t.source]
        interviews.append(
            {
                "source": t.source,
                "language": meta.get("language", "unknown"),
                "site": meta.get("site", "unknown"),
                "innovation": meta.get("innovation", "unknown"),
                "interview_type": meta.get("interview_type", "unknown"),
                "code_switching": bool(meta.get("code_switching", False)),
                "participants": len(meta.get("participants") or {}),
                "turns": len(t.turns),
                "words": len(t.text.split()),
                "passages_A": sum(k[3] == "A" for k in mine),
                "passages_B": sum(k[3] == "B" for k in mine),
                "participant_uncoded_share_A": _share(p_uncoded, p_chars),
            }
        )

    # stakeholder groups of the participants (speaker labels)
    stakeholders: Counter[str] = Counter()
    for t in transcripts:
        stakeholders.update(str(g) for g in (t.meta.get("participants") or {}).values())

    # passages per coder, per code x language
    coders = sorted({k[3] for k in passages})
    per_coder = {}
    for coder in coders:
        mine = {k: v for k, v in passages.items() if k[3] == coder}
        per_coder[coder] = {
            "passages": len(mine),
            "codings": sum(len(v) for v in mine.values()),
            "transcripts": len({k[0] for k in mine}),
            "multi_code_passages": sum(len(v) > 1 for v in mine.values()),
            "multi_code_share": _share(sum(len(v) > 1 for v in mine.values()), len(mine)),
        }
    by_code: dict[str, dict] = {}
    code_ids = list(codebook.impact_ids) + sorted({r.code for r in rows} - set(codebook.impact_ids))
    for code in code_ids:
        entry: dict[str, int] = {}
        for lang in LANGUAGE_ORDER:
            entry[f"A_{lang}"] = sum(
                1 for k, v in passages.items() if k[3] == "A" and code in v and language_of[k[0]] == lang
            )
        entry["A"] = sum(1 for k, v in passages.items() if k[3] == "A" and code in v)
        for coder in coders:
            if coder != "A":
                entry[coder] = sum(1 for k, v in passages.items() if k[3] == coder and code in v)
        by_code[code] = entry
    a_passages_by_language = {
        lang: sum(1 for k in passages if k[3] == "A" and language_of[k[0]] == lang) for lang in LANGUAGE_ORDER
    }

    double = sorted({k[0] for k in passages if k[3] == "B"} & {k[0] for k in passages if k[3] == "A"})
    return {
        "interviews": len(transcripts),
        "words": sum(i["words"] for i in interviews),
        "turns": sum(i["turns"] for i in interviews),
        "participants": sum(i["participants"] for i in interviews),
        "by_language": _group_counts(interviews, "language", LANGUAGE_ORDER),
        "by_site": _group_counts(interviews, "site", SITE_ORDER),
        "by_innovation": _group_counts(interviews, "innovation", INNOVATION_ORDER),
        "by_interview_type": _group_counts(interviews, "interview_type", INTERVIEW_TYPES),
        "code_switching": sum(i["code_switching"] for i in interviews),
        "participants_by_stakeholder_group": {g: stakeholders[g] for g in _ordered(stakeholders, STAKEHOLDER_ORDER)},
        "coders": per_coder,
        "passages_A_by_language": a_passages_by_language,
        "passages_by_code": by_code,
        "participant_chars": participant_chars,
        "participant_uncoded_share_A": _share(uncoded_chars, participant_chars),
        "double_coded": {
            "transcripts": len(double),
            "fr": sum(language_of[s] == "fr" for s in double),
            "sources": double,
            "agreement_A_B": human_agreement(rows, by_source, codebook) if double else {},
        },
        "per_interview": interviews,
    }


def human_agreement(codings: list[Coding], transcripts: dict, codebook: Codebook) -> dict:
    """Cohen's kappa between coders A and B per code (character unit, participant text, 95% CI by transcript)."""
    from pipeline.agreement import UnitConfig, span_agreement

    result = span_agreement(
        codings, transcripts, ["A", "B"], codebook.impact_ids, UnitConfig("character"), n_boot=200, seed=0
    ).to_dict()
    kappa = {code: values["cohen_kappa"] for code, values in result["per_code"].items()}
    return {"unit": "character, participant text", "mean_kappa": result["cohen_kappa"], "per_code": kappa}


def new_study_stats(folder: str | Path) -> dict:
    """Counts of an uncoded study folder: transcripts and words per language, coding marks left."""
    folder = Path(folder)
    transcripts = read_transcripts(collect_transcripts([folder]), no_speakers="participant")
    interviews = [
        {
            "source": t.source,
            "language": t.meta.get("language", "unknown"),
            "words": len(t.text.split()),
            "site": t.meta.get("site", "unknown"),
            "innovation": t.meta.get("innovation", "unknown"),
        }
        for t in transcripts
    ]
    return {
        "transcripts": len(transcripts),
        "words": sum(i["words"] for i in interviews),
        "by_language": _group_counts(interviews, "language", LANGUAGE_ORDER),
        "by_innovation": _group_counts(interviews, "innovation", ()),
        "by_site": _group_counts(interviews, "site", ()),
        "files_with_coding_marks": sum(any(m in t.text for m in CODING_MARKS) for t in transcripts),
    }


def passage_lengths(codings: list[Coding]) -> dict:
    """Passage lengths in characters per coder: median and the 10th-90th percentile range."""
    import numpy as np

    out = {}
    for coder in sorted({c.coder for c in codings}):
        lengths = np.array([end - start for (_, start, end, who) in group_passages(codings) if who == coder])
        if len(lengths):
            p10, p50, p90 = np.percentile(lengths, [10, 50, 90])
            out[coder] = {"passages": int(len(lengths)), "median": int(p50), "p10": int(p10), "p90": int(p90)}
    return out


def transfer_stats(folder: str | Path, codebook: Codebook | None = None) -> dict:
    """Counts of the transfer corpus (same layout as the gold corpus), with passage lengths."""
    stats = gold_stats(folder, codebook)
    stats["passage_lengths"] = passage_lengths(read_codings(Path(folder) / "codings.csv"))
    return stats


def corpus_stats(
    gold: str | Path = "data/gold",
    new_study: str | Path | None = "data/new_study",
    codebook: Codebook | None = None,
    transfer: str | Path | None = None,
) -> dict:
    """All counts: ``{"gold": ..., "transfer": ..., "new_study": ...}`` (those not given are omitted)."""
    stats = {"gold": gold_stats(gold, codebook)}
    stats["gold"]["passage_lengths"] = passage_lengths(read_codings(Path(gold) / "codings.csv"))
    if transfer is not None:
        stats["transfer"] = transfer_stats(transfer, codebook)
    if new_study is not None:
        stats["new_study"] = new_study_stats(new_study)
    return stats


# --- rendering -------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[object]], markdown: bool) -> list[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if markdown:
        numeric = [all(re.fullmatch(r"[\d,.%() ]*", row[i]) for row in cells[1:]) for i in range(len(header))]
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "".join("---:|" if n else "---|" for n in numeric)]
        return lines + ["| " + " | ".join(row) + " |" for row in cells[1:]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  " + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return [fmt(cells[0])] + [fmt(row) for row in cells[1:]]


def _sections(stats: dict, markdown: bool) -> list[str]:
    gold = stats["gold"]
    h = "### " if markdown else ""
    out: list[str] = []
    langs = gold["by_language"]
    lang_text = ", ".join(f"{k} {v['interviews']} with {v['words']:,} words" for k, v in langs.items())
    out += [
        f"{h}Gold corpus",
        "",
        f"- interviews: {gold['interviews']}; {gold['words']:,} words; {gold['turns']:,} speaker turns",
        f"- per language: {lang_text}",
        f"- French share of interviews: {_pct(_share(langs.get('fr', {}).get('interviews', 0), gold['interviews']))}",
        f"- interviews with code-switching: {gold['code_switching']}",
        f"- participant speaker labels: {gold['participants']}",
        *([f"- passage lengths: {_lengths(gold['passage_lengths'])}"] if gold.get("passage_lengths") else []),
        "",
    ]
    for title, key, name in (
        ("Interviews per site", "by_site", "site"),
        ("Interviews per innovation", "by_innovation", "innovation"),
        ("Interviews per interview type", "by_interview_type", "interview type"),
    ):
        rows = [[k, v["interviews"], v["en"], v["fr"], f"{v['words']:,}"] for k, v in gold[key].items()]
        out += [f"{h}{title}", ""] + _table([name, "interviews", "en", "fr", "words"], rows, markdown) + [""]
    groups = gold["participants_by_stakeholder_group"]
    out += [f"{h}Participants (speaker labels) per stakeholder group", ""]
    out += _table(["stakeholder group", "labels"], [[k, v] for k, v in groups.items()], markdown) + [""]

    coders = gold["coders"]
    out += [f"{h}Coders", ""]
    rows = [
        [
            c,
            v["transcripts"],
            v["passages"],
            v["codings"],
            f"{v['multi_code_passages']} ({_pct(v['multi_code_share'])})",
        ]
        for c, v in coders.items()
    ]
    out += _table(["coder", "transcripts", "passages", "codings", "passages with 2+ codes"], rows, markdown)
    double = gold["double_coded"]
    by_lang = gold["passages_A_by_language"]
    out += [
        "",
        f"- coder A passages per language: {', '.join(f'{k} {v}' for k, v in by_lang.items())}",
        f"- participant text left uncoded by coder A: {_pct(gold['participant_uncoded_share_A'])} "
        f"(of {gold['participant_chars']:,} non-space characters in participant turns)",
        f"- double-coded transcripts (coders A and B): {double['transcripts']}, of them French: {double['fr']}"
        + (f" ({', '.join(s.removesuffix('.txt') for s in double['sources'])})" if double["sources"] else ""),
        "",
    ]
    extra = [c for c in coders if c != "A"]
    agreement = double.get("agreement_A_B") or {}
    if agreement:
        mean = agreement["mean_kappa"]
        out += [
            f"{h}Human-human agreement (A vs B, {agreement['unit']})",
            "",
            f"- Cohen's kappa, mean over codes: {_kappa(mean)}",
            "",
        ]
        rows = [[code, _kappa(k)] for code, k in agreement["per_code"].items()]
        out += _table(["code", "kappa [95% CI]"], rows, markdown) + [""]
    out += [f"{h}Coded passages per code (coder A per language; other coders on the double-coded transcripts)", ""]
    header = ["code", *(f"A {lang}" for lang in LANGUAGE_ORDER), "A", *extra]
    rows = [
        [code, *(v[f"A_{lang}"] for lang in LANGUAGE_ORDER), v["A"], *(v.get(c, 0) for c in extra)]
        for code, v in gold["passages_by_code"].items()
    ]
    out += _table(header, rows, markdown) + [""]
    if markdown:
        out += [f"{h}Interviews", ""]
        rows = [
            [
                i["source"].removesuffix(".txt"),
                i["language"],
                i["site"],
                i["innovation"],
                i["interview_type"],
                i["participants"],
                f"{i['words']:,}",
                i["passages_A"],
                i["passages_B"] or "",
                _pct(i["participant_uncoded_share_A"]),
            ]
            for i in gold["per_interview"]
        ]
        header = ["id", "lang", "site", "innovation", "type", "participants", "words", "A", "B", "uncoded"]
        out += _table(header, rows, markdown) + [""]
    if "transfer" in stats:
        out += _transfer_section(stats["transfer"], markdown)
    if "new_study" in stats:
        new = stats["new_study"]
        langs = ", ".join(f"{k} {v['interviews']}" for k, v in new["by_language"].items())
        out += [
            f"{h}New study (uncoded)",
            "",
            f"- transcripts: {new['transcripts']} ({langs}); {new['words']:,} words; "
            f"files with coding marks: {new['files_with_coding_marks']}",
            "",
        ]
        rows = [[k, v["interviews"], v["en"], v["fr"], f"{v['words']:,}"] for k, v in new["by_site"].items()]
        out += _table(["site", "transcripts", "en", "fr", "words"], rows, markdown) + [""]
    return out


def _lengths(lengths: dict) -> str:
    return "; ".join(
        f"coder {c}: median {v['median']:,} characters (10-90%: {v['p10']:,}-{v['p90']:,})" for c, v in lengths.items()
    )


def _transfer_section(t: dict, markdown: bool) -> list[str]:
    """The transfer corpus: counts, passage lengths, A-vs-B agreement per impact."""
    h = "### " if markdown else ""
    langs = ", ".join(f"{k} {v['interviews']} with {v['words']:,} words" for k, v in t["by_language"].items())
    types = ", ".join(f"{k} {v['interviews']}" for k, v in t["by_interview_type"].items())
    groups = ", ".join(f"{k} {v}" for k, v in t["participants_by_stakeholder_group"].items())
    coders = ", ".join(
        f"{c}: {v['passages']} passages ({_pct(v['multi_code_share'])} with 2+ codes)" for c, v in t["coders"].items()
    )
    out = [
        f"{h}Transfer corpus (data/transfer: blind-written, never trained on)",
        "",
        f"- interviews: {t['interviews']}; {t['words']:,} words; {t['turns']:,} speaker turns; per language: {langs}",
        f"- interview types: {types}; sites: {len(t['by_site'])}; innovations: {len(t['by_innovation'])}",
        f"- participants (speaker labels) per stakeholder group: {groups}",
        f"- coders: {coders}",
        f"- passage lengths: {_lengths(t['passage_lengths'])}",
        f"- participant text left uncoded by coder A: {_pct(t['participant_uncoded_share_A'])}",
        "- it never fits anything (no weights, calibration, thresholds or hyper-parameter searches): "
        "it only chooses between a few named model variants and reports transfer",
        "",
    ]
    agreement = t["double_coded"].get("agreement_A_B") or {}
    if agreement:
        out += [
            f"{h}Transfer corpus: A vs B agreement ({agreement['unit']})",
            "",
            f"- Cohen's kappa, mean over codes: {_kappa(agreement['mean_kappa'])}",
            "",
        ]
        rows = [
            [code, t["passages_by_code"][code]["A"], t["passages_by_code"][code].get("B", 0), _kappa(k)]
            for code, k in agreement["per_code"].items()
        ]
        out += _table(["code", "A passages", "B passages", "kappa [95% CI]"], rows, markdown) + [""]
    return out


def _kappa(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None:
        return "n/a"
    ci = estimate.get("ci95")
    return f"{estimate['value']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_stats(stats: dict) -> str:
    """The counts as plain text for a terminal."""
    return "\n".join(_sections(stats, markdown=False)).rstrip() + "\n"


def render_generated(stats: dict) -> str:
    """The counts as the Markdown of the datasheet's generated section (markers excluded)."""
    intro = (
        "_This section is generated by `imri corpus datasheet`; do not edit it by hand. "
        "A passage is one coder's span; a passage with two codes counts once under each code._"
    )
    return "\n".join([intro, "", *_sections(stats, markdown=True)]).rstrip() + "\n"


def update_datasheet(path: str | Path, stats: dict) -> bool:
    """Replace the generated section of the datasheet at ``path``; return whether the file changed."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file (the datasheet must exist with its generated-section markers)", path)
    text = path.read_text(encoding="utf-8")
    if text.count(GENERATED_START) != 1 or text.count(GENERATED_END) != 1:
        raise InputError(f"needs exactly one {GENERATED_START!r} and one {GENERATED_END!r} marker", path)
    if text.index(GENERATED_END) < text.index(GENERATED_START):
        raise InputError(f"{GENERATED_END!r} comes before {GENERATED_START!r}", path)
    head, rest = text.split(GENERATED_START)
    tail = rest.split(GENERATED_END)[1]
    new = f"{head}{GENERATED_START}\n\n{render_generated(stats)}\n{GENERATED_END}{tail}"
    if new == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8", newline="")
    tmp.replace(path)
    return True
