"""Training labels from coded spans: which impacts each segment carries, for one or more coders.

A segment takes code *c* from a coder when that coder's spans of *c* cover it enough:

* at least ``min_segment_coverage`` of the segment's characters lie inside spans of *c*, or
* at least ``min_span_coverage`` of one span of *c* lies inside the segment (a short coded
  passage inside a longer segment still labels it).

Interviewer segments are context, never training targets: their labels are all zero and
``is_target`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import InputError
from pipeline.ingest import CODING_COLUMNS
from pipeline.params import ParamsSection


@dataclass(frozen=True)
class LabelConfig(ParamsSection):
    """``params.yaml: labels``."""

    section: ClassVar[str] = "labels"

    min_segment_coverage: float = 0.5
    min_span_coverage: float = 0.5


def read_codings(path, codebook: Codebook | None = None) -> pd.DataFrame:
    """A codings table (``source,start,end,code,coder``), every row checked, codes checked against the codebook."""
    from pipeline.ingest import read_codings as read_coding_rows

    codings = read_coding_rows(path)
    table = pd.DataFrame([vars(c) for c in codings], columns=list(CODING_COLUMNS))
    table = table.astype({"start": "int64", "end": "int64"})
    if codebook is not None:
        codebook.check_codes(set(table.code), path)
    return table


def check_offsets(codings: pd.DataFrame, texts: dict[str, str], where=None) -> None:
    """Every coding's source must exist and its span must lie inside that source's text."""
    unknown = sorted(set(codings.source) - set(texts))
    if unknown:
        raise InputError(f"codings name source(s) with no transcript: {', '.join(unknown[:5])}", where)
    lengths = codings.source.map({name: len(text) for name, text in texts.items()})
    outside = codings[codings.end > lengths]
    if len(outside):
        row = outside.iloc[0]
        raise InputError(
            f"{len(outside)} coding(s) end past their transcript, first: {row.source} {row.start}-{row.end} "
            f"(text has {len(texts[row.source])} characters)",
            where,
        )


def segment_labels(
    segments: pd.DataFrame,
    codings: pd.DataFrame,
    impact_ids: list[str],
    coders: list[str] | None = None,
    config: LabelConfig | None = None,
) -> np.ndarray:
    """``(n_segments, n_impacts)`` 0/1 matrix: the codes each segment carries for the given coders.

    With several coders a segment carries a code when any of them coded it (their union).
    """
    config = config or LabelConfig()
    chosen = codings if coders is None else codings[codings.coder.isin(coders)]
    column = {code: j for j, code in enumerate(impact_ids)}
    labels = np.zeros((len(segments), len(impact_ids)), dtype=np.int8)
    seg = segments.reset_index(drop=True)
    for source, seg_rows in seg.groupby("source", sort=False):
        spans = chosen[chosen.source == source]
        if spans.empty:
            continue
        starts, ends = seg_rows.start.to_numpy(), seg_rows.end.to_numpy()
        participant = (seg_rows.role != "interviewer").to_numpy()
        for code, code_spans in spans.groupby("code"):
            if code not in column:
                continue
            covered = np.zeros(len(seg_rows))
            best_span_share = np.zeros(len(seg_rows))
            for s, e in zip(code_spans.start.to_numpy(), code_spans.end.to_numpy(), strict=True):
                overlap = np.clip(np.minimum(ends, e) - np.maximum(starts, s), 0, None)
                covered += overlap  # spans of one code rarely overlap; capped below
                best_span_share = np.maximum(best_span_share, overlap / (e - s))
            seg_share = np.minimum(covered / np.maximum(ends - starts, 1), 1.0)
            hit = (seg_share >= config.min_segment_coverage) | (best_span_share >= config.min_span_coverage)
            labels[seg_rows.index.to_numpy()[hit & participant], column[code]] = 1
    return labels
