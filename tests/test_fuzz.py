"""Property-based fuzzing of what reads user files: every transcript format, the sidecar, segmentation
and the codings reader.

Whatever the input, the result is a transcript (and segments with ``text == transcript[start:end]``,
never empty or blank) or one :class:`~pipeline.errors.InputError` on one line: never another
exception, never a hang. Each case is bounded in time (Hypothesis' deadline, and an alarm that turns
a hang into a failure).

``make test`` runs the ``imri-test`` profile (a few dozen cases per property, about 30 s in all);
``make fuzz`` runs ``IMRI_FUZZ_PROFILE=imri-fuzz`` (thousands of cases), whose figures go in
``docs/reliability.md``. Segmentation uses spaCy's rule-based sentencizer; no encoder is loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.codebook import load_codebook
from pipeline.errors import InputError
from pipeline.ingest import (
    RoleResolver,
    SegmentConfig,
    Segmenter,
    Transcript,
    Turn,
    find_turns,
    load_transcript,
    read_sidecar,
)

_COMMON = {
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "derandomize": False,
    "print_blob": True,
}
settings.register_profile("imri-test", max_examples=25, deadline=3000, **_COMMON)
settings.register_profile("imri-fuzz", max_examples=1000, deadline=3000, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("IMRI_FUZZ_PROFILE", "imri-test"))
HANG_SECONDS = 20  # a case still running after this long is a hang

BOOK = load_codebook()
SEGMENTERS = {
    unit: Segmenter(SegmentConfig(unit=unit, max_tokens=12, min_chars=10, spacy_models={}))
    for unit in ("turn", "sentence", "window")
}


@contextlib.contextmanager
def _bounded(seconds: int | None = HANG_SECONDS):
    """Fail a case that runs longer than ``seconds`` (a hang) instead of waiting for ever."""
    if seconds is None:
        yield
        return

    def hang(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check_segments(transcript: Transcript) -> None:
    """Every segment is the transcript's text at its offsets, inside its turn, in order, never blank."""
    text = transcript.text
    for turn in transcript.turns:
        assert 0 <= turn.start < turn.end <= len(text)
        assert text[turn.start : turn.end].strip()
    for unit, segmenter in SEGMENTERS.items():
        rows = segmenter.segment(transcript)
        assert rows or not transcript.turns, unit
        previous_end = 0
        for row in rows:
            assert row["text"] == text[row["start"] : row["end"]], unit
            assert row["text"] and row["text"] == row["text"].strip(), unit
            assert row["start"] >= previous_end, unit
            previous_end = row["end"]
            turn = transcript.turns[row["turn"]]
            assert turn.start <= row["start"] and row["end"] <= turn.end, unit


