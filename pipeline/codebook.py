"""The codebook: categories and impacts, loaded from YAML and validated.

Nothing else in the pipeline knows IMRI ids: every stage takes a :class:`Codebook`,
so any codebook in the same format works.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.errors import InputError

DEFAULT_CODEBOOK = Path(__file__).resolve().parent.parent / "configs" / "codebook" / "imri_v1.yaml"
KINDS = ("innovation", "process")
LANGUAGES = ("en", "fr")


@dataclass(frozen=True)
class Category:
    """A group of impacts (e.g. *Ways of being*)."""

    id: str
    name: dict[str, str]
    definition: str = ""
    definition_fr: str = ""


@dataclass(frozen=True)
class Impact:
    """One code of the codebook, with its definition and include/exclude hints."""

    id: str
    category: str
    kind: str
    name: dict[str, str]
    definition: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # French versions of the definition and hints (``definition_fr`` ... in the YAML); empty: none given
    definition_fr: str = ""
    include_fr: tuple[str, ...] = ()
    exclude_fr: tuple[str, ...] = ()

    def texts(self, language: str) -> list[str]:
        """What describes the impact in ``language`` (``en``/``fr``): its name, ``name: definition`` and
        include hints; a French text missing from the codebook falls back to the English one."""
        french = language == "fr"
        name = self.name.get(language) or self.name["en"]
        definition = (self.definition_fr if french else "") or self.definition
        include = (self.include_fr if french else ()) or self.include
        return [name, f"{name}: {definition}", *include]


@dataclass(frozen=True)
class Codebook:
    """A validated codebook. ``impacts`` keeps the file's order, which fixes column order downstream."""

    id: str
    version: str
    categories: tuple[Category, ...]
    impacts: tuple[Impact, ...]
    general_rules: tuple[str, ...] = ()
    sha256: str = ""
    path: str | None = field(default=None, compare=False)

    @property
    def impact_ids(self) -> list[str]:
        return [impact.id for impact in self.impacts]

    @property
    def category_ids(self) -> list[str]:
        return [category.id for category in self.categories]

    def card(self) -> dict:
        """What a model records of the codebook it was trained with (``model.json: codebook``)."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256, "impact_ids": self.impact_ids}

    def impact(self, impact_id: str) -> Impact:
        for impact in self.impacts:
            if impact.id == impact_id:
                return impact
        raise KeyError(impact_id)

    def category_of(self, impact_id: str) -> str:
        return self.impact(impact_id).category

    def check_codes(self, codes: list[str] | set[str], where: str | Path | None = None) -> None:
        """Raise :class:`InputError` naming every code that is not an impact of this codebook."""
        unknown = sorted(set(codes) - set(self.impact_ids))
        if unknown:
            raise InputError(
                f"{len(unknown)} code(s) not in codebook {self.id} v{self.version}: {', '.join(unknown[:10])}",
                where,
            )


def _names(entry: dict, what: str, problems: list[str]) -> dict[str, str]:
    names = {lang: entry.get(f"name_{lang}") for lang in LANGUAGES}
    for lang, name in names.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{what} {entry.get('id')!r}: missing name_{lang}")
    return {lang: str(name or "") for lang, name in names.items()}


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def parse_codebook(data: object, path: str | Path | None = None, sha256: str = "") -> Codebook:
    """Validate a parsed YAML document and build a :class:`Codebook`.

    Every problem is collected and reported at once, each with the offending id.
    """
    if not isinstance(data, dict):
        raise InputError("codebook must be a YAML mapping with 'categories' and 'impacts'", path)
    problems: list[str] = []
    categories: list[Category] = []
    for entry in data.get("categories") or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            problems.append(f"category without an id: {entry!r:.60}")
            continue
        categories.append(
            Category(
                entry["id"],
                _names(entry, "category", problems),
                str(entry.get("definition", "")),
                str(entry.get("definition_fr", "")),
            )
        )
    impacts: list[Impact] = []
    for entry in data.get("impacts") or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            problems.append(f"impact without an id: {entry!r:.60}")
            continue
        impacts.append(
            Impact(
                id=str(entry["id"]),
                category=str(entry.get("category", "")),
                kind=str(entry.get("kind", "")),
                name=_names(entry, "impact", problems),
                definition=str(entry.get("definition", "")),
                include=_strings(entry.get("include")),
                exclude=_strings(entry.get("exclude")),
                definition_fr=str(entry.get("definition_fr", "")),
                include_fr=_strings(entry.get("include_fr")),
                exclude_fr=_strings(entry.get("exclude_fr")),
            )
        )
    if not categories:
        problems.append("no categories")
    if not impacts:
        problems.append("no impacts")
    for kind, ids in (("category", [c.id for c in categories]), ("impact", [i.id for i in impacts])):
        for dup in sorted(i for i, n in Counter(ids).items() if n > 1):  # linear: imported codebooks can be large
            problems.append(f"duplicate {kind} id {dup!r}")
    category_ids = {c.id for c in categories}
    for impact in impacts:
        if impact.category not in category_ids:
            problems.append(f"impact {impact.id!r}: unknown category {impact.category!r}")
        if impact.kind not in KINDS:
            problems.append(f"impact {impact.id!r}: kind must be one of {'/'.join(KINDS)}, not {impact.kind!r}")
    if problems:
        raise InputError("invalid codebook: " + "; ".join(problems), path)
    return Codebook(
        id=str(data.get("id") or Path(str(path or "codebook")).stem),
        version=str(data.get("version", "1")),
        categories=tuple(categories),
        impacts=tuple(impacts),
        general_rules=_strings(data.get("general_rules")),
        sha256=sha256,
        path=str(path) if path else None,
    )


def load_codebook(path: str | Path | None = None) -> Codebook:
    """Load and validate a codebook YAML file (the bundled IMRI v1 codebook by default)."""
    path = Path(path) if path else DEFAULT_CODEBOOK
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read codebook ({exc.strerror})", path) from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"codebook is not valid UTF-8 YAML ({type(exc).__name__})", path) from None
    return parse_codebook(data, path, hashlib.sha256(raw).hexdigest())
