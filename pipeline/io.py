"""Reading and writing the tables that pass between stages (Arrow/Parquet or CSV), atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pipeline.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A failure leaves neither a partial file nor a damaged earlier version behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results are ordinary files
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as ``.csv`` or ``.parquet`` (through Hugging Face ``datasets``/Arrow), atomically."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise InputError(f"output must end in {' or '.join(TABLE_SUFFIXES)}", path)
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    dataset = Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            dataset.to_parquet(str(tmp))
        else:
            dataset.to_csv(str(tmp), index=False)
    return path


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], path: str | Path) -> None:
    """Refuse a table that lacks any of ``columns``, naming what is missing and what was found."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"bad columns: expected {','.join(columns)}, missing {', '.join(missing)} "
            f"(found {','.join(map(str, frame.columns))})",
            path,
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` table written by :func:`write_table` (or by hand)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read table ({type(exc).__name__}: {str(exc)[:120]})", path) from None
    raise InputError(f"unknown table format {path.suffix!r} (use .csv or .parquet)", path)
