"""Transcript layouts: the exports of transcription tools, recognised by content and extension.

Two kinds of layout:

* **text layouts**, whose text is read as it is and whose turns are found inside it, so offsets
  refer to the user's own file: ``Name: text`` lines (with optional ``[00:01:02]`` before the name
  or ``(00:01:02)`` after it: Rev, Trint, Descript), and *header* layouts where a line holding only
  a name and a time opens a turn and the words follow on the next lines (Otter.ai ``.txt``/``.docx``,
  Microsoft Teams ``.docx``);
* **caption and JSON layouts** (WebVTT from Zoom/Teams, SubRip, Whisper/WhisperX JSON), from which
  a plain transcript is *built*, one ``Name: text`` line per turn (consecutive cues of one speaker
  merge into one turn). The built text is what offsets refer to; the run folder keeps it.

Parsed layouts give :class:`RawTurn`\\ s: a label (``None`` when the source names no speaker), the
span of the spoken words, and the turn's start/end time in seconds when the source has them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import limits
from pipeline.errors import InputError

TEXT_SUFFIXES = (".txt", ".md")
CAPTION_SUFFIXES = (".vtt", ".srt")
JSON_SUFFIXES = (".json",)
DOCX_SUFFIXES = (".docx",)
TRANSCRIPT_SUFFIXES = TEXT_SUFFIXES + DOCX_SUFFIXES + CAPTION_SUFFIXES + JSON_SUFFIXES

_TIME = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
#: ``Name  0:01`` / ``Name   1:02:03`` alone on a line (Otter.ai, Microsoft Teams .docx)
_HEADER_LINE = re.compile(
    rf"^[ \t]*(?P<label>[^\W\d_][^:\n\r\[\]{{}}!?]{{0,59}}?)[ \t]+(?:\|[ \t]*)?(?P<time>{_TIME})[ \t]*\r?$",
    re.MULTILINE,
)
#: ``Name: text`` at the start of a cue (Zoom .vtt, SRT with names)
_CUE_NAME = re.compile(r"^(?P<label>[^\W\d_][^:\n]{0,39}?)[ \t]*:[ \t]+(?P<text>.*)$", re.DOTALL)


@dataclass(frozen=True)
class RawTurn:
    """A turn as a layout gives it: ``text[start:end]`` are the words, without the label."""

    label: str | None
    start: int
    end: int
    start_time: float | None = None
    end_time: float | None = None
    timestamp: str | None = None


@dataclass
class Layout:
    """The text a transcript's offsets refer to, and what the layout already knows of its turns.

    ``turns`` is ``None`` for plain text layouts, whose ``Name: text`` turns ingest finds itself.
    """

    name: str
    text: str
    turns: list[RawTurn] | None = None
    built: bool = False  # the text was built from captions/JSON (not the file's own text)
    warnings: list[str] = field(default_factory=list)


def has_text(text: str) -> bool:
    """Whether ``text`` holds a visible character: not only spaces, line breaks, controls or format marks."""
    return any(unicodedata.category(ch)[0] not in "ZC" for ch in text)


#: Every line-break convention a transcript may use: LF, CRLF, CR alone (old Mac exports), NEL (U+0085),
#: LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029). Each is one line break, CRLF included.
LINE_BREAK_CHARS = "\n\r\x85\u2028\u2029"
_LINE_BREAK = re.compile(r"\r\n?|[\n\x85\u2028\u2029]")
_LONE_BREAK = re.compile(r"\r(?!\n)|[\x85\u2028\u2029]")


def newline_view(text: str) -> str:
    """``text`` with every line break other than LF and CRLF written as LF, for the readers' line patterns.

    Each replaced break is one character and becomes one, so offsets into the view are offsets into
    ``text``: readers match lines in the view and slice ``text`` itself. CRLF stays (a line pattern
    allows the ``\r`` before ``\n``; two breaks there would read as a blank line).
    """
    return _LONE_BREAK.sub("\n", text) if _LONE_BREAK.search(text) else text


def check_text(text: str, path: str | Path) -> None:
    """Refuse a transcript text past :data:`~pipeline.limits.MAX_TRANSCRIPT_CHARS` or with a line past
    :data:`~pipeline.limits.MAX_LINE_CHARS` (lines end at any of the breaks of :data:`LINE_BREAK_CHARS`,
    as segmentation cuts them)."""
    limits.check(len(text), "MAX_TRANSCRIPT_CHARS", "text length", path, "characters")
    if len(text) <= limits.MAX_LINE_CHARS:
        return
    start, number = 0, 0
    for number, match in enumerate(_LINE_BREAK.finditer(text), start=1):
        limits.check(match.start() - start, "MAX_LINE_CHARS", f"line {number}", path, "characters")
        start = match.end()
    limits.check(len(text) - start, "MAX_LINE_CHARS", f"line {number + 1}", path, "characters")


def seconds(value: str) -> float:
    """``'1:02:03.5'`` or ``'02:03,5'`` -> seconds."""
    parts = value.replace(",", ".").split(":")
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total


def _span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def header_turns(text: str) -> list[RawTurn] | None:
    """Turns of a header layout (Otter, Teams .docx), or ``None`` when the text is not one.

    It is one when at least two lines hold only a name and a time, and a name recurs or there are
    at least three such lines. Lines before the first header are metadata (title, date, length).
    """
    headers = list(_HEADER_LINE.finditer(newline_view(text)))
    if len(headers) < 2:
        return None
    labels = [m.group("label").strip() for m in headers]
    if len(set(labels)) == len(labels) and len(labels) < 3:
        return None
    # most of the text must sit under headers: a few "Tuesday 10:30" lines in prose are not a layout
    if headers[0].start() > 0.5 * len(text):
        return None
    turns = []
    for index, match in enumerate(headers):
        limit = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        start, end = _span(text, match.end(), limit)
        if end <= start:
            continue
        time = match.group("time")
        turns.append(RawTurn(match.group("label").strip(), start, end, seconds(time), None, time))
    # a turn ends where the next one starts
    return [
        RawTurn(
            t.label, t.start, t.end, t.start_time, turns[i + 1].start_time if i + 1 < len(turns) else None, t.timestamp
        )
        for i, t in enumerate(turns)
    ]


@dataclass
class _Cue:
    label: str | None
    text: str
    start: float | None
    end: float | None


def _split_name(text: str) -> tuple[str | None, str]:
    match = _CUE_NAME.match(text.strip())
    if match and len(match.group("label").split()) <= 4:
        return match.group("label").strip(), match.group("text").strip()
    return None, text.strip()


#: Control characters that are not white space, and the two noncharacters: a built text never holds
#: them (the run's copy of the text, and the sources of coded.qdpx, would read as binary or bad XML)
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufffe\uffff]")
_SURROGATES = re.compile("[\ud800-\udfff]")  # lone halves of a UTF-16 pair: only JSON escapes can make them


class _Cleaner:
    """Takes controls out of cue text and replaces lone surrogates by U+FFFD, counting both for one warning."""

    def __init__(self) -> None:
        self.controls, self.surrogates, self.first = 0, 0, 0

    def __call__(self, text: str, number: int) -> str:
        text, controls = _CONTROLS.subn("", text)
        text, surrogates = _SURROGATES.subn("\ufffd", text)
        if (controls or surrogates) and not self.first:
            self.first = number
        self.controls, self.surrogates = self.controls + controls, self.surrogates + surrogates
        return text

    def warnings(self, unit: str) -> list[str]:
        done = [f"removed {self.controls} control character(s)"] if self.controls else []
        done += [f"replaced {self.surrogates} lone surrogate(s) by U+FFFD"] if self.surrogates else []
        return [f"{' and '.join(done)}, first in {unit} {self.first}"] if done else []


def build_from_cues(cues: list[_Cue], name: str, path: Path) -> Layout:
    """Merge consecutive cues of one speaker into turns and write ``Name: text`` lines.

    A turn grows up to :data:`~pipeline.limits.MAX_BUILT_TURN_CHARS`; a longer monologue goes on as
    another turn of the same speaker, so no built line comes near :data:`~pipeline.limits.MAX_LINE_CHARS`.
    Control characters (JSON's ``\u0000``, say) are taken out of the text and speaker names, and lone
    surrogates (``\ud800``) become U+FFFD, with a warning naming the first cue (segment) that held one.
    """
    merged: list[tuple[str | None, list[str], float | None, float | None]] = []  # label, words, start, end
    length, total = 0, 0  # characters of the last turn, of all turns
    clean = _Cleaner()
    for number, cue in enumerate(cues, start=1):
        words = " ".join(clean(cue.text, number).split())
        if not has_text(words):
            continue
        label = " ".join(clean(cue.label, number).split()) if cue.label else None
        label = label if label and has_text(label) else None
        total += len(words) + 1
        limits.check(total, "MAX_TRANSCRIPT_CHARS", "text length", path, "characters")
        fits = length + 1 + len(words) <= limits.MAX_BUILT_TURN_CHARS
        if merged and (label == merged[-1][0] or label is None) and fits:
            last = merged[-1]
            last[1].append(words)
            merged[-1] = (last[0], last[1], last[2], cue.end if cue.end is not None else last[3])
            length += 1 + len(words)
        else:
            if merged and label is None:
                label = merged[-1][0]  # a long monologue goes on
            merged.append((label, [words], cue.start, cue.end))
            length = len(words)
    if not merged:
        raise InputError(f"no text in the {name} cues", path)
    warnings = clean.warnings("segment" if name == "Whisper JSON" else "cue")
    if all(label is None for label, _, _, _ in merged):
        warnings.append(f"the {name} file names no speakers; read as one speaker")
    lines, turns, offset = [], [], 0
    for label, words, start_time, end_time in merged:
        label = label or "Speaker"
        prefix = f"{label}: "
        spoken = " ".join(words)
        start = offset + len(prefix)
        turns.append(RawTurn(label, start, start + len(spoken), start_time, end_time, None))
        line = prefix + spoken
        lines.append(line)
        offset += len(line) + 1
    text = "\n".join(lines) + "\n"
    check_text(text, path)
    return Layout(name, text, turns, built=True, warnings=warnings)


# --- captions: every cue is read, or the file is refused naming the line -----------------------------

_DELIM = "[,.:，．。：]"  # the srt library's separators between a time's fields
#: ``[hours:]minutes:seconds.fraction``; minutes and seconds are checked to be below 60
_STAMPS = {  # ASCII digits only (re.ASCII): "٠١" is a digit to Python, not to a caption reader
    "WebVTT": re.compile(r"(?:(\d{1,5}):)?(\d{1,2}):(\d{1,2})\.(\d{1,3})", re.ASCII),
    "SubRip": re.compile(rf"(\d{{1,5}}){_DELIM}(\d{{1,2}}){_DELIM}(\d{{1,2}})(?:{_DELIM}(\d{{0,9}}))?", re.ASCII),
}
#: A line that means to be a cue's timing line: it holds the arrow (SubRip: as the srt library reads it).
_ARROWS = {"WebVTT": re.compile(r"-->"), "SubRip": re.compile(r"-[ -] *>")}
_TIMING_LINES = {
    "WebVTT": re.compile(r"[ \t]*(?P<start>[^ \t]+?)[ \t]*-->[ \t]*(?P<end>[^ \t]+)(?:[ \t].*)?"),
    "SubRip": re.compile(r"[ \t]*(?P<start>[^ \t]+?) *-[ -] *> *(?P<end>[^ \t]+)(?:[ \t].*)?"),
}
_VTT_BLOCKS = ("NOTE", "STYLE", "REGION")


def _stamp_seconds(stamp: str, name: str) -> float | None:
    """Seconds of a caption time, or None when it is malformed (letters, a sign, minutes or seconds past 59)."""
    match = _STAMPS[name].fullmatch(stamp)
    if match is None:
        return None
    hours, minutes, secs, fraction = match.groups()
    if int(minutes) > 59 or int(secs) > 59:
        return None
    # WebVTT's fraction is decimal (".5" is half a second); the srt library reads SubRip's as milliseconds
    part = (int(fraction) / 10 ** len(fraction) if name == "WebVTT" else int(fraction) / 1000) if fraction else 0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + part


def cue_timings(text: str, name: str, path: Path) -> list[tuple[int, float, float]]:
    """``(line number, start, end)`` of every cue timing line of a caption file (``name``: WebVTT or SubRip).

    A line holding the arrow ``-->`` must be a well-formed timing line: the file is refused with one line
    naming the line otherwise (``00:00:0x.000``, ``aa:00:02.000``, a negative time, ``NaN``, 75 minutes),
    where the caption libraries would drop the cue (WebVTT) or read it into the cue before (SubRip).
    Lines are those of :func:`newline_view` (numbered as the file's own lines).
    """
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not _ARROWS[name].search(line):
            continue
        match = _TIMING_LINES[name].fullmatch(line.rstrip("\r"))
        times = [_stamp_seconds(match.group(g), name) for g in ("start", "end")] if match else [None]
        if None in times:
            form = "HH:MM:SS,mmm" if name == "SubRip" else "HH:MM:SS.mmm"
            raise InputError(
                f"line {number}: malformed {name} cue timing (expected {form} --> {form}, minutes and seconds < 60)",
                path,
            )
        found.append((number, times[0], times[1]))
    return found


def check_all_cues_read(
    timings: list[tuple[int, float, float]], read: list[tuple[float, float]], name: str, path: Path
) -> None:
    """Refuse a caption file where a timing line did not become a cue (its text would be lost or misplaced)."""
    if len(read) == len(timings):
        return
    position = 0
    for number, start, end in timings:
        if position < len(read) and abs(read[position][0] - start) < 1e-3 and abs(read[position][1] - end) < 1e-3:
            position += 1
            continue
        what = "a blank line before it" if name == "WebVTT" else "the cue number on the line before it"
        raise InputError(f"line {number}: this cue could not be read as one (is {what} missing?)", path)


def _vtt_stray_text(text: str, path: Path) -> None:
    """Refuse WebVTT text in a block without a timing line (after a blank line in a cue): the parser drops it."""
    lines = text.split("\n")
    number, first = 0, True
    while number < len(lines):
        if not lines[number].rstrip("\r"):
            number += 1
            continue
        start = number
        while number < len(lines) and lines[number].rstrip("\r"):
            number += 1
        block = lines[start:number]
        if first:
            first = False  # the header
            continue
        if any("-->" in line for line in block) or (block[0].split(maxsplit=1) or [""])[0] in _VTT_BLOCKS:
            continue
        if has_text("".join(block)):
            raise InputError(
                f"line {start + 1}: text outside any cue (a blank line inside a cue, or a cue without its timing line)",
                path,
            )


def parse_vtt(text: str, path: Path) -> Layout:
    """WebVTT (Zoom: ``Name: text`` cues; Microsoft Teams: ``<v Name>`` voice tags), via webvtt-py.

    Every cue is read, or the file is refused naming the line (:func:`cue_timings`): no text is dropped.
    """
    import webvtt
    from webvtt.errors import MalformedFileError

    timings = cue_timings(text, "WebVTT", path)
    _vtt_stray_text(text, path)
    try:
        captions = webvtt.from_string(text)
    except (MalformedFileError, ValueError) as exc:
        raise InputError(f"not a readable WebVTT file ({exc})", path) from None
    cues = []
    for caption in captions:
        if caption.voice:
            label, words = caption.voice.strip(), caption.text
        else:
            label, words = _split_name(caption.text)
        cues.append(_Cue(label, words, seconds(caption.start), seconds(caption.end)))
    check_all_cues_read(timings, [(c.start, c.end) for c in cues], "WebVTT", path)
    return build_from_cues(cues, "WebVTT", path)


def parse_srt(text: str, path: Path) -> Layout:
    """SubRip (.srt), with or without ``Name:`` at the start of cues, via the ``srt`` library.

    Every cue is read, or the file is refused naming the line (:func:`cue_timings`).
    """
    import srt

    timings = cue_timings(text, "SubRip", path)
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as exc:
        line = text.count("\n", 0, exc.actual_start) + 1
        raise InputError(f"not a readable SubRip file (line {line}: not a numbered cue)", path) from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"not a readable SubRip file ({type(exc).__name__})", path) from None
    cues = []
    for subtitle in subtitles:
        label, words = _split_name(subtitle.content)
        cues.append(_Cue(label, words, subtitle.start.total_seconds(), subtitle.end.total_seconds()))
    check_all_cues_read(timings, [(c.start, c.end) for c in cues], "SubRip", path)
    return build_from_cues(cues, "SubRip", path)


def _json_int(digits: str) -> int | float:
    """A JSON integer; one too long for Python's int() (4,300 digits: a ValueError) is read as a float (inf)."""
    return int(digits) if len(digits) <= 4000 else float(digits)


def parse_whisper_json(text: str, path: Path) -> Layout:
    """Whisper / WhisperX JSON: ``{"segments": [{"start", "end", "text", "speaker"?}, ...]}``."""
    try:
        data = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno})", path) from None
    except RecursionError:
        raise InputError("not a Whisper JSON transcript (nested too deeply)", path) from None
    except ValueError:  # what the standard decoder may still raise on a number
        raise InputError("not valid JSON (a number it cannot read)", path) from None
    segments = data.get("segments") if isinstance(data, dict) else data if isinstance(data, list) else None
    if not isinstance(segments, list) or not segments:
        raise InputError("not a Whisper JSON transcript (no 'segments' list)", path)
    cues = []
    for number, segment in enumerate(segments, start=1):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
            raise InputError(f"segment {number}: needs a 'text' string", path)
        try:
            start = float(segment["start"]) if segment.get("start") is not None else None
            end = float(segment["end"]) if segment.get("end") is not None else None
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"segment {number}: start and end must be numbers", path) from None
        if any(t is not None and not (math.isfinite(t) and t >= 0) for t in (start, end)):
            # NaN, Infinity, 1e999 and 5,000-digit numbers (read as infinite) are no times
            raise InputError(f"segment {number}: start and end must be seconds: finite, not negative", path)
        speaker = segment.get("speaker")
        cues.append(_Cue(str(speaker).strip() if speaker not in (None, "") else None, segment["text"], start, end))
    return build_from_cues(cues, "Whisper JSON", path)


