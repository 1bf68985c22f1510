"""Inter-rater agreement: percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha, Gwet's AC1, PABAK.

The statistics only. Reliability data are a ``coders x units`` table of nominal values with missing entries
(:func:`reliability_metrics` and one function per coefficient). To compute every metric at once, and again
for each bootstrap resample, the data are reduced to their distinct unit patterns counted per transcript
(:class:`Tallies`, :func:`metric_values`). Coded spans become such data, one *binary* variable per code
(present / absent), in :mod:`pipeline.agreement.units`, which also draws the bootstrap intervals.

Definitions (``m`` coders, ``q`` categories, ``n_uk`` coders putting unit ``u`` in category ``k``):

* ``percent_agreement``: mean over units of the share of agreeing coder pairs,
  ``sum_k n_uk (n_uk - 1) / (m (m - 1))`` (for two coders: the share of units they agree on);
* ``cohen_kappa`` (two coders only): ``(po - pe) / (1 - pe)``, ``pe = sum_k pA_k pB_k`` -- for a binary code
  ``Pyes_A * Pyes_B + Pno_A * Pno_B``, NVivo's coding-comparison formula;
* ``fleiss_kappa``: ``pe = sum_k p_k^2`` with ``p_k`` the pooled share of category ``k``;
* ``gwet_ac1``: ``pe = sum_k p_k (1 - p_k) / (q - 1)``;
* ``pabak``: ``(q po - 1) / (q - 1)`` (``2 po - 1`` for a binary code);
* ``krippendorff_alpha``: nominal alpha from the coincidence matrix, using every unit with at least two values
  (missing data allowed). The other metrics use the units that every coder coded;
* ``prevalence`` (coded spans only): the share of "present" among the values of the units every coder coded,
  i.e. the mean over coders of the share of units each coded with the code. Kappa and alpha fall with it
  for a given percent agreement (the "high agreement, low kappa" paradox), so it is reported beside them.

A binary code has ``q = 2``; other data have ``q`` = the number of categories observed (at least 2).
Undefined values are ``NaN`` (``null`` in JSON), never an error: kappa and alpha when chance agreement is
1 (a code nobody used, or everyone put every unit in one category: percent agreement, PABAK and AC1 are then
1), every metric when there is no unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.errors import InputError

METRICS = ("percent_agreement", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1", "pabak")
BINARY_METRICS = ("prevalence",)  # only for coded spans (one present/absent variable per code)
MAX_CODERS = 30
#: a chance-corrected coefficient is undefined (NaN) when its denominator (``1 - pe``) is not above this
MIN_DENOMINATOR = 1e-12


# --- the metrics on weighted unit patterns ------------------------------------------------------


def _chance_corrected(po: np.ndarray, pe: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(1.0 - pe > MIN_DENOMINATOR, (po - pe) / (1.0 - pe), np.nan)


def _category_counts(patterns: np.ndarray, q: int) -> sparse.csr_matrix:
    """``(P, q)``: how many coders put each pattern's unit in each category (``-1`` = missing)."""
    rows = np.repeat(np.arange(patterns.shape[0]), patterns.shape[1])
    flat = patterns.ravel()
    valid = flat >= 0
    counts = sparse.csr_matrix(
        (np.ones(int(valid.sum())), (rows[valid], flat[valid])), shape=(patterns.shape[0], q), dtype=float
    )
    counts.sum_duplicates()
    return counts


def _weighted(weights: np.ndarray, matrix: sparse.csr_matrix) -> np.ndarray:
    """``weights @ matrix`` as a dense ``(B, q)`` array."""
    return np.asarray((matrix.T @ weights.T).T, dtype=float)


def _one_hot(column: np.ndarray, q: int) -> sparse.csr_matrix:
    rows = np.arange(len(column))
    return sparse.csr_matrix((np.ones(len(column)), (rows, np.clip(column, 0, None))), shape=(len(column), q))


