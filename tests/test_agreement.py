"""The agreement engine: published worked examples, the reference libraries, edge cases, bootstrap, CLI."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from pipeline.agreement import (
    METRICS,
    UnitConfig,
    agreement,
    binary_agreement,
    coding_comparison,
    cohen_kappa,
    expand_list_options,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    pabak,
    percent_agreement,
    reliability_metrics,
    run_agreement,
    segment_presence,
    span_agreement,
    transcript_from_text,
)
from pipeline.codebook import load_codebook
from pipeline.errors import InputError
from pipeline.ingest import Coding, load_transcript
from tests.conftest import ROOT

GROWTH, RELATIONS, MINDSET = "being_growth_service_users", "interacting_relationships", "thinking_changing_mindset"

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units, missing data
KRIPPENDORFF_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
# ... section A: two observers, binary data, 10 units: alpha = 0.095
KRIPPENDORFF_A = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories -> 0.210
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def two_by_two(yes_yes: int, yes_no: int, no_yes: int, no_no: int) -> list[list[int]]:
    """Two coders' ratings (1 yes, 0 no) from the cells of a 2x2 table."""
    cells = [(1, 1)] * yes_yes + [(1, 0)] * yes_no + [(0, 1)] * no_yes + [(0, 0)] * no_no
    return [[a for a, _ in cells], [b for _, b in cells]]


def raters_from_counts(table: list[list[int]]) -> np.ndarray:
    """Raters x subjects data from a subjects x categories count table (rater identity is irrelevant)."""
    return np.array([[k for k, n in enumerate(row) for _ in range(n)] for row in table]).T


# --- published worked examples ----------------------------------------------------------------------


def test_krippendorff_example_with_missing_data():
    alpha = krippendorff_alpha(KRIPPENDORFF_C)
    assert alpha == pytest.approx(0.743, abs=5e-4)
    reference = np.array(KRIPPENDORFF_C, dtype=float)  # None -> nan
    assert alpha == pytest.approx(krippendorff.alpha(reference, level_of_measurement="nominal"), abs=1e-12)


def test_krippendorff_binary_example_and_its_kappa():
    assert krippendorff_alpha(KRIPPENDORFF_A) == pytest.approx(0.095, abs=5e-4)
    # po = 0.6, pe = 0.2 * 0.4 + 0.8 * 0.6 = 0.56 (Pyes_A Pyes_B + Pno_A Pno_B)
    assert cohen_kappa(*KRIPPENDORFF_A) == pytest.approx((0.6 - 0.56) / (1 - 0.56))


