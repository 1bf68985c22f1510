"""REFI-QDA interchange: import coded projects (.qdpx) and codebooks (.qdc), export codings as a project.

A ``.qdpx`` file is a zip archive holding ``project.qde`` (XML, namespace ``urn:QDA-XML:project:1.0``)
and a ``sources/`` folder. Text sources keep their text in ``sources/<file>.txt`` (``plainTextPath``
``internal://<file>.txt``) or inline in ``PlainTextContent``; NVivo for Mac may leave the .txt blank
and hold the text only in the ``.docx`` of ``richTextPath``. A ``PlainTextSelection`` spans
``[startPosition, endPosition)`` in Unicode code points of the text as stored (CRLF included) and
carries ``Coding`` elements, each pointing at a code of the ``CodeBook`` and at the user who coded it.

Archives come from outside, so reading is defensive: every entry is checked (no absolute paths, no
``..``, no symlinks, no encryption, size and compression-ratio limits) before anything is read, only
the entries that are needed are decompressed (into memory, with a hard cap), XML is parsed with
``defusedxml`` (no DTD, so no external entities and no entity expansion), and every size, count and
depth is bounded (:class:`ArchiveLimits`). An import is built beside ``--out`` and swapped in whole only
when everything succeeded; a folder that is not empty is only replaced with ``force``.
"""

from __future__ import annotations

import io
import os
import re
import stat
import unicodedata
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import yaml
from defusedxml import DefusedXmlException

from pipeline.codebook import Codebook, as_id, load_codebook, parse_codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS, Coding, write_codings
from pipeline.io import atomic_path, build_folder, read_input
from pipeline.limits import DEFAULT_LIMITS, MAX_CODEBOOK_CODES, ArchiveLimits
from pipeline.safe_yaml import load_yaml

