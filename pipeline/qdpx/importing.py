"""Importing a REFI-QDA project or codebook into a folder: transcripts, codings.csv and codebook.yaml.

Used by ``imri import-qdpx`` and ``imri import-qdc``. Names each source by a file name safe on every system,
optionally rolls the code tree up to a level or maps its codes onto a codebook (a code map), and builds the
folder beside ``--out``, swapping it in whole only when everything succeeded; a folder that is not empty is
only replaced with ``force``."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError
from pipeline.ingest import Coding, write_codings
from pipeline.io import atomic_path, build_folder, read_input
from pipeline.limits import DEFAULT_LIMITS, ArchiveLimits
from pipeline.qdpx.read import QdaProject, clean_name, codebook_data, read_qdc, read_qdpx, roll_up
from pipeline.safe_yaml import load_yaml

IMPORT_OUTPUTS = ("transcripts", "codings.csv", "codebook.yaml")
_UNSAFE_FILE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


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


def _dump_yaml(data: dict) -> str:
    # libyaml's emitter when PyYAML has it: the pure-Python one takes ~25 s for a codebook at max_codes
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False, width=100)


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
        mapping[clean_name(str(key)) if "/" not in str(key) else str(key).strip()] = (
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