def test_textbook_two_by_two_cohen_example():
    # 50 proposals: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> po 0.7, pe 0.5, kappa 0.4
    a, b = two_by_two(20, 5, 10, 15)
    metrics = reliability_metrics([a, b])
    assert metrics["percent_agreement"] == pytest.approx(0.7)
    assert metrics["cohen_kappa"] == pytest.approx(0.4)
    assert metrics["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert metrics["pabak"] == pytest.approx(2 * 0.7 - 1)
    pi_yes = (25 / 50 + 30 / 50) / 2  # Gwet: mean prevalence; pe = 2 pi (1 - pi) for two categories
    pe = 2 * pi_yes * (1 - pi_yes)
    assert metrics["gwet_ac1"] == pytest.approx((0.7 - pe) / (1 - pe))


def test_high_agreement_paradox():
    # kappa collapses while AC1 and PABAK stay high (Feinstein & Cicchetti's paradox, Gwet's motivation for AC1)
    a, b = two_by_two(118, 5, 2, 0)
    metrics = reliability_metrics([a, b])
    assert metrics["percent_agreement"] == pytest.approx(118 / 125)
    assert metrics["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert metrics["cohen_kappa"] < 0 < 0.9 < metrics["gwet_ac1"]


def test_fleiss_worked_example():
    data = raters_from_counts(FLEISS_TABLE)
    assert fleiss_kappa(data) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(data) == pytest.approx(sm_fleiss_kappa(np.array(FLEISS_TABLE)), abs=1e-12)
    assert percent_agreement(data) == pytest.approx(0.378, abs=5e-4)  # P-bar of the worked example


def test_nvivo_coding_comparison_example():
    # NVivo help: a 1000-character source, 50 characters coded by both users, 150 by only one, 800 by neither
    # -> agreement (800 + 50) / 1000 = 85%; kappa from EF = coded_A*coded_B/N + notA*notB/N (here A 150, B 100).
    transcript = transcript_from_text("doc.txt", "x" * 1000)
    codings = [Coding("doc.txt", 0, 150, GROWTH, "A"), Coding("doc.txt", 100, 200, GROWTH, "B")]
    expected_chance = (150 * 100 + 850 * 900) / 1000
    nvivo_kappa = (850 - expected_chance) / (1000 - expected_chance)

    table = coding_comparison(codings, {"doc.txt": transcript}, ["A", "B"])
    row = table.iloc[0]
    assert (row["units"], row["agreement"], row["a_and_b"], row["not_a_and_not_b"]) == (1000, 85.0, 5.0, 80.0)
    assert (row["a_and_not_b"], row["b_and_not_a"], row["disagreement"]) == (10.0, 5.0, 15.0)
    assert row["kappa"] == pytest.approx(nvivo_kappa)

    result = span_agreement(codings, {"doc.txt": transcript}, ["A", "B"], n_boot=0)
    assert result.per_code[GROWTH]["percent_agreement"] == pytest.approx(0.85)
    assert result.per_code[GROWTH]["cohen_kappa"] == pytest.approx(nvivo_kappa)
    assert result.per_code[GROWTH].n_units == 1000


# --- against the reference libraries on random data -------------------------------------------------


def reference_ac1(data: np.ndarray, q: int) -> float:
    """Gwet (2008), AC1 for several raters, complete data: a direct, loop-based transcription."""
    n_units = data.shape[1]
    r = data.shape[0]
    pa = pe_sum = 0.0
    pi = np.zeros(q)
    for u in range(n_units):
        counts = np.bincount(data[:, u], minlength=q)
        pa += sum(c * (c - 1) for c in counts) / (r * (r - 1))
        pi += counts / r
    pa /= n_units
    pi /= n_units
    pe_sum = sum(p * (1 - p) for p in pi) / (q - 1)
    return (pa - pe_sum) / (1 - pe_sum)


nominal = st.integers(min_value=0, max_value=3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(nominal, nominal), min_size=2, max_size=40))
def test_cohen_kappa_matches_scikit_learn(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = cohen_kappa(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = cohen_kappa_score(a, b)
    if math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, abs=1e-9)
    assert percent_agreement([a, b]) == pytest.approx(np.mean(np.array(a) == np.array(b)))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(2, 30), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_fleiss_ac1_pabak_match_statsmodels_and_gwet(raters, units, q, seed):
    data = np.random.default_rng(seed).integers(0, q, size=(raters, units))
    table, _ = aggregate_raters(data.T, n_cat=q)
    metrics = reliability_metrics(data, n_categories=q)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sm_fleiss_kappa(table)
        randolph = sm_fleiss_kappa(table, method="randolph")  # free-marginal kappa = multi-rater PABAK
    if np.isfinite(theirs):
        assert metrics["fleiss_kappa"] == pytest.approx(theirs, abs=1e-9)
    else:
        assert math.isnan(metrics["fleiss_kappa"])
    assert metrics["pabak"] == pytest.approx(randolph, abs=1e-9)
    assert metrics["gwet_ac1"] == pytest.approx(reference_ac1(data, q), abs=1e-9)
    assert gwet_ac1(data, q) == metrics["gwet_ac1"] and pabak(data, q) == metrics["pabak"]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(2, 30), st.integers(2, 5), st.floats(0.0, 0.5), st.integers(0, 2**32 - 1))
def test_krippendorff_alpha_matches_the_krippendorff_package(coders, units, q, missing, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, q, size=(coders, units)).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    ours = krippendorff_alpha(data)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    values = data[:, pairable]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        assert math.isnan(ours)  # no variation: alpha undefined (the package raises here)
        return
    assert ours == pytest.approx(krippendorff.alpha(data, level_of_measurement="nominal"), abs=1e-9)


def test_two_coder_agreement_is_the_same_through_every_api():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2, 200)
    b = np.where(rng.random(200) < 0.8, a, 1 - a)
    values = np.stack([a, b])[:, :, None]
    result = binary_agreement(values, ["A", "B"], [GROWTH], n_boot=0)
    generic = agreement([a, b], ["A", "B"], n_boot=0)
    for name in METRICS:
        assert result.per_code[GROWTH][name] == pytest.approx(generic.overall[name])
    assert result.per_code[GROWTH]["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))


# --- edge cases -----------------------------------------------------------------------------------------


def test_a_code_nobody_used_is_undefined_not_an_error():
    values = np.zeros((2, 50, 2))
    values[:, :10, 0] = 1  # first code: perfect agreement on 10 of 50 units; second code: never used
    result = binary_agreement(values, ["A", "B"], [GROWTH, RELATIONS], n_boot=50)
    used, unused = result.per_code[GROWTH], result.per_code[RELATIONS]
    assert all(used[name] == pytest.approx(1.0) for name in METRICS)
    assert math.isnan(unused["cohen_kappa"]) and math.isnan(unused["krippendorff_alpha"])
    assert math.isnan(unused["fleiss_kappa"])
    assert unused["percent_agreement"] == unused["gwet_ac1"] == unused["pabak"] == 1.0
    assert result.overall["cohen_kappa"] == pytest.approx(1.0)  # the mean leaves undefined codes out
    as_json = json.loads(result.to_json())
    assert as_json["per_code"][RELATIONS]["cohen_kappa"] == {"value": None, "ci95": None}


def test_all_one_category_and_no_units():
    same = reliability_metrics([["x"] * 5, ["x"] * 5, ["x"] * 5])
    assert math.isnan(same["fleiss_kappa"]) and math.isnan(same["krippendorff_alpha"])
    assert same["percent_agreement"] == same["gwet_ac1"] == same["pabak"] == 1.0
    assert "cohen_kappa" not in same  # three coders
    empty = reliability_metrics([[None, 1], [2, None]])  # no unit has two values
    assert all(math.isnan(value) for value in empty.values())


def test_disagreement_on_every_unit():
    metrics = reliability_metrics([[0, 1] * 10, [1, 0] * 10])
    assert metrics["percent_agreement"] == 0.0 and metrics["pabak"] == -1.0
    assert metrics["cohen_kappa"] == pytest.approx(-1.0)


def test_one_coder_is_refused():
    with pytest.raises(InputError, match="at least two coders"):
        reliability_metrics([[1, 2, 3]])


# --- spans -> units -----------------------------------------------------------------------------------

TURNS_1 = [
    ("Interviewer", "What changed for you since the program started?"),
    ("Tenant", "I sleep better now and I trust the staff a lot more than before."),
    ("Interviewer", "And for the neighbourhood around the building?"),
    ("Tenant", "We started a garden with the neighbours and people talk to each other."),
    ("Interviewer", "Anything else you noticed?"),
    ("Tenant", "The staff changed how they run the meetings, they listen to us now."),
]
TURNS_2 = [
    ("Interviewer", "How did the project start for your team?"),
    ("Nurse", "We were sceptical at first, honestly, it felt like more paperwork."),
    ("Interviewer", "And now?"),
    ("Nurse", "Now I see patients differently, I ask them what matters to them."),
]


def write_transcript(folder: Path, name: str, turns: list[tuple[str, str]]) -> str:
    text = "".join(f"{who}: {what}\r\n" for who, what in turns)  # CRLF on purpose: offsets are code points
    (folder / name).write_bytes(text.encode("utf-8"))
    return text


def span(text: str, phrase: str) -> tuple[int, int]:
    start = text.index(phrase)
    return start, start + len(phrase)


@pytest.fixture
def corpus(tmp_path: Path) -> dict:
    texts = tmp_path / "transcripts"
    texts.mkdir()
    t1 = write_transcript(texts, "t1.txt", TURNS_1)
    t2 = write_transcript(texts, "t2.txt", TURNS_2)
    rows = [
        ("t1.txt", *span(t1, "I sleep better now and I trust the staff"), GROWTH, "A"),
        ("t1.txt", *span(t1, "I sleep better now"), GROWTH, "B"),
        ("t1.txt", *span(t1, "We started a garden with the neighbours and people talk to each other."), RELATIONS, "A"),
        ("t1.txt", *span(t1, "people talk to each other."), RELATIONS, "B"),
        ("t1.txt", *span(t1, "they listen to us now."), MINDSET, "A"),
        ("t1.txt", *span(t1, "What changed for you"), GROWTH, "A"),  # interviewer text: excluded by default
        ("t2.txt", *span(t2, "Now I see patients differently, I ask them what matters to them."), MINDSET, "A"),
        ("t2.txt", *span(t2, "Now I see patients differently"), MINDSET, "B"),
        ("t2.txt", *span(t2, "We were sceptical at first"), GROWTH, "B"),
    ]
    codings = tmp_path / "codings.csv"
    pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"]).to_csv(codings, index=False)
    transcripts = {name: load_transcript(texts / name) for name in ("t1.txt", "t2.txt")}
    return {"dir": tmp_path, "texts": texts, "codings": codings, "transcripts": transcripts, "rows": rows}


def as_codings(rows: list[tuple]) -> list[Coding]:
    return [Coding(*row) for row in rows]


def participant_characters(transcript) -> list[int]:
    return [i for turn in transcript.turns if turn.role == "participant" for i in range(turn.start, turn.end)]


def covers(rows: list[tuple], source: str, i: int, code: str, coder: str) -> bool:
    return any(r[0] == source and r[3] == code and r[4] == coder and r[1] <= i < r[2] for r in rows)


def test_character_units_by_hand(corpus):
    result = span_agreement(as_codings(corpus["rows"]), corpus["transcripts"], ["A", "B"], n_boot=0)
    assert result.sources == ["t1.txt", "t2.txt"]
    participant = sum(len(participant_characters(t)) for t in corpus["transcripts"].values())
    assert result.per_code[GROWTH].n_units == participant
    # rebuild the growth code's character vectors by hand and ask scikit-learn
    a, b = [], []
    for name, transcript in corpus["transcripts"].items():
        for i in participant_characters(transcript):
            a.append(covers(corpus["rows"], name, i, GROWTH, "A"))
            b.append(covers(corpus["rows"], name, i, GROWTH, "B"))
    assert result.per_code[GROWTH]["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert result.per_code[GROWTH]["percent_agreement"] == pytest.approx(np.mean(np.array(a) == np.array(b)))


def test_interviewer_text_is_excluded_unless_asked(corpus):
    codings, transcripts = as_codings(corpus["rows"]), corpus["transcripts"]
    default = span_agreement(codings, transcripts, ["A", "B"], [GROWTH], n_boot=0)
    with_interviewer = span_agreement(
        codings, transcripts, ["A", "B"], [GROWTH], UnitConfig(include_interviewer=True), n_boot=0
    )
    assert with_interviewer.per_code[GROWTH].n_units > default.per_code[GROWTH].n_units
    assert with_interviewer.per_code[GROWTH]["cohen_kappa"] < default.per_code[GROWTH]["cohen_kappa"]


def test_ignore_uncoded_keeps_only_coded_text(corpus):
    codings, transcripts = as_codings(corpus["rows"]), corpus["transcripts"]
    result = span_agreement(codings, transcripts, ["A", "B"], config=UnitConfig(ignore_uncoded=True), n_boot=0)
    covered = {
        (name, i)
        for name, transcript in transcripts.items()
        for i in participant_characters(transcript)
        if any(covers(corpus["rows"], name, i, code, coder) for code in result.per_code for coder in "AB")
    }
    assert result.pooled.n_units == len(covered) * len(result.per_code)


def test_document_unit(corpus):
    result = span_agreement(
        as_codings(corpus["rows"]), corpus["transcripts"], ["A", "B"], config=UnitConfig(unit="document"), n_boot=0
    )
    assert result.per_code[MINDSET].n_units == 2
    assert result.per_code[MINDSET]["percent_agreement"] == 0.5  # t1: only A; t2: both
    assert result.per_code[RELATIONS]["percent_agreement"] == 1.0


def test_segment_presence_rules():
    starts, ends = np.array([0, 100, 200]), np.array([100, 200, 210])
    spans = np.array([[40, 120]])  # 60% of segment 0, 20% of segment 1; 75% of the span lies in segment 0
    assert segment_presence(spans, starts, ends, "segment").tolist() == [True, False, False]
    assert segment_presence(spans, starts, ends, "span").tolist() == [True, False, False]
    assert segment_presence(spans, starts, ends, "any").tolist() == [True, True, False]
    short = np.array([[150, 160], [201, 209]])  # short spans inside long segments count under "span"/"either"
    assert segment_presence(short, starts, ends, "segment").tolist() == [False, False, True]
    assert segment_presence(short, starts, ends, "either").tolist() == [False, True, True]
    assert segment_presence(short, starts, ends, "segment", min_overlap=0.05).tolist() == [False, True, True]
    two = np.array([[100, 130], [170, 200]])  # together they cover 60% of segment 1
    assert segment_presence(two, starts, ends, "segment").tolist() == [False, True, False]


def test_a_coder_missing_from_a_transcript_is_missing_data(corpus):
    rows = corpus["rows"] + [("t1.txt", *span(corpus["transcripts"]["t1.txt"].text, "I sleep better"), GROWTH, "C")]
    result = span_agreement(as_codings(rows), corpus["transcripts"], ["A", "B", "C"], n_boot=0)
    assert "cohen_kappa" not in result.per_code[GROWTH].estimates
    assert json.loads(result.to_json())["cohen_kappa"] is None
    chars_t1 = sum(t.end - t.start for t in corpus["transcripts"]["t1.txt"].turns if t.role == "participant")
    chars_t2 = sum(t.end - t.start for t in corpus["transcripts"]["t2.txt"].turns if t.role == "participant")
    assert result.per_code[GROWTH].n_units == chars_t1 + chars_t2  # alpha pairs A and B on t2
    assert math.isfinite(result.per_code[GROWTH]["krippendorff_alpha"])


# --- bootstrap ------------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_with_a_seed(corpus):
    codings, transcripts = as_codings(corpus["rows"]), corpus["transcripts"]
    first = span_agreement(codings, transcripts, ["A", "B"], n_boot=200, seed=3).to_dict()
    again = span_agreement(codings, transcripts, ["A", "B"], n_boot=200, seed=3).to_dict()
    assert first == again
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, size=(3, 60))
    seeded = [agreement(data, n_boot=100, seed=seed).to_dict() for seed in (1, 1, 2)]
    assert seeded[0] == seeded[1] != seeded[2]
    none = span_agreement(codings, transcripts, ["A", "B"], n_boot=0).to_dict()
    assert none["pooled"]["cohen_kappa"]["ci95"] is None
    assert none["pooled"]["cohen_kappa"]["value"] == first["pooled"]["cohen_kappa"]["value"]


def test_bootstrap_resamples_transcripts_not_units():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 300)
    b = np.where(rng.random(300) < 0.8, a, 1 - a)
    one_cluster = agreement([a, b], clusters=["t1"] * 300, n_boot=100)
    estimate = one_cluster.overall.estimates["cohen_kappa"]
    assert estimate.ci_low == pytest.approx(estimate.value) and estimate.ci_high == pytest.approx(estimate.value)
    by_unit = agreement([a, b], n_boot=300, seed=1).overall.estimates["cohen_kappa"]
    assert by_unit.ci_low < by_unit.value < by_unit.ci_high
    assert by_unit.ci_high - by_unit.ci_low == pytest.approx(2 * 1.96 * 0.035, abs=0.05)  # about +- 2 SE


