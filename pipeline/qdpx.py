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
``defusedxml`` (no DTD, so no external entities and no entity expansion), and output is built in a
staging folder inside ``--out`` and moved into place only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import yaml
from defusedxml import DefusedXmlException

from pipeline.codebook import Codebook, load_codebook, parse_codebook
from pipeline.corpus import CODING_COLUMNS, Coding, write_codings
from pipeline.errors import InputError
from pipeline.io import atomic_path

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


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits that refuse zip bombs. Only the entries that are needed are ever decompressed."""

    max_entries: int = 10_000
    max_total_bytes: int = 4 * 1024**3  # sum of the declared sizes of all entries (media sources included)
    max_entry_bytes: int = 256 * 1024**2  # any one entry that is read (project.qde, a text, a .docx part)
    max_ratio: float = 200.0  # uncompressed / compressed size of one entry...
    ratio_floor_bytes: int = 1024**2  # ...checked for entries larger than this


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class QdaCode:
    """One code of a REFI-QDA code tree; ``parts`` is its path from the root (its own name last)."""

    guid: str
    name: str
    parts: tuple[str, ...]
    codable: bool = True
    description: str = ""

    @property
    def path(self) -> str:
        """The code's path joined by ``/`` (the ``code`` column of codings.csv)."""
        return "/".join(self.parts)


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
        raise InputError(f"refused: {what} has {len(infos)} entries (limit {limits.max_entries})", path)
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
            raise InputError(
                f"refused: {what} would unpack to more than {limits.max_total_bytes} bytes (zip bomb?)", path
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
    too_big = f"refused: entry {info.filename!r} is larger than {limits.max_entry_bytes} bytes"
    if info.file_size > limits.max_entry_bytes:
        raise InputError(too_big, path)
    try:
        with zf.open(info) as handle:
            data = handle.read(limits.max_entry_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"cannot read archive entry {info.filename!r} ({type(exc).__name__}: {exc})", path) from None
    if len(data) > limits.max_entry_bytes:
        raise InputError(too_big, path)
    return data


def _parse_xml(data: bytes, what: str, path: Path) -> ET.Element:
    """Parse XML without DTDs (so without external entities or entity expansion); drop namespaces from tags."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InputError(
            f"refused: {what} declares a DTD or entities ({type(exc).__name__}); "
            "REFI-QDA files need none and they can read local files or expand without bound",
            path,
        ) from None
    except ET.ParseError as exc:
        raise InputError(f"{what} is not well-formed XML ({exc})", path) from None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]
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


def _parse_code_tree(codes_element: ET.Element | None, warnings: list[str]) -> list[QdaCode]:
    """The codes under a ``<Codes>`` element, in pre-order (iterative: deep trees cannot overflow the stack)."""
    if codes_element is None:
        return []
    codes: list[QdaCode] = []
    seen: set[str] = set()
    stack: list[tuple[ET.Element, tuple[str, ...]]] = [(e, ()) for e in reversed(codes_element.findall("Code"))]
    while stack:
        element, prefix = stack.pop()
        guid = normalize_guid(element.get("guid"))
        name = _clean_name(element.get("name")) or f"code-{guid[:8] or len(codes)}"
        parts = (*prefix, name)
        codable = (element.get("isCodable") or "true").strip().lower() in ("true", "1")
        description = (element.findtext("Description") or "").strip()
        if guid in seen:
            warnings.append(f"code GUID {guid} appears twice; the second ({'/'.join(parts)!r}) is ignored")
        else:
            seen.add(guid)
            codes.append(QdaCode(guid, name, parts, codable, description))
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
                if part.file_size > archive.limits.max_entry_bytes:
                    raise InputError(f"refused: {info.filename} part {part.filename!r} is too large", archive.path)
        document = docx.Document(io.BytesIO(data))
    except InputError:
        raise
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, SyntaxError, OSError) as exc:
        raise InputError(
            f"source {label!r}: cannot read {info.filename} ({type(exc).__name__})", archive.path
        ) from None
    return "\n".join(paragraph.text for paragraph in document.paragraphs)


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
            text = _decode_text(archive.read(info), label, archive.path)
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
    names = list(users.values())
    for guid, name in list(users.items()):
        if names.count(name) > 1:
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
        root = _parse_xml(archive.read(entry), entry.filename, path)
        if root.tag != "Project":
            raise InputError(f"{entry.filename}: root element is <{root.tag}>, not a REFI-QDA <Project>", path)
        return _parse_project(root, archive)


def _parse_project(root: ET.Element, archive: _Archive) -> QdaProject:
    warnings: list[str] = []
    users = _user_names(root)
    codes = _parse_code_tree(root.find("CodeBook/Codes"), warnings)
    by_guid = {code.guid: code for code in codes}
    default_user = normalize_guid(root.get("creatingUserGUID"))
    sources: dict[str, str] = {}
    codings: list[QdaCoding] = []
    seen: set[tuple[str, int, int, str, str]] = set()
    unknown_users: set[str] = set()
    skipped_types: dict[str, int] = {}

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
        guid = normalize_guid(source.get("guid"))
        reference = source.get("plainTextPath") or source.get("richTextPath") or ""
        stem = Path(_SCHEME.sub(r"\2", reference).replace("\\", "/")).stem
        name = _clean_name(source.get("name")) or stem or guid or f"source-{len(sources) + 1}"
        key, n = name, 2
        while key in sources:
            key, n = f"{name} ({n})", n + 1
        text = _source_text(source, archive, key, warnings)
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
                row = (key, start, end, code.path, coder)
                if row in seen:
                    duplicates += 1
                    continue
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
    if path.stat().st_size > limits.max_entry_bytes:
        raise InputError(f"refused: larger than {limits.max_entry_bytes} bytes", path)
    root = _parse_xml(path.read_bytes(), path.name, path)
    if root.tag != "CodeBook":
        raise InputError(f"root element is <{root.tag}>, not a REFI-QDA <CodeBook>", path)
    warnings: list[str] = []
    codes = _parse_code_tree(root.find("Codes"), warnings)
    if not codes:
        raise InputError("the codebook holds no codes", path)
    return path.stem, codes, warnings


# --- our codebook format -------------------------------------------------------------------------------


def _slug(value: str) -> str:
    return re.sub(r"\W+", "_", value.casefold()).strip("_") or "qdpx"


def codebook_data(codes: list[QdaCode], codebook_id: str, note: str = "", used: set[str] | None = None) -> dict | None:
    """Our codebook (a YAML-ready dict) for a REFI-QDA code tree, or None when there is no code to keep.

    Each codable code (or code used by a coding) becomes an impact whose id is its path; its category
    is the top-level code of that path; names are the code's name in both languages.
    """
    used = used or set()
    root_description = {code.parts[0]: code.description for code in codes if len(code.parts) == 1}
    categories: dict[str, dict[str, str]] = {}
    impacts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for code in codes:
        if not (code.codable or code.path in used) or code.path in seen:
            continue
        seen.add(code.path)
        top = code.parts[0]
        categories.setdefault(
            top, {"id": top, "name_en": top, "name_fr": top, "definition": root_description.get(top, "")}
        )
        impacts.append(
            {
                "id": code.path,
                "category": top,
                "kind": "innovation",
                "name_en": code.name,
                "name_fr": code.name,
                "definition": code.description,
                "include": [],
                "exclude": [],
            }
        )
    if not impacts:
        return None
    data: dict[str, Any] = {"id": _slug(codebook_id), "version": "1"}
    if note:
        data["source"] = note
    data["categories"] = list(categories.values())
    data["impacts"] = impacts
    parse_codebook(data, codebook_id)  # what we write must load
    return data


def _dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


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
    """``{name: safe unique file name ending in .txt}``; unique even on case-insensitive file systems."""
    taken: set[str] = set()
    result: dict[str, str] = {}
    for name in names:
        base = safe_file_name(name)
        candidate, n = base, 2
        while candidate.casefold() in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate.casefold())
        result[name] = f"{candidate}.txt"
    return result


@contextlib.contextmanager
def _staged_output(out_dir: Path, owned: tuple[str, ...]) -> Iterator[Path]:
    """Yield an empty staging folder inside ``out_dir``; on success move what it holds into ``out_dir``.

    The ``owned`` names are replaced as a whole (earlier ones not staged again are removed so the folder
    stays consistent). On failure nothing changes in ``out_dir``, and an ``out_dir`` this call created is
    removed again.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".imri-staging-", dir=out_dir))
    try:
        yield stage
        trash = Path(tempfile.mkdtemp(prefix=".imri-replaced-", dir=out_dir))
        try:
            for name in owned:
                target = out_dir / name
                if target.exists() or target.is_symlink():
                    os.replace(target, trash / name)  # a symlink is moved, never followed
                if (stage / name).exists():
                    os.replace(stage / name, target)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _load_code_map(code_map: str | Path | Mapping[str, Any]) -> tuple[dict[str, str | None], Codebook, Path | None]:
    """Read a code map: ``{project code path or name: codebook id or null}``, or ``{codebook: FILE, codes: {...}}``.

    The ids must be impacts of the map's codebook (the bundled IMRI v1 one unless ``codebook`` names another,
    relative to the map file). ``null`` drops a code on purpose.
    """
    where: Path | None = None
    if isinstance(code_map, str | Path):
        where = Path(code_map)
        try:
            data = yaml.safe_load(where.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read code map ({exc.strerror})", where) from None
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"code map is not valid UTF-8 YAML ({type(exc).__name__})", where) from None
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
    by_path = {code.path: code for code in project.codes}
    target: dict[str, str | None] = {}
    unmapped: dict[str, int] = {}
    used_keys: set[str] = set()
    for path, code in by_path.items():
        for key in (path, code.name):
            if key in mapping:
                target[path] = mapping[key]
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
) -> ImportResult:
    """Import a .qdpx project into ``out_dir``: ``transcripts/<name>.txt``, ``codings.csv``, ``codebook.yaml``.

    ``codings.csv`` names each transcript by its written file name, each code by its path in the code
    tree (or, with ``code_map``, by the codebook id it maps to; unmapped codes are skipped with a warning)
    and each coder by the user's name. Texts are written exactly as stored (CRLF kept), so the offsets hold.
    Without a code map, ``codebook.yaml`` is built from the project's codes (not written when it has none);
    with one, it is a copy of the map's codebook. Nothing is written unless the whole import succeeds.
    """
    path, out_dir = Path(path), Path(out_dir)
    project = read_qdpx(path, limits)
    warnings = list(project.warnings)
    names = unique_file_names(list(project.sources))
    codings = [Coding(names[c.source], c.start, c.end, c.code, c.coder) for c in project.codings]
    codebook_text: str | None = None
    if code_map is not None:
        mapping, book, _ = _load_code_map(code_map)
        codings = _apply_code_map(project, codings, mapping, warnings)
        codebook_text = Path(book.path).read_text(encoding="utf-8") if book.path else None
    else:
        note = f"imported from {path.name}" + (f" ({project.origin})" if project.origin else "")
        data = codebook_data(project.codes, project.name, note, {c.code for c in codings})
        if data is None:
            warnings.append("the project has no codes: no codebook.yaml written")
        else:
            codebook_text = _dump_yaml(data)
    with _staged_output(out_dir, IMPORT_OUTPUTS) as stage:
        transcripts = stage / "transcripts"
        transcripts.mkdir()
        for key, text in project.sources.items():
            (transcripts / names[key]).write_text(text, encoding="utf-8", newline="")
        write_codings(codings, stage / "codings.csv")
        if codebook_text is not None:
            (stage / "codebook.yaml").write_text(codebook_text, encoding="utf-8")
    return ImportResult(
        out_dir=out_dir,
        sources=len(project.sources),
        codes=len(project.codes),
        codings=len(codings),
        transcripts=names,
        warnings=warnings,
        codebook_written=codebook_text is not None,
    )


