"""Validate the bundled gold corpus (issue 3): its build, offsets, codes, sidecars, quotas and datasheet.

The checks read the committed files (``data/gold``, ``data/new_study``, ``data/DATASHEET.md``);
the markup compiler of ``pipeline/ingest/corpus.py`` gets a few unit tests of its own at the end.
"""

from __future__ import annotations

import contextlib
import csv
import filecmp
import io
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.errors import InputError
from pipeline.ingest import Coding, RoleResolver, compile_file, compile_markup, find_turns, load_transcript

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "data" / "gold"
MARKUP = GOLD / "markup"
TRANSCRIPTS = GOLD / "transcripts"
NEW_STUDY = ROOT / "data" / "new_study"
DATASHEET = ROOT / "data" / "DATASHEET.md"

# The study's design (../shared/spec/study.md): which site ran which innovation.
SITE_INNOVATION = {
    "quebec": "peer_support",
    "ontario": "staff_recovery_training",
    "manitoba_1": "peer_support",
    "manitoba_2": "staff_recovery_training",
    "new_brunswick_1": "family_support_group",
    "new_brunswick_2": "staff_recovery_training",
    "british_columbia": "wrap",
}
INNOVATIONS = {"peer_support", "staff_recovery_training", "family_support_group", "wrap"}
INTERVIEW_TYPES = {"individual", "dyad", "group"}
STAKEHOLDER_GROUPS = {
    "tenants",
    "family_members",
    "service_providers",
    "managers",
    "housing_proprietors",
    "knowledge_users",
    "other_actors",
}
PARTICIPANTS_PER_TYPE = {"individual": (1, 1), "dyad": (2, 2), "group": (3, 9)}
MIN_SENTENCE_WORDS = 8


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codebook():
    return load_codebook()


@pytest.fixture(scope="module")
def transcripts():
    """The compiled gold transcripts, by file name."""
    return {p.name: load_transcript(p) for p in sorted(TRANSCRIPTS.glob("*.txt"))}


@pytest.fixture(scope="module")
def new_study():
    return {p.name: load_transcript(p) for p in sorted(NEW_STUDY.glob("*.txt"))}


@pytest.fixture(scope="module")
def rows():
    with (GOLD / "codings.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == ("source", "start", "end", "code", "coder")
        return [{**r, "start": int(r["start"]), "end": int(r["end"])} for r in reader]


@pytest.fixture(scope="module")
def passages(rows):
    """One coder's span -> its codes: ``(source, start, end, coder) -> {code, ...}``."""
    grouped: dict[tuple[str, int, int, str], set[str]] = defaultdict(set)
    for r in rows:
        grouped[(r["source"], r["start"], r["end"], r["coder"])].add(r["code"])
    return dict(grouped)


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """``imri segment data/gold/transcripts --out X.parquet``, run once for the module."""
    import pandas as pd

    from pipeline.cli import main

    out = tmp_path_factory.mktemp("segments") / "gold.parquet"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["imri", "segment", str(TRANSCRIPTS), "--out", str(out)])
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code
    assert code in (0, None), stderr.getvalue()[-2000:]
    return pd.read_parquet(out)


def language(transcripts, source: str) -> str:
    return transcripts[source].meta["language"]


# --- the committed build is up to date -------------------------------------------------------------


def test_build_reproduces_committed_corpus(tmp_path, run_cli):
    result = run_cli("corpus", "build", "--markup", MARKUP, "--out", tmp_path)
    assert result.code == 0, result.err
    built = sorted(p.name for p in (tmp_path / "transcripts").iterdir())
    committed = sorted(p.name for p in TRANSCRIPTS.iterdir())
    assert built == committed, "data/gold/transcripts is stale: run `imri corpus build`"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "transcripts", TRANSCRIPTS, built, shallow=False)
    assert not mismatch and not errors, f"stale compiled files {mismatch + errors}: run `imri corpus build`"
    assert (tmp_path / "codings.csv").read_bytes() == (GOLD / "codings.csv").read_bytes(), (
        "data/gold/codings.csv is stale: run `imri corpus build`"
    )
    stems = {p.stem for p in MARKUP.glob("*.txt")}
    assert stems == {p.name.removesuffix(".meta.yaml") for p in MARKUP.glob("*.meta.yaml")}, "a sidecar is missing"


# --- codings ---------------------------------------------------------------------------------------


def test_offsets_in_range_and_spans_clean(rows, transcripts):
    for r in rows:
        assert r["source"] in transcripts, r
        text = transcripts[r["source"]].text
        assert 0 <= r["start"] < r["end"] <= len(text), r
        span = text[r["start"] : r["end"]]
        assert span.strip(), r
        assert span == span.strip(), f"passage has whitespace at its edges: {r}"