# --- inputs and CLI --------------------------------------------------------------------------------------


def test_cli_json_has_exactly_the_documented_keys(corpus, run_cli):
    result = run_cli(
        "agreement", corpus["codings"], "--text-dir", corpus["texts"], "--coders", "A", "B", "--json",
        "--bootstrap", "50",
    )  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    metric_keys = set(METRICS) | {"prevalence", "n_units"}
    described = {"unit", "unit_description", "transcripts", "codebook", "names", "interpretation", "bands", "notes"}
    assert set(data) == metric_keys | {"coders", "per_code", "pooled"} | described
    assert data["coders"] == ["A", "B"]
    assert set(data["per_code"]) == {GROWTH, RELATIONS, MINDSET}
    assert all(set(entry) == metric_keys for entry in data["per_code"].values())
    assert set(data["pooled"]) == metric_keys
    kappa = data["per_code"][GROWTH]["cohen_kappa"]
    assert set(kappa) == {"value", "ci95"} and len(kappa["ci95"]) == 2
    assert data["unit"] == "character" and data["unit_description"] == "characters of participant speech"
    assert data["names"][GROWTH] == load_codebook().impact(GROWTH).name["en"] and data["codebook"] == "imri v1"
    assert data["transcripts"] == 2 and set(data["interpretation"][GROWTH]) == {"kappa", "alpha"}
    assert data["bands"]["kappa"]["source"] == "Landis & Koch (1977)"