def import_qdc(path: str | Path, out_dir: str | Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ImportResult:
    """Import a REFI-QDA codebook (.qdc) as ``out_dir/codebook.yaml`` (our format; loads with ``load_codebook``)."""
    path, out_dir = Path(path), Path(out_dir)
    name, codes, warnings = read_qdc(path, limits)
    data = codebook_data(codes, name, f"imported from {path.name}")
    if data is None:
        raise InputError("the codebook holds no codable code", path)
    with _staged_output(out_dir, ("codebook.yaml",)) as stage:
        (stage / "codebook.yaml").write_text(_dump_yaml(data), encoding="utf-8")
    return ImportResult(
        out_dir=out_dir, sources=0, codes=len(codes), codings=0, warnings=warnings, codebook_written=True
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


def _coding_rows(
    codings: pd.DataFrame, transcripts: Mapping[str, str], where: str | Path | None
) -> list[tuple[str, int, int, str, str, str | None]]:
    """Checked, de-duplicated rows ``(source, start, end, code, coder, description)``."""
    import pandas as pd

    missing = [c for c in CODING_COLUMNS if c not in codings.columns]
    if missing:
        raise InputError(f"codings lack column(s) {', '.join(missing)} (need {','.join(CODING_COLUMNS)})", where)
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
        key = (source, start, end, code, coder)
        if key in seen:
            continue
        seen.add(key)
        description = row["description"] if has_description else None
        description = None if description is None or pd.isna(description) else str(description).strip() or None
        rows.append((*key, description))
    return rows


def export_qdpx(
    transcripts: Mapping[str, str],
    codings: pd.DataFrame,
    out_path: str | Path,
    codebook: Codebook | None = None,
    *,
    project_name: str | None = None,
    origin: str | None = None,
    where: str | Path | None = None,
) -> Path:
    """Write a REFI-QDA project (``.qdpx``) that NVivo, ATLAS.ti, MAXQDA or QualCoder can open.

    ``transcripts`` maps each source name (e.g. the transcript file name) to its text; every one becomes a
    text source, coded or not. ``codings`` has columns ``source,start,end,code,coder`` and optionally
    ``description`` (e.g. a model's probability), offsets in code points of the text. Each coder becomes a
    user; each code a code of the code tree (``a/b`` nests ``b`` under ``a``), described from ``codebook``
    when given (its categories become code sets); each coding a coding by its coder inside a selection whose
    ``Description`` holds the coding's description (REFI-QDA codings have none of their own).
    ``where`` names the codings in error messages. The file is written atomically; returns its path.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".qdpx":
        raise InputError("the project file must end in .qdpx", out_path)
    rows = _coding_rows(codings, transcripts, where)
    used = {row[3] for row in rows}
    if codebook is not None:
        codebook.check_codes(used, where)
        code_ids = [*codebook.impact_ids, *sorted(used - set(codebook.impact_ids))]
    else:
        code_ids = sorted(used)
    for code_id in code_ids:
        if any(not part.strip() for part in code_id.split("/")):
            raise InputError(f"code {code_id!r} has an empty path segment", where)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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

    code_guid = {}
    if code_ids:
        codes_element = _el(_el(project, "CodeBook"), "Codes")
        nodes: dict[str, ET.Element] = {}
        wanted = set(code_ids)
        described = set(codebook.impact_ids) if codebook is not None else set()
        for code_id in code_ids:
            parts = code_id.split("/")
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                if path in nodes:
                    continue
                parent = nodes["/".join(parts[: depth - 1])] if depth > 1 else codes_element
                code_guid[path] = _guid_for("code", path)
                nodes[path] = _el(
                    parent,
                    "Code",
                    guid=code_guid[path],
                    name=parts[depth - 1],
                    isCodable="true" if path in wanted else "false",
                )
            if code_id in described:
                impact = codebook.impact(code_id)
                name = impact.name.get("en", "")
                shown = "" if name == code_id.rsplit("/", 1)[-1] else name  # the code's own name says it already
                text = "\n\n".join(t for t in (shown, impact.definition) if t)
                if text:
                    nodes[code_id].insert(0, _el(None, "Description", text))  # Description comes first

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

    if codebook is not None:
        sets: list[tuple[Any, list[str]]] = []
        for category in codebook.categories:
            members = [i.id for i in codebook.impacts if i.category == category.id]
            # a set would only repeat the tree when every member already sits under a code of that name
            if members and not all(m.startswith(f"{category.id}/") or m == category.id for m in members):
                sets.append((category, members))
        if sets:
            sets_element = _el(project, "Sets")
            for category, members in sets:
                set_element = _el(
                    sets_element, "Set", guid=_guid_for("set", category.id), name=category.name.get("en") or category.id
                )
                if category.definition:
                    _el(set_element, "Description", category.definition)
                for member in members:
                    _el(set_element, "MemberCode", targetGUID=code_guid[member])

    xml = ET.tostring(project, encoding="utf-8", xml_declaration=True)
    with atomic_path(out_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.qde", xml)
        for name, data in files.items():
            zf.writestr(name, data)
    return out_path


def load_transcripts(text_dir: str | Path) -> dict[str, str]:
    """``{file name: text}`` for every ``*.txt`` in ``text_dir``, read exactly (UTF-8, line endings kept)."""
    text_dir = Path(text_dir)
    if not text_dir.is_dir():
        raise InputError("no such folder", text_dir)
    transcripts: dict[str, str] = {}
    for file in sorted(text_dir.glob("*.txt")):
        try:
            transcripts[file.name] = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("transcript is not UTF-8", file) from None
        except OSError as exc:
            raise InputError(f"cannot read transcript ({exc.strerror})", file) from None
    return transcripts


def export_qdpx_files(
    codings_path: str | Path, text_dir: str | Path, out_path: str | Path, codebook_path: str | Path | None = None
) -> tuple[int, int]:
    """``imri export-qdpx``: a codings table (.csv/.parquet) + a folder of transcripts -> a .qdpx project.

    Returns the numbers of sources and codings written.
    """
    from pipeline.io import read_table

    codings_path = Path(codings_path)
    frame = read_table(codings_path)
    transcripts = load_transcripts(text_dir)
    if not transcripts:
        raise InputError("no transcripts (*.txt)", text_dir)
    book = load_codebook(codebook_path) if codebook_path is not None else None
    export_qdpx(transcripts, frame, out_path, book, where=codings_path)
    return len(transcripts), len(_coding_rows(frame, transcripts, codings_path))