if TYPE_CHECKING:
    import pandas as pd

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
IMPORT_OUTPUTS = ("transcripts", "codings.csv", "codebook.yaml")
# Fixed namespace for the name-based GUIDs of exports, so re-exporting the same data gives the same GUIDs
# (tools such as NVivo merge projects by GUID).
_GUID_NAMESPACE = uuid.UUID("6f1c1d3e-5b7a-4c2e-9a43-2f0e8d1b7c55")
_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNSAFE_FILE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
# Lines an export adds to code descriptions, so a re-import finds the codebook's ids behind the names.
IMPACT_MARK, CATEGORY_MARK = "imri-autocode id:", "imri-autocode category:"
_ID_LINES = re.compile(rf"^(?:{IMPACT_MARK}|{CATEGORY_MARK}).*$", re.M)
_IMPACT_LINE = re.compile(rf"^{IMPACT_MARK}[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
_CATEGORY_LINE = re.compile(rf"^{CATEGORY_MARK}[ \t]*(\S[^\n]*?)[ \t]*$", re.M)


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QdaCode:
    """One code of a REFI-QDA code tree; ``parts`` is its path from the root (its own name last).

    ``impact_id`` and ``category_id`` come from the ``imri-autocode id:`` and ``imri-autocode category:``
    lines that :func:`export_qdpx` writes into the descriptions of a codebook's impacts and categories.
    """

    guid: str
    name: str
    parts: tuple[str, ...]
    codable: bool = True
    description: str = ""
    impact_id: str = ""
    category_id: str = ""

    @property
    def path(self) -> str:
        """The code's path joined by ``/``."""
        return "/".join(self.parts)

    @property
    def key(self) -> str:
        """What codings.csv calls the code: the codebook id it was exported with, else its path.

        Made a valid codebook id (:func:`pipeline.codebook.as_id`) when it is not one: a name with ``;``,
        a control character or past ``MAX_CODE_ID_CHARS`` is cleaned, with a digest of the original.
        """
        return as_id(self.impact_id or self.path)

    @property
    def definition(self) -> str:
        """The description without the id lines."""
        return _ID_LINES.sub("", self.description).strip()


@dataclass(frozen=True)
class QdaCoding:
    """One code applied by one user to ``[start, end)`` of a source (``source`` is a key of ``sources``)."""

    source: str
    start: int
    end: int
    code: str
    coder: str
    description: str | None = None


@dataclass
class QdaProject:
    """What :func:`read_qdpx` found: text sources by name, the code tree (pre-order), users, codings."""

    name: str
    origin: str
    sources: dict[str, str]
    codes: list[QdaCode]
    users: dict[str, str]  # normalised GUID -> name
    codings: list[QdaCoding]
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """What an import wrote: counts, the file names of the transcripts, and warnings for the user."""

    out_dir: Path
    sources: int
    codes: int
    codings: int
    transcripts: dict[str, str] = field(default_factory=dict)  # project source name -> written file name
    warnings: list[str] = field(default_factory=list)
    codebook_written: bool = False
    replaced: str | None = None  # what a forced import replaced, in words


# --- hostile-archive guards --------------------------------------------------------------------------


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an archive entry is refused, or None."""
    name = info.orig_filename.replace("\\", "/")
    if "\x00" in name:
        return "has a NUL character in its name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "points outside the archive root (zip-slip)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _check_archive(zf: zipfile.ZipFile, path: Path, limits: ArchiveLimits, what: str = "archive") -> None:
    """Refuse the whole archive if any entry is hostile, before anything is decompressed."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise limits.refuse(f"{what} has {len(infos)} entries", "max_entries", path)
    seen: set[str] = set()
    total = 0
    for info in infos:
        problem = _entry_problem(info)
        if problem:
            raise InputError(f"refused: {what} entry {info.orig_filename!r} {problem}", path)
        key = info.filename.casefold()
        if key in seen:
            raise InputError(f"refused: {what} holds {info.filename!r} twice", path)
        seen.add(key)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise limits.refuse(
                f"{what} would unpack to more than {limits.max_total_bytes} bytes (zip bomb?)", "max_total_bytes", path
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise InputError(
                f"refused: {what} entry {info.filename!r} is compressed {ratio:.0f}:1 "
                f"(limit {limits.max_ratio:.0f}:1, zip bomb?)",
                path,
            )


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limits: ArchiveLimits) -> bytes:
    """Decompress one entry into memory, never more than ``limits.max_entry_bytes``."""
    too_big = limits.refuse(
        f"entry {info.filename!r} is larger than {limits.max_entry_bytes} bytes", "max_entry_bytes", path
    )
    if info.file_size > limits.max_entry_bytes:
        raise too_big
    try:
        with zf.open(info) as handle:
            data = handle.read(limits.max_entry_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"cannot read archive entry {info.filename!r} ({type(exc).__name__}: {exc})", path) from None
    if len(data) > limits.max_entry_bytes:
        raise too_big
    return data


def _parse_xml(data: bytes, what: str, path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ET.Element:
    """Parse XML without DTDs (so without external entities or entity expansion); drop namespaces from tags.

    Size, element count and nesting depth are checked while parsing, so a hostile file stops at its bound.
    """
    if len(data) > limits.max_xml_bytes:
        raise limits.refuse(f"{what} is larger than {limits.max_xml_bytes} bytes", "max_xml_bytes", path)
    root: ET.Element | None = None
    depth = elements = 0
    try:
        for event, element in SafeET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            elements += 1
            if depth > limits.max_xml_depth:
                raise limits.refuse(
                    f"{what} nests elements more than {limits.max_xml_depth} deep", "max_xml_depth", path
                )
            if elements > limits.max_xml_elements:
                raise limits.refuse(
                    f"{what} holds more than {limits.max_xml_elements} elements", "max_xml_elements", path
                )
            if root is None:
                root = element
            if isinstance(element.tag, str) and element.tag.startswith("{"):
                element.tag = element.tag.split("}", 1)[1]
    except DefusedXmlException as exc:
        raise InputError(
            f"refused: {what} declares a DTD or entities ({type(exc).__name__}); "
            "REFI-QDA files need none and they can read local files or expand without bound",
            path,
        ) from None
    except ET.ParseError as exc:
        raise InputError(f"{what} is not well-formed XML ({exc})", path) from None
    if root is None:
        raise InputError(f"{what} is not well-formed XML (no element)", path)
    return root


# --- reading ------------------------------------------------------------------------------------------


def normalize_guid(value: str | None) -> str:
    """A GUID in one spelling (lower case, no braces), so ``{ABC...}`` and ``abc...`` match."""
    value = (value or "").strip()
    match = _GUID.match(value)
    return match.group(1).lower() if match else value.lower()


def _clean_name(value: str | None) -> str:
    # one line, and no "/" inside a name: "/" separates the levels of a code path
    return " ".join((value or "").split()).replace("/", "\u2215")


def _parse_code_tree(
    codes_element: ET.Element | None, warnings: list[str], limits: ArchiveLimits, path: Path
) -> list[QdaCode]:
    """The codes under a ``<Codes>`` element, in pre-order (iterative: deep trees cannot overflow the stack).

    Refuses trees with more than ``limits.max_codes`` codes or deeper than ``limits.max_code_depth``.
    """
    if codes_element is None:
        return []
    codes: list[QdaCode] = []
    seen: set[str] = set()
    count = 0
    stack: list[tuple[ET.Element, tuple[str, ...]]] = [(e, ()) for e in reversed(codes_element.findall("Code"))]
    while stack:
        element, prefix = stack.pop()
        count += 1
        if count > limits.max_codes:
            raise limits.refuse(f"the code tree holds more than {limits.max_codes} codes", "max_codes", path)
        if len(prefix) >= limits.max_code_depth:
            raise limits.refuse(
                f"the code tree is more than {limits.max_code_depth} levels deep", "max_code_depth", path
            )
        guid = normalize_guid(element.get("guid"))
        name = _clean_name(element.get("name")) or f"code-{guid[:8] or len(codes)}"
        parts = (*prefix, name)
        codable = (element.get("isCodable") or "true").strip().lower() in ("true", "1")
        description = (element.findtext("Description") or "").strip()
        if guid in seen:
            warnings.append(f"code GUID {guid} appears twice; the second ({'/'.join(parts)!r}) is ignored")
        else:
            seen.add(guid)
            impact, category = _IMPACT_LINE.search(description), _CATEGORY_LINE.search(description)
            codes.append(
                QdaCode(
                    guid,
                    name,
                    parts,
                    codable,
                    description,
                    impact.group(1) if impact else "",
                    category.group(1) if category else "",
                )
            )
        stack.extend((child, parts) for child in reversed(element.findall("Code")))
    return codes


class _Archive:
    """The entries of a checked archive, looked up the way real exports name them."""

    def __init__(self, zf: zipfile.ZipFile, path: Path, limits: ArchiveLimits) -> None:
        self.zf, self.path, self.limits = zf, path, limits
        self.by_key = {info.filename.casefold(): info for info in zf.infolist() if not info.is_dir()}

    def read(self, info: zipfile.ZipInfo) -> bytes:
        return _read_entry(self.zf, info, self.path, self.limits)

    def locate(self, reference: str, label: str) -> zipfile.ZipInfo | None:
        """The entry a ``plainTextPath``/``richTextPath`` points at; None if it is outside the archive or absent."""
        match = _SCHEME.match(reference.strip())
        if match:
            if match.group(1).lower() != "internal":
                return None  # relative:// or absolute:// point at files on the exporting computer
            relative = match.group(2)
        else:
            relative = reference.strip()  # qc writes the bare file name
        for candidate in dict.fromkeys((relative, unquote(relative))):
            candidate = candidate.replace("\\", "/")
            if candidate.startswith("/") or re.match(r"^[A-Za-z]:", candidate) or ".." in candidate.split("/"):
                raise InputError(f"refused: source {label!r} points outside the archive ({reference!r})", self.path)
            for key in (f"sources/{candidate}", candidate):
                info = self.by_key.get(key.casefold())
                if info is not None:
                    return info
        return None


def _decode_text(data: bytes, label: str, path: Path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"source {label!r}: text is not UTF-8 (REFI-QDA requires UTF-8)", path) from None
    return text.removeprefix("\ufeff")


def _docx_text(archive: _Archive, info: zipfile.ZipInfo, label: str) -> str:
    """The text of a .docx inside the archive (itself a zip: checked with the same limits)."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    data = archive.read(info)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            _check_archive(inner, archive.path, archive.limits, what=f"{info.filename}")
            for part in inner.infolist():
                bound = "max_xml_bytes" if part.filename.lower().endswith(".xml") else "max_entry_bytes"
                if part.file_size > getattr(archive.limits, bound):
                    raise archive.limits.refuse(
                        f"{info.filename} part {part.filename!r} is too large", bound, archive.path
                    )
        document = docx.Document(io.BytesIO(data))
    except InputError:
        raise
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, SyntaxError, OSError) as exc:
        raise InputError(
            f"source {label!r}: cannot read {info.filename} ({type(exc).__name__})", archive.path
        ) from None
    return "\n".join(paragraph.text for paragraph in document.paragraphs)


def _text_entry(archive: _Archive, info: zipfile.ZipInfo, label: str) -> str:
    if info.file_size > archive.limits.max_source_bytes:
        raise archive.limits.refuse(
            f"source {label!r} is larger than {archive.limits.max_source_bytes} bytes", "max_source_bytes", archive.path
        )
    return _decode_text(archive.read(info), label, archive.path)


def _source_text(source: ET.Element, archive: _Archive, label: str, warnings: list[str]) -> str:
    """A text source's text as stored: inline ``PlainTextContent``, the .txt file, or else the .docx."""
    text: str | None = None
    content = source.find("PlainTextContent")
    if content is not None:
        text = content.text or ""
    plain_ref = source.get("plainTextPath")
    if text is None and plain_ref:
        info = archive.locate(plain_ref, label)
        if info is not None:
            text = _text_entry(archive, info, label)
    rich_ref = source.get("richTextPath") or ""
    if (text is None or not text.strip()) and rich_ref.lower().endswith(".docx"):
        info = archive.locate(rich_ref, label)
        if info is not None:
            rich = _docx_text(archive, info, label)
            if rich.strip():
                warnings.append(f"source {label!r}: text taken from {info.filename} (its plain text is empty)")
                text = rich
            elif text is None:
                text = rich
    if text is None:
        wanted = " or ".join(repr(r) for r in (plain_ref, rich_ref) if r) or "no text at all"
        raise InputError(f"source {label!r}: its text ({wanted}) is missing from the archive", archive.path)
    if len(text) > archive.limits.max_source_bytes:
        raise archive.limits.refuse(
            f"source {label!r} holds more than {archive.limits.max_source_bytes} characters",
            "max_source_bytes",
            archive.path,
        )
    if not text.strip():
        warnings.append(f"source {label!r} has no text")
    return text


def _find_project_entry(archive: _Archive) -> zipfile.ZipInfo:
    info = archive.by_key.get("project.qde")
    if info is not None:
        return info
    candidates = [i for k, i in archive.by_key.items() if k.endswith(".qde") and "/" not in k]
    if len(candidates) == 1:
        return candidates[0]
    raise InputError("not a REFI-QDA project: no project.qde at the root of the archive", archive.path)


def _user_names(root: ET.Element) -> dict[str, str]:
    users: dict[str, str] = {}
    for user in root.findall("Users/User"):
        guid = normalize_guid(user.get("guid"))
        users[guid] = _clean_name(user.get("name")) or _clean_name(user.get("id")) or guid
    # two users with one name would merge into one coder: tell them apart
    names = Counter(users.values())
    for guid, name in list(users.items()):
        if names[name] > 1:
            users[guid] = f"{name} ({guid[:8]})"
    return users


def read_qdpx(path: str | Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> QdaProject:
    """Read a REFI-QDA project archive: its text sources, code tree, users and text codings.

    Selections without a coding, codings of whole sources, codes or users that do not exist, selections
    outside their text and non-text sources are skipped, each with a warning in ``project.warnings``.
    Raises :class:`InputError` for anything unreadable or hostile.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InputError("not a REFI-QDA project (a .qdpx file is a zip archive)", path) from None
    with zf:
        _check_archive(zf, path, limits)
        archive = _Archive(zf, path, limits)
        entry = _find_project_entry(archive)
        root = _parse_xml(archive.read(entry), entry.filename, path, limits)
        if root.tag != "Project":
            raise InputError(f"{entry.filename}: root element is <{root.tag}>, not a REFI-QDA <Project>", path)
        return _parse_project(root, archive)


def _parse_project(root: ET.Element, archive: _Archive) -> QdaProject:
    warnings: list[str] = []
    users = _user_names(root)
    limits = archive.limits
    codes = _parse_code_tree(root.find("CodeBook/Codes"), warnings, limits, archive.path)
    by_guid = {code.guid: code for code in codes}
    default_user = normalize_guid(root.get("creatingUserGUID"))
    sources: dict[str, str] = {}
    codings: list[QdaCoding] = []
    seen: set[tuple[str, int, int, str, str]] = set()
    unknown_users: set[str] = set()
    skipped_types: dict[str, int] = {}
    next_number: dict[str, int] = {}  # per name, the next "(n)" to try: naming stays linear
    text_size = 0

    def coder_of(*candidates: str | None) -> str:
        for candidate in (*candidates, default_user):
            guid = normalize_guid(candidate)
            if guid:
                if guid not in users:
                    unknown_users.add(guid)
                return users.get(guid, guid)
        return "unknown"

    sources_element = root.find("Sources")
    for source in list(sources_element) if sources_element is not None else []:
        if source.tag != "TextSource":
            skipped_types[source.tag] = skipped_types.get(source.tag, 0) + 1
            continue
        if len(sources) >= limits.max_sources:
            raise limits.refuse(
                f"the project holds more than {limits.max_sources} text sources", "max_sources", archive.path
            )
        guid = normalize_guid(source.get("guid"))
        reference = source.get("plainTextPath") or source.get("richTextPath") or ""
        stem = Path(_SCHEME.sub(r"\2", reference).replace("\\", "/")).stem
        name = _clean_name(source.get("name")) or stem or guid or f"source-{len(sources) + 1}"
        key, n = name, next_number.get(name, 2)
        while key in sources:
            key, n = f"{name} ({n})", n + 1
        next_number[name] = n
        text = _source_text(source, archive, key, warnings)
        text_size += len(text)
        if text_size > limits.max_text_bytes:
            raise limits.refuse(
                f"the sources hold more than {limits.max_text_bytes} characters", "max_text_bytes", archive.path
            )
        sources[key] = text
        no_coding = bad_span = unknown_code = duplicates = 0
        for selection in source.findall("PlainTextSelection"):
            coding_elements = selection.findall("Coding")
            if not coding_elements:
                no_coding += 1
                continue
            try:
                start, end = int(selection.get("startPosition", "")), int(selection.get("endPosition", ""))
            except ValueError:
                bad_span += 1
                continue
            if not 0 <= start < end <= len(text):
                bad_span += 1
                continue
            description = selection.findtext("Description")
            for element in coding_elements:
                code = by_guid.get(normalize_guid(_code_ref(element)))
                if code is None:
                    unknown_code += 1
                    continue
                coder = coder_of(element.get("creatingUser"), selection.get("creatingUser"), source.get("creatingUser"))
                row = (key, start, end, code.key, coder)
                if row in seen:
                    duplicates += 1
                    continue
                if len(codings) >= limits.max_codings:
                    raise limits.refuse(
                        f"the project holds more than {limits.max_codings} codings", "max_codings", archive.path
                    )
                seen.add(row)
                codings.append(QdaCoding(*row, description=(description or "").strip() or None))
        whole = len(source.findall("Coding"))
        for count, what in (
            (no_coding, "selection(s) without a coding skipped"),
            (bad_span, "selection(s) with an empty or out-of-range span skipped"),
            (unknown_code, "coding(s) of a code missing from the codebook skipped"),
            (duplicates, "duplicate coding(s) dropped"),
            (whole, "coding(s) of the whole source (not of a passage) skipped"),
        ):
            if count:
                warnings.append(f"source {key!r}: {count} {what}")
    for tag, count in sorted(skipped_types.items()):
        warnings.append(f"{count} {tag}(s) skipped: only text sources are imported")
    for guid in sorted(unknown_users):
        warnings.append(f"user {guid} is not in the project's users: its GUID is used as the coder name")
    return QdaProject(
        name=_clean_name(root.get("name")) or archive.path.stem,
        origin=root.get("origin") or "",
        sources=sources,
        codes=codes,
        users=users,
        codings=codings,
        warnings=warnings,
    )


def _code_ref(coding: ET.Element) -> str | None:
    ref = coding.find("CodeRef")
    return ref.get("targetGUID") if ref is not None else None


def read_qdc(path: str | Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> tuple[str, list[QdaCode], list[str]]:
    """Read a REFI-QDA codebook (.qdc): its name (from ``origin`` or the file), codes and warnings."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    data = read_regular_file(path, limits.max_xml_bytes, "max_xml_bytes", limits)
    root = _parse_xml(data, path.name, path, limits)
    if root.tag != "CodeBook":
        raise InputError(f"root element is <{root.tag}>, not a REFI-QDA <CodeBook>", path)
    warnings: list[str] = []
    codes = _parse_code_tree(root.find("Codes"), warnings, limits, path)
    if not codes:
        raise InputError("the codebook holds no codes", path)
    return path.stem, codes, warnings


# --- our codebook format -------------------------------------------------------------------------------


def _slug(value: str) -> str:
    return re.sub(r"\W+", "_", value.casefold()).strip("_") or "qdpx"


def codebook_data(codes: list[QdaCode], codebook_id: str, note: str = "", used: set[str] | None = None) -> dict | None:
    """Our codebook (a YAML-ready dict) for a REFI-QDA code tree, or None when there is no code to keep.

    Each codable code (or code used by a coding) becomes an impact whose id is its :attr:`QdaCode.key` (the
    id it was exported with, else its path); its category is its top-level code (that code's category id
    when it was exported with one, else its name); names are the code's name in both languages.
    """
    used = used or set()
    tops = {code.parts[0]: code for code in codes if len(code.parts) == 1}
    categories: dict[str, dict[str, str]] = {}
    impacts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for code in codes:
        if not (code.codable or code.key in used) or code.key in seen:
            continue
        seen.add(code.key)
        top = tops.get(code.parts[0])
        category = as_id((top.category_id if top is not None else "") or code.parts[0])
        if category not in categories:
            name = top.name if top is not None else code.parts[0]
            definition = top.definition if top is not None else ""
            categories[category] = {"id": category, "name_en": name, "name_fr": name, "definition": definition}
        impacts.append(
            {
                "id": code.key,
                "category": category,
                "kind": "innovation",
                "name_en": code.name,
                "name_fr": code.name,
                "definition": code.definition,
                "include": [],
                "exclude": [],
            }
        )
    if not impacts:
        return None
    if len(impacts) > MAX_CODEBOOK_CODES:
        raise InputError(
            f"{len(impacts):,} codes to import, over the limit of {MAX_CODEBOOK_CODES:,} codes of a codebook "
            "(MAX_CODEBOOK_CODES in pipeline.limits): roll the code tree up with --level, or map the codes with --map"
        )
    data: dict[str, Any] = {"id": as_id(_slug(codebook_id)), "version": "1"}
    if note:
        data["source"] = note
    data["categories"] = list(categories.values())
    data["impacts"] = impacts
    parse_codebook(data, codebook_id)  # what we write must load
    return data


def roll_up(codes: list[QdaCode], codings: list[QdaCoding], level: int) -> tuple[list[QdaCode], list[QdaCoding]]:
    """Codes and codings with the code tree cut at depth ``level``: a deeper code's codings go to its ancestor.

    An ancestor becomes codable when it or any code rolled into it was; codings that become the same are
    merged.
    """
    if level < 1:
        raise InputError(f"--level must be 1 or more (got {level})")
    by_path = {code.path: code for code in codes}
    by_key = {code.key: code for code in reversed(codes)}  # the first code of a key wins
    kept = {code.path: code for code in codes if len(code.parts) <= level}
    codable = {path for path, code in kept.items() if code.codable}
    for code in codes:
        if len(code.parts) > level and code.codable:
            codable.add("/".join(code.parts[:level]))

    def target(key: str) -> str:
        code = by_key.get(key)
        if code is None or len(code.parts) <= level:
            return key
        return by_path["/".join(code.parts[:level])].key

    rolled_codes = [
        QdaCode(c.guid, c.name, c.parts, c.path in codable, c.description, c.impact_id, c.category_id)
        for c in kept.values()
    ]
    rolled: dict[tuple[str, int, int, str, str], QdaCoding] = {}
    for c in codings:
        new = QdaCoding(c.source, c.start, c.end, target(c.code), c.coder, c.description)
        rolled.setdefault((new.source, new.start, new.end, new.code, new.coder), new)
    return rolled_codes, list(rolled.values())


def _dump_yaml(data: dict) -> str:
    # libyaml's emitter when PyYAML has it: the pure-Python one takes ~25 s for a codebook at max_codes
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False, width=100)


# --- writing an import -----------------------------------------------------------------------------------


def safe_file_name(name: str) -> str:
    """A file name (without ``.txt``) that is safe on Linux, macOS and Windows, made from a source name."""
    name = unicodedata.normalize("NFC", name)
    if name.casefold().endswith(".txt"):
        name = name[:-4]
    name = _UNSAFE_FILE_CHARS.sub("_", name).strip(" .")
    name = name.encode("utf-8")[:150].decode("utf-8", "ignore").strip(" .")
    if not name:
        return "source"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"_{name}"
    return name


def unique_file_names(names: list[str]) -> dict[str, str]:
    """``{name: safe unique file name ending in .txt}``; unique even on case-insensitive file systems.

    Linear in the number of names, even when thousands of them share one name.
    """
    taken: set[str] = set()
    next_number: dict[str, int] = {}
    result: dict[str, str] = {}
    for name in names:
        base = safe_file_name(name)
        candidate, n = base, next_number.get(base.casefold(), 2)
        while candidate.casefold() in taken:
            candidate, n = f"{base}-{n}", n + 1
        next_number[base.casefold()] = n
        taken.add(candidate.casefold())
        result[name] = f"{candidate}.txt"
    return result


def _describe_folder(folder: Path) -> str:
    """What a folder holds, for the message that it is about to be replaced: ``transcripts/ (3 files), ...``."""
    entries = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.is_dir() and not item.is_symlink():
            count = sum(1 for _ in item.rglob("*"))
            entries.append(f"{item.name}/ ({count} file{'s' * (count != 1)})")
        else:
            entries.append(item.name)
    return ", ".join(entries[:12]) + (f" and {len(entries) - 12} more" if len(entries) > 12 else "")


def _check_target(out_dir: Path, force: bool) -> str | None:
    """Refuse to write into a non-empty folder without ``force``; with it, say what is replaced (or None)."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InputError("exists and is not a folder", out_dir)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    held = _describe_folder(out_dir)
    if not force:
        raise InputError(f"folder is not empty ({held}); --force replaces it as a whole", out_dir)
    return f"replaced {out_dir} (it held {held})"


def _load_code_map(code_map: str | Path | Mapping[str, Any]) -> tuple[dict[str, str | None], Codebook, Path | None]:
    """Read a code map: ``{project code path or name: codebook id or null}``, or ``{codebook: FILE, codes: {...}}``.

    The ids must be impacts of the map's codebook (the bundled IMRI v1 one unless ``codebook`` names another,
    relative to the map file). ``null`` drops a code on purpose.
    """
    where: Path | None = None
    if isinstance(code_map, str | Path):
        where = Path(code_map)
        # within the codebook's bounds: a map is about as large as the codebook it maps to
        raw = read_input(where, "MAX_CODEBOOK_BYTES")
        data = load_yaml(raw, where, "code map", "MAX_CODEBOOK_DEPTH", "MAX_CODEBOOK_EXPANDED")
    else:
        data = dict(code_map)
    if not isinstance(data, dict):
        raise InputError("code map must be a YAML mapping {project code: codebook id}", where)
    codebook_path = None
    if isinstance(data.get("codes"), dict):
        codebook_path = data.get("codebook")
        data = data["codes"]
        if codebook_path is not None:
            codebook_path = Path(str(codebook_path))
            if where is not None and not codebook_path.is_absolute():
                codebook_path = where.parent / codebook_path
    mapping: dict[str, str | None] = {}
    for key, value in data.items():
        if value is not None and not isinstance(value, str | int):
            raise InputError(f"code map: the value for {key!r} must be a codebook id or null", where)
        mapping[_clean_name(str(key)) if "/" not in str(key) else str(key).strip()] = (
            None if value is None else str(value).strip()
        )
    book = load_codebook(codebook_path)
    book.check_codes({v for v in mapping.values() if v}, where)
    return mapping, book, where


def _apply_code_map(
    project: QdaProject, codings: list[Coding], mapping: dict[str, str | None], warnings: list[str]
) -> list[Coding]:
    target: dict[str, str | None] = {}
    unmapped: dict[str, int] = {}
    used_keys: set[str] = set()
    for code in project.codes:
        for key in (code.key, code.path, code.name):
            if key in mapping and code.key not in target:
                target[code.key] = mapping[key]
                used_keys.add(key)
                break
    mapped: list[Coding] = []
    seen: set[Coding] = set()
    for coding in codings:
        if coding.code not in target:
            unmapped[coding.code] = unmapped.get(coding.code, 0) + 1
            continue
        new_code = target[coding.code]
        if new_code is None:
            continue
        new = Coding(coding.source, coding.start, coding.end, new_code, coding.coder)
        if new not in seen:
            seen.add(new)
            mapped.append(new)
    if unmapped:
        listed = ", ".join(sorted(unmapped)[:8]) + (", ..." if len(unmapped) > 8 else "")
        warnings.append(
            f"{sum(unmapped.values())} coding(s) of {len(unmapped)} code(s) not in the code map skipped: {listed}"
        )
    unused = sorted(set(mapping) - used_keys)
    if unused:
        warnings.append(f"code map entries matching no code of the project: {', '.join(unused[:8])}")
    return mapped


def import_qdpx(
    path: str | Path,
    out_dir: str | Path,
    code_map: str | Path | Mapping[str, Any] | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    *,
    level: int | None = None,
    force: bool = False,
) -> ImportResult:
    """Import a .qdpx project into ``out_dir``: ``transcripts/<name>.txt``, ``codings.csv``, ``codebook.yaml``.

    ``codings.csv`` names each transcript by its written file name, each code by its path in the code
    tree (the codebook id for a project exported by imri-autocode; with ``code_map``, the codebook id it
    maps to, unmapped codes skipped with a warning) and each coder by the user's name. ``level`` first cuts
    the code tree at that depth (see :func:`roll_up`). Texts are written exactly as stored (CRLF kept), so
    the offsets hold. Without a code map, ``codebook.yaml`` is built from the project's codes (not written
    when it has none); with one, it is a copy of the map's codebook.

    ``out_dir`` is built beside itself and swapped in whole (:func:`pipeline.io.build_folder`): nothing is
    written unless the whole import succeeds, a crash leaves the old folder or the new one, and a non-empty
    ``out_dir`` is only replaced with ``force`` (``replaced`` then says what it held).
    """
    path, out_dir = Path(path), Path(out_dir)
    replaced = _check_target(out_dir, force)
    project = read_qdpx(path, limits)
    warnings = list(project.warnings)
    codes, project_codings = project.codes, project.codings
    if level is not None:
        codes, project_codings = roll_up(codes, project_codings, level)
    names = unique_file_names(list(project.sources))
    codings = [Coding(names[c.source], c.start, c.end, c.code, c.coder) for c in project_codings]
    codebook_text: str | None = None
    if code_map is not None:
        mapping, book, _ = _load_code_map(code_map)
        codings = _apply_code_map(
            QdaProject(project.name, project.origin, {}, codes, {}, []), codings, mapping, warnings
        )
        codebook_text = Path(book.path).read_text(encoding="utf-8") if book.path else None
    else:
        note = f"imported from {path.name}" + (f" ({project.origin})" if project.origin else "")
        data = codebook_data(codes, project.name, note, {c.code for c in codings})
        if data is None:
            warnings.append("the project has no codes: no codebook.yaml written")
        else:
            codebook_text = _dump_yaml(data)
    try:
        with build_folder(out_dir) as stage:
            transcripts = stage / "transcripts"
            transcripts.mkdir()
            for key, text in project.sources.items():
                (transcripts / names[key]).write_text(text, encoding="utf-8", newline="")
            write_codings(codings, stage / "codings.csv")
            if codebook_text is not None:
                (stage / "codebook.yaml").write_text(codebook_text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot put the new folder in place ({exc.strerror or exc})", out_dir) from None
    return ImportResult(
        out_dir=out_dir,
        sources=len(project.sources),
        codes=len(codes),
        codings=len(codings),
        transcripts=names,
        warnings=warnings,
        codebook_written=codebook_text is not None,
        replaced=replaced,
    )


def import_qdc(
    path: str | Path, out_dir: str | Path, limits: ArchiveLimits = DEFAULT_LIMITS, *, force: bool = False
) -> ImportResult:
    """Import a REFI-QDA codebook (.qdc) as ``out_dir/codebook.yaml`` (our format; loads with ``load_codebook``).

    Other files in ``out_dir`` are left alone; an existing ``codebook.yaml`` is only replaced with ``force``
    (atomically: the new file is renamed over it).
    """
    path, out_dir = Path(path), Path(out_dir)
    target = out_dir / "codebook.yaml"
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", out_dir)
    if (target.exists() or target.is_symlink()) and not force:
        raise InputError("already exists; --force replaces it", target)
    name, codes, warnings = read_qdc(path, limits)
    data = codebook_data(codes, name, f"imported from {path.name}")
    if data is None:
        raise InputError("the codebook holds no codable code", path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise InputError("is not a regular file; remove it first", target)
    replaced = f"replaced {target}" if target.exists() else None
    with atomic_path(target) as tmp:
        tmp.write_text(_dump_yaml(data), encoding="utf-8")
    return ImportResult(
        out_dir=out_dir,
        sources=0,
        codes=len(codes),
        codings=0,
        warnings=warnings,
        codebook_written=True,
        replaced=replaced,
    )


# --- export -------------------------------------------------------------------------------------------------


def _guid_for(*parts: object) -> str:
    return str(uuid.uuid5(_GUID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _el(parent: ET.Element | None, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    # tags stay unqualified: the root carries xmlns (ElementTree's default_namespace rejects plain attributes)
    attributes = {k: _xml_text(v) for k, v in attrs.items()}
    element = ET.Element(tag, attributes) if parent is None else ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = _xml_text(text)
    return element


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imri-autocode")
    except PackageNotFoundError:
        return "0"


def source_problem(source: str) -> str | None:
    """Why a codings ``source`` cannot name a transcript of the folder (it must be a plain file name), or None."""
    if not source or "\x00" in source:
        return "is empty or holds a NUL character"
    if os.path.isabs(source) or source.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", source):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", source):
        return "points outside the folder (../)"
    if "/" in source or "\\" in source:
        return "is a path, not a file name"
    return None


def _coding_rows(
    codings: pd.DataFrame,
    transcripts: Mapping[str, str],
    where: str | Path | None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> list[tuple[str, int, int, str, str, str | None]]:
    """Checked, de-duplicated rows ``(source, start, end, code, coder, description)``."""
    import pandas as pd

    missing = [c for c in CODING_COLUMNS if c not in codings.columns]
    if missing:
        raise InputError(f"codings lack column(s) {', '.join(missing)} (need {','.join(CODING_COLUMNS)})", where)
    if len(codings) > limits.max_codings:
        raise limits.refuse(f"{len(codings)} codings", "max_codings", where)
    has_description = "description" in codings.columns
    rows: list[tuple[str, int, int, str, str, str | None]] = []
    seen: set[tuple[str, int, int, str, str]] = set()
    for number, record in enumerate(codings.itertuples(index=False), start=2):
        row = record._asdict()
        try:
            start, end = (float(row[k]) for k in ("start", "end"))
        except (TypeError, ValueError):
            start = end = float("nan")
        if not (start.is_integer() and end.is_integer()):
            raise InputError(f"row {number}: start/end must be whole numbers", where)
        start, end = int(start), int(end)
        source, code, coder = (str(row[k]).strip() for k in ("source", "code", "coder"))
        problem = source_problem(source)
        if problem:
            raise InputError(f"row {number}: refused: source {source!r} {problem}", where)
        if source not in transcripts:
            raise InputError(f"row {number}: no transcript {source!r}", where)
        if not 0 <= start < end <= len(transcripts[source]):
            raise InputError(
                f"row {number}: span {start}-{end} is empty or outside {source!r} "
                f"({len(transcripts[source])} characters)",
                where,
            )
        if not code or not coder or any(not part.strip() for part in code.split("/")):
            raise InputError(f"row {number}: empty code, code path segment or coder", where)
        if code.count("/") >= limits.max_code_depth:
            raise limits.refuse(
                f"row {number}: code path is more than {limits.max_code_depth} levels deep", "max_code_depth", where
            )
        key = (source, start, end, code, coder)
        if key in seen:
            continue
        seen.add(key)
        description = row["description"] if has_description else None
        description = None if description is None or pd.isna(description) else str(description).strip() or None
        rows.append((*key, description))
    return rows


@dataclass
class _CodeNode:
    """One code of an exported code tree."""

    guid: str
    name: str
    parent: tuple[str, ...] | None
    codable: bool = False
    definition: str = ""
    marks: list[str] = field(default_factory=list)

    def description(self) -> str:
        return "\n\n".join(part for part in (self.definition, "\n".join(self.marks)) if part)


def _name(names: Mapping[str, str], language: str, fallback: str) -> str:
    return (names.get(language) or names.get("en") or fallback).strip() or fallback


def _code_tree(
    code_ids: list[str], codebook: Codebook | None, language: str
) -> tuple[dict[tuple[str, ...], _CodeNode], dict[str, tuple[str, ...]]]:
    """The code tree of an export: nodes in creation order (parents first), and the node of each code id.

    With a codebook, each category is a code named as the codebook names it in ``language``, its impacts
    under it (an impact ``cat/a/b`` of category ``cat`` nests as ``cat`` > ``a`` > ``b``), each description
    ending with the ``imri-autocode id:`` (or ``category:``) line that lets an import find the ids again.
    Codes outside the codebook nest by their ``/``-separated path and are named by its parts.
    """
    nodes: dict[tuple[str, ...], _CodeNode] = {}
    where: dict[str, tuple[str, ...]] = {}
    if codebook is not None:
        categories = {category.id: category for category in codebook.categories}
        for impact in codebook.impacts:
            category = categories[impact.category]
            if impact.id == category.id:
                chain = [impact.id]
            elif impact.id.startswith(f"{category.id}/"):
                rest = impact.id[len(category.id) + 1 :].split("/")
                chain = [category.id, *(f"{category.id}/{'/'.join(rest[: i + 1])}" for i in range(len(rest)))]
            else:
                chain = [category.id, impact.id]
            key: tuple[str, ...] = ("codebook",)
            for depth, ident in enumerate(chain):
                parent, key = (key if depth else None), (*key, ident)
                if key not in nodes:
                    if depth == 0:
                        nodes[key] = _CodeNode(
                            _guid_for("category", ident),
                            _name(category.name, language, ident),
                            None,
                            definition=category.definition,
                            marks=[f"{CATEGORY_MARK} {ident}"],
                        )
                    else:
                        nodes[key] = _CodeNode(_guid_for("group", ident), ident.rsplit("/", 1)[-1], parent)
            node = nodes[key]
            node.codable, node.definition = True, impact.definition
            node.name = _name(impact.name, language, impact.id)
            node.guid = _guid_for("code", impact.id)
            node.marks.insert(0, f"{IMPACT_MARK} {impact.id}")
            where[impact.id] = key
    for code_id in code_ids:
        if code_id in where:
            continue
        parts = code_id.split("/")
        parent = None
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            key = ("path", path)
            if key not in nodes:
                nodes[key] = _CodeNode(_guid_for("code", path), parts[depth - 1], parent)
            parent = key
        nodes[("path", code_id)].codable = True
        where[code_id] = ("path", code_id)
    return nodes, where


def project_language(languages: Iterable[str | None]) -> str:
    """The language most transcripts are in (``en`` or ``fr``; ``en`` when none says or on a tie)."""
    counts = Counter(str(language).strip().lower()[:2] for language in languages if language)
    return "fr" if counts["fr"] > counts["en"] else "en"


def export_qdpx(
    transcripts: Mapping[str, str],
    codings: pd.DataFrame,
    out_path: str | Path,
    codebook: Codebook | None = None,
    *,
    project_name: str | None = None,
    origin: str | None = None,
    where: str | Path | None = None,
    language: str = "en",
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> Path:
    """Write a REFI-QDA project (``.qdpx``) that NVivo, ATLAS.ti, MAXQDA or QualCoder can open.

    ``transcripts`` maps each source name (e.g. the transcript file name) to its text; every one becomes a
    text source, coded or not. ``codings`` has columns ``source,start,end,code,coder`` and optionally
    ``description`` (e.g. a model's probability), offsets in code points of the text. Each coder becomes a
    user; each coding a coding by its coder inside a selection whose ``Description`` holds the coding's
    description (REFI-QDA codings have none of their own). Without ``codebook``, each code is a code of the
    tree (``a/b`` nests ``b`` under ``a``); with one, codes are named as the codebook names them in
    ``language`` (``en``/``fr``) and nested under their categories, and each code's description gives its
    definition and id (see :func:`_code_tree`): :func:`import_qdpx` reads the ids back.
    ``where`` names the codings in error messages. The file is written atomically; returns its path.
    """
    return _export(transcripts, codings, out_path, codebook, project_name, origin, where, language, limits)[0]


def _export(
    transcripts: Mapping[str, str],
    codings: pd.DataFrame,
    out_path: str | Path,
    codebook: Codebook | None,
    project_name: str | None,
    origin: str | None,
    where: str | Path | None,
    language: str,
    limits: ArchiveLimits,
) -> tuple[Path, int]:
    """:func:`export_qdpx`, also returning the number of codings written."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".qdpx":
        raise InputError("the project file must end in .qdpx", out_path)
    if len(transcripts) > limits.max_sources:
        raise limits.refuse(f"{len(transcripts)} transcripts", "max_sources", where)
    rows = _coding_rows(codings, transcripts, where, limits)
    used = {row[3] for row in rows}
    if codebook is not None:
        codebook.check_codes(used, where)
        code_ids = [*codebook.impact_ids, *sorted(used - set(codebook.impact_ids))]
    else:
        code_ids = sorted(used)
    for code_id in code_ids:
        if any(not part.strip() for part in code_id.split("/")):
            raise InputError(f"code {code_id!r} has an empty path segment", where)
    nodes, node_of = _code_tree(code_ids, codebook, language)
    if len(nodes) > limits.max_codes:
        raise limits.refuse(f"{len(nodes)} codes", "max_codes", where)
    moment = export_time()
    now = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    coders = sorted({row[4] for row in rows})
    user_guid = {coder: _guid_for("user", coder) for coder in coders}
    project = _el(
        None,
        "Project",
        xmlns=PROJECT_NS,
        name=project_name or out_path.stem,
        origin=origin or f"imri-autocode {_version()}",
        creationDateTime=now,
    )
    if coders:
        project.set("creatingUserGUID", user_guid[coders[0]])
        users = _el(project, "Users")
        for coder in coders:
            _el(users, "User", guid=user_guid[coder], name=coder)

    if nodes:
        codes_element = _el(_el(project, "CodeBook"), "Codes")
        elements: dict[tuple[str, ...], ET.Element] = {}
        for key, node in nodes.items():  # parents come before their children
            parent = elements[node.parent] if node.parent is not None else codes_element
            elements[key] = _el(
                parent, "Code", guid=node.guid, name=node.name, isCodable="true" if node.codable else "false"
            )
            description = node.description()
            if description:
                _el(elements[key], "Description", description)  # Description comes before child codes
    code_guid = {code_id: nodes[key].guid for code_id, key in node_of.items()}

    by_source: dict[str, dict[tuple[int, int, str | None], list[tuple[str, str]]]] = {}
    for source, start, end, code, coder, description in rows:
        by_source.setdefault(source, {}).setdefault((start, end, description), []).append((code, coder))
    files: dict[str, bytes] = {}
    if transcripts:
        sources_element = _el(project, "Sources")
        for name, text in transcripts.items():
            guid = _guid_for("source", name)
            display = name[:-4] if name.casefold().endswith(".txt") else name
            source_element = _el(
                sources_element,
                "TextSource",
                guid=guid,
                name=display,
                plainTextPath=f"internal://{guid}.txt",
                creationDateTime=now,
            )
            try:
                files[f"sources/{guid}.txt"] = text.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(
                    f"transcript {name!r} holds characters that cannot be written as UTF-8", where
                ) from None
            for (start, end, description), pairs in sorted(
                by_source.get(name, {}).items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
            ):
                selection = _el(
                    source_element,
                    "PlainTextSelection",
                    guid=_guid_for("selection", name, start, end, description or ""),
                    startPosition=str(start),
                    endPosition=str(end),
                )
                if description:
                    _el(selection, "Description", description)
                for code, coder in sorted(pairs):
                    coding = _el(
                        selection,
                        "Coding",
                        guid=_guid_for("coding", name, start, end, description or "", code, coder),
                        creatingUser=user_guid[coder],
                        creationDateTime=now,
                    )
                    _el(coding, "CodeRef", targetGUID=code_guid[code])

    xml = ET.tostring(project, encoding="utf-8", xml_declaration=True)
    with atomic_path(out_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        stamp = moment.timetuple()[:6]
        for name, data in {"project.qde": xml, **files}.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data, compress_type=zipfile.ZIP_DEFLATED)
    return out_path, len(rows)


def export_time() -> datetime:
    """When an export is made: now, or ``SOURCE_DATE_EPOCH`` when set (reproducible outputs, as DVC stages use)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC).replace(microsecond=0)


# --- reading a folder of transcripts -----------------------------------------------------------------------


def read_regular_file(
    path: str | Path, limit: int, bound: str, limits: ArchiveLimits = DEFAULT_LIMITS, root: str | Path | None = None
) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them (``bound`` names the limit in the error).

    Refuses FIFOs, devices, sockets and folders without blocking on them, and, with ``root``, a link that
    leads outside ``root``. The size is checked before reading and the read itself stops past the limit.
    """
    path = Path(path)
    try:
        real = path.resolve()
        if root is not None:
            real_root = Path(root).resolve()
            if real != real_root and real_root not in real.parents:
                raise InputError(f"refused: a link to outside {root}", path)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path) from None
    except RuntimeError:  # Path.resolve on a symlink loop (Python < 3.13)
        raise InputError("cannot read (a link that loops back on itself)", path) from None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a device or socket"
            raise InputError(f"refused: not a regular file ({kind})", path)
        if os.fstat(handle.fileno()).st_size > limit:
            raise limits.refuse(f"larger than {limit} bytes", bound, path)
        chunks, size = [], 0
        while size <= limit:
            chunk = handle.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:
        raise limits.refuse(f"larger than {limit} bytes", bound, path)
    return b"".join(chunks)