def test_cli_table_and_list_options(corpus, run_cli):
    result = run_cli(
        "agreement", corpus["codings"], "--text-dir", corpus["texts"], "--coders", "A", "B", "--codes", GROWTH,
        MINDSET, "--unit", "document", "--bootstrap", "0",
    )  # fmt: skip
    assert result.code == 0, result.err
    book = load_codebook()
    names = {code: book.impact(code).name["en"] for code in (GROWTH, MINDSET, RELATIONS)}
    assert names[GROWTH] in result.out and names[MINDSET] in result.out and names[RELATIONS] not in result.out
    assert GROWTH not in result.out  # names, not ids, by default
    assert "Cohen's κ [95% CI]" in result.out and "Pooled" not in result.out
    every = run_cli(
        "agreement", corpus["codings"], "--text-dir", corpus["texts"], "--codes", GROWTH, "--all", "--bootstrap", "0",
    )  # fmt: skip
    assert every.code == 0 and "Pooled" in every.out and GROWTH in every.out and "Gwet's AC1" in every.out
    assert expand_list_options(["x.csv", "--coders", "A", "B", "--json"], ["--coders"]) == [
        "x.csv", "--coders", "A", "--coders", "B", "--json",
    ]  # fmt: skip
    assert expand_list_options(["--coders", "--json"], ["--coders"]) == ["--coders", "--json"]