def _ingest(
    name: str, content: bytes, sidecar: str | None = None, seconds: int | None = HANG_SECONDS
) -> Transcript | None:
    """``load_transcript`` on a file holding ``content``: a transcript, or None after a one-line InputError."""
    with tempfile.TemporaryDirectory() as folder, _bounded(seconds):
        path = Path(folder) / name
        path.write_bytes(content)
        if sidecar is not None:
            path.with_name(path.stem + ".meta.yaml").write_text(sidecar, encoding="utf-8", errors="surrogatepass")
        try:
            transcript = load_transcript(path)
        except InputError as error:
            assert "\n" not in str(error) and str(error).startswith(str(path.parent))
            return None
        _check_segments(transcript)
        return transcript


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Load what the first case would otherwise load inside its deadline (spaCy, langdetect, parsers)."""
    import docx

    document = docx.Document()
    document.add_paragraph("Interviewer: Ça va? How are you?")
    buffer = io.BytesIO()
    document.save(buffer)
    samples = {
        "a.txt": "Intervieweuse : Ça va?\nLocataire : Je me sens mieux, vraiment. C'est fini.\n".encode("cp1252"),
        "b.txt": b"Interviewer: How are you?\nTenant: I feel better now. Thank you for asking.\n",
        "c.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\n<v Sam>Hello there.\n",
        "d.srt": b"1\n00:00:00,000 --> 00:00:01,000\nSam: Hello there.\n",
        "e.json": b'{"segments": [{"start": 0, "end": 1, "text": "Hello there."}]}',
        "f.docx": buffer.getvalue(),
    }
    for name, content in samples.items():
        assert _ingest(name, content, seconds=None) is not None
    for language in ("de", "fr"):
        Segmenter(SegmentConfig(spacy_models={})).segment(
            Transcript("t.txt", "Hallo.", [Turn(0, "A", "a", 0, 6)], {"language": language})
        )


# --- strategies: text as transcripts hold it, and worse ------------------------------------------

LABELS = st.sampled_from(
    ["Interviewer", "Intervieweuse", "I", "Q", "Peer", "Tenant 2", "Pair aidante", "Mère", "Date", "So", "Dr. Roy"]
)
WORDS = st.sampled_from(
    ["I", "felt", "better", "ça", "a", "changé", "l'équipe", "pis", "😊", "[laughs]", "—", "«", "»", "...", "?", "."]
)
# any characters, spaces and line breaks of every kind, controls and format marks included
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120)
SPACES = st.sampled_from([" ", "\t", "\u00a0", "\u3000", "\u2003", "\u200b", "\ufeff", "\u2028", "\r", "\n", "\r\n"])


@st.composite
def speech(draw) -> str:
    """What a speaker says: words, odd characters and spaces, possibly nothing."""
    parts = draw(st.lists(st.one_of(WORDS, ANY_TEXT, SPACES), max_size=12))
    return draw(st.sampled_from([" ", "", "\n"])).join(parts)


@st.composite
def labelled_text(draw) -> str:
    """``Name: text`` lines (Rev/Descript timestamps, French colons, empty turns, continuation lines)."""
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        label = draw(LABELS)
        stamp = draw(st.sampled_from(["", "[00:01:02] ", "[1:02] "]))
        after = draw(st.sampled_from(["", " (00:12:03)"]))
        sep = draw(st.sampled_from([": ", " : ", ":", ":  "]))
        lines.append(f"{stamp}{label}{after}{sep}{draw(speech())}")
        if draw(st.booleans()):
            lines.append(draw(speech()))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


@st.composite
def header_text(draw) -> str:
    """Otter.ai / Teams layout: a name and a time alone on a line, the words below."""
    blocks = [draw(st.sampled_from(["", "Interview with Sam\nMay 2, 2024\n\n"]))]
    for _ in range(draw(st.integers(0, 6))):
        label = draw(LABELS)
        time = draw(st.sampled_from(["0:01", "12:03", "1:02:03", "00:00"]))
        sep = draw(st.sampled_from(["  ", " ", "\t", " | "]))
        blocks.append(f"{label}{sep}{time}\n{draw(speech())}\n")
    return "\n".join(blocks)


def _timestamp(draw, comma: bool) -> str:
    h, m, s, ms = (draw(st.integers(0, n)) for n in (99, 59, 59, 999))
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


@st.composite
def vtt_text(draw) -> str:
    """WebVTT: Zoom ``Name: text`` cues, Teams ``<v Name>`` voices, and damaged cues."""
    cues = ["WEBVTT" + draw(st.sampled_from(["", " - Zoom", "\nKind: captions"])), ""]
    for number in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            cues.append(str(number + 1))
        start, end = _timestamp(draw, False), _timestamp(draw, False)
        cues.append(f"{start} --> {end}")
        voice = draw(st.sampled_from(["", "<v Sam>", "<v Dr. Roy>", "<v>", "Sam: ", "<b>"]))
        cues.append(voice + draw(speech()) + ("</v>" if voice.startswith("<v") and draw(st.booleans()) else ""))
        cues.append("")
    if draw(st.booleans()):
        cues.append(draw(ANY_TEXT))
    return "\n".join(cues)


@st.composite
def srt_text(draw) -> str:
    """SubRip: numbered cues with ``-->`` time ranges, names or not, and damaged cues."""
    blocks = []
    for number in range(draw(st.integers(0, 6))):
        start, end = _timestamp(draw, True), _timestamp(draw, True)
        name = draw(st.sampled_from(["", "Sam: ", "Intervieweuse : "]))
        blocks.append(f"{draw(st.sampled_from([number + 1, 0, 99]))}\n{start} --> {end}\n{name}{draw(speech())}\n")
    if draw(st.booleans()):
        blocks.append(draw(ANY_TEXT))
    return "\n".join(blocks)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20), st.just(10**400)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def whisper_json(draw) -> str:
    """Whisper / WhisperX JSON: well-formed segments, segments with wrong types, any JSON at all."""
    segment = st.fixed_dictionaries(
        {"text": st.one_of(speech(), JSON_VALUES)},
        optional={
            "start": st.one_of(st.floats(allow_nan=True), st.integers(), JSON_VALUES),
            "end": st.one_of(st.floats(allow_nan=True), st.integers(), JSON_VALUES),
            "speaker": st.one_of(st.sampled_from(["SPEAKER_00", "SPEAKER_01", "", " "]), JSON_VALUES),
        },
    )
    value = draw(
        st.one_of(
            st.fixed_dictionaries({"segments": st.lists(segment, max_size=6)}),
            st.lists(segment, max_size=4),
            JSON_VALUES,
        )
    )
    return json.dumps(value)


@st.composite
def docx_bytes(draw) -> bytes:
    """A .docx from python-docx with any paragraphs it accepts; or a damaged zip; or any bytes."""
    kind = draw(st.sampled_from(["document", "document", "zip", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in draw(
                st.lists(
                    st.sampled_from(["[Content_Types].xml", "_rels/.rels", "word/document.xml", "x.bin"]),
                    max_size=4,
                    unique=True,
                )
            ):
                archive.writestr(name, draw(st.binary(max_size=200)))
        return buffer.getvalue()
    import docx

    document = docx.Document()
    for paragraph in draw(st.lists(st.one_of(labelled_text(), header_text(), speech()), max_size=5)):
        # python-docx takes only XML characters
        clean = "".join(ch for ch in paragraph if ch in "\t\n\r" or (ord(ch) >= 32 and ch not in "\ufffe\uffff"))
        document.add_paragraph(clean)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _encode(text: str, how: str) -> bytes:
    if how == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if how == "cp1252":
        return text.encode("cp1252", errors="replace")
    return text.encode(how)


ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252"])


# --- ingestion of every format, then segmentation ------------------------------------------------


@settings(PROFILE)
@given(text=st.one_of(labelled_text(), ANY_TEXT), how=ENCODINGS, suffix=st.sampled_from([".txt", ".md"]))
def test_fuzz_plain_name_text_transcripts(text, how, suffix):
    _ingest(f"t{suffix}", _encode(text, how))


@settings(PROFILE)
@given(text=header_text(), how=ENCODINGS)
def test_fuzz_otter_and_teams_header_layouts(text, how):
    _ingest("otter.txt", _encode(text, how))


@settings(PROFILE)
@given(text=vtt_text(), suffix=st.sampled_from([".vtt", ".txt"]))
def test_fuzz_webvtt(text, suffix):
    _ingest(f"zoom{suffix}", text.encode("utf-8"))


@settings(PROFILE)
@given(text=srt_text(), suffix=st.sampled_from([".srt", ".txt"]))
def test_fuzz_subrip(text, suffix):
    _ingest(f"captions{suffix}", text.encode("utf-8"))


@settings(PROFILE)
@given(text=whisper_json())
def test_fuzz_whisper_json(text):
    _ingest("whisper.json", text.encode("utf-8"))


@settings(PROFILE)
@given(content=docx_bytes())
def test_fuzz_docx(content):
    _ingest("interview.docx", content)


@settings(PROFILE)
@given(
    content=st.binary(max_size=400),
    suffix=st.sampled_from([".txt", ".md", ".vtt", ".srt", ".json", ".docx"]),
)
def test_fuzz_any_bytes_in_any_format(content, suffix):
    _ingest(f"raw{suffix}", content)


# --- line-break conventions and caption timings --------------------------------------------------

BREAKS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r", "NEL": "\x85", "LS": "\u2028", "PS": "\u2029"}
# words and odd characters, but no line break of any convention: the breaks are what is varied
LINE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x85\u2028\u2029"))


@st.composite
def lines_of_a_transcript(draw) -> list[str]:
    """Lines of a ``Name: text`` or Otter transcript, or of unlabelled paragraphs, blank lines included."""
    kind = draw(st.sampled_from(["labelled", "header", "paragraphs"]))
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        words = " ".join(draw(st.lists(st.one_of(WORDS, LINE_TEXT.filter(lambda t: len(t) < 30)), max_size=6)))
        if kind == "labelled":
            lines.append(f"{draw(LABELS)}: {words}")
        elif kind == "header":
            lines += [f"{draw(LABELS)}  {draw(st.sampled_from(['0:01', '12:03', '1:02:03']))}", words]
        else:
            lines.append(words)
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", words])))
    return lines


def _lf_turns(transcript: Transcript) -> list[tuple[str, str, str]]:
    def lf(span: str) -> str:
        return re.sub(r"\r\n|[\r\x85\u2028\u2029]", "\n", span)

    return [(t.speaker, t.role, lf(transcript.text[t.start : t.end])) for t in transcript.turns]


@settings(PROFILE)
@given(lines=lines_of_a_transcript(), data=st.data(), how=st.sampled_from(["utf-8", "utf-16"]))
def test_fuzz_every_line_break_convention_reads_as_lf(lines, data, how):
    convention = data.draw(st.sampled_from([*BREAKS, "mixed"]))
    if convention == "mixed":
        ends = [data.draw(st.sampled_from(list(BREAKS.values()))) for _ in lines]
    else:
        ends = [BREAKS[convention]] * len(lines)
    lf = _ingest("lf.txt", "\n".join(lines).encode(how))
    other = _ingest("t.txt", "".join(line + end for line, end in zip(lines, ends, strict=True))[:-1].encode(how))
    assert (lf is None) == (other is None)  # refused alike (no visible text, say) or read alike
    if lf is not None:
        assert _lf_turns(other) == _lf_turns(lf)
        assert other.layout == lf.layout


MALFORMED_STAMPS = st.sampled_from(
    [
        "00:00:0x.000",
        "aa:00:02.000",
        "-00:00:02.000",
        "NaN",
        "Infinity",
        "00:75:00.000",
        "00:00:61.000",
        "1e3",
        "",
        "00:00:02.000.5",
        "12345678:00:00.000",
        "9" * 5000,
        "0x10:00:00.000",
        "00:00:02,000,5",
        "٠٠:٠٠:٠١.٠٠٠",
    ]
)


@st.composite
def captions_with_bad_timings(draw) -> tuple[str, str, int | None, list[str]]:
    """A WebVTT or SubRip file whose cues may have malformed timing lines.

    Returns ``(suffix, text, line number of the first malformed timing or None, the cues' marker words)``.
    """
    suffix = draw(st.sampled_from([".vtt", ".srt"]))
    lines = ["WEBVTT", ""] if suffix == ".vtt" else []
    first_bad, markers = None, []
    for number in range(draw(st.integers(1, 6))):
        start, end = _timestamp(draw, suffix == ".srt"), _timestamp(draw, suffix == ".srt")
        if draw(st.integers(0, 3)) == 0:
            bad = draw(MALFORMED_STAMPS)
            start, end = (bad, end) if draw(st.booleans()) else (start, bad)
            first_bad = first_bad or len(lines) + (2 if suffix == ".srt" else 1)
        if suffix == ".srt":
            lines.append(str(number + 1))
        lines.append(f"{start} --> {end}")
        marker = f"cue{number}marker"
        markers.append(marker)
        name = draw(st.sampled_from(["", "Sam: ", "Intervieweuse : "]))
        lines += [f"{name}{marker} {' '.join(draw(st.lists(WORDS, max_size=5)))}", ""]
        if draw(st.booleans()):  # a block of spaces only: no text, nothing to refuse
            lines += [draw(st.sampled_from([" ", "\t", "\u00a0", "  \u3000"])), ""]
    newline = draw(st.sampled_from(list(BREAKS.values())))
    return suffix, newline.join(lines), first_bad, markers


@settings(PROFILE)
@given(case=captions_with_bad_timings())
def test_fuzz_captions_with_bad_timings_refuse_the_file_or_keep_every_cue(case):
    suffix, text, first_bad, markers = case
    with tempfile.TemporaryDirectory() as folder, _bounded():
        path = Path(folder) / f"captions{suffix}"
        path.write_bytes(text.encode("utf-8"))
        try:
            transcript = load_transcript(path)
        except InputError as error:
            assert first_bad is not None, str(error)  # a well-formed file is read
            assert str(error).startswith(f"{path}: line {first_bad}: malformed ") and "\n" not in str(error)
            return
    assert first_bad is None, "a malformed timing line was read"
    _check_segments(transcript)
    positions = [transcript.text.find(marker) for marker in markers]
    assert -1 not in positions and positions == sorted(positions)  # no cue dropped, none moved


SIDECAR_VALUES = st.one_of(
    st.just("language: fr\ninterviewers: [Intervieweuse]\nparticipants: {Locataire 1: service_users}\n"),
    st.text(max_size=80),
    st.builds(
        lambda key, value: f"{key}: {value}\n",
        st.sampled_from(["language", "interviewers", "participants", "stakeholder_groups", "interview_type", "x"]),
        st.sampled_from(["fr", "[a, b]", "[[a]]", "{a: b}", "{a: [b]}", "~", "3", "[", "&a [*a]", "!!python/none"]),
    ),
)


@settings(PROFILE)
@given(sidecar=SIDECAR_VALUES, text=labelled_text())
def test_fuzz_sidecars(sidecar, text):
    with tempfile.TemporaryDirectory() as folder, _bounded():
        path = Path(folder) / "t.txt"
        path.with_name("t.meta.yaml").write_text(sidecar, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(InputError):
            read_sidecar(path)
    _ingest("t.txt", text.encode("utf-8") + b"\nTenant: hello\n", sidecar)


@st.composite
def turns_anywhere(draw) -> Transcript:
    """Any text with any ordered, non-overlapping turn spans (not only what ingestion finds)."""
    text = draw(st.one_of(labelled_text(), speech(), ANY_TEXT))
    assume(text)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=0, max_size=10)))
    turns = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        role = draw(st.sampled_from(["interviewer", "participant"]))
        turns.append(Turn(len(turns), role.title(), role, start, end))
    meta = draw(st.sampled_from([{}, {"language": "fr"}, {"language": "en"}, {"language": "de"}]))
    return Transcript("t.txt", text, turns, meta)


@settings(PROFILE)
@given(transcript=turns_anywhere())
def test_fuzz_segmentation_of_any_turns(transcript):
    text = transcript.text
    with _bounded():
        for segmenter in SEGMENTERS.values():
            previous_end = 0
            for row in segmenter.segment(transcript):
                assert row["text"] == text[row["start"] : row["end"]]
                assert row["text"] and row["text"] == row["text"].strip()
                assert row["start"] >= previous_end
                previous_end = row["end"]
                turn = transcript.turns[row["turn"]]
                assert turn.start <= row["start"] and row["end"] <= turn.end


@settings(PROFILE)
@given(text=labelled_text())
def test_fuzz_found_turns_always_hold_words(text):
    with _bounded():
        for turn in find_turns(text, RoleResolver()):
            assert text[turn.start : turn.end].strip()


# --- the codings reader -------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(["a.txt", "b.txt", "0", "12", "-3", "1.5", "1e3", "", " ", "nan", "A", "B", "9" * 20]),
    st.sampled_from(BOOK.impact_ids),
    st.integers(-5, 10**30).map(str),
    st.text(max_size=12),
)
GOOD_FIELDS = {
    "source": st.sampled_from(["a.txt", "b.txt"]),
    "start": st.integers(0, 50),
    "end": st.integers(51, 3000),
    "code": st.sampled_from(BOOK.impact_ids),
    "coder": st.sampled_from(["A", "B", "model"]),
    "description": st.text(max_size=20),
}
BAD_FIELDS = {
    "source": st.one_of(st.sampled_from(["", " ", "../a.txt", "/etc/passwd", " a.txt "]), st.text(max_size=10)),
    "start": st.one_of(st.integers(-(10**30), 10**30), st.sampled_from(["1.0", "1e3", " 7 ", "x", "", "nan", 2**63])),
    "end": st.one_of(st.integers(-(10**30), 10**30), st.sampled_from(["1.0", "1e3", " 7 ", "x", "inf", 2**63, 2**64])),
    "code": st.one_of(st.sampled_from(["", "unknown_code"]), st.text(max_size=10)),
    "coder": st.one_of(st.sampled_from(["", " "]), st.text(max_size=6)),
    "description": st.text(max_size=20),
}
HEADERS = st.one_of(
    st.just("source,start,end,code,coder"),
    st.just("source,start,end,code,coder,description"),
    st.just("source,end,start,coder"),
    st.text(max_size=30),
)


def _quote(cell: str, always: bool) -> str:
    needs = always or any(ch in cell for ch in ',"\r\n')
    return '"' + cell.replace('"', '""') + '"' if needs else cell


@st.composite
def codings_csv(draw) -> bytes:
    """A codings table: the right header or not, rows that follow it with good and bad values, or any cells."""
    header = draw(HEADERS)
    columns = header.split(",")
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 3)) and all(c in GOOD_FIELDS for c in columns):
            # a good row with at most one bad field: the checks after the first ones get reached
            bad = draw(st.sampled_from([None, *columns]))
            cells = [str(draw((BAD_FIELDS if c == bad else GOOD_FIELDS)[c])) for c in columns]
        else:
            cells = draw(st.lists(CELLS, min_size=0, max_size=7))
        quote = draw(st.booleans())
        rows.append(",".join(_quote(c, quote) for c in cells))
    text = "\n".join([header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return draw(st.sampled_from([text.encode("utf-8", "surrogatepass"), text.encode("utf-16"), b"\x00" + b"\xff" * 3]))


@settings(PROFILE)
@given(content=st.one_of(codings_csv(), st.binary(max_size=200)), suffix=st.sampled_from([".csv", ".csv", ".parquet"]))
def test_fuzz_codings_reader(content, suffix):
    from pipeline.ingest import read_codings as read_coding_rows
    from pipeline.model import read_codings

    with tempfile.TemporaryDirectory() as folder, _bounded():
        path = Path(folder) / f"codings{suffix}"
        path.write_bytes(content)
        for read in (read_coding_rows, lambda p: read_codings(p, BOOK)):
            try:
                result = read(path)
            except InputError as error:
                assert "\n" not in str(error)
                continue
            rows = result.itertuples(index=False) if hasattr(result, "itertuples") else result
            for row in rows:
                assert 0 <= row.start < row.end and row.source and row.code and row.coder


@pytest.mark.parametrize("name", ["imri-test", "imri-fuzz"])
def test_profiles_bound_every_case(name):
    profile = settings.get_profile(name)
    assert profile.deadline is not None and profile.max_examples >= 25
