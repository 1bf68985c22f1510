"""``params.yaml``: one section per stage, as DVC expects. Missing file -> built-in defaults."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import ClassVar, Self

import yaml

from pipeline.errors import InputError
from pipeline.locations import shipped

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path | None = None) -> dict:
    """Read the parameters file: ``path``; by default ``params.yaml`` in the working directory when it exists,
    else the repository's (:func:`pipeline.locations.shipped`), else none (the built-in defaults)."""
    path = Path(path) if path else shipped(DEFAULT_PARAMS)
    if not path.exists():
        if path == DEFAULT_PARAMS:
            return {}
        raise InputError("no such parameters file", path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"parameters file is not valid UTF-8 YAML ({type(exc).__name__})", path) from None
    if not isinstance(params, dict):
        raise InputError("parameters file must be a YAML mapping of stage sections", path)
    return params


def label_coders(params: dict, given: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Whose codings are the labels: ``given`` (a ``--coder`` option), else ``train.coders``, else coder A."""
    return list(given or (params.get("train") or {}).get("coders") or ["A"])


class ParamsSection:
    """Mixin for the frozen dataclasses that hold one ``params.yaml`` section (``section`` names it)."""

    section: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, values: dict | None) -> Self:
        """Build from a ``params.yaml`` section, refusing unknown keys."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise InputError(f"unknown {cls.section} parameter(s): {', '.join(unknown)}")
        return cls(**values)