@pytest.mark.parametrize(
    "change,args,problem",
    [
        (None, ["--coders", "A", "Z"], "unknown coder(s): Z (the input has: A, B)"),
        (None, ["--coders", "A"], "agreement needs at least two coders"),
        (None, ["--codes", "not_a_code"], "1 code(s) neither used by the coders nor in the codebook: not_a_code"),
        (lambda rows: rows + [("t1.txt", 5, 99999, GROWTH, "A")], [], "out of range for t1.txt"),
        (lambda rows: [r[:4] for r in rows], [], "bad columns: expected source,start,end,code,coder, missing coder"),
        (lambda rows: [r for r in rows if r[4] == "A"], [], "agreement needs at least two coders"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(corpus, run_cli, change, args, problem):
    path = corpus["codings"]
    if change is not None:
        rows = change(corpus["rows"])
        columns = ["source", "start", "end", "code", "coder"][: len(rows[0])]
        pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    result = run_cli("agreement", path, "--text-dir", corpus["texts"], *args)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"error: {path}: ") and problem in result.err


def test_cli_other_bad_input(corpus, run_cli, tmp_path):
    assert "--text-dir is needed" in run_cli("agreement", corpus["codings"]).err
    assert run_cli("agreement").code == 2
    assert run_cli("agreement", corpus["codings"], "--text-dir", corpus["texts"], "--unit", "word").code == 2
    bad_long = tmp_path / "long.csv"
    bad_long.write_text("unit,rater,value\n1,A,x\n", encoding="utf-8")
    result = run_cli("agreement", "--long", bad_long)
    assert result.code == 2 and "bad columns" in result.err


def test_cli_long_format_krippendorff_example(tmp_path, run_cli):
    rows = [
        (unit + 1, f"obs{coder + 1}", value)
        for coder, values in enumerate(KRIPPENDORFF_C)
        for unit, value in enumerate(values)
        if value is not None
    ]
    path = tmp_path / "long.csv"
    pd.DataFrame(rows, columns=["unit", "coder", "value"]).to_csv(path, index=False)
    result = run_cli("agreement", "--long", path, "--json", "--bootstrap", "100")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) - {"unit", "unit_description", "transcripts", "codebook", "bands", "notes"} == set(METRICS) | {
        "n_units",
        "coders",
    }
    assert data["krippendorff_alpha"]["value"] == pytest.approx(0.743, abs=5e-4)
    assert data["cohen_kappa"] is None and data["coders"] == ["obs1", "obs2", "obs3", "obs4"]
    assert data["n_units"] == 11  # unit 12 has a single value
    two = run_cli("agreement", "--long", path, "--coders", "obs1", "obs2", "--json", "--bootstrap", "0")
    both = [1, 2, 3, 3, 2, 1, 4, 1, 2], [1, 2, 3, 3, 2, 2, 4, 1, 2]  # the units both observers coded
    assert json.loads(two.out)["cohen_kappa"]["value"] == pytest.approx(cohen_kappa_score(*both))
    table = run_cli("agreement", "--long", path, "--bootstrap", "0")
    assert table.code == 0 and "All units" in table.out and "Prevalence" not in table.out


def test_model_output_folder_is_one_more_coder(corpus, run_cli):
    transcript = corpus["transcripts"]["t1.txt"]
    model_codes = {1: GROWTH, 3: RELATIONS}  # turn index -> the model's code
    rows = []
    for turn in transcript.turns:
        rows.append(
            {
                "source": "t1.txt", "segment_id": f"t1.txt:{turn.start}-{turn.end}", "start": turn.start,
                "end": turn.end, "speaker": turn.speaker, "role": turn.role, "language": "en",
                "text": transcript.text[turn.start : turn.end], "codes": model_codes.get(turn.index, ""),
                "confidence": 0.9, "needs_review": False, f"p:{GROWTH}": 0.5,
            }
        )  # fmt: skip
    folder = corpus["dir"] / "coded"
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "segments.csv", index=False)
    (folder / "model.json").write_text(json.dumps({"name": "imri-test", "version": "0.1"}), encoding="utf-8")
    result = run_cli(
        "agreement", corpus["codings"], folder, "--text-dir", corpus["texts"], "--coders", "A", "imri-test",
        "--unit", "segment", "--json", "--bootstrap", "0",
    )  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["coders"] == ["A", "imri-test"]
    assert data["per_code"][GROWTH]["n_units"] == 3  # the model's participant segments of t1 (t2: only A)
    # A: growth in turn 1, relations in turn 3, mindset in turn 5; the model: growth 1, relations 3
    assert data["per_code"][GROWTH]["percent_agreement"]["value"] == 1.0
    assert data["per_code"][MINDSET]["percent_agreement"]["value"] == pytest.approx(2 / 3)
    (folder / "model.json").unlink()
    unnamed = run_cli("agreement", corpus["codings"], folder, "--text-dir", corpus["texts"], "--json")
    assert json.loads(unnamed.out)["coders"] == ["A", "B", "model"]


def test_qdpx_project_with_two_users(corpus, tmp_path):
    from pipeline.qdpx import export_qdpx

    texts = {name: t.text for name, t in corpus["transcripts"].items()}
    frame = pd.DataFrame(corpus["rows"], columns=["source", "start", "end", "code", "coder"])
    project = export_qdpx(texts, frame, tmp_path / "project.qdpx")
    from_qdpx = run_agreement([project], n_boot=20)
    from_csv = run_agreement([corpus["codings"]], text_dir=corpus["texts"], n_boot=20)
    assert from_qdpx.coders == from_csv.coders == ["A", "B"]
    assert from_qdpx.to_dict() == from_csv.to_dict()


def test_gold_set_runs(tmp_path):
    gold = ROOT / "data" / "gold"
    result = run_agreement([gold / "codings.csv"], text_dir=gold / "transcripts", coders=["A", "B"], n_boot=20)
    assert len(result.sources) >= 8  # the double-coded transcripts
    assert all(math.isfinite(m["cohen_kappa"]) for m in result.per_code.values())
    assert result.to_frame().shape[0] == (len(result.per_code) + 2) * (len(METRICS) + 1)  # + prevalence


# --- any codebook, sources outside the folder -------------------------------------------------------------


