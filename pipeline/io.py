"""Reading and writing the tables that pass between stages (Arrow/Parquet or CSV), atomically."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from pipeline import limits
from pipeline.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet")
_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_input(path: str | Path, limit_name: str) -> bytes:
    """The bytes of a user's input file: a regular file no larger than the bound ``limit_name``.

    ``limit_name`` names a size bound of :mod:`pipeline.limits` (``"MAX_TRANSCRIPT_BYTES"``). The
    file is opened without blocking (a FIFO never hangs the read) and checked on the open
    descriptor, so a link to a device or a FIFO is refused however it is named.
    """
    limit = getattr(limits, limit_name)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("not a regular file (a folder)", path) from None
    except OSError as exc:
        raise InputError(f"cannot open ({exc.strerror or type(exc).__name__})", path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a plain file")
            raise InputError(f"not a regular file ({kind})", path)
        limits.check(os.fstat(fd).st_size, limit_name, "file size", path, "bytes")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or type(exc).__name__})", path) from None
    finally:
        os.close(fd)
    limits.check(size, limit_name, "file size", path, "bytes")  # it grew while being read
    return b"".join(chunks)


def check_output_path(path: str | Path, kind: str = "file", writable: bool = True) -> Path:
    """Refuse an output path that cannot be written: one under a file, of the wrong kind, or not writable.

    ``kind`` is ``"file"`` (an existing folder there is an error) or ``"folder"`` (an existing file
    there is an error). Called before any work, so a bad ``--out`` fails in a second, not after it
    (``imri code`` loaded its model first). ``writable``: also make and remove an empty folder where the
    output will be built (the nearest existing folder above it), the one test that holds for every
    user and file system (root on a read-only mount, a network share, permissions).
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise InputError("is a folder; give a file name", path)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InputError("is a file, not a folder", path)
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(f"cannot write here: {parent} is a file, not a folder", path)
            if writable:
                try:
                    os.rmdir(tempfile.mkdtemp(prefix=".imri-probe-", dir=parent))
                except OSError as exc:
                    raise InputError(f"cannot write here ({exc.strerror or type(exc).__name__})", path) from None
            break
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A failure leaves neither a partial file nor a damaged earlier version behind.
    """
    path = check_output_path(path, writable=False)  # making the temporary file below is the test
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder ({exc.strerror or type(exc).__name__})", path) from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or type(exc).__name__})", path) from None
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


# --- CSV: quoted so that every reader splits rows alike, and safe to open in a spreadsheet -----------

#: A cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV injection"):
#: ``=``, ``+``, ``-``, ``@``, tab and carriage return. Such a text cell is written with a ``'`` before it.
FORMULA_STARTS = "=+-@\t\r"
_FORMULA = re.compile(r"'*[=+\-@\t\r]")  # also after quotes already there, so that reading it back is exact


def neutralise_cell(value: str) -> str:
    """A text cell as written to CSV: ``'`` before one that a spreadsheet would run as a formula.

    The rule is OWASP's (a cell starting with ``= + - @``, tab or CR gets a leading single quote, which
    spreadsheets show as text and do not keep); a cell that already starts with quotes before such a
    character gets one more, so :func:`restore_cell` gives back exactly the text written.
    """
    return "'" + value if _FORMULA.match(value) else value


def restore_cell(value: str) -> str:
    """The text of a cell written by :func:`neutralise_cell`: the quote it added is taken off."""
    return value[1:] if value.startswith("'") and _FORMULA.match(value, 1) else value


class _Number(str):
    """A formatted number: written as it is (a negative number is not a formula)."""

    __slots__ = ()


class _Records:
    """A file for :func:`csv.writer` that ends each record with ``terminator`` instead of the dialect's CRLF."""

    def __init__(self, terminator: str) -> None:
        self.terminator, self.parts = terminator, []

    def write(self, record: str) -> None:
        # the writer hands over one whole record a call, ending with the dialect's "\r\n"
        self.parts.append(record[:-2] + self.terminator)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]], lineterminator: str = "\n") -> str:
    """CSV text of ``rows`` under ``header``: the one CSV writer of imri's outputs.

    Fields are quoted as needed (Python's csv, minimal quoting); a field holding a line break of any
    kind, a bare ``\r`` included, is always quoted, whatever ``lineterminator`` ends records (Python's
    csv alone quotes only the terminator's own characters, so a bare CR split the row in other readers).
    Text cells are neutralised against formula injection (:func:`neutralise_cell`); numbers are not.
    """
    records = _Records(lineterminator)
    writer = csv.writer(records, lineterminator="\r\n")  # quotes every field holding \r or \n
    for row in [header, *rows]:
        writer.writerow([neutralise_cell(cell) if type(cell) is str else cell for cell in row])
    return "".join(records.parts)


