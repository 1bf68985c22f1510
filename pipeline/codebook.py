"""The codebook: categories and impacts, loaded from YAML and validated.

Nothing else in the pipeline knows IMRI ids: every stage takes a :class:`Codebook`,
so any codebook in the same format works.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import limits
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
    def impact_ids_key(self) -> str:
        """The impact ids as one string (with ``sha256``, what identifies a codebook parsed without a file)."""
        return "\n".join(self.impact_ids)

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

    def with_names(self, text: str, language: str = "en") -> str:
        """``text`` (a definition or hint) with the impact's name beside each impact id it mentions (``-> id``,
        or an id with ``_`` anywhere): ``Name [impact_id]``, the name in ``language``; the rest left as it is."""
        ids = sorted(self.impact_ids, key=len, reverse=True)
        pattern = re.compile(r"(->\s*)?(?<![\w\[])(" + "|".join(map(re.escape, ids)) + r")(?![\w\]])")

        def named(match: re.Match) -> str:
            arrow, ident = match.group(1) or "", match.group(2)
            if not arrow and "_" not in ident:  # a plain word that happens to be an id: leave it
                return match.group(0)
            impact = self.impact(ident)
            return f"{arrow}{impact.name.get(language) or impact.name['en']} [{ident}]"

        return pattern.sub(named, text)

    def check_codes(self, codes: list[str] | set[str], where: str | Path | None = None) -> None:
        """Raise :class:`InputError` naming every code that is not an impact of this codebook."""
        unknown = sorted(set(codes) - set(self.impact_ids))
        if unknown:
            raise InputError(
                f"{len(unknown)} code(s) not in codebook {self.id} v{self.version}: {', '.join(unknown[:10])}",
                where,
            )


def id_problem(value: str) -> str | None:
    """Why ``value`` can't be a code or category id, or None when it can.

    An id is any text of 1 to ``MAX_CODE_ID_CHARS`` characters without ``;`` (the ``codes`` column of
    ``segments.csv`` joins ids with it), without control, format or line-separator characters (they
    would break CSV rows and one-line messages), and without spaces at either end (they are lost on the
    way through a spreadsheet). Names such as ``Ways of being/Growth`` (REFI-QDA code paths) are ids.
    """
    if not value.strip():
        return "is empty"
    if len(value) > limits.MAX_CODE_ID_CHARS:
        return f"is {len(value):,} characters, over the limit of {limits.MAX_CODE_ID_CHARS} (MAX_CODE_ID_CHARS)"
    if ";" in value:
        return "contains ';' (the codes column separates ids with ';')"
    if any(unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp") for char in value):
        return "contains a control or invisible character"
    if value != value.strip():
        return "starts or ends with a space"
    return None


def as_id(value: str) -> str:
    """``value`` itself when it is a valid id (:func:`id_problem`), else a valid id made from it.

    For ids this program makes from other tools' names (REFI-QDA code paths): ``;`` becomes ``,``,
    control and invisible characters become spaces, spaces are collapsed, the text is cut to fit, and
    a short digest of the original keeps two names that clean up alike apart.
    """
    if id_problem(value) is None:
        return value
    cleaned = "".join(
        " " if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") else c for c in value
    )
    cleaned = " ".join(cleaned.replace(";", ",").split())[: limits.MAX_CODE_ID_CHARS - 8].strip() or "code"
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{cleaned} ~{digest}"


def _shown(value: object) -> str:
    """An id for a message: repr, cut short (it may be hostile: long, or with control characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _id(entry: dict, what: str, problems: list[str]) -> str | None:
    value = entry.get("id")
    if value is None or isinstance(value, dict | list | bool):
        problems.append(f"{what} without an id: {_shown(entry)}")
        return None
    value = str(value)
    problem = id_problem(value)
    if problem:
        problems.append(f"{what} id {_shown(value)} {problem}")
        return None
    return value


def _names(entry: dict, what: str, ident: str, problems: list[str]) -> dict[str, str]:
    names = {lang: entry.get(f"name_{lang}") for lang in LANGUAGES}
    for lang, name in names.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{what} {ident!r}: missing name_{lang}")
    return {lang: name if isinstance(name, str) else "" for lang, name in names.items()}


def _text(entry: dict, key: str, what: str, problems: list[str]) -> str:
    value = entry.get(key, "")
    if value is None:
        return ""
    if isinstance(value, dict | list):
        problems.append(f"{what}: {key} must be text")
        return ""
    return str(value)


def _strings(value: object, what: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
        problems.append(f"{what} must be a list of texts")
        return ()
    return tuple(str(v) for v in value)


def _entries(data: dict, key: str, path: str | Path | None) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise InputError(f"invalid codebook: {key} must be a list", path)
    limits.check(len(value), "MAX_CODEBOOK_CODES", f"the number of {key}", path)
    return value


def parse_codebook(data: object, path: str | Path | None = None, sha256: str = "") -> Codebook:
    """Validate a parsed YAML document and build a :class:`Codebook`.

    Every problem is collected and reported at once (the first 20, on one line), each with the
    offending id. Ids must pass :func:`id_problem`; categories, impacts and their hints are bounded by
    :mod:`pipeline.limits` (``MAX_CODEBOOK_CODES``, ``MAX_CODEBOOK_HINTS``).
    """
    if not isinstance(data, dict):
        raise InputError("codebook must be a YAML mapping with 'categories' and 'impacts'", path)
    problems: list[str] = []
    categories: list[Category] = []
    for entry in _entries(data, "categories", path):
        ident = _id(entry, "category", problems) if isinstance(entry, dict) else None
        if ident is None:
            if not isinstance(entry, dict):
                problems.append(f"category without an id: {_shown(entry)}")
            continue
        what = f"category {ident!r}"
        categories.append(
            Category(
                ident,
                _names(entry, "category", ident, problems),
                _text(entry, "definition", what, problems),
                _text(entry, "definition_fr", what, problems),
            )
        )
    impacts: list[Impact] = []
    hints = 0
    for entry in _entries(data, "impacts", path):
        ident = _id(entry, "impact", problems) if isinstance(entry, dict) else None
        if ident is None:
            if not isinstance(entry, dict):
                problems.append(f"impact without an id: {_shown(entry)}")
            continue
        what = f"impact {ident!r}"
        impact = Impact(
            id=ident,
            category=_text(entry, "category", what, problems),
            kind=_text(entry, "kind", what, problems),
            name=_names(entry, "impact", ident, problems),
            definition=_text(entry, "definition", what, problems),
            include=_strings(entry.get("include"), f"{what}: include", problems),
            exclude=_strings(entry.get("exclude"), f"{what}: exclude", problems),
            definition_fr=_text(entry, "definition_fr", what, problems),
            include_fr=_strings(entry.get("include_fr"), f"{what}: include_fr", problems),
            exclude_fr=_strings(entry.get("exclude_fr"), f"{what}: exclude_fr", problems),
        )
        hints += len(impact.include) + len(impact.exclude) + len(impact.include_fr) + len(impact.exclude_fr)
        limits.check(hints, "MAX_CODEBOOK_HINTS", "the number of include and exclude hints", path)
        impacts.append(impact)
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
            problems.append(f"impact {impact.id!r}: unknown category {_shown(impact.category)}")
        if impact.kind not in KINDS:
            problems.append(f"impact {impact.id!r}: kind must be one of {'/'.join(KINDS)}, not {_shown(impact.kind)}")
    book_id = data.get("id")
    if book_id is not None and (isinstance(book_id, dict | list) or id_problem(str(book_id))):
        problems.append(f"codebook id {_shown(book_id)} {id_problem(str(book_id)) or 'must be text'}")
    version = _text(data, "version", "codebook", problems) or "1"
    general_rules = _strings(data.get("general_rules"), "general_rules", problems)
    if problems:
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError("invalid codebook: " + "; ".join(problems[:20]) + more, path)
    return Codebook(
        id=str(book_id or Path(str(path or "codebook")).stem),
        version=version,
        categories=tuple(categories),
        impacts=tuple(impacts),
        general_rules=general_rules,
        sha256=sha256,
        path=str(path) if path else None,
    )


def load_codebook(path: str | Path | None = None) -> Codebook:
    """Load and validate a codebook YAML file (the bundled IMRI v1 codebook by default).

    The file is read as transcripts are (:func:`pipeline.io.read_input`: a regular file, opened without
    blocking, at most ``MAX_CODEBOOK_BYTES``) and parsed within ``MAX_CODEBOOK_DEPTH`` and
    ``MAX_CODEBOOK_EXPANDED`` (:func:`pipeline.safe_yaml.load_yaml`), so a FIFO, a device, an alias
    bomb or deep nesting is one line of :class:`InputError`.
    """
    from pipeline.io import read_input
    from pipeline.safe_yaml import load_yaml

    path = Path(path) if path else DEFAULT_CODEBOOK
    raw = read_input(path, "MAX_CODEBOOK_BYTES")
    data = load_yaml(raw, path, "codebook", "MAX_CODEBOOK_DEPTH", "MAX_CODEBOOK_EXPANDED")
    return parse_codebook(data, path, hashlib.sha256(raw).hexdigest())