def test_codes_of_any_codebook_are_compared_and_named_by_the_codebook_beside_them(corpus, run_cli):
    """Codings with codes that are not IMRI ids: compared as they are; codebook.yaml beside them names them."""
    folder = corpus["dir"] / "study"
    folder.mkdir()
    rename = {GROWTH: "Feelings/Hope", RELATIONS: "Ties", MINDSET: "Feelings/Doubt"}
    rows = [(*r[:3], rename[r[3]], r[4]) for r in corpus["rows"]]
    pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"]).to_csv(folder / "codings.csv", index=False)
    imri = run_agreement([corpus["codings"]], text_dir=corpus["texts"], n_boot=0)
    other = run_agreement([folder / "codings.csv"], text_dir=corpus["texts"], n_boot=0)
    # the same figures under other names: the codebook plays no part in the computation
    for old, new in rename.items():
        assert other.per_code[new].to_dict() == imri.per_code[old].to_dict()
    assert other.names == {} and other.codebook == ""  # no codebook knows these codes: they keep their own names
    book = {
        "id": "hope-study", "version": "2",
        "categories": [{"id": "Feelings", "name_en": "Feelings", "name_fr": "Sentiments"}],
        "impacts": [
            {"id": "Feelings/Hope", "category": "Feelings", "kind": "innovation", "name_en": "Hope",
             "name_fr": "Espoir"},
            {"id": "Feelings/Doubt", "category": "Feelings", "kind": "innovation", "name_en": "Doubt",
             "name_fr": "Doute"},
        ],
    }  # fmt: skip
    (folder / "codebook.yaml").write_text(yaml.safe_dump(book), encoding="utf-8")
    result = run_cli(
        "agreement", folder / "codings.csv", "--text-dir", corpus["texts"], "--bootstrap", "0", "--lang", "fr"
    )
    assert result.code == 0, result.err
    assert "Espoir" in result.out and "Doute" in result.out and "Ties" in result.out
    assert "Codes named by codebook hope-study v2." in result.out
    assert "Feelings/Hope" not in result.out
    unknown = run_cli("agreement", folder / "codings.csv", "--text-dir", corpus["texts"], "--codes", "Feelings/Joy")
    assert unknown.code == 2 and "neither used by the coders nor in the codebook: Feelings/Joy" in unknown.err


def test_a_project_names_its_own_codes(corpus, tmp_path):
    from pipeline.qdpx import export_qdpx

    texts = {name: t.text for name, t in corpus["transcripts"].items()}
    rows = [(*r[:3], {GROWTH: "Feelings/Hope"}.get(r[3], "Other"), r[4]) for r in corpus["rows"]]
    frame = pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"])
    result = run_agreement([export_qdpx(texts, frame, tmp_path / "p.qdpx")], n_boot=0)
    assert result.names == {"Feelings/Hope": "Hope", "Other": "Other"}


@pytest.mark.parametrize("kind", ["absolute", "parent", "link"])
def test_sources_outside_the_text_folder_are_refused(corpus, run_cli, tmp_path, kind):
    """Today's code read ``--text-dir / source``: an absolute source or ``../`` read files outside the folder."""
    secret = corpus["dir"] / "secret.txt"
    secret.write_text("Tenant: my private notes, not a transcript of this study.\n", encoding="utf-8")
    source = {"absolute": str(secret), "parent": "../secret.txt", "link": "link.txt"}[kind]
    if kind == "link":
        (corpus["texts"] / "link.txt").symlink_to(secret)
    rows = [(source, 8, 20, GROWTH, "A"), (source, 8, 25, GROWTH, "B")]
    path = tmp_path / "hostile.csv"
    pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"]).to_csv(path, index=False)
    result = run_cli("agreement", path, "--text-dir", corpus["texts"], "--bootstrap", "0")
    assert result.code == 2, result.out
    assert result.err.count("\n") == 1 and "refused: transcript" in result.err
    assert result.out == ""


def test_a_fifo_in_the_text_folder_is_refused_without_blocking(corpus, run_cli, tmp_path):
    import os

    os.mkfifo(corpus["texts"] / "pipe.txt")
    rows = [("pipe.txt", 0, 5, GROWTH, "A"), ("pipe.txt", 0, 5, GROWTH, "B")]
    path = tmp_path / "fifo.csv"
    pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"]).to_csv(path, index=False)
    result = run_cli("agreement", path, "--text-dir", corpus["texts"], "--bootstrap", "0")
    assert result.code == 2 and "pipe.txt' is not a regular file" in result.err


# --- for a methods section: bands, prevalence, notes, formats, the paragraph -------------------------------


def test_bands_follow_landis_koch_and_krippendorff():
    from pipeline.agreement import alpha_band, kappa_band

    expected = {
        -0.05: "poor", 0.0: "slight", 0.2: "slight", 0.21: "fair", 0.4: "fair", 0.41: "moderate", 0.6: "moderate",
        0.61: "substantial", 0.8: "substantial", 0.81: "almost perfect", 1.0: "almost perfect", math.nan: "n/a",
    }  # fmt: skip
    assert {k: kappa_band(k) for k in expected} == expected
    assert [alpha_band(a) for a in (1.0, 0.8, 0.7999, 0.667, 0.6669, -0.2, math.nan)] == [
        "reliable", "reliable", "tentative", "tentative", "unreliable", "unreliable", "n/a",
    ]  # fmt: skip


def paradox_result():
    """Two codes over 1,000 units: a rare one the coders mostly agree on (99% agreement, kappa about 0.5)
    and a common one with real disagreement (70% agreement)."""
    rare_a = np.zeros(1000)
    rare_b = np.zeros(1000)
    rare_a[:10], rare_b[5:15] = 1, 1
    rng = np.random.default_rng(0)
    common_a = (rng.random(1000) < 0.5).astype(float)
    common_b = np.where(rng.random(1000) < 0.7, common_a, 1 - common_a)
    values = np.stack([np.stack([rare_a, common_a], axis=1), np.stack([rare_b, common_b], axis=1)])
    result = binary_agreement(values, ["A", "B"], ["rare", "common"], n_boot=0)
    result.names = {"rare": "A rare code", "common": "A common code"}
    return result


def test_prevalence_and_the_high_agreement_low_kappa_note():
    from pipeline.agreement import methods_paragraph, notes, paradox_codes

    result = paradox_result()
    rare, common = result.per_code["rare"], result.per_code["common"]
    assert rare["prevalence"] == pytest.approx(20 / 2000)  # 10 + 10 "present" out of 2 x 1,000 values
    assert rare["percent_agreement"] == pytest.approx(0.99)
    coder_a, coder_b = np.r_[[1] * 10, [0] * 990], np.r_[[0] * 5, [1] * 10, [0] * 985]
    assert rare["cohen_kappa"] == pytest.approx(cohen_kappa_score(coder_a, coder_b))  # about 0.5
    assert common["prevalence"] == pytest.approx(0.5, abs=0.05)
    assert paradox_codes(result) == ["rare"]
    (note,) = notes(result)
    assert "A rare code" in note and "A common code" not in note
    assert "prevalence 1.0%" in note and "Feinstein & Cicchetti 1990" in note
    assert "Feinstein, A. R., & Cicchetti, D. V. (1990)" in methods_paragraph(result)
    result.per_code.pop("rare")
    assert notes(result) == [] and "Feinstein" not in methods_paragraph(result)


