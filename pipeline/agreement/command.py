"""The ``imri agreement`` command: its inputs, the coders and codes it compares, and its tables.

:func:`run_agreement` reads codings tables (``.csv``/``.parquet``), REFI-QDA projects (``.qdpx``) and
``imri code`` output folders (a model read as one more coder), or generic ``unit,coder,value`` reliability data
(``--long``); picks the coders and codes, loads the transcripts they coded and the segment table, and hands the
coded spans to :func:`~pipeline.agreement.units.span_agreement`. The codebook only names the codes.
Also here: NVivo's coding-comparison table (:func:`coding_comparison`), a readable table of a result
(:func:`format_table`) and the command line's list options (:func:`expand_list_options`).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.agreement.coefficients import MIN_DENOMINATOR
from pipeline.agreement.units import (
    AgreementResult,
    Estimate,
    SpanLike,
    UnitConfig,
    agreement,
    segment_frame,
    shared_sources,
    span_agreement,
    span_units,
)
from pipeline.errors import InputError
from pipeline.ingest import Coding, Transcript, read_codings
from pipeline.io import require_columns

LONG_COLUMNS = ("unit", "coder", "value")
MODEL_SEGMENT_COLUMNS = ("source", "start", "end", "role", "codes")
COMPARISON_COLUMNS = (
    "code",
    "source",
    "units",
    "kappa",
    "agreement",
    "a_and_b",
    "not_a_and_not_b",
    "disagreement",
    "a_and_not_b",
    "b_and_not_a",
)


def coding_comparison(
    codings: Sequence[SpanLike],
    transcripts: Mapping[str, Transcript],
    coders: Sequence[str],
    codes: Sequence[str] | None = None,
    config: UnitConfig | None = None,
    segments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """NVivo's coding-comparison table for two coders A and B: one row per code and transcript.

    Columns ``code, source, units, kappa, agreement, a_and_b, not_a_and_not_b, disagreement, a_and_not_b,
    b_and_not_a`` (percentages of the transcript's units, 0-100; kappa NaN when undefined).
    """
    if len(coders) != 2:
        raise InputError("a coding comparison is between exactly two coders")
    if codes is None:
        codes = sorted({c.code for c in codings if c.coder in set(coders)})
    units = span_units(codings, transcripts, coders, codes, config, segments)
    rows = []
    for g, source in enumerate(units.sources):
        block = units.values[:, units.clusters == g, :]
        for k, code in enumerate(units.codes):
            a, b = block[0, :, k] == 1, block[1, :, k] == 1
            n = len(a)
            both, neither = int((a & b).sum()), int((~a & ~b).sum())
            a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
            expected = (a.sum() * b.sum() + (~a).sum() * (~b).sum()) / n if n else math.nan
            kappa = (both + neither - expected) / (n - expected) if n and n - expected > MIN_DENOMINATOR else math.nan
            pct = 100.0 / n if n else math.nan
            rows.append(
                {
                    "code": code,
                    "source": source,
                    "units": n,
                    "kappa": kappa,
                    "agreement": (both + neither) * pct,
                    "a_and_b": both * pct,
                    "not_a_and_not_b": neither * pct,
                    "disagreement": (a_only + b_only) * pct,
                    "a_and_not_b": a_only * pct,
                    "b_and_not_a": b_only * pct,
                }
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# --- reading inputs -----------------------------------------------------------------------------------


def _split_names(values: Iterable[str] | None) -> list[str] | None:
    """``["A", "B,C"]`` -> ``["A", "B", "C"]``; ``None`` stays ``None``."""
    if not values:
        return None
    return list(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))


@dataclass
class ModelOutput:
    """An ``imri code`` output folder read as one more coder."""

    coder: str
    codings: list[Coding]
    segments: pd.DataFrame
    sources: set[str]


def model_name(folder: str | Path) -> str:
    """The coder name of a model output folder: ``model.json``'s ``name``, else its ``version``, else ``model``."""
    path = Path(folder) / "model.json"
    if not path.is_file():
        return "model"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read model.json ({type(exc).__name__})", path) from None
    if isinstance(info, dict):
        for key in ("name", "version"):
            if isinstance(info.get(key), str | int | float) and str(info[key]).strip():
                return str(info[key]).strip()
    return "model"


def read_model_output(folder: str | Path) -> ModelOutput:
    """Read an ``imri code`` output folder: its ``segments.csv`` codes become codings of the model's segments."""
    from pipeline.io import read_table

    folder = Path(folder)
    table_path = folder / "segments.csv"
    if not table_path.is_file():
        raise InputError("not an imri code output folder (no segments.csv)", folder)
    table = read_table(table_path)
    missing = [c for c in MODEL_SEGMENT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"bad columns: segments.csv lacks {', '.join(missing)}", table_path)
    segments = segment_frame(table, table_path)
    coder = model_name(folder)
    codings = []
    for row, codes in zip(segments.itertuples(index=False), table["codes"], strict=True):
        if pd.isna(codes):
            continue
        for code in str(codes).split(";"):
            if code.strip():
                codings.append(Coding(row.source, int(row.start), int(row.end), code.strip(), coder))
    return ModelOutput(coder, codings, segments, set(segments["source"]))


def read_long(path: str | Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Read generic reliability data ``unit,coder,value``; return ``(data, coders, units)``.

    ``data`` is ``coders x units`` (object; ``None`` where a coder gave no value). An empty value is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read CSV ({type(exc).__name__})", path) from None
    require_columns(frame, LONG_COLUMNS, path)
    frame = frame[list(LONG_COLUMNS)].apply(lambda column: column.str.strip())
    if (frame["unit"] == "").any() or (frame["coder"] == "").any():
        first = int(np.flatnonzero((frame["unit"] == "") | (frame["coder"] == ""))[0])
        raise InputError(f"row {first + 2}: empty unit or coder", path)
    frame = frame[frame["value"] != ""].drop_duplicates()
    clash = frame.duplicated(["unit", "coder"], keep=False)
    if clash.any():
        unit, coder = frame[clash].iloc[0][["unit", "coder"]]
        raise InputError(f"coder {coder!r} gives unit {unit!r} two different values", path)
    coders = list(dict.fromkeys(frame["coder"]))
    units = list(dict.fromkeys(frame["unit"]))
    wide = frame.pivot(index="coder", columns="unit", values="value").reindex(index=coders, columns=units)
    data = wide.astype(object).where(wide.notna(), None).to_numpy(dtype=object)
    return data, coders, units


def transcript_from_text(source: str, text: str) -> Transcript:
    """A :class:`Transcript` for text without a file (e.g. a REFI-QDA source): turns found as on ingest."""
    from pipeline.ingest import RoleResolver, find_turns, paragraph_turns

    turns = find_turns(text, RoleResolver()) or paragraph_turns(text)
    return Transcript(source, text, turns)


def _pick_coders(wanted: Sequence[str] | None, available: Sequence[str], where: str | Path | None) -> list[str]:
    available = list(dict.fromkeys(available))
    if wanted:
        unknown = [c for c in wanted if c not in available]
        if unknown:
            raise InputError(
                f"unknown coder(s): {', '.join(unknown)} (the input has: {', '.join(available) or 'none'})", where
            )
        coders = list(dict.fromkeys(wanted))
    else:
        coders = available
    if len(coders) < 2:
        raise InputError(
            f"agreement needs at least two coders; {'only ' + coders[0] + ' was' if coders else 'none was'} given "
            f"(the input has: {', '.join(available) or 'none'})",
            where,
        )
    return coders


@dataclass
class _SpanInputs:
    codings: list[SpanLike] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    present: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # code -> name, from .qdpx projects
    segments: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)

    def add(self, codings: Sequence[SpanLike]) -> None:
        self.codings.extend(codings)
        for c in codings:
            self.present.setdefault(c.coder, set()).add(c.source)


def _read_span_inputs(inputs: Sequence[Path]) -> _SpanInputs:
    """Read every input; codes are taken as they come (any codebook, or none)."""
    from pipeline.qdpx import read_qdpx

    read = _SpanInputs()
    for path in map(Path, inputs):
        if path.is_dir():
            model = read_model_output(path)
            if model.coder in read.present:
                raise InputError(f"coder {model.coder!r} appears in two inputs (rename the model in model.json)", path)
            read.add(model.codings)
            read.present[model.coder] = set(model.sources)
            if read.segments is None:
                read.segments = model.segments
        elif path.suffix.lower() == ".qdpx":
            project = read_qdpx(path)
            read.add(project.codings)
            read.texts.update(project.sources)
            for code in project.codes:
                read.names.setdefault(code.key, code.name)
            read.warnings.extend(f"{path.name}: {w}" for w in project.warnings)
        elif path.suffix.lower() in (".csv", ".parquet"):
            read.add(read_codings(path))
        elif not path.exists():
            raise InputError("no such file or folder", path)
        else:
            raise InputError("unknown input: give a codings table (.csv/.parquet), a .qdpx project or a folder", path)
    return read


def transcript_path(text_dir: str | Path, source: str, where: str | Path | None = None) -> Path:
    """The file of transcript ``source`` inside ``text_dir``: a plain file name, a regular file inside the folder.

    An absolute path, ``../``, a link that leads outside ``text_dir``, a FIFO or a device is refused.
    """
    from pipeline.qdpx import source_problem

    problem = source_problem(source)
    if problem:
        raise InputError(f"refused: transcript source {source!r} {problem}", where)
    path = Path(text_dir) / source
    real, root = path.resolve(), Path(text_dir).resolve()
    if root not in real.parents:
        raise InputError(f"refused: transcript {source!r} is a link to outside {text_dir}", where)
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise InputError(f"transcript {source!r} not found", text_dir) from None
    if not stat.S_ISREG(mode):
        raise InputError(f"refused: transcript {source!r} is not a regular file", text_dir)
    return path


def _load_transcripts(
    sources: Iterable[str], texts: Mapping[str, str], text_dir: Path | None, where: Path | None
) -> tuple[dict[str, Transcript], list[str]]:
    from pipeline.ingest import load_transcript

    transcripts: dict[str, Transcript] = {}
    warnings: list[str] = []
    for source in sorted(set(sources)):
        if source in texts:
            transcripts[source] = transcript_from_text(source, texts[source])
            continue
        if text_dir is None:
            raise InputError(f"--text-dir is needed to read the transcript {source!r}", where)
        transcript = load_transcript(transcript_path(text_dir, source, where), no_speakers="participant")
        warnings.extend(transcript.warnings)
        transcripts[source] = transcript
    return transcripts, warnings


def _codes_to_compare(
    wanted: Sequence[str] | None, read: _SpanInputs, coders: Sequence[str], book: Any, where: Path | None
) -> list[str]:
    """The codes asked for (each must be used by a coder or be in the codebook), else every code used.

    Codes come in the codebook's order, then the others sorted.
    """
    order = {code: i for i, code in enumerate(book.impact_ids)} if book is not None else {}
    used = {c.code for c in read.codings if c.coder in set(coders)}
    if wanted:
        unknown = sorted(set(wanted) - used - set(order) - set(read.names))
        if unknown:
            raise InputError(
                f"{len(unknown)} code(s) neither used by the coders nor in the codebook: {', '.join(unknown[:10])}",
                where,
            )
        return list(dict.fromkeys(wanted))
    return sorted(used, key=lambda code: (order.get(code, len(order)), code))


def _names_codebook(codebook: str | Path | None, inputs: Sequence[Path]) -> Any:
    """The codebook that names the codes: the one given, else ``codebook.yaml`` beside a codings table (as
    ``imri import-qdpx`` writes), else the bundled IMRI codebook."""
    from pipeline.codebook import load_codebook

    if codebook is None:
        for path in inputs:
            beside = path.parent / "codebook.yaml"
            if path.suffix.lower() in (".csv", ".parquet") and beside.is_file():
                codebook = beside
                break
    return load_codebook(codebook)


def run_agreement(
    inputs: Sequence[str | Path] = (),
    *,
    text_dir: str | Path | None = None,
    coders: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    config: UnitConfig | None = None,
    long: str | Path | None = None,
    segments: str | Path | None = None,
    codebook: str | Path | None = None,
    params: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    language: str = "en",
) -> AgreementResult:
    """``imri agreement``: read the inputs, pick coders and codes, build units and compute the metrics.

    ``inputs`` are codings tables, REFI-QDA projects and ``imri code`` output folders (merged); or ``long``,
    a ``unit,coder,value`` CSV. Codes may be any codes: the codebook (``codebook``, else a ``codebook.yaml``
    beside a codings table, else the bundled one) only names them, in ``language``; a .qdpx project names its
    own codes. For the segment unit the segment table is ``segments``, else a model folder's ``segments.csv``,
    else the transcripts segmented with the ``segment`` section of ``params``.
    """
    if n_boot < 0:
        raise InputError(f"--bootstrap must be 0 or more (got {n_boot})")
    coders, codes = _split_names(coders), _split_names(codes)
    if long is not None:
        if inputs:
            raise InputError("give either --long FILE.csv or span inputs, not both", long)
        if codes:
            raise InputError("--codes applies to coded spans, not to --long data", long)
        data, available, _ = read_long(long)
        picked = _pick_coders(coders, available, long)
        rows = [available.index(c) for c in picked]
        result = agreement(data[rows], picked, n_boot=n_boot, seed=seed)
        result.unit = "the units of the --long table"
        return result
    if not inputs:
        raise InputError("no input: give a codings table, a .qdpx project or an imri code folder (or --long)")
    paths = [Path(p) for p in inputs]
    where = paths[0] if len(paths) == 1 else None
    read = _read_span_inputs(paths)
    book = _names_codebook(codebook, paths)
    picked = _pick_coders(coders, sorted(read.present), where)
    chosen = _codes_to_compare(codes, read, picked, book, where)
    sources = shared_sources(read.present, picked)
    transcripts, warnings = _load_transcripts(sources, read.texts, Path(text_dir) if text_dir else None, where)
    config = config or UnitConfig()
    table = _segments_for(config, segments, read, transcripts, picked, params)
    result = span_agreement(read.codings, transcripts, picked, chosen, config, table, read.present, n_boot, seed, where)
    result.warnings = read.warnings + warnings
    in_book = set(book.impact_ids) & set(chosen)
    result.names = {code: read.names[code] for code in chosen if code in read.names}
    result.names.update({code: _name_in(book.impact(code).name, language, code) for code in in_book})
    result.codebook = f"{book.id} v{book.version}" if in_book else ""
    return result


def _name_in(names: Mapping[str, str], language: str, fallback: str) -> str:
    return names.get(language) or names.get("en") or fallback


def _segments_for(
    config: UnitConfig,
    segments: str | Path | None,
    read: _SpanInputs,
    transcripts: Mapping[str, Transcript],
    coders: Sequence[str],
    params: str | Path | None,
) -> pd.DataFrame | None:
    if config.unit != "segment":
        return None
    if segments is not None:
        from pipeline.io import read_table

        return segment_frame(read_table(segments), segments)
    if read.segments is not None:
        return read.segments
    from pipeline.ingest import SegmentConfig, segment_table
    from pipeline.params import load_params

    shared = shared_sources(read.present, coders)
    config_section = load_params(params).get("segment") or {}
    return segment_table([transcripts[s] for s in shared], SegmentConfig.from_dict(dict(config_section)))


# --- output -------------------------------------------------------------------------------------------


def _fmt(value: float, width: int = 6) -> str:
    return f"{'n/a':>{width}}" if math.isnan(value) else f"{value:>{width}.3f}"


def _fmt_ci(estimate: Estimate) -> str:
    if math.isnan(estimate.ci_low):
        return f"{'':15}"
    return f"[{estimate.ci_low:.2f}, {estimate.ci_high:.2f}]".rjust(15)


def format_table(result: AgreementResult) -> str:
    """A readable table: one row per code (+ mean and pooled), every metric, intervals for kappa and alpha."""
    two = len(result.coders) == 2
    label_width = max([len(label) for label, _ in result.rows()] + [10])
    header = (
        f"{'code':<{label_width}} {'units':>9} {'%agree':>6} {'Cohen κ' if two else 'Fleiss κ':>8} "
        f"{'95% CI':>15} {'Fleiss κ' if two else '':>8} {'Kripp. α':>8} {'95% CI':>15} {'AC1':>6} {'PABAK':>6}"
    )
    lines = [_describe(result), header, "-" * len(header)]
    kappa = "cohen_kappa" if two else "fleiss_kappa"
    for label, metrics in result.rows():
        e = metrics.estimates
        lines.append(
            f"{label:<{label_width}} {metrics.n_units:>9} {_fmt(e['percent_agreement'].value)} "
            f"{_fmt(e[kappa].value, 8)} {_fmt_ci(e[kappa])} "
            f"{_fmt(e['fleiss_kappa'].value, 8) if two else '':>8} "
            f"{_fmt(e['krippendorff_alpha'].value, 8)} {_fmt_ci(e['krippendorff_alpha'])} "
            f"{_fmt(e['gwet_ac1'].value)} {_fmt(e['pabak'].value)}"
        )
    return "\n".join(lines)


def _describe(result: AgreementResult) -> str:
    parts = [f"coders {', '.join(result.coders)}", f"unit: {result.unit}"]
    if result.sources:
        parts.append(f"{len(result.sources)} transcript(s)")
    if result.n_boot:
        what = "transcripts" if result.sources else "units"
        parts.append(f"95% CI: {result.n_boot} bootstrap resamples of {what}, seed {result.seed}")
    return "Agreement: " + "; ".join(parts)


def expand_list_options(args: Sequence[str], options: Collection[str]) -> list[str]:
    """Let ``--coders A B C`` mean ``--coders A --coders B --coders C`` (values run to the next ``-`` token)."""
    out: list[str] = []
    current: str | None = None
    waiting = rest = False
    for arg in args:
        if rest:
            out.append(arg)
            continue
        if current is not None and not arg.startswith("-"):
            out += [current, arg]
            waiting = False
            continue
        if waiting:
            out.append(current)  # an option without a value is left for the parser to report
        current, waiting = None, False
        if arg in options:
            current, waiting = arg, True
        else:
            rest = arg == "--"
            out.append(arg)
    if waiting:
        out.append(current)
    return out
