"""Ingest transcripts: decode the file, read its sidecar, find speaker turns (roles: :mod:`.speakers`).

Offsets are Unicode code points into the text *as decoded* (a UTF-8 or UTF-16 byte-order mark is
not part of the text; line endings are kept as they are, CRLF included), so that
``transcript.text[turn.start:turn.end]`` always holds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import limits
from pipeline.errors import InputError
from pipeline.ingest.formats import TRANSCRIPT_SUFFIXES, Layout, RawTurn, has_text, newline_view, parse_layout
from pipeline.ingest.speakers import (
    DEFAULT_INTERVIEWER_PATTERNS,
    RoleCall,
    RoleResolver,
    decide_roles,
    label_keys,
    label_parts,
)
from pipeline.io import read_input

SIDECAR_SUFFIX = ".meta.yaml"
SIDECAR_KEYS = frozenset(
    {
        "language",
        "site",
        "innovation",
        "interview_type",
        "stakeholder_groups",
        "interviewers",
        "participants",
        "code_switching",
        "date",
        "study",
        "title",
        "notes",
    }
)
INTERVIEW_TYPES = ("individual", "dyad", "group")

_TIMESTAMP = r"\[(?P<timestamp>\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)\][ \t]*"
#: ``Name (00:01:02):`` (Rev, Descript)
_TIMESTAMP_AFTER = r"[ \t]*\((?P<timestamp_after>\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)\)"
#: ``Manager (Dana)``, ``Participant 3 (Dana)``: a role (or a name) with a name (or a role) in brackets
_BRACKETED = r"[ \t]*\((?P<name>[^\W\d_][^:\n\r\[\]{}()!?]{0,39}?)\)"
_TURN_LINE = re.compile(
    rf"^[ \t]*(?:{_TIMESTAMP})?(?P<label>[^\W\d_][^:\n\r\[\]{{}}().!?]{{0,39}}?(?:{_BRACKETED})?)"
    rf"(?:{_TIMESTAMP_AFTER})?[ \t]*:(?:[ \t]+|(?=\r?$))",
    re.MULTILINE,
)
#: a line that holds only a time (Otter's stray ``48:38``, ``1:02:03``): not words anyone said
_LONE_TIME = re.compile(r"^[ \t]*\[?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\]?[ \t]*\r?$", re.MULTILINE)
#: One-off ``Key: value`` lines that describe the interview, never a speaker ("Date :", "Durée :").
METADATA_LABELS = frozenset(
    (
        "date;time;duration;durée;duree;heure;lieu;location;place;site;project;projet;study;étude;etude;title;titre;"
        "transcript;transcription;transcribed by;transcrit par;file;fichier;participant id;interview;entrevue;"
        "entretien;recording;enregistrement;language;langue;meeting;réunion;notes;note;subject;sujet;"
        "interviewer name;code;pseudonym;pseudonyme;length;to do;todo;à faire;next steps;prochaines étapes;"
        "action items;summary;résumé"
    ).split(";")
)
_MAX_LABEL_WORDS = 4
#: Words that start sentences rather than speaker labels ("So: ...", "Then I said: ...").
_NOT_LABEL_START = frozenset(
    (
        "and but so then well like because if when i you he she we they it this that there here yes no okay ok "
        "et mais donc alors pis ben puis quand si je tu il elle on nous vous ils elles ça ce c oui non"
    ).split()
)


@dataclass(frozen=True)
class Turn:
    """One speaker turn: ``text[start:end]`` is what the speaker said (the label excluded)."""

    index: int
    speaker: str
    role: str  # "interviewer" or "participant"
    start: int
    end: int
    timestamp: str | None = None
    start_time: float | None = None  # seconds, where the source has times
    end_time: float | None = None


@dataclass
class Transcript:
    """A decoded transcript with its sidecar metadata and speaker turns."""

    source: str
    text: str
    turns: list[Turn]
    meta: dict = field(default_factory=dict)
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)
    path: str | None = None
    layout: str = "text"  # text | header (Otter/Teams) | WebVTT | SubRip | Whisper JSON
    built: bool = False  # the text was built from captions or JSON: the run folder keeps a copy
    roles: RoleCall | None = None  # who interviews and how that was decided (:func:`decide_roles`)

    @property
    def skipped(self) -> bool:
        """No speaker labels, and not read as one participant: nothing to segment."""
        return not self.turns

    @property
    def language(self) -> str | None:
        return self.meta.get("language")


# --- decoding ------------------------------------------------------------------------------------

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_WESTERN = {"cp1252", "windows-1252", "latin_1", "iso8859_1", "iso8859_15", "latin-1", "cp1250", "mac_roman"}


def _control_share(text: str) -> float:
    # NEL (U+0085) is a control character that ends lines
    bad = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t\f\v\x85")
    return bad / max(len(text), 1)


def decode_bytes(raw: bytes, path: str | Path) -> tuple[str, str, list[str]]:
    """Decode transcript bytes; return ``(text, encoding, warnings)``.

    UTF-8 (with or without BOM) and UTF-16 with BOM are read silently; cp1252/latin-1 text is
    detected with charset-normalizer, decoded and reported as a warning. Anything else is an error.
    """
    if not raw.strip():
        raise InputError("empty file", path)
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                raise InputError(
                    f"undecodable bytes: starts with a {encoding} byte-order mark but is not {encoding}", path
                ) from None
            if encoding == "utf-16":
                text = text.lstrip("\ufeff")
            if not has_text(text):
                raise InputError("empty file (no visible text)", path)
            return text, encoding, []
    if b"\x00" in raw:
        raise InputError("binary file (NUL bytes; not a text transcript)", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(raw).best()
        encoding = best.encoding if best is not None else None
        if encoding is None or encoding.lower() not in _WESTERN:
            raise InputError(
                f"undecodable bytes: not UTF-8, UTF-16 or cp1252/latin-1 (detector says {encoding or 'nothing'})", path
            ) from None
        encoding = "cp1252" if encoding.lower() in {"cp1252", "windows-1252"} else encoding
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            text, encoding = raw.decode("latin-1"), "latin-1"
        warning = f"{Path(path).name}: decoded as {encoding}, not UTF-8; save transcripts as UTF-8 to be sure"
        if _control_share(text) > 0.01:
            raise InputError("binary file (control characters; not a text transcript)", path) from None
        if not has_text(text):
            raise InputError("empty file (no visible text)", path) from None
        return text, encoding, [warning]
    if _control_share(text) > 0.01:
        raise InputError("binary file (control characters; not a text transcript)", path)
    if not has_text(text):
        raise InputError("empty file (only spaces; no visible text)", path)
    return text, "utf-8", []


_DTD_MARKS = tuple(m.encode(codec) for m in ("<!DOCTYPE", "<!ENTITY") for codec in ("utf-8", "utf-16-le", "utf-16-be"))


def check_docx(raw: bytes, path: str | Path) -> None:
    """Refuse a .docx that would take too much to open: a zip bomb, too many parts, or XML with a DTD.

    Only the zip's directory and the XML parts are read (each at most its declared size, which the
    zip reader enforces); nothing is parsed. Word never writes a DTD or entity declarations, so any
    is refused rather than trusted to the XML parser.
    """
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            parts = archive.infolist()
            limits.check(len(parts), "MAX_DOCX_PARTS", "number of parts in the .docx", path)
            total = sum(info.file_size for info in parts)
            limits.check(total, "MAX_DOCX_UNCOMPRESSED_BYTES", "uncompressed size", path, "bytes")
            xml = [info for info in parts if info.filename.lower().endswith((".xml", ".rels"))]
            xml_size = sum(info.file_size for info in xml)
            limits.check(xml_size, "MAX_DOCX_XML_BYTES", "uncompressed size of its XML", path, "bytes")
            elements = 0
            for info in xml:
                data = archive.read(info)
                if any(mark in data for mark in _DTD_MARKS):
                    raise InputError(f"not a Word document: {info.filename} declares a DTD or XML entities", path)
                # start tags: every "<" but those of end tags, declarations and processing instructions
                elements += data.count(b"<") - data.count(b"</") - data.count(b"<!") - data.count(b"<?")
            limits.check(elements, "MAX_DOCX_XML_ELEMENTS", "number of XML elements", path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"not a readable .docx ({type(exc).__name__})", path) from None


def read_docx(path: str | Path, raw: bytes | None = None) -> str:
    """Text of a .docx, one line per paragraph (python-docx), after :func:`check_docx`.

    ``raw`` is the file's bytes when already read (through :func:`pipeline.io.read_input`).
    """
    import io
    import zipfile

    from docx import Document
    from docx.opc.exceptions import OpcError
    from lxml import etree

    if raw is None:
        raw = read_input(path, "MAX_TRANSCRIPT_BYTES")
    check_docx(raw, path)
    try:
        document = Document(io.BytesIO(raw))
        text = "\n".join(paragraph.text for paragraph in document.paragraphs)
    except (OpcError, zipfile.BadZipFile, etree.LxmlError, KeyError, ValueError, AttributeError, TypeError) as exc:
        # malformed XML in a part; a part missing or of the wrong type gives KeyError, AttributeError or TypeError
        raise InputError(f"not a readable .docx ({type(exc).__name__})", path) from None
    if not has_text(text):
        raise InputError("empty file (the .docx holds no text)", path)
    return text


def read_text(path: str | Path) -> tuple[str, str, list[str]]:
    """Read a transcript file's text (.txt .md .docx .vtt .srt .json); return ``(text, encoding, warnings)``."""
    path = Path(path)
    if path.suffix.lower() not in TRANSCRIPT_SUFFIXES:
        raise InputError(
            f"unknown extension {path.suffix or '(none)'!r}: expected {', '.join(TRANSCRIPT_SUFFIXES)}", path
        )
    raw = read_input(path, "MAX_TRANSCRIPT_BYTES")
    if path.suffix.lower() == ".docx":
        return read_docx(path, raw), "docx", []
    return decode_bytes(raw, path)


