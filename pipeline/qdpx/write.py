"""Writing codings as a REFI-QDA project (.qdpx) that NVivo, ATLAS.ti, MAXQDA or QualCoder can open.

Used by ``imri export-qdpx`` (a codings table and a folder of transcripts), ``imri code`` and ``imri review
export``. Checks the codings against the transcripts (plain file names, spans inside the text), builds the
code tree (from the codebook, named in the project's language, each code carrying its id), and writes the
archive atomically with name-based GUIDs, so exporting the same data twice gives the same project."""

from __future__ import annotations

import os
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import yaml

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS
from pipeline.io import atomic_path
from pipeline.limits import DEFAULT_LIMITS, ArchiveLimits
from pipeline.qdpx.archive import read_regular_file
from pipeline.qdpx.refi import CATEGORY_MARK, IMPACT_MARK, PROJECT_NS

if TYPE_CHECKING:
    import pandas as pd


# Fixed namespace for the name-based GUIDs of exports, so re-exporting the same data gives the same GUIDs
# (tools such as NVivo merge projects by GUID).
_GUID_NAMESPACE = uuid.UUID("6f1c1d3e-5b7a-4c2e-9a43-2f0e8d1b7c55")


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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
