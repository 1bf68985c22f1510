"""imri evaluate and imri report on a small slice of the gold set (real encoder, real metrics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.evaluate import coverage_precision, expected_calibration_error


def test_expected_calibration_error_worked_example():
    # two bins: probabilities 0.2 (observed 1/4) and 0.8 (observed 3/4)
    P = np.array([[0.2], [0.2], [0.2], [0.2], [0.8], [0.8], [0.8], [0.8]])
    Y = np.array([[1], [0], [0], [0], [1], [1], [1], [0]])
    ece, bins = expected_calibration_error(Y, P, bins=10)
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert [(b["n"], b["observed_rate"]) for b in bins] == [(4, 0.25), (4, 0.75)]
    perfect, _ = expected_calibration_error(np.array([[0], [1]]), np.array([[0.0], [1.0]]))
    assert perfect == 0


def test_coverage_curve_accepts_the_most_confident_first():
    Y = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    P = np.array([[0.99, 0.01], [0.45, 0.55], [0.02, 0.03], [0.6, 0.4]])
    curve = coverage_precision(Y, P, np.array([0.5, 0.5]))
    assert [row["segments"] for row in curve][-1] == 4
    assert curve[0]["exact_set_accuracy"] == 1.0  # the most confident segment is right
    assert curve[-1]["exact_set_accuracy"] == 0.75  # the last one misses a code


@pytest.fixture(scope="module")
def metrics(small_gold, tmp_path_factory):
    from pipeline.evaluate import evaluate, write_metrics
    from pipeline.ingest import SegmentConfig
    from pipeline.model import LabelConfig, gold_codebook, load_gold
    from pipeline.params import load_params

    params = load_params(small_gold / "params.yaml")
    book = gold_codebook(small_gold, None)

    def gold_for_unit(unit: str):
        segment = SegmentConfig.from_dict({**params["segment"], "unit": unit})
        return load_gold([small_gold], book, segment, LabelConfig(), None).labelled_by(["A"], book.impact_ids)

    out = tmp_path_factory.mktemp("eval") / "metrics.json"
    write_metrics(evaluate(gold_for_unit("sentence"), book, params, gold_for_unit=gold_for_unit), out)
    return out


def test_character_scores_worked_example():
    import pandas as pd

    from pipeline.evaluate import character_scores

    text = "Aa bb. Cc dd."
    table = pd.DataFrame({"source": ["t.txt"] * 2, "start": [0, 7], "end": [6, 13]})
    predicted = np.array([[1, 0], [1, 1]])
    codings = pd.DataFrame(
        {
            "source": ["t.txt"] * 3,
            "start": [0, 7, 7],
            "end": [6, 10, 13],
            "code": ["x", "y", "x"],
            "coder": ["A", "A", "B"],
        }
    )
    scores = character_scores(table, predicted, codings, {"t.txt": text}, ["x", "y"], ["A"], {"t.txt": "en"})
    # x: 5 non-space characters coded, 10 predicted -> F1 10/15; y: "Cc" coded, 5 predicted -> 4/7
    assert scores["per_code"] == pytest.approx({"x": 10 / 15, "y": 4 / 7})
    assert scores["macro_f1"] == pytest.approx((10 / 15 + 4 / 7) / 2)
    assert scores["micro_f1"] == pytest.approx(2 * 7 / (2 * 7 + 8))
    assert scores["by_language"]["en"]["macro_f1"] == scores["macro_f1"]


def test_evaluate_compares_models_baselines_and_humans(metrics):
    results = json.loads(metrics.read_text(encoding="utf-8"))
    assert results["default_model"] == "use-m3+ridge"
    assert set(results["models"]) == {"use-m3+ridge", "lexical", "tfidf-logreg"}
    for entry in results["models"].values():
        assert 0 <= entry["macro_f1"] <= 1 and len(entry["per_code"]) == 21
        assert set(entry["by_language"]) == {"en", "fr"}
        assert set(entry["cross_lingual"]) == {"en->fr", "fr->en"}
    assert 0 <= results["calibration"]["ece"] <= 1
    assert sum(b["n"] for b in results["calibration"]["reliability"]) == results["segments"] * 21
    coverage = [row["coverage"] for row in results["coverage"]["curve"]]
    assert coverage == sorted(coverage) and coverage[-1] == 1.0
    pairs = results["human_vs_model"]["pairs"]
    assert set(pairs) == {"A vs B", "model vs A", "model vs B", "model vs consensus"}
    assert results["human_vs_model"]["transcripts"] == ["bc-01.txt", "qc-02.txt"]
    human = pairs["A vs B"]["cohen_kappa"]["value"]
    assert 0.3 < human < 0.95  # the synthetic double coding disagrees like a real team
    assert set(results["per_transcript"]) == {
        f"{s}.txt" for s in ["bc-01", "bc-02", "on-01", "qc-01", "qc-02", "nb1-03"]
    }
    assert len(results["categories"]["matrix"]) == 4
    units = results["units"]
    assert units["default"] == "sentence" and set(units["units"]) == {"sentence", "turn"}
    sentence, turn = units["units"]["sentence"], units["units"]["turn"]
    assert turn["segments"] < sentence["segments"] and turn["mean_words"] > sentence["mean_words"]
    assert sentence["segment_macro_f1"] == pytest.approx(results["models"]["use-m3+ridge"]["macro_f1"])
    for entry in (sentence, turn):
        assert 0 < entry["macro_f1"] < 1 and set(entry["by_language"]) == {"en", "fr"}
    assert units["best"] in units["units"]


def test_report_embeds_every_figure(metrics, tmp_path, run_cli):
    result = run_cli("report", metrics, "--out", tmp_path)
    assert result.code == 0, result.err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 5
    for name in ("per_code_f1", "category_confusion", "agreement", "reliability", "coverage"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "use-m3+ridge *" in result.out  # the headline table marks the default model


def test_evaluate_refuses_an_unknown_coder(small_gold, tmp_path, run_cli):
    params = tmp_path / "params.yaml"
    params.write_text((small_gold / "params.yaml").read_text(encoding="utf-8").replace("- A", "- Z"), encoding="utf-8")
    result = run_cli("evaluate", "--gold", small_gold, "--out", tmp_path / "m.json", "--params", params)
    assert result.code == 2 and "no codings by coder(s) Z" in result.err
    assert not (tmp_path / "m.json").exists()


def test_evaluate_coder_option_chooses_the_labels(small_gold, metrics, tmp_path, run_cli):
    out = tmp_path / "m.json"
    params = ["--params", small_gold / "params.yaml"]
    result = run_cli("evaluate", "--gold", small_gold, "--out", out, *params, "--coder", "Z")
    assert result.code == 2 and "no codings by coder(s) Z" in result.err  # --coder overrides train.coders (A)
    assert not out.exists()
    result = run_cli("evaluate", "--gold", small_gold, "--out", out, *params, "--coder", "A", "--coder", "B")
    assert result.code == 0, result.err
    both, only_a = (json.loads(path.read_text(encoding="utf-8")) for path in (out, metrics))
    assert both["label_coders"] == ["A", "B"] and only_a["label_coders"] == ["A"]
    # B's codings of the double-coded transcripts join A's as labels: the same segments, other figures
    assert both["segments"] == only_a["segments"]
    assert both["models"]["use-m3+ridge"]["per_code"] != only_a["models"]["use-m3+ridge"]["per_code"]
    # a gold set that is not the bundled one (a copy elsewhere: a team's own) is named by its folder, not synthetic
    last = result.out.strip().splitlines()[-2]  # the headline's last line, then the timings
    assert last.startswith("* default model and unit.") and repr(small_gold.name) in last, last
    assert "synthetic" not in result.out.lower() and "synthetic" not in both["note"]
    assert repr(small_gold.name) in both["note"]


def test_report_refuses_other_json(tmp_path, run_cli):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}', encoding="utf-8")
    result = run_cli("report", path, "--out", tmp_path / "r")
    assert result.code == 2 and "not an imri evaluate metrics file" in result.err


def test_metrics_file_leaves_the_timings_out(tmp_path):
    """metrics.json is a DVC output in git: the same evaluation must write the same bytes (timings are printed)."""
    import json

    from pipeline.evaluate import timings, write_metrics

    results = {
        "models": {"tfidf-logreg": {"macro_f1": 0.45, "seconds": 27.2}, "e5+ridge": {"seconds": 5.8, "x": [1, 2]}},
        "units": {"units": {"turn": {"macro_f1": 0.49, "seconds": 15.1}}},
    }
    write_metrics(results, tmp_path / "a.json")
    results["models"]["tfidf-logreg"]["seconds"] = 604.1
    write_metrics(results, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    written = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert written["models"]["tfidf-logreg"] == {"macro_f1": 0.45} and written["models"]["e5+ridge"] == {"x": [1, 2]}
    assert timings(results) == {"models/tfidf-logreg": 604.1, "models/e5+ridge": 5.8, "units/units/turn": 15.1}
