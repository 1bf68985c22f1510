"""Reading a REFI-QDA project (.qdpx) or codebook (.qdc): its sources, code tree, users and codings.

A ``.qdpx`` file is a zip archive holding ``project.qde`` (XML, namespace ``urn:QDA-XML:project:1.0``)
and a ``sources/`` folder. Text sources keep their text in ``sources/<file>.txt`` (``plainTextPath``
``internal://<file>.txt``) or inline in ``PlainTextContent``; NVivo for Mac may leave the .txt blank
and hold the text only in the ``.docx`` of ``richTextPath``. A ``PlainTextSelection`` spans
``[startPosition, endPosition)`` in Unicode code points of the text as stored (CRLF included) and
carries ``Coding`` elements, each pointing at a code of the ``CodeBook`` and at the user who coded it.

Everything is read within bounds through :mod:`pipeline.qdpx.archive`. Also here: our codebook made from a
project's code tree (:func:`codebook_data`) and the code tree cut at a level (:func:`roll_up`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from pipeline.codebook import as_id, parse_codebook
from pipeline.errors import InputError
from pipeline.limits import DEFAULT_LIMITS, MAX_CODEBOOK_CODES, ArchiveLimits
from pipeline.qdpx.archive import PATH_SCHEME, CheckedArchive, check_archive, parse_xml, read_regular_file
from pipeline.qdpx.refi import CATEGORY_MARK, IMPACT_MARK

_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
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


# --- reading ------------------------------------------------------------------------------------------


def normalize_guid(value: str | None) -> str:
    """A GUID in one spelling (lower case, no braces), so ``{ABC...}`` and ``abc...`` match."""
    value = (value or "").strip()
    match = _GUID.match(value)
    return match.group(1).lower() if match else value.lower()


def clean_name(value: str | None) -> str:
    """A name of a project (code, user, source) on one line, with no ``/`` inside it.

    ``/`` separates the levels of a code path, so a ``/`` in a name becomes ``\u2215`` (division slash).
    """
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
        name = clean_name(element.get("name")) or f"code-{guid[:8] or len(codes)}"
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


def _decode_text(data: bytes, label: str, path: Path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"source {label!r}: text is not UTF-8 (REFI-QDA requires UTF-8)", path) from None
    return text.removeprefix("\ufeff")


def _docx_text(archive: CheckedArchive, info: zipfile.ZipInfo, label: str) -> str:
    """The text of a .docx inside the archive (itself a zip: checked with the same limits)."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    data = archive.read(info)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            check_archive(inner, archive.path, archive.limits, what=f"{info.filename}")
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


def _text_entry(archive: CheckedArchive, info: zipfile.ZipInfo, label: str) -> str:
    if info.file_size > archive.limits.max_source_bytes:
        raise archive.limits.refuse(
            f"source {label!r} is larger than {archive.limits.max_source_bytes} bytes", "max_source_bytes", archive.path
        )
    return _decode_text(archive.read(info), label, archive.path)


def _source_text(source: ET.Element, archive: CheckedArchive, label: str, warnings: list[str]) -> str:
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


def _find_project_entry(archive: CheckedArchive) -> zipfile.ZipInfo:
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
        users[guid] = clean_name(user.get("name")) or clean_name(user.get("id")) or guid
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
        check_archive(zf, path, limits)
        archive = CheckedArchive(zf, path, limits)
        entry = _find_project_entry(archive)
        root = parse_xml(archive.read(entry), entry.filename, path, limits)
        if root.tag != "Project":
            raise InputError(f"{entry.filename}: root element is <{root.tag}>, not a REFI-QDA <Project>", path)
        return _parse_project(root, archive)


def _parse_project(root: ET.Element, archive: CheckedArchive) -> QdaProject:
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
        stem = Path(PATH_SCHEME.sub(r"\2", reference).replace("\\", "/")).stem
        name = clean_name(source.get("name")) or stem or guid or f"source-{len(sources) + 1}"
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
        name=clean_name(root.get("name")) or archive.path.stem,
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
    root = parse_xml(data, path.name, path, limits)
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