def metric_values(patterns: np.ndarray, weights: np.ndarray, q: int) -> dict[str, np.ndarray]:
    """Every metric for each row of ``weights`` (``(B, P)``: how many units show each of the ``P`` patterns).

    ``patterns`` is ``(P, m)``: one row per distinct unit, the category index of each coder or ``-1``.
    """
    m = patterns.shape[1]
    counts = _category_counts(patterns, q)
    coders_per_unit = np.asarray(counts.sum(axis=1)).ravel()
    same_pairs = np.asarray(counts.multiply(counts - counts.sign()).sum(axis=1)).ravel()  # sum_k n_k (n_k - 1)
    complete_weights = weights * (coders_per_unit == m)
    pairable_weights = weights * (coders_per_unit >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_complete = complete_weights.sum(axis=1)
        po = np.where(n_complete > 0, complete_weights @ (same_pairs / (m * (m - 1))) / n_complete, np.nan)
        shares = _weighted(complete_weights, counts) / (n_complete * m)[:, None]  # pooled share of each category
        values = {
            "prevalence": shares[:, 1] if q == 2 else np.full(len(po), np.nan),
            "percent_agreement": po,
            "fleiss_kappa": _chance_corrected(po, (shares**2).sum(axis=1)),
            "gwet_ac1": _chance_corrected(po, (shares * (1.0 - shares)).sum(axis=1) / (q - 1)),
            "pabak": (q * po - 1.0) / (q - 1),
        }
        if m == 2:
            first = _weighted(complete_weights, _one_hot(patterns[:, 0], q))
            second = _weighted(complete_weights, _one_hot(patterns[:, 1], q))
            values["cohen_kappa"] = _chance_corrected(po, (first * second).sum(axis=1) / n_complete**2)
        # Krippendorff: n values in pairable units, n_c per category, trace of the coincidence matrix
        n = pairable_weights @ coders_per_unit
        n_c = _weighted(pairable_weights, counts)
        trace = pairable_weights @ (same_pairs / np.maximum(coders_per_unit - 1.0, 1.0))
        expected = n**2 - (n_c**2).sum(axis=1)
        values["krippendorff_alpha"] = np.where(
            (n >= 2) & (expected > 1e-9 * np.maximum(n, 1.0) ** 2), 1.0 - (n - 1.0) * (n - trace) / expected, np.nan
        )
    return values


@dataclass
class Tallies:
    """Reliability data reduced to distinct unit patterns, counted per cluster (transcript)."""

    patterns: np.ndarray  # (P, m) category indices, -1 = missing
    counts: sparse.csr_matrix  # (G, P) units of each pattern in each cluster
    n_categories: int

    @property
    def n_units(self) -> int:
        pairable = (self.patterns >= 0).sum(axis=1) >= 2
        return int(round(float(np.asarray(self.counts.sum(axis=0)).ravel() @ pairable)))

    def weights(self, draws: np.ndarray) -> np.ndarray:
        """``(B, P)`` pattern weights for ``draws`` (``(B, G)``: how often each cluster is drawn)."""
        return np.asarray((self.counts.T @ draws.T).T, dtype=float)


def _pattern_index(codes: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct columns of ``codes`` (``(m, ...)`` category indices, ``-1`` missing).

    Returns ``(patterns, inverse)``: ``patterns`` is ``(P, m)``, ``inverse`` has the shape of ``codes[0]``.
    """
    m = codes.shape[0]
    base = q + 1
    if base**m >= 2**62:
        flat = codes.reshape(m, -1).T
        patterns, inverse = np.unique(flat, axis=0, return_inverse=True)
        return patterns.astype(np.int64), np.asarray(inverse).reshape(codes.shape[1:])
    powers = base ** np.arange(m, dtype=np.int64)
    keys = np.tensordot(powers, codes.astype(np.int64) + 1, axes=1)
    if base**m <= 1 << 22:  # small key space: count instead of sorting
        seen = np.flatnonzero(np.bincount(keys.ravel(), minlength=base**m))
        lookup = np.zeros(base**m, dtype=np.int64)
        lookup[seen] = np.arange(len(seen))
        unique_keys, inverse = seen, lookup[keys]
    else:
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        inverse = np.asarray(inverse).reshape(keys.shape)
    patterns = (unique_keys[:, None] // powers[None, :]) % base - 1
    return patterns.astype(np.int64), inverse


def _count_matrix(clusters: np.ndarray, inverse: np.ndarray, n_clusters: int, n_patterns: int) -> sparse.csr_matrix:
    """``(G, P)`` units of each pattern in each cluster."""
    if n_clusters * n_patterns <= 4_000_000:
        flat = clusters * n_patterns + inverse
        dense = np.bincount(flat, minlength=n_clusters * n_patterns).reshape(n_clusters, n_patterns)
        return sparse.csr_matrix(dense.astype(float))
    counts = sparse.csr_matrix(
        (np.ones(len(inverse)), (clusters, inverse)), shape=(n_clusters, n_patterns), dtype=float
    )
    counts.sum_duplicates()
    return counts


def tally_units(codes: np.ndarray, clusters: np.ndarray, n_clusters: int, q: int) -> Tallies:
    """Tally ``codes`` (``(m, n)`` category indices, ``-1`` missing) per cluster of each unit."""
    patterns, inverse = _pattern_index(codes, q)
    counts = _count_matrix(np.asarray(clusters, dtype=np.int64), inverse, n_clusters, patterns.shape[0])
    return Tallies(patterns, counts, q)


def binary_tallies(binary: np.ndarray, clusters: np.ndarray, n_clusters: int) -> tuple[list[Tallies], Tallies]:
    """Tallies of ``(m, n, K)`` binary data: one per code, in a shared pattern space, and their sum (pooled)."""
    patterns, inverse = _pattern_index(binary, 2)  # inverse: (n, K)
    per_code = [
        Tallies(patterns, _count_matrix(clusters, inverse[:, k], n_clusters, patterns.shape[0]), 2)
        for k in range(binary.shape[2])
    ]
    total = sum((t.counts for t in per_code), sparse.csr_matrix((n_clusters, patterns.shape[0])))
    return per_code, Tallies(patterns, sparse.csr_matrix(total), 2)


# --- reliability data as arrays ---------------------------------------------------------------------


def encode_reliability_data(data: Any) -> tuple[np.ndarray, list[Any]]:
    """``coders x units`` values (numbers or strings; ``None``/``NaN``/``""`` missing) -> category indices.

    Returns ``(codes, categories)``: ``codes[i, u]`` indexes ``categories`` (sorted when sortable), ``-1`` missing.
    """
    values = np.asarray(data, dtype=object)
    if values.ndim != 2:
        raise ValueError("reliability data must be a 2-D coders x units table")
    missing = pd.isna(values) | (values == "")
    present = values[~missing]
    categories = list(dict.fromkeys(present.tolist()))
    try:
        categories.sort()
    except TypeError:
        categories.sort(key=lambda value: (type(value).__name__, str(value)))
    index = {category: i for i, category in enumerate(categories)}
    codes = np.full(values.shape, -1, dtype=np.int64)
    codes[~missing] = [index[value] for value in present.tolist()]
    return codes, categories


def check_coders(codes: np.ndarray) -> None:
    """Refuse reliability data (``coders x ...``) with fewer than two coders or more than :data:`MAX_CODERS`."""
    if codes.shape[0] < 2:
        raise InputError(f"agreement needs at least two coders (got {codes.shape[0]})")
    if codes.shape[0] > MAX_CODERS:
        raise InputError(f"at most {MAX_CODERS} coders at a time (got {codes.shape[0]})")


def reliability_metrics(data: Any, n_categories: int | None = None) -> dict[str, float]:
    """Every metric for ``coders x units`` nominal reliability data (no intervals).

    ``n_categories`` (for AC1 and PABAK) defaults to the number of categories observed, at least 2.
    ``cohen_kappa`` is only present for two coders.
    """
    codes, categories = encode_reliability_data(data)
    check_coders(codes)
    q = max(n_categories or 0, len(categories), 2)
    tally = tally_units(codes, np.zeros(codes.shape[1], dtype=np.int64), 1, q)
    values = metric_values(tally.patterns, np.asarray(tally.counts.sum(axis=0), dtype=float), q)
    return {name: float(values[name][0]) for name in METRICS if name in values}


def percent_agreement(data: Any) -> float:
    """Mean share of agreeing coder pairs over the units every coder coded."""
    return reliability_metrics(data)["percent_agreement"]


def cohen_kappa(first: Sequence[Any], second: Sequence[Any]) -> float:
    """Cohen's kappa of two coders over the units both coded."""
    return reliability_metrics([list(first), list(second)])["cohen_kappa"]


def fleiss_kappa(data: Any) -> float:
    """Fleiss' kappa over the units every coder coded."""
    return reliability_metrics(data)["fleiss_kappa"]


def krippendorff_alpha(data: Any) -> float:
    """Krippendorff's alpha (nominal) with missing data."""
    return reliability_metrics(data)["krippendorff_alpha"]


def gwet_ac1(data: Any, n_categories: int | None = None) -> float:
    """Gwet's AC1 over the units every coder coded (``n_categories`` possible categories, default observed)."""
    return reliability_metrics(data, n_categories)["gwet_ac1"]


def pabak(data: Any, n_categories: int | None = None) -> float:
    """Prevalence- and bias-adjusted kappa ``(q po - 1) / (q - 1)``."""
    return reliability_metrics(data, n_categories)["pabak"]