def test_codes_in_codebook_and_coders_known(rows, codebook):
    assert {r["code"] for r in rows} <= set(codebook.impact_ids)
    assert {r["coder"] for r in rows} == {"A", "B"}
    keys = [(r["source"], r["start"], r["end"], r["code"], r["coder"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate coding rows"


def test_no_coding_on_interviewer_text(passages, transcripts):
    problems = []
    for (source, start, end, coder), codes in passages.items():
        turns = transcripts[source].turns
        overlapping = [t for t in turns if t.start < end and start < t.end]
        within = [t for t in overlapping if t.start <= start and end <= t.end]
        if not any(t.role == "participant" for t in overlapping):
            problems.append(f"{source}:{start}-{end} coder {coder} {sorted(codes)} lies on interviewer text only")
        elif len(within) != 1:
            problems.append(f"{source}:{start}-{end} coder {coder} {sorted(codes)} crosses a turn boundary")
        elif within[0].role != "participant":
            problems.append(f"{source}:{start}-{end} coder {coder} {sorted(codes)} lies in an interviewer turn")
    assert not problems, "\n".join(problems[:20])


# --- sidecars --------------------------------------------------------------------------------------


def _check_speakers(transcript) -> None:
    meta = transcript.meta
    interviewers = list(meta.get("interviewers") or [])
    participants = dict(meta.get("participants") or {})
    declared = set(interviewers) | set(participants)
    assert interviewers and participants, transcript.source
    assert not set(interviewers) & set(participants), transcript.source
    found = {t.speaker for t in transcript.turns}
    assert found == declared, f"{transcript.source}: speakers {sorted(found ^ declared)} differ from the sidecar"
    # labels found without the sidecar's help: no undeclared speaker hides in the text
    free = {t.speaker for t in find_turns(transcript.text, RoleResolver(interviewers), None)}
    assert free == declared, f"{transcript.source}: undeclared speaker label(s) {sorted(free - declared)}"
    roles = {t.speaker: t.role for t in transcript.turns}
    assert all(roles[label] == "interviewer" for label in interviewers), transcript.source
    assert all(roles[label] == "participant" for label in participants), transcript.source


def test_sidecars_valid(transcripts):
    for source, transcript in transcripts.items():
        meta = transcript.meta
        assert meta.get("language") in {"en", "fr"}, source
        assert meta.get("site") in SITE_INNOVATION, source
        assert meta.get("innovation") == SITE_INNOVATION[meta["site"]], f"{source}: innovation does not fit the site"
        assert meta.get("interview_type") in INTERVIEW_TYPES, source
        assert isinstance(meta.get("code_switching", False), bool), source
        participants = meta.get("participants") or {}
        assert set(participants.values()) <= STAKEHOLDER_GROUPS, source
        assert set(meta.get("stakeholder_groups") or []) == set(participants.values()), source
        low, high = PARTICIPANTS_PER_TYPE[meta["interview_type"]]
        assert low <= len(participants) <= high, (
            f"{source}: {len(participants)} participants in a {meta['interview_type']}"
        )
        _check_speakers(transcript)


# --- the quotas of issue 3 -------------------------------------------------------------------------


def test_interview_counts(transcripts):
    metas = [t.meta for t in transcripts.values()]
    assert len(metas) >= 30
    assert sum(len(t.text.split()) for t in transcripts.values()) >= 45_000
    assert 3 * sum(m["language"] == "fr" for m in metas) >= len(metas)
    assert sum(bool(m.get("code_switching")) for m in metas) >= 2
    assert {m["site"] for m in metas} == set(SITE_INNOVATION)
    assert {m["innovation"] for m in metas} == INNOVATIONS
    assert {m["interview_type"] for m in metas} == INTERVIEW_TYPES


def test_passages_per_code(passages, transcripts, codebook):
    per_code: Counter[str] = Counter()
    per_code_fr: Counter[str] = Counter()
    for (source, _s, _e, coder), codes in passages.items():
        if coder == "A":
            per_code.update(codes)
            if language(transcripts, source) == "fr":
                per_code_fr.update(codes)
    short = {c: (per_code[c], per_code_fr[c]) for c in codebook.impact_ids if per_code[c] < 40 or per_code_fr[c] < 12}
    assert not short, f"codes under quota (all, French): {short}"


def test_multi_code_share(passages):
    a = [codes for key, codes in passages.items() if key[3] == "A"]
    assert sum(len(codes) > 1 for codes in a) >= 0.10 * len(a)


def test_participant_text_left_uncoded(passages, transcripts):
    participant = uncoded = 0
    for source, transcript in transcripts.items():
        covered = bytearray(len(transcript.text))
        for s_source, start, end, coder in passages:
            if s_source == source and coder == "A":
                covered[start:end] = b"\x01" * (end - start)
        for turn in transcript.turns:
            if turn.role == "participant":
                for k in range(turn.start, turn.end):
                    if not transcript.text[k].isspace():
                        participant += 1
                        uncoded += not covered[k]
    assert participant and uncoded >= 0.35 * participant


def test_double_coding(passages, transcripts):
    by_coder = defaultdict(set)
    for source, _s, _e, coder in passages:
        by_coder[coder].add(source)
    double = by_coder["A"] & by_coder["B"]
    assert by_coder["B"] <= by_coder["A"]
    assert len(double) >= 8
    assert sum(language(transcripts, s) == "fr" for s in double) >= 3
    # B is an independent markup, not a copy of A
    for source in double:
        spans = {coder: {(k[1], k[2]) for k in passages if k[0] == source and k[3] == coder} for coder in "AB"}
        assert spans["A"] != spans["B"], f"{source}: coder B has exactly coder A's spans"


def test_new_study(new_study):
    assert len(new_study) >= 8
    assert sum(t.meta.get("language") == "fr" for t in new_study.values()) >= 3
    for source, transcript in new_study.items():
        assert transcript.meta.get("language") in {"en", "fr"}, source
        assert transcript.meta.get("interview_type") in INTERVIEW_TYPES, source
        for mark in ("[[", "]]", "<<", ">>", "]]{", ">>{"):
            assert mark not in transcript.text, f"{source}: coding mark {mark!r} in an uncoded transcript"
        _check_speakers(transcript)


# --- free prose: no sentence reused across interviews -----------------------------------------------

_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|\n+|\s--\s|\s—\s")


def _normalise(sentence: str) -> str:
    sentence = re.sub(r"\[[^\]]*\]", " ", sentence)  # [laughs], [name], [Tenant 3]
    sentence = unicodedata.normalize("NFKC", sentence).casefold().replace("’", "'")
    return " ".join(re.sub(r"[^\w']+", " ", sentence).split())


def test_no_sentence_reused_across_interviews(transcripts, new_study):
    where: dict[str, set[str]] = defaultdict(set)
    for source, transcript in {**transcripts, **new_study}.items():
        for turn in transcript.turns:
            for sentence in _SENTENCE_BREAK.split(transcript.text[turn.start : turn.end]):
                normal = _normalise(sentence)
                if len(normal.split()) >= MIN_SENTENCE_WORDS:
                    where[normal].add(source)
    reused = {s: sorted(files) for s, files in where.items() if len(files) > 1}
    assert not reused, "\n".join(f"{files}: {s}" for s, files in list(reused.items())[:20])


# --- the segment table builds on the whole corpus -------------------------------------------------


def test_segment_table_on_whole_corpus(segments, transcripts, passages):
    assert set(segments["source"]) == set(transcripts)
    assert set(segments["language"]) <= {"en", "fr"}
    for source, group in segments.groupby("source"):
        text = transcripts[source].text
        for start, end, segment_text in zip(group["start"], group["end"], group["text"], strict=True):
            assert text[start:end] == segment_text, (source, start, end)
    # every coded passage meets at least one participant segment, so it can become a training label
    spans = defaultdict(list)
    for source, start, end, role in zip(
        segments["source"], segments["start"], segments["end"], segments["role"], strict=True
    ):
        if role == "participant":
            spans[source].append((start, end))
    lonely = [k for k in passages if not any(s < k[2] and k[1] < e for s, e in spans[k[0]])]
    assert not lonely, lonely[:10]


# --- the datasheet -------------------------------------------------------------------------------


def test_datasheet_counts_match_the_tests(passages, transcripts):
    from pipeline.report import corpus_stats

    stats = corpus_stats(GOLD, NEW_STUDY)
    gold = stats["gold"]
    assert gold["interviews"] == len(transcripts)
    assert gold["words"] == sum(len(t.text.split()) for t in transcripts.values())
    assert gold["coders"]["A"]["passages"] == sum(k[3] == "A" for k in passages)
    assert gold["coders"]["B"]["passages"] == sum(k[3] == "B" for k in passages)
    for code, counts in gold["passages_by_code"].items():
        assert (
            counts["A"]
            == counts["A_en"] + counts["A_fr"]
            == sum(code in codes for k, codes in passages.items() if k[3] == "A")
        )
    assert stats["new_study"]["files_with_coding_marks"] == 0


def test_datasheet_generated_section_is_current():
    from pipeline.report import GENERATED_END, GENERATED_START, corpus_stats, render_generated

    text = DATASHEET.read_text(encoding="utf-8")
    generated = text.split(GENERATED_START, 1)[1].split(GENERATED_END, 1)[0]
    transfer = GOLD.parent / "transfer"
    assert generated.strip() == render_generated(corpus_stats(GOLD, NEW_STUDY, transfer=transfer)).strip(), (
        "data/DATASHEET.md is stale: run `imri corpus datasheet`"
    )
    assert "synthetic" in text.split(GENERATED_START, 1)[0].lower()


def test_datasheet_command_keeps_the_prose(tmp_path, run_cli):
    sheet = tmp_path / "DATASHEET.md"
    sheet.write_text(
        "# Title\n\nProse before.\n\n<!-- generated: start -->\nSTALE-COUNTS\n<!-- generated: end -->\n\nAfter.\n"
    )
    result = run_cli("corpus", "datasheet", "--datasheet", sheet, "--gold", GOLD, "--new-study", NEW_STUDY)
    assert result.code == 0, result.err
    text = sheet.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nProse before.\n\n<!-- generated: start -->\n")
    assert text.endswith("<!-- generated: end -->\n\nAfter.\n")
    assert "STALE-COUNTS" not in text and "being_growth_service_users" in text
    assert (
        "already up to date"
        in run_cli("corpus", "datasheet", "--datasheet", sheet, "--gold", GOLD, "--new-study", NEW_STUDY).out
    )
    sheet.write_text("no markers here\n")
    result = run_cli("corpus", "datasheet", "--datasheet", sheet)
    assert result.code == 2 and "marker" in result.err and len(result.err.strip().splitlines()) == 1


def test_stats_command_json(run_cli):
    import json

    result = run_cli("corpus", "stats", "--json", "--gold", GOLD, "--new-study", NEW_STUDY)
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    assert stats["gold"]["interviews"] >= 30 and stats["new_study"]["transcripts"] >= 8
    text = run_cli("corpus", "stats", "--gold", GOLD, "--new-study", NEW_STUDY)
    assert text.code == 0 and "operating_meeting_needs" in text.out and "double-coded" in text.out


# --- the markup compiler (pipeline/ingest/corpus.py) -----------------------------------------------------


def _spans(text: str, codings: list[Coding]) -> set[tuple[str, str, str]]:
    return {(text[c.start : c.end], c.code, c.coder) for c in codings}


def test_compile_nested_marks():
    text, codings = compile_markup("Tenant: [[I sleep [[and I talk]]{y} now]]{x,z}\n", "t.txt")
    assert text == "Tenant: I sleep and I talk now\n"
    assert _spans(text, codings) == {
        ("I sleep and I talk now", "x", "A"),
        ("I sleep and I talk now", "z", "A"),
        ("and I talk", "y", "A"),
    }


def test_compile_overlapping_coders_and_trimmed_edges():
    text, codings = compile_markup("Manager: [[ one <<two]]{x} three >>{y}.", "t.txt")
    assert text == "Manager:  one two three ."
    assert _spans(text, codings) == {("one two", "x", "A"), ("two three", "y", "B")}
    assert all(isinstance(c, Coding) and c.source == "t.txt" for c in codings)


@pytest.mark.parametrize(
    ("markup", "line", "words"),
    [
        ("Tenant: fine.\nTenant: [[never closed\nmore", 2, "never closed"),
        ("Tenant: fine.\n\nTenant: <<never closed", 3, "never closed"),
        ("Tenant: ok\nTenant: [[   ]]{x}", 2, "empty passage"),
        ("Tenant: [[text]]{ , }", 1, "empty code list"),
        ("Tenant: text]]{x}", 1, "without an opening mark"),
        ("Tenant: [[text]] more", 1, "without {codes}"),
    ],
)
def test_compile_errors_name_file_and_line(markup, line, words):
    with pytest.raises(InputError) as info:
        compile_markup(markup, "bad-01.txt")
    message = str(info.value)
    assert message.startswith("bad-01.txt: ") and f"line {line}:" in message and words in message
    assert "\n" not in message


def test_compile_file_unknown_code(tmp_path, codebook):
    path = tmp_path / "bad-02.txt"
    path.write_text("Interviewer: Hi?\nTenant: [[it helped]]{not_a_code}\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        compile_file(path, codebook)
    assert "bad-02.txt" in str(info.value) and "not_a_code" in str(info.value)


def test_build_command_reports_bad_markup(tmp_path, run_cli):
    markup = tmp_path / "markup"
    markup.mkdir()
    (markup / "bad-03.txt").write_text("Interviewer: So?\nTenant: [[it helped\n", encoding="utf-8")
    result = run_cli("corpus", "build", "--markup", markup, "--out", tmp_path / "out")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "bad-03.txt" in result.err and "line 2" in result.err