# --- sidecar -------------------------------------------------------------------------------------


def sidecar_path(path: str | Path) -> Path:
    """``interview.txt`` -> ``interview.meta.yaml``."""
    path = Path(path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> dict:
    """Read and validate ``<stem>.meta.yaml`` beside a transcript; ``{}`` when there is none."""
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        return {}
    raw = read_input(meta_path, "MAX_SIDECAR_BYTES")
    try:
        meta = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise InputError(f"sidecar is not valid UTF-8 YAML ({type(exc).__name__})", meta_path) from None
    except ValueError:  # an integer past Python's 4,300 digits
        raise InputError("sidecar is not valid UTF-8 YAML (a number too long to read)", meta_path) from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InputError("sidecar must be a YAML mapping", meta_path)
    unknown = sorted(set(meta) - SIDECAR_KEYS)
    if unknown:
        raise InputError(
            f"unknown sidecar key(s): {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(SIDECAR_KEYS))})",
            meta_path,
        )
    if "interview_type" in meta and meta["interview_type"] not in INTERVIEW_TYPES:
        raise InputError(f"interview_type must be one of {', '.join(INTERVIEW_TYPES)}", meta_path)
    if "language" in meta and not isinstance(meta["language"], str):
        raise InputError("language must be a language code such as en or fr", meta_path)
    for key in ("interviewers", "stakeholder_groups"):
        if key in meta and not (isinstance(meta[key], list) and all(_scalar(v) for v in meta[key])):
            raise InputError(f"{key} must be a list of names", meta_path)
    participants = meta.get("participants", {})
    if not (isinstance(participants, dict) and all(_scalar(k) and _scalar(v) for k, v in participants.items())):
        raise InputError("participants must map each speaker label to a stakeholder group", meta_path)
    if "interviewers" in meta:
        meta["interviewers"] = [str(v) for v in meta["interviewers"]]
    if "participants" in meta:
        meta["participants"] = {str(k): str(v) for k, v in meta["participants"].items()}
    return meta


def _scalar(value: object) -> bool:
    """A YAML value that reads as a name (a string or number; YAML reads ``Pair 2`` as a string, ``2`` as a number)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


# --- turns -------------------------------------------------------------------------------------


def _span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _starts_like_sentence(label: str) -> bool:
    return label.split()[0].casefold().strip("'’") in _NOT_LABEL_START


def labelled_turns(text: str, roles: RoleResolver, known_speakers: set[str] | None = None) -> list[RawTurn]:
    """Turns of ``Name: text`` lines (``Name : text``, ``[00:12:03] Name: text``, ``Name (00:12:03): text``,
    ``[00:00:19] Manager (Dana): text``).

    A line opens a turn only when its label looks like a speaker: one named in the sidecar or on
    the command line, a generic interviewer label, a timestamped label, or a label used at least
    twice in the file that does not start like a sentence ("So: ..."); a short capitalised label used
    once (``P12:``, ``Participant 3 (Dana):``) counts only below the first such speaker. Lines such as
    ``Date : 12 mars 2024`` are metadata, not turns. Lines without a label continue the current turn.
    A text whose only labels are one-off ones starting in its second half has no speaker structure:
    ``[]`` (a notes file's closing ``To do:`` is no speaker).
    """
    # lines are matched in the LF view (same offsets), so CR, NEL, U+2028 and U+2029 end lines too
    view = newline_view(text)
    candidates = []
    for match in _TURN_LINE.finditer(view):
        head, name = label_parts(match.group("label"))
        # "Tenant (laughs): yes" is speech, not a label; a name in brackets is capitalised
        if len(head.split()) <= _MAX_LABEL_WORDS and (name is None or name[0].isupper()):
            candidates.append(match)
    counts: dict[str, int] = {}
    for match in candidates:
        key = match.group("label").strip().casefold()
        counts[key] = counts.get(key, 0) + 1
    known = {s.strip().casefold() for s in known_speakers} if known_speakers else set()

    def strength(match: re.Match[str]) -> int:
        """2: surely a speaker; 1: a one-off label that may be one; 0: not a speaker."""
        label = match.group("label").strip()
        head, _ = label_parts(label)
        if label_keys(label) & known or roles.is_role_label(label):
            return 2
        if head.casefold() in METADATA_LABELS or _starts_like_sentence(head):
            return 0
        if match.group("timestamp") or match.group("timestamp_after"):
            return 2
        if counts[label.casefold()] >= 2 and label[0].isupper():
            return 2
        return 1 if len(head.split()) <= 2 and label[0].isupper() else 0

    strengths = [strength(m) for m in candidates]
    # one-off labels count only after the first sure speaker: lines above it are a header block
    first = next((m.start() for m, k in zip(candidates, strengths, strict=True) if k == 2), 0)
    openings = [m for m, k in zip(candidates, strengths, strict=True) if k == 2 or (k == 1 and m.start() >= first)]
    if 2 not in strengths and openings and openings[0].start() > len(text) / 2:
        return []  # only a one-off label late in a text (a notes file's "To do:"): no speaker structure
    turns: list[RawTurn] = []
    for index, match in enumerate(openings):
        limit = openings[index + 1].start() if index + 1 < len(openings) else len(text)
        start, end = _span(text, match.end(), limit)
        if not has_text(text[start:end]):
            continue  # "Peer:" with nothing said is no turn
        stamp = match.group("timestamp") or match.group("timestamp_after")
        turns.append(RawTurn(match.group("label").strip(), start, end, _seconds_or_none(stamp), None, stamp))
    return turns


def _seconds_or_none(stamp: str | None) -> float | None:
    from pipeline.ingest.formats import seconds

    return seconds(stamp) if stamp else None


def without_lone_times(text: str, turns: list[RawTurn]) -> list[RawTurn]:
    """Turns without the lines that hold only a time (Otter's stray ``48:38``): such a line is cut out,
    and a turn it stood inside goes on as a second turn of the same speaker."""
    stamps = [(m.start(), m.end()) for m in _LONE_TIME.finditer(text)]
    if not stamps:
        return turns
    kept: list[RawTurn] = []
    for turn in turns:
        inside = [(s, e) for s, e in stamps if s >= turn.start and e <= turn.end]
        if not inside:
            kept.append(turn)
            continue
        cuts = [turn.start, *(x for s, e in inside for x in (s, e)), turn.end]
        for piece, (start, end) in enumerate(zip(cuts[::2], cuts[1::2], strict=True)):
            start, end = _span(text, start, end)
            if has_text(text[start:end]):
                first = piece == 0
                kept.append(
                    RawTurn(
                        turn.label,
                        start,
                        end,
                        turn.start_time if first else None,
                        turn.end_time,
                        turn.timestamp if first else None,
                    )
                )
    return kept


def find_turns(text: str, roles: RoleResolver, known_speakers: set[str] | None = None) -> list[Turn]:
    """Speaker turns of a ``Name: text`` transcript with their roles; ``[]`` when nothing looks like a turn."""
    return [
        Turn(i, t.label or "participant", roles.role(t.label or ""), t.start, t.end, t.timestamp, t.start_time)
        for i, t in enumerate(labelled_turns(text, roles, known_speakers))
    ]


def paragraph_turns(text: str) -> list[Turn]:
    """One participant turn per paragraph (blocks separated by blank lines), for unlabelled text."""
    turns = []
    for match in re.finditer(r"\S(?:.*?)(?=(?:\r?\n[ \t]*){2,}|\Z)", newline_view(text), re.DOTALL):
        start, end = _span(text, match.start(), match.end())
        if has_text(text[start:end]):
            turns.append(Turn(len(turns), "participant", "participant", start, end))
    return turns


# --- reading transcripts ------------------------------------------------------------------------

#: What ``--no-speakers-as`` may say about a file without speaker labels.
NO_SPEAKERS = ("skip", "participant")


def read_transcript(
    path: str | Path,
    interviewer_patterns: tuple[str, ...] = DEFAULT_INTERVIEWER_PATTERNS,
    interviewers: list[str] | tuple[str, ...] = (),
    no_speakers: str = "skip",
) -> Transcript:
    """Read one transcript in any supported layout with its sidecar and find its turns; roles undecided
    (every turn a participant's) until :func:`decide_roles`.

    A text without speaker labels is skipped (no turns, a warning naming it), or with
    ``no_speakers="participant"`` read as one participant's words, a turn per paragraph.
    """
    if no_speakers not in NO_SPEAKERS:
        raise InputError(f"--no-speakers-as must be {' or '.join(NO_SPEAKERS)}, not {no_speakers!r}")
    path = Path(path)
    raw, encoding, warnings = read_text(path)
    meta = read_sidecar(path)
    layout: Layout = parse_layout(raw, path)
    text = layout.text
    warnings += [f"{path.name}: {w}" for w in layout.warnings]
    named = [*interviewers, *(meta.get("interviewers") or [])]
    roles = RoleResolver(named or None, interviewer_patterns)
    known = set(named) | set((meta.get("participants") or {}).keys())
    raw_turns = layout.turns if layout.turns is not None else labelled_turns(text, roles, known or None)
    raw_turns = without_lone_times(text, raw_turns)
    raw_turns = [t for t in raw_turns if has_text(text[t.start : t.end])]  # a turn always holds words
    turns = [
        Turn(i, t.label or "participant", "participant", t.start, t.end, t.timestamp, t.start_time, t.end_time)
        for i, t in enumerate(raw_turns)
    ]
    call = None
    if not turns and no_speakers == "participant":
        turns = paragraph_turns(text)
        warnings.append(f"{path.name}: no speaker labels found; each paragraph is read as one participant turn")
        call = RoleCall(
            path.name, ("participant",), (), "no speaker labels; read as one participant (--no-speakers-as)"
        )
    elif not turns:
        warnings.append(
            f"{path.name}: skipped: no speaker labels (not a transcript with speakers); "
            "--no-speakers-as participant reads such a file as one participant's words"
        )
    built = layout.built or path.suffix.lower() == ".docx"  # a .docx's text is its paragraphs, one a line
    return Transcript(path.name, text, turns, meta, encoding, warnings, str(path), layout.name, built, call)


def read_transcripts(
    paths: list[str | Path],
    interviewers: list[str] | tuple[str, ...] = (),
    interviewer_patterns: tuple[str, ...] = DEFAULT_INTERVIEWER_PATTERNS,
    no_speakers: str = "skip",
) -> list[Transcript]:
    """Read transcripts given together (a project) and decide who interviews across them (:func:`decide_roles`).

    Every file is returned, in order; a skipped one (no speaker labels) has no turns and says so in its
    warnings (:attr:`Transcript.skipped`).
    """
    transcripts = [read_transcript(p, interviewer_patterns, interviewers, no_speakers) for p in paths]
    decide_roles(transcripts, interviewers, interviewer_patterns)
    return transcripts


def load_transcript(
    path: str | Path,
    interviewer_patterns: tuple[str, ...] = DEFAULT_INTERVIEWER_PATTERNS,
    interviewers: list[str] | tuple[str, ...] = (),
    no_speakers: str = "skip",
) -> Transcript:
    """Read one transcript with its sidecar; find its turns and their roles from this file alone.

    Interviewers are the labels in ``interviewers`` (``--interviewer``) and the sidecar's
    ``interviewers``; without either, generic labels (Interviewer, Q, ...) mark them, and failing
    that the file's own evidence (:func:`speaker_evidence`). Several files given together are read
    with :func:`read_transcripts`, which decides across them.
    """
    return read_transcripts([path], interviewers, interviewer_patterns, no_speakers)[0]


def collect_transcripts(inputs: list[str | Path], warn=None) -> list[Path]:
    """Expand inputs (files or folders) into transcript files, sorted within each folder.

    Files of a folder with another extension are skipped, each named to ``warn`` (sidecars and
    hidden files silently).
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = []
            for p in sorted(item.iterdir()):
                if p.name.startswith((".", "~$")) or p.name.endswith(SIDECAR_SUFFIX):
                    continue
                if p.suffix.lower() in TRANSCRIPT_SUFFIXES:
                    _check_entry(p, item)
                    found.append(p)
                elif warn is not None:
                    warn(f"{p}: skipped (not a transcript: expected {', '.join(TRANSCRIPT_SUFFIXES)})")
            if not found:
                raise InputError(f"folder holds no transcripts ({', '.join(TRANSCRIPT_SUFFIXES)})", item)
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            raise InputError("no such file or folder", item)
    names = [p.name for p in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two inputs share the file name {duplicates[0]!r}; sources are named by file name")
    return files


def _check_entry(path: Path, folder: Path) -> None:
    """A transcript found in ``folder`` must be a regular file, or a link to one inside ``folder``."""
    import stat

    if path.is_symlink():
        try:
            target = path.resolve()
        except (RuntimeError, OSError):  # RuntimeError: a symlink loop (Python < 3.13)
            raise InputError("a link that loops back on itself or cannot be followed", path) from None
        if not target.is_relative_to(folder.resolve()):
            raise InputError(f"a link to {target}, outside {folder}; copy the file in or name it as an input", path)
    try:
        mode = path.stat().st_mode
    except OSError:
        raise InputError("a broken link or an unreadable entry", path) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise InputError(f"not a regular file ({kind})", path)