@pytest.mark.parametrize(
    "config,words",
    [
        (UnitConfig(), "characters of participant speech"),
        (UnitConfig(include_interviewer=True), "characters of participant and interviewer speech"),
        (UnitConfig(ignore_uncoded=True), "coded characters of participant speech"),
        (UnitConfig(unit="segment"), "segments of participant speech"),
        (UnitConfig(unit="document"), "documents"),
    ],
)
def test_the_unit_in_words(corpus, config, words):
    from pipeline.agreement import format_text, unit_words

    result = run_agreement([corpus["codings"]], text_dir=corpus["texts"], config=config, n_boot=0)
    assert unit_words(result) == words
    n_units = result.per_code[GROWTH].n_units
    assert f"unit: {words} ({n_units:,} per code)" in format_text(result)


def test_markdown_csv_and_json_hold_the_compact_table(corpus, run_cli):
    import csv
    import io

    book = load_codebook()
    args = ["agreement", corpus["codings"], "--text-dir", corpus["texts"], "--bootstrap", "100", "--seed", "1"]
    result = run_agreement([corpus["codings"]], text_dir=corpus["texts"], n_boot=100, seed=1)

    md = run_cli(*args, "--format", "md")
    assert md.code == 0, md.err
    lines = md.out.splitlines()
    header = "| Code | % agreement | Cohen's κ [95% CI] | κ band | Krippendorff's α | α band | Prevalence |"
    assert header in lines
    table = lines[lines.index(header) + 2 :]
    table = table[: table.index("")]
    assert len(table) == len(result.per_code) + 1  # one row per code, then the mean
    growth = result.per_code[GROWTH]
    kappa = growth.estimates["cohen_kappa"]
    assert table[0] == (
        f"| {book.impact(GROWTH).name['en']} | {growth['percent_agreement']:.1%} | "
        f"{kappa.value:.3f} [{kappa.ci_low:.2f}, {kappa.ci_high:.2f}] | {kappa_band_of(kappa.value)} | "
        f"{growth['krippendorff_alpha']:.3f} | {alpha_band_of(growth['krippendorff_alpha'])} | "
        f"{growth['prevalence']:.1%} |"
    )
    assert table[-1].startswith(f"| Mean over {len(result.per_code)} codes |")
    assert "Landis & Koch (1977)" in md.out and "Krippendorff (2004)" in md.out

    rows = list(csv.DictReader(io.StringIO(run_cli(*args, "--format", "csv").out)))
    assert list(rows[0]) == [
        "code", "name", "percent_agreement", "kappa", "kappa_ci_low", "kappa_ci_high", "kappa_band",
        "krippendorff_alpha", "alpha_band", "prevalence",
    ]  # fmt: skip
    assert [r["code"] for r in rows] == [*result.per_code, "(mean over codes)"]
    assert float(rows[0]["kappa"]) == pytest.approx(kappa.value)
    every = list(csv.DictReader(io.StringIO(run_cli(*args, "--format", "csv", "--all").out)))
    assert {"fleiss_kappa", "gwet_ac1", "pabak", "n_units", "alpha_ci_low"} <= set(every[0])
    assert every[-1]["code"] == "(pooled)"

    data = json.loads(run_cli(*args, "--format", "json").out)
    assert data["names"][GROWTH] == book.impact(GROWTH).name["en"]
    assert data["per_code"][GROWTH]["prevalence"]["value"] == pytest.approx(growth["prevalence"])
    assert run_cli(*args, "--format", "xml").code == 2


def kappa_band_of(value: float) -> str:
    from pipeline.agreement import kappa_band

    return kappa_band(value)


def alpha_band_of(value: float) -> str:
    from pipeline.agreement import alpha_band

    return alpha_band(value)


