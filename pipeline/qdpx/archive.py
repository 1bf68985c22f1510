"""REFI-QDA files from outside, opened within bounds: archive entries, paths and XML checked before use.

Archives come from outside, so reading is defensive: every entry is checked (no absolute paths, no
``..``, no symlinks, no encryption, size and compression-ratio limits) before anything is read, only
the entries that are needed are decompressed (into memory, with a hard cap), XML is parsed with
``defusedxml`` (no DTD, so no external entities and no entity expansion), and every size, count and
depth is bounded (:class:`ArchiveLimits`). Plain files (a .qdc codebook, a folder's transcripts) are read
the same way: regular files only, never past their bound."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from pipeline.errors import InputError
from pipeline.limits import DEFAULT_LIMITS, ArchiveLimits

# the scheme of a source's plainTextPath/richTextPath: internal://, relative:// or absolute://
PATH_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)


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


def check_archive(zf: zipfile.ZipFile, path: Path, limits: ArchiveLimits, what: str = "archive") -> None:
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


def parse_xml(data: bytes, what: str, path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ET.Element:
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


class CheckedArchive:
    """The entries of a checked archive, looked up the way real exports name them."""

    def __init__(self, zf: zipfile.ZipFile, path: Path, limits: ArchiveLimits) -> None:
        self.zf, self.path, self.limits = zf, path, limits
        self.by_key = {info.filename.casefold(): info for info in zf.infolist() if not info.is_dir()}

    def read(self, info: zipfile.ZipInfo) -> bytes:
        return _read_entry(self.zf, info, self.path, self.limits)

    def locate(self, reference: str, label: str) -> zipfile.ZipInfo | None:
        """The entry a ``plainTextPath``/``richTextPath`` points at; None if it is outside the archive or absent."""
        match = PATH_SCHEME.match(reference.strip())
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
