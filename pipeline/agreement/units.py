"""Agreement with bootstrap intervals, and coded spans turned into units of analysis.

:func:`agreement` measures agreement on a ``coders x units`` table, :func:`binary_agreement` on one binary
variable per code, both with bootstrap intervals (the coefficients themselves come from
:mod:`pipeline.agreement.coefficients`). Coded spans (``source,start,end,code,coder``) become one *binary*
variable per code (present / absent) over units of analysis (:func:`span_units`, :func:`span_agreement`):

* ``character``: every character of the included text (like NVivo's coding comparison);
* ``segment``: every segment of the segment table; a code is present in a segment when a coder's spans of it
  overlap the segment enough (:class:`UnitConfig` ``overlap`` / ``min_overlap``);
* ``document``: every transcript; a code is present when a coder coded it anywhere in the included text.

Included text is the participants' turns (interviewer turns too with ``include_interviewer``); with
``ignore_uncoded`` units that no coder coded with any of the codes are left out. A coder takes part in a
transcript when it has at least one coding there (the folder of a model: every transcript it segmented);
elsewhere its values are *missing*. Transcripts that fewer than two of the coders took part in are left out.

Intervals are 95% percentile bootstrap intervals resampling transcripts (clusters) with replacement, from a
seeded generator; replicates where a metric is undefined are left out of its interval.

For span input, the headline metrics are the mean over codes of the per-code values (codes whose value is
undefined left out); ``pooled`` treats every (unit, code) decision as one binary rating. The results
(:class:`AgreementResult`, :class:`MetricSet`, :class:`Estimate`) are defined here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.agreement.coefficients import (
    BINARY_METRICS,
    METRICS,
    Tallies,
    binary_tallies,
    check_coders,
    encode_reliability_data,
    metric_values,
    tally_units,
)
from pipeline.errors import InputError
from pipeline.ingest import Transcript

UNITS = ("character", "segment", "document")
OVERLAP_RULES = ("either", "segment", "span", "any")


class SpanLike(Protocol):
    """Anything with the attributes of :class:`~pipeline.ingest.corpus.Coding` (e.g. a REFI-QDA coding)."""

    source: str
    start: int
    end: int
    code: str
    coder: str


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitConfig:
    """How coded spans become units of analysis (see the module docstring)."""

    unit: str = "character"  # character | segment | document
    include_interviewer: bool = False
    ignore_uncoded: bool = False
    overlap: str = "either"  # segment unit: either | segment | span | any
    min_overlap: float = 0.5  # share of the segment (or of the span) that must be covered

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(f"unit must be one of {', '.join(UNITS)} (got {self.unit!r})")
        if self.overlap not in OVERLAP_RULES:
            raise InputError(f"overlap must be one of {', '.join(OVERLAP_RULES)} (got {self.overlap!r})")
        if not 0.0 < self.min_overlap <= 1.0:
            raise InputError(f"min_overlap must be in (0, 1] (got {self.min_overlap})")

    @property
    def roles(self) -> frozenset[str]:
        """Speaker roles whose text is analysed."""
        return frozenset({"participant", "interviewer"} if self.include_interviewer else {"participant"})


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its 95% bootstrap interval (``NaN`` when undefined or not bootstrapped)."""

    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """``{"value": v, "ci95": [low, high]}``; ``null`` for undefined numbers and for a missing interval."""
        ci = None if math.isnan(self.ci_low) or math.isnan(self.ci_high) else [self.ci_low, self.ci_high]
        return {"value": _json_number(self.value), "ci95": ci}


@dataclass(frozen=True)
class MetricSet:
    """The metrics of one analysis (one code, all codes pooled, ...) and its number of units."""

    estimates: dict[str, Estimate]
    n_units: int

    def __getitem__(self, metric: str) -> float:
        return self.estimates[metric].value

    def to_dict(self) -> dict[str, Any]:
        """The metric keys (``cohen_kappa`` is ``null`` unless there are two coders) and ``n_units``."""
        out: dict[str, Any] = {name: None for name in METRICS}
        out.update({name: estimate.to_dict() for name, estimate in self.estimates.items()})  # + prevalence
        out["n_units"] = self.n_units
        return out