NUMBER_WORDS = {"no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9}  # fmt: skip
COUNT = r"(no|one|two|three|four|five|six|seven|eight|nine|\d{2,}|\d{1,3}(?:,\d{3})+)"
FIGURE = r"(\d+\.\d+)(%?) \[(\d+\.\d+)%?, (\d+\.\d+)%?\]"
# the fixed thresholds the paragraph quotes (bands, the paradox rule, the interval's level), not figures of the data
THRESHOLDS = ("0.61-0.80", "0.800", "0.667", "0.60", "90%", "95%")


def _count(text: str) -> int:
    return NUMBER_WORDS[text.casefold()] if text.casefold() in NUMBER_WORDS else int(text.replace(",", ""))


def _figure_after(paragraph: str, words: str) -> tuple[float, float, float]:
    """The figure and its interval written right after ``words``, as numbers (percent figures as shares)."""
    import re

    found = re.search(re.escape(words) + " " + FIGURE, paragraph)
    assert found, f"no figure with an interval after {words!r}"
    scale = 100 if found.group(2) else 1
    return tuple(float(found.group(i)) / scale for i in (1, 3, 4))


def _holds(written: tuple[float, float, float], estimate) -> None:
    tolerance = 0.0005  # half a unit of the last digit written (0.001, or 0.1% as a share)
    for number, exact in zip(written, (estimate.value, estimate.ci_low, estimate.ci_high), strict=True):
        assert abs(number - exact) <= tolerance + 1e-9, (written, estimate)


def test_methods_paragraph_holds_its_own_figures(run_cli):
    """The paragraph on the bundled gold set, read back: every figure, count, band and name matches the result."""
    import re
    from collections import Counter
    from importlib.metadata import version

    import pipeline
    from pipeline.agreement import alpha_band, kappa_band, paradox_codes

    gold = ROOT / "data" / "gold"
    args = ["agreement", gold / "codings.csv", "--text-dir", gold / "transcripts", "--bootstrap", "200"]
    result = run_agreement([gold / "codings.csv"], text_dir=gold / "transcripts", n_boot=200)
    out = run_cli(*args, "--methods")
    assert out.code == 0, out.err
    paragraph, references = out.out.split("\n\nReferences\n")
    assert "\n" not in paragraph

    # who coded what, as far as the codings say: never "independently coded"
    opening = rf"(\w+) coders \(A and B\) each coded {COUNT} transcripts with {COUNT} codes of codebook imri v1;"
    found = re.match(opening, paragraph)
    assert found, paragraph[:200]
    assert (_count(found[1]), _count(found[2]), _count(found[3])) == (2, len(result.sources), len(result.per_code))
    assert result.transcripts_by_coder == {"A": len(result.sources), "B": len(result.sources)}
    assert "independently coded" not in paragraph and "independently of each other is not recorded" in paragraph
    # the software and the libraries that compute the coefficients, with their versions
    assert f"imri-autocode {pipeline.__version__}" in paragraph
    assert f"NumPy {version('numpy')}" in paragraph and f"SciPy {version('scipy')}" in paragraph
    # the unit and why
    n_units = result.per_code[next(iter(result.per_code))].n_units
    assert f"on characters of participant speech ({n_units:,} characters)" in paragraph
    assert "Characters were used as units because" in paragraph
    assert "mostly reflects agreement on text that neither coder coded" in paragraph

    # every figure with its interval, equal to the result's
    overall, key = result.overall.estimates, "cohen_kappa"
    _holds(_figure_after(paragraph, "mean percent agreement was"), overall["percent_agreement"])
    _holds(_figure_after(paragraph, "mean kappa"), overall[key])
    _holds(_figure_after(paragraph, "mean alpha"), overall["krippendorff_alpha"])
    _holds(_figure_after(paragraph, "Mean prevalence was"), overall["prevalence"])
    for name, metric in (("kappa ranged", key), ("and alpha", "krippendorff_alpha")):
        per_code = sorted((m.estimates[metric] for m in result.per_code.values()), key=lambda e: e.value)
        _holds(_figure_after(paragraph, f"{name} from"), per_code[0])
        low = _figure_after(paragraph, f"{name} from")
        rest = paragraph[paragraph.index(f"{name} from") :]
        _holds(_figure_after(rest, f"{low[2]:.3f}] to"), per_code[-1])

    # the bands: counts per band as the result gives them, and why kappa and alpha read differently
    kappa_counts = Counter(kappa_band(m[key]) for m in result.per_code.values())
    written = re.search(r"agreement by kappa was (.*?)\. ", paragraph)[1]
    parsed = {
        band: _count(n) for band, n in re.findall(rf"([a-z ]+?) for {COUNT} codes?", written.replace(" and ", ", "))
    }
    assert {band.strip(", "): n for band, n in parsed.items()} == dict(kappa_counts)
    alpha_counts = Counter(alpha_band(m["krippendorff_alpha"]) for m in result.per_code.values())
    alphas = re.search(
        rf"criteria, {COUNT} codes? reached α ≥ 0.800, {COUNT} codes? reached 0.667 ≤ α < 0.800 \(tentative "
        rf"conclusions only\) and {COUNT} codes? fell below 0.667\.",
        paragraph,
    )
    assert alphas, paragraph
    assert [_count(n) for n in alphas.groups()] == [alpha_counts[b] for b in ("reliable", "tentative", "unreliable")]
    example = re.search(r"For example, (.+?) had kappa ", paragraph)[1]
    (code,) = [c for c in result.per_code if result.name(c) == example]
    assert kappa_band(result.per_code[code][key]) == "substantial"
    assert alpha_band(result.per_code[code]["krippendorff_alpha"]) == "unreliable"
    _holds(_figure_after(paragraph, f"{example} had kappa"), result.per_code[code].estimates[key])
    _holds(_figure_after(paragraph, "(substantial) and alpha"), result.per_code[code].estimates["krippendorff_alpha"])

    # the rare codes: every one named, none cut off, in the paragraph and in the Markdown notes
    flagged = paradox_codes(result)
    assert len(flagged) > 6  # more than the old lists showed
    assert _count(re.search(rf"For {COUNT} codes \(", paragraph)[1]) == len(flagged)
    markdown = run_cli(*args, "--format", "md").out
    for code in flagged:
        assert result.name(code) in paragraph and result.name(code) in markdown
    assert not re.search(r"\d+ more\b", markdown + paragraph)

    # one number style: every decimal or percent is a figure with its interval or a fixed threshold, and counts
    # under ten are words
    rest = re.sub(FIGURE, "", re.sub(r"\d+\.\d+\.\d+|seed \d+", "", paragraph))  # versions and the seed: no counts
    for threshold in THRESHOLDS:
        rest = rest.replace(threshold, "")
    assert re.findall(r"\d+\.\d+|\d+%", rest) == []
    assert re.findall(r"(?<![\w.,])\d(?![\w.,%])", rest) == [], "a count under ten written as a numeral"
    assert "Landis, J. R., & Koch, G. G. (1977)" in references and "Krippendorff, K. (2004)" in references
    assert "Cohen, J. (1960)" in references and "Feinstein" in references


def test_methods_paragraph_says_who_coded_how_many_transcripts(corpus):
    from pipeline.agreement import methods_paragraph

    rows = corpus["rows"] + [("t2.txt", 0, 5, GROWTH, "C")]  # coder C coded the second transcript only
    codings = corpus["dir"] / "three.csv"
    pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder"]).to_csv(codings, index=False)
    result = run_agreement([codings], text_dir=corpus["texts"], n_boot=0)
    assert result.transcripts_by_coder == {"A": 2, "B": 2, "C": 1}
    paragraph = methods_paragraph(result)
    assert paragraph.startswith(
        "Three coders (A, B and C) coded two transcripts between them (A two, B two and C one) with three codes"
    )
    assert "Fleiss' kappa (Fleiss, 1971)" in paragraph and "no confidence intervals were computed" in paragraph
    assert "[" not in paragraph.split("\n\nReferences\n")[0]  # no interval where none was computed