def load_transcripts(text_dir: str | Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> dict[str, str]:
    """``{file name: text}`` for every ``*.txt`` in ``text_dir``, read exactly (UTF-8, line endings kept).

    Only regular files are read (a FIFO, a device or a link that leads outside ``text_dir`` is refused), each
    at most ``limits.max_source_bytes``, all together at most ``limits.max_text_bytes``.
    """
    text_dir = Path(text_dir)
    if not text_dir.is_dir():
        raise InputError("no such folder", text_dir)
    transcripts: dict[str, str] = {}
    total = 0
    for file in sorted(text_dir.glob("*.txt")):
        if len(transcripts) >= limits.max_sources:
            raise limits.refuse(f"more than {limits.max_sources} transcripts", "max_sources", text_dir)
        data = read_regular_file(file, limits.max_source_bytes, "max_source_bytes", limits, root=text_dir)
        total += len(data)
        if total > limits.max_text_bytes:
            raise limits.refuse(
                f"transcripts larger than {limits.max_text_bytes} bytes together", "max_text_bytes", text_dir
            )
        try:
            transcripts[file.name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("transcript is not UTF-8", file) from None
    return transcripts


def sidecar_languages(text_dir: str | Path, names: Iterable[str], limits: ArchiveLimits = DEFAULT_LIMITS) -> list[str]:
    """The ``language`` that each transcript's ``<stem>.meta.yaml`` sidecar declares, where one does."""
    found = []
    for name in names:
        sidecar = Path(text_dir) / f"{Path(name).stem}.meta.yaml"
        if not sidecar.is_file():
            continue
        try:
            data = read_regular_file(sidecar, limits.max_sidecar_bytes, "max_sidecar_bytes", limits, root=text_dir)
            meta = yaml.safe_load(data.decode("utf-8"))
        except (InputError, yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError):
            continue  # a sidecar only chooses the names' language here; ingest reports bad sidecars
        if isinstance(meta, dict) and isinstance(meta.get("language"), str):
            found.append(meta["language"])
    return found


def export_qdpx_files(
    codings_path: str | Path,
    text_dir: str | Path,
    out_path: str | Path,
    codebook_path: str | Path | None = None,
    language: str | None = None,
) -> tuple[int, int]:
    """``imri export-qdpx``: a codings table (.csv/.parquet) + a folder of transcripts -> a .qdpx project.

    Codes are named in ``language`` (default: the language most transcripts' sidecars declare, else English).
    Returns the numbers of sources and codings written.
    """
    from pipeline.io import read_table

    codings_path = Path(codings_path)
    frame = read_table(codings_path)
    transcripts = load_transcripts(text_dir)
    if not transcripts:
        raise InputError("no transcripts (*.txt)", text_dir)
    book = load_codebook(codebook_path) if codebook_path is not None else None
    language = language or project_language(sidecar_languages(text_dir, transcripts))
    _, written = _export(transcripts, frame, out_path, book, None, None, codings_path, language, DEFAULT_LIMITS)
    return len(transcripts), written