def looks_like_vtt(text: str) -> bool:
    return text.lstrip("\ufeff").startswith("WEBVTT")


_SRT_BLOCK = re.compile(
    r"^\s*\d+\s*\r?\n\d{2}:\d{2}:\d{2}[,.]\d{1,3}\s*-->\s*\d{2}:\d{2}:\d{2}[,.]\d{1,3}", re.MULTILINE
)


def looks_like_srt(text: str) -> bool:
    return bool(_SRT_BLOCK.match(text.lstrip("\ufeff")))


def parse_layout(text: str, path: Path) -> Layout:
    """Recognise the layout of decoded ``text`` (by content, then by extension) and parse it."""
    suffix = path.suffix.lower()
    stripped = text.lstrip()
    lines = newline_view(text)  # captions are rebuilt, so their line breaks may all become LF
    if looks_like_vtt(lines):
        return parse_vtt(lines, path)
    if looks_like_srt(lines):
        return parse_srt(lines, path)
    if suffix in JSON_SUFFIXES or (suffix in TEXT_SUFFIXES and stripped.startswith("{") and '"segments"' in text):
        return parse_whisper_json(text, path)
    if suffix == ".vtt":
        raise InputError("not a WebVTT file (no WEBVTT header)", path)
    if suffix == ".srt":
        cue_timings(lines, "SubRip", path)  # a malformed first timing line is named as such
        raise InputError("not a SubRip file (no numbered cue with a time range)", path)
    check_text(text, path)
    turns = header_turns(text)
    if turns:
        return Layout("header (Otter/Teams)", text, turns)
    return Layout("text", text, None)