@dataclass
class AgreementResult:
    """Agreement between ``coders``: headline metrics, and per code and pooled for span input."""

    coders: list[str]
    overall: MetricSet
    per_code: dict[str, MetricSet] | None = None
    pooled: MetricSet | None = None
    unit: str = "unit"
    sources: list[str] = field(default_factory=list)
    n_boot: int = 0
    seed: int = 0
    warnings: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # code -> its name (codebook or project); default: the code
    config: UnitConfig | None = None  # how spans became units (None: generic --long data)
    codebook: str = ""  # "imri v1" when a codebook named the codes
    transcripts_by_coder: dict[str, int] = field(default_factory=dict)  # coder -> transcripts of ``sources`` it coded

    def name(self, code: str) -> str:
        """The code's name, else the code itself."""
        return self.names.get(code) or code

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: metric keys, ``n_units``, ``coders`` (+ ``per_code`` and ``pooled`` for spans)."""
        out = self.overall.to_dict()
        out["coders"] = list(self.coders)
        if self.per_code is not None:
            out["per_code"] = {code: metrics.to_dict() for code, metrics in self.per_code.items()}
            out["pooled"] = self.pooled.to_dict() if self.pooled is not None else None
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (no NaN: undefined values are ``null``)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def rows(self) -> list[tuple[str, MetricSet]]:
        """``(label, metrics)`` for each code, then ``(mean over codes)`` and ``(pooled)``; or ``(all units)``."""
        if self.per_code is None:
            return [("(all units)", self.overall)]
        rows = list(self.per_code.items())
        rows.append(("(mean over codes)", self.overall))
        if self.pooled is not None:
            rows.append(("(pooled)", self.pooled))
        return rows

    def to_frame(self) -> pd.DataFrame:
        """One row per code (and summary row) and metric: ``code, metric, value, ci_low, ci_high, n_units``."""
        records = [
            (label, name, e.value, e.ci_low, e.ci_high, metrics.n_units)
            for label, metrics in self.rows()
            for name, e in metrics.estimates.items()
        ]
        return pd.DataFrame(records, columns=["code", "metric", "value", "ci_low", "ci_high", "n_units"])


def _json_number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


# --- agreement with bootstrap intervals ------------------------------------------------------------


def _bootstrap_draws(n_clusters: int, n_boot: int, seed: int, chunk: int) -> Iterable[np.ndarray]:
    """Chunks of ``(b, G)`` cluster counts, each row a resample of the clusters with replacement."""
    rng = np.random.default_rng(seed)
    for low in range(0, n_boot, chunk):
        size = min(chunk, n_boot - low)
        picks = rng.integers(0, n_clusters, size=(size, n_clusters))
        flat = (picks + np.arange(size)[:, None] * n_clusters).ravel()
        yield np.bincount(flat, minlength=size * n_clusters).reshape(size, n_clusters).astype(float)


def _evaluate(tallies: Sequence[Tallies], n_clusters: int, n_boot: int, seed: int) -> list[dict[str, np.ndarray]]:
    """For each tally: every metric's point value (index 0) followed by ``n_boot`` bootstrap replicates."""
    out = []
    for tally in tallies:
        point = metric_values(tally.patterns, np.asarray(tally.counts.sum(axis=0), dtype=float), tally.n_categories)
        out.append({name: np.concatenate([values, np.full(n_boot, np.nan)]) for name, values in point.items()})
    if n_boot > 0 and n_clusters > 0:
        chunk = max(1, min(n_boot, 2_000_000 // n_clusters))
        done = 0
        for draws in _bootstrap_draws(n_clusters, n_boot, seed, chunk):
            for tally, values in zip(tallies, out, strict=True):
                replicate = metric_values(tally.patterns, tally.weights(draws), tally.n_categories)
                for name, value in replicate.items():
                    values[name][1 + done : 1 + done + len(draws)] = value
            done += len(draws)
    return out


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _metric_set(values: Mapping[str, np.ndarray], n_units: int, binary: bool = False) -> MetricSet:
    estimates = {}
    for name in (*METRICS, *BINARY_METRICS) if binary else METRICS:
        if name in values:
            series = values[name]
            low, high = _interval(series[1:])
            estimates[name] = Estimate(float(series[0]), low, high)
    return MetricSet(estimates, n_units)


def _mean_over_codes(per_code: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean over codes of each metric, point value and every replicate, undefined codes left out."""
    out = {}
    for name in per_code[0]:
        stack = np.vstack([values[name] for values in per_code])
        finite = np.isfinite(stack)
        total = np.where(finite, stack, 0.0).sum(axis=0)
        count = finite.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _clusters(clusters: Sequence[Any] | None, n_units: int) -> tuple[np.ndarray, int]:
    if clusters is None:
        return np.arange(n_units, dtype=np.int64), n_units
    labels, uniques = pd.factorize(pd.Series(list(clusters), dtype=object), sort=True)
    if len(labels) != n_units:
        raise ValueError(f"clusters has {len(labels)} entries for {n_units} units")
    return labels.astype(np.int64), len(uniques)


def agreement(
    data: Any,
    coders: Sequence[str] | None = None,
    clusters: Sequence[Any] | None = None,
    n_categories: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> AgreementResult:
    """Agreement on nominal ``coders x units`` data, with bootstrap intervals.

    ``clusters`` groups units for the bootstrap (e.g. the transcript of each unit); by default units are
    resampled one by one.
    """
    codes, categories = encode_reliability_data(data)
    check_coders(codes)
    coders = list(coders) if coders is not None else [f"coder{i + 1}" for i in range(codes.shape[0])]
    q = max(n_categories or 0, len(categories), 2)
    labels, n_clusters = _clusters(clusters, codes.shape[1])
    tally = tally_units(codes, labels, n_clusters, q)
    (values,) = _evaluate([tally], n_clusters, n_boot, seed)
    return AgreementResult(coders, _metric_set(values, tally.n_units), unit="unit", n_boot=n_boot, seed=seed)


def binary_agreement(
    values: np.ndarray,
    coders: Sequence[str],
    codes: Sequence[str],
    clusters: Sequence[Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    unit: str = "unit",
) -> AgreementResult:
    """Per-code, mean and pooled agreement on binary codings.

    ``values`` is ``(coders, units, codes)``: 1 applied, 0 not applied, -1 or NaN missing (the coder did not
    code that unit). ``clusters`` gives each unit's transcript for the bootstrap (default: each unit alone).
    """
    array = np.asarray(values, dtype=float)
    if array.ndim != 3 or array.shape[0] != len(coders) or array.shape[2] != len(codes):
        raise ValueError("values must be (coders, units, codes) matching coders and codes")
    binary = np.where(np.isnan(array) | (array < 0), -1, (array > 0).astype(np.int64)).astype(np.int8)
    check_coders(binary)
    labels, n_clusters = _clusters(clusters, binary.shape[1])
    per_code, pooled = binary_tallies(binary, labels, n_clusters)
    evaluated = _evaluate([*per_code, pooled], n_clusters, n_boot, seed)
    n_units = per_code[0].n_units if codes else 0
    per_code_sets = {
        code: _metric_set(v, tally.n_units, True)
        for code, v, tally in zip(codes, evaluated[:-1], per_code, strict=True)
    }
    overall = _mean_over_codes(evaluated[:-1]) if codes else evaluated[-1]
    return AgreementResult(
        list(coders),
        _metric_set(overall, n_units, True),
        per_code_sets,
        _metric_set(evaluated[-1], pooled.n_units, True),
        unit=unit,
        n_boot=n_boot,
        seed=seed,
    )


# --- spans -> units ---------------------------------------------------------------------------------


@dataclass
class SpanUnits:
    """The binary reliability data behind :func:`span_agreement`: one row per unit of analysis."""

    values: np.ndarray  # (coders, units, codes) int8: 1 applied, 0 not, -1 coder absent from the transcript
    clusters: np.ndarray  # (units,) index into sources
    starts: np.ndarray  # (units,) offsets of each unit in its transcript
    ends: np.ndarray
    sources: list[str]
    coders: list[str]
    codes: list[str]


def _role_mask(transcript: Transcript, roles: Collection[str]) -> np.ndarray:
    mask = np.zeros(len(transcript.text), dtype=bool)
    if not transcript.turns:
        mask[:] = True
        return mask
    for turn in transcript.turns:
        if turn.role in roles:
            mask[turn.start : turn.end] = True
    return mask


def _coverage(spans: Sequence[tuple[int, int, int]], n_codes: int, length: int) -> np.ndarray:
    """``(codes, length)`` bool: which characters each code covers, from ``(code, start, end)`` spans."""
    diff = np.zeros((n_codes, length + 1), dtype=np.int32)
    if spans:
        array = np.asarray(spans, dtype=np.int64)
        np.add.at(diff, (array[:, 0], array[:, 1]), 1)
        np.add.at(diff, (array[:, 0], array[:, 2]), -1)
    return np.cumsum(diff[:, :-1], axis=1) > 0


def _merge(spans: np.ndarray) -> np.ndarray:
    """Union of ``(start, end)`` spans as sorted, disjoint spans."""
    if len(spans) == 0:
        return spans.reshape(0, 2)
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    merged = [list(spans[0])]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.asarray(merged, dtype=np.int64)


def _overlap(spans: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(spans, segments)`` characters shared by each span and each segment."""
    low = np.maximum(spans[:, :1], starts[None, :])
    high = np.minimum(spans[:, 1:], ends[None, :])
    return np.clip(high - low, 0, None)


def segment_presence(
    spans: np.ndarray, starts: np.ndarray, ends: np.ndarray, rule: str = "either", min_overlap: float = 0.5
) -> np.ndarray:
    """Whether a code whose spans are ``spans`` (``(k, 2)``) is present in each segment ``[starts, ends)``.

    Rules: ``segment``: the spans cover at least ``min_overlap`` of the segment; ``span``: some span has at least
    ``min_overlap`` of its length inside the segment; ``either`` (default): one of the two; ``any``: any overlap.
    """
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if len(spans) == 0 or len(starts) == 0:
        return np.zeros(len(starts), dtype=bool)
    if rule == "any":
        return (_overlap(spans, starts, ends) > 0).any(axis=0)
    lengths = np.maximum(ends - starts, 1)
    covered = _overlap(_merge(spans), starts, ends).sum(axis=0) / lengths >= min_overlap
    if rule == "segment":
        return covered
    span_share = (_overlap(spans, starts, ends) / np.maximum(spans[:, 1:] - spans[:, :1], 1)).max(axis=0)
    inside = span_share >= min_overlap
    return inside if rule == "span" else covered | inside


def _check_spans(codings: Sequence[SpanLike], transcripts: Mapping[str, Transcript], where: str | Path | None) -> None:
    for coding in codings:
        transcript = transcripts.get(coding.source)
        if transcript is None:
            raise InputError(f"no transcript for source {coding.source!r}", where)
        if not 0 <= coding.start < coding.end <= len(transcript.text):
            raise InputError(
                f"offsets {coding.start}-{coding.end} of a {coding.code!r} coding by {coding.coder!r} are out of "
                f"range for {coding.source} ({len(transcript.text)} characters)",
                where,
            )


def segment_frame(segments: pd.DataFrame, where: str | Path | None) -> pd.DataFrame:
    """The ``source,start,end[,role]`` columns of a segment table, offsets as integers (else :class:`InputError`)."""
    missing = [c for c in ("source", "start", "end") if c not in segments.columns]
    if missing:
        raise InputError(f"segment table lacks column(s): {', '.join(missing)}", where)
    frame = segments[[c for c in ("source", "start", "end", "role") if c in segments.columns]].copy()
    try:
        frame["start"] = frame["start"].astype("int64")
        frame["end"] = frame["end"].astype("int64")
    except (TypeError, ValueError):
        raise InputError("segment table: start and end must be integers", where) from None
    frame["source"] = frame["source"].astype(str)
    return frame


def span_units(
    codings: Sequence[SpanLike],
    transcripts: Mapping[str, Transcript],
    coders: Sequence[str],
    codes: Sequence[str],
    config: UnitConfig | None = None,
    segments: pd.DataFrame | None = None,
    present: Mapping[str, Collection[str]] | None = None,
    where: str | Path | None = None,
) -> SpanUnits:
    """Turn coded spans into binary reliability data over units (see :func:`span_agreement`)."""
    config = config or UnitConfig()
    coders, codes = list(coders), list(codes)
    selected = [c for c in codings if c.coder in set(coders)]
    if present is None:
        present = {coder: {c.source for c in selected if c.coder == coder} for coder in coders}
    sources = shared_sources(present, coders)
    selected = [c for c in selected if c.source in set(sources)]
    _check_spans(selected, transcripts, where)
    missing = [s for s in sources if s not in transcripts]
    if missing:
        raise InputError(f"no transcript for source {missing[0]!r}", where)
    code_index = {code: k for k, code in enumerate(codes)}
    spans: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for c in selected:
        if c.code in code_index:
            spans.setdefault((c.source, c.coder), []).append((code_index[c.code], c.start, c.end))
    table = segment_frame(segments, where) if config.unit == "segment" and segments is not None else None
    if config.unit == "segment" and table is None:
        raise InputError("the segment unit needs a segment table")
    blocks, clusters, starts, ends = [], [], [], []
    for g, source in enumerate(sources):
        taking_part = [source in present.get(coder, ()) for coder in coders]
        by_coder = [spans.get((source, coder), []) for coder in coders]
        block, unit_starts, unit_ends = _source_units(
            transcripts[source], by_coder, taking_part, len(codes), config, table, where
        )
        blocks.append(block)
        clusters.append(np.full(block.shape[1], g, dtype=np.int64))
        starts.append(unit_starts)
        ends.append(unit_ends)
    empty = np.zeros((len(coders), 0, len(codes)), dtype=np.int8)
    return SpanUnits(
        np.concatenate(blocks, axis=1) if blocks else empty,
        np.concatenate(clusters) if clusters else np.zeros(0, dtype=np.int64),
        np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64),
        np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64),
        sources,
        coders,
        codes,
    )


def shared_sources(present: Mapping[str, Collection[str]], coders: Sequence[str]) -> list[str]:
    """The transcripts that at least two of ``coders`` took part in, sorted."""
    every = {source for coder in coders for source in present.get(coder, ())}
    return sorted(s for s in every if sum(s in present.get(coder, ()) for coder in coders) >= 2)


def _source_units(
    transcript: Transcript,
    spans_by_coder: Sequence[Sequence[tuple[int, int, int]]],
    taking_part: Sequence[bool],
    n_codes: int,
    config: UnitConfig,
    segments: pd.DataFrame | None,
    where: str | Path | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coders, units, codes)`` values of one transcript, and each unit's offsets."""
    length = len(transcript.text)
    if config.unit == "segment":
        rows = segments[segments["source"] == transcript.source]
        if "role" in rows.columns:
            rows = rows[rows["role"].isin(config.roles)]
        seg_starts, seg_ends = rows["start"].to_numpy(np.int64), rows["end"].to_numpy(np.int64)
        if len(rows) and (seg_starts.min() < 0 or seg_ends.max() > length or (seg_ends <= seg_starts).any()):
            raise InputError(f"segment offsets out of range for {transcript.source} ({length} characters)", where)
        present = np.stack([_segment_block(spans, seg_starts, seg_ends, n_codes, config) for spans in spans_by_coder])
    else:
        included = _role_mask(transcript, config.roles)
        cover = np.stack([_coverage(spans, n_codes, length) for spans in spans_by_coder])  # (m, K, L)
        if config.unit == "document":
            present = (cover & included[None, None, :]).any(axis=2)[:, None, :]  # (m, 1, K)
            seg_starts, seg_ends = np.zeros(1, dtype=np.int64), np.full(1, length, dtype=np.int64)
        else:
            index = np.flatnonzero(included)
            present = cover[:, :, index].transpose(0, 2, 1)
            seg_starts, seg_ends = index.astype(np.int64), index.astype(np.int64) + 1
    block = present.astype(np.int8)
    block[~np.asarray(taking_part, dtype=bool)] = -1
    if config.ignore_uncoded:
        coded = (block == 1).any(axis=(0, 2))
        block, seg_starts, seg_ends = block[:, coded], seg_starts[coded], seg_ends[coded]
    return block, seg_starts, seg_ends


def _segment_block(
    spans: Sequence[tuple[int, int, int]], starts: np.ndarray, ends: np.ndarray, n_codes: int, config: UnitConfig
) -> np.ndarray:
    """``(segments, codes)`` presence of each code in each segment for one coder."""
    out = np.zeros((len(starts), n_codes), dtype=bool)
    array = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
    for k in np.unique(array[:, 0]):
        out[:, k] = segment_presence(array[array[:, 0] == k, 1:], starts, ends, config.overlap, config.min_overlap)
    return out


def span_agreement(
    codings: Sequence[SpanLike],
    transcripts: Mapping[str, Transcript],
    coders: Sequence[str],
    codes: Sequence[str] | None = None,
    config: UnitConfig | None = None,
    segments: pd.DataFrame | None = None,
    present: Mapping[str, Collection[str]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    where: str | Path | None = None,
) -> AgreementResult:
    """Agreement between ``coders`` on coded spans: per code, mean over codes and pooled.

    ``transcripts`` maps each source to its :class:`~pipeline.ingest.transcripts.Transcript` (roles come from its
    turns);
    ``codes`` defaults to every code the coders used, sorted; ``segments`` is the segment table
    (``source,start,end[,role]``) for the ``segment`` unit; ``present`` maps each coder to the transcripts it
    coded (default: those where it has a coding). The bootstrap resamples transcripts. Offsets out of range
    or a source without a transcript raise :class:`InputError` naming ``where``.
    """
    coders = list(coders)
    if len(set(coders)) < 2:
        raise InputError(f"agreement needs at least two coders (got {', '.join(coders) or 'none'})", where)
    if codes is None:
        codes = sorted({c.code for c in codings if c.coder in set(coders)})
    units = span_units(codings, transcripts, coders, codes, config, segments, present, where)
    if not units.sources:
        raise InputError(f"no transcript was coded by at least two of the coders {', '.join(coders)}", where)
    config = config or UnitConfig()
    result = binary_agreement(units.values, coders, units.codes, units.clusters, n_boot, seed, unit=config.unit)
    result.sources = units.sources
    result.config = config
    taking_part = (
        present if present is not None else {coder: {c.source for c in codings if c.coder == coder} for coder in coders}
    )
    result.transcripts_by_coder = {
        coder: sum(source in taking_part.get(coder, ()) for source in units.sources) for coder in coders
    }
    return result