#: A quoted field (kept whole) or the end of a record, in CSV text that pandas wrote with CRLF records
_RECORD_END = re.compile(r'("(?:[^"]|"")*")|\r\n')


def frame_csv(frame: pd.DataFrame) -> str:
    """CSV text of a table, as :func:`csv_text` writes rows: every value formatted by pandas (floats in full,
    NaN empty), text cells neutralised (:func:`neutralise_cell`), any field with a line break quoted.

    pandas writes records ending in CRLF, which makes Python's csv quote every field holding ``\r`` or
    ``\n``; record ends outside quoted fields then become LF.
    """
    columns = {
        i: column if _numeric(column) else column.map(lambda v: neutralise_cell(v) if type(v) is str else v)
        for i, (_, column) in enumerate(frame.items())
    }
    names = [neutralise_cell(name) if isinstance(name, str) else name for name in frame.columns]
    safe = pd.DataFrame(columns, index=frame.index).set_axis(names, axis=1)
    text = safe.to_csv(index=False, lineterminator="\r\n")
    return _RECORD_END.sub(lambda m: m.group(1) or "\n", text)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]], lineterminator="\n") -> Path:
    """Write rows as CSV (:func:`csv_text`) through a temporary file, atomically."""
    path = Path(path)
    text = csv_text(header, rows, lineterminator)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as ``.csv`` (:func:`frame_csv`) or ``.parquet`` (Hugging Face ``datasets``/Arrow), atomically.

    Parquet keeps every text as it is; CSV neutralises text cells a spreadsheet would run as formulas
    (:func:`neutralise_cell`), which :func:`read_table` undoes.
    """
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise InputError(f"output must end in {' or '.join(TABLE_SUFFIXES)}", path)
    frame = frame.reset_index(drop=True)
    if path.suffix == ".csv":
        text = frame_csv(frame)
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8", newline="")
        return path
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    dataset = Dataset.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        dataset.to_parquet(str(tmp))
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
    if not path.exists():
        raise InputError("no such file", path)
    if path.suffix not in TABLE_SUFFIXES:
        raise InputError(f"unknown table format {path.suffix!r} (use .csv or .parquet)", path)
    raw = io.BytesIO(read_input(path, "MAX_TABLE_BYTES"))
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(raw)
        frame = pd.read_csv(raw, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (ValueError, OSError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        problem = " ".join(str(exc).split())[:120]
        raise InputError(f"cannot read table ({type(exc).__name__}: {problem})", path) from None
    for name, column in frame.items():  # the one place where CSV cells get their text back
        if not _numeric(column):
            frame[name] = column.map(lambda cell: restore_cell(cell) if isinstance(cell, str) else cell)
    return frame


# --- output folders built aside and swapped in whole ----------------------------------------------

STAGING_MARK = ".imri-staging-"  # .<name>.imri-staging-<pid>-<random>: a folder being built
OLD_MARK = ".imri-old-"  # .<name>.imri-old-<pid>-<random>: an old folder on its way out (no renameat2)
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    import errno as errnos

    if errno in (errnos.EINVAL, errnos.ENOSYS, errnos.EOPNOTSUPP):
        return False  # a file system without the exchange (some network and FUSE file systems)
    raise OSError(errno, os.strerror(errno), str(b))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _leftovers(out: Path, mark: str) -> list[Path]:
    """Staging or old folders of ``out`` left by a process that is gone."""
    found = []
    for path in out.parent.glob(f".{glob_escape(out.name)}{mark}*"):
        pid = path.name[len(out.name) + 1 + len(mark) :].split("-")[0]
        if path.is_dir() and not path.is_symlink() and pid.isdigit() and not _pid_alive(int(pid)):
            found.append(path)
    return found


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    import glob

    return glob.escape(name)


def clean_leftovers(out: str | Path) -> list[Path]:
    """Remove what a crashed build of ``out`` left beside it; return what was removed.

    A crash between the two renames of the fallback swap leaves ``out`` missing and its old version
    under an ``.imri-old-`` name: that old version is put back first.
    """
    import shutil

    out = Path(out)
    if not out.parent.is_dir():
        return []
    old = sorted(_leftovers(out, OLD_MARK), key=lambda p: p.stat().st_mtime)
    if old and not out.exists():
        old.pop().rename(out)
    removed = _leftovers(out, STAGING_MARK) + old
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _carry(old: Path, new: Path, name: str) -> None:
    """Put ``old/name`` into ``new`` (a hard link: the same file, however it changes; else a copy)."""
    import shutil

    source, target = old / name, new / name
    if not source.is_file() or source.is_symlink() or target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        if name.endswith((".db-wal", ".db-shm", ".db-journal")):
            return  # the copy of the database below includes what its journal holds
        if name.endswith(".db"):
            import sqlite3

            with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
                src.backup(dst)
        else:
            shutil.copy2(source, target)


def _sync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk (before it is swapped in)."""
    for path in [*folder.rglob("*"), folder]:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def build_folder(out: str | Path, keep: Callable[[str], bool] = lambda name: False) -> Iterator[Path]:
    """Yield an empty folder beside ``out`` to build it in; when the block succeeds, swap it in whole.

    The folder is a sibling of ``out`` (same file system) named ``.<out>.imri-staging-<pid>-*``.
    On success, entries of the old ``out`` for which ``keep(name)`` is true are carried into the new
    one (hard links), everything is flushed to disk, and the new folder takes the old one's place in
    one atomic step (``renameat2`` exchange on Linux; elsewhere two renames, whose rare half-done
    state :func:`clean_leftovers` repairs). A crash at any moment leaves the old folder or the new
    one at ``out``, never a mix. The staging folder is always removed, and so are those of crashed
    earlier builds.
    """
    import shutil

    out = Path(out)
    out = out.resolve() if out.is_symlink() else out  # a link to a folder: the folder is replaced
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder ({exc.strerror or type(exc).__name__})", out) from None
    clean_leftovers(out)
    prefix = f".{out.name}{STAGING_MARK}{os.getpid()}-"
    try:
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or type(exc).__name__})", out) from None
    try:
        try:
            yield staging
        except OSError as exc:  # a full disk, a permission: one line, and the old folder stays
            raise InputError(f"cannot write the new folder ({exc.strerror or exc})", out) from None
        try:
            _swap_in(staging, out, keep)
        except OSError as exc:
            raise InputError(f"cannot put the new folder in place ({exc.strerror or exc})", out) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out: Path, keep: Callable[[str], bool]) -> None:
    """Carry the kept entries of ``out`` into ``staging``, flush it, and put it at ``out`` in one step."""
    import shutil

    umask = os.umask(0)
    os.umask(umask)
    mode = out.stat().st_mode & 0o7777 if out.is_dir() else 0o777 & ~umask
    os.chmod(staging, mode)  # mkdtemp makes 0700 folders
    if out.is_dir():
        for entry in sorted(out.iterdir()):
            if keep(entry.name):
                _carry(out, staging, entry.name)
    _sync_tree(staging)
    if not out.exists() and not out.is_symlink():
        try:
            os.rename(staging, out)
            return
        except OSError:
            pass  # made by someone else meanwhile: swap with it
    if not _exchange(staging, out):
        import secrets

        old = out.parent / f".{out.name}{OLD_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
