"""The int8 ONNX Runtime build of e5-small: built once, same tokens as fp32, faithful on real gold segments.

Slow tests build the fp32 and int8 folders into a temporary cache (about 1-2 minutes, up to 3.5 GB);
the precision and thread tests are fast.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.embed import (
    BUILD_INFO,
    E5Small,
    E5SmallInt8,
    EmbeddingCache,
    UseM3,
    build_e5_small,
    build_e5_small_int8,
    calibration_texts,
    cpu_threads,
    encoder_id,
    get_encoder,
)
from pipeline.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "data" / "gold"
# two English and two Québec-French gold transcripts (one double-coded of each)
STEMS = ["bc-01", "bc-02", "qc-01", "qc-02"]

# tokenizer edge cases: accents, emoji runs, odd whitespace, ligatures, a text over 512 tokens
EDGE_TEXTS = [
    "Élodie a mangé des crêpes à l'érable, çà et là.",
    "Thérèse 🥲🫠 pis 🧑\u200d💻 👍🏽 🇨🇦 ❤️",
    "  espaces\u00a0insécables\u202f; tabs\tand\nnewlines\r\n  and   runs   of spaces  ",
    "ﬁnancement… œuvre Œdipe naïve coöperate",
    "",
    "le loyer a encore augmenté " * 120,
]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("e5-int8")
    fp32 = build_e5_small(root / "fp32")
    started = time.perf_counter()
    int8 = build_e5_small_int8(root / "int8", fp32_dir=fp32)
    print(f"\nbuild_e5_small_int8: {time.perf_counter() - started:.1f} s")
    yield fp32, int8
    shutil.rmtree(root, ignore_errors=True)  # ~600 MB: do not leave it in pytest's kept tmp dirs


@pytest.fixture(scope="module")
def encoders(builds) -> tuple[E5Small, E5SmallInt8]:
    fp32_dir, int8_dir = builds

    class Fp32(E5Small):
        def model_path(self) -> Path:
            return fp32_dir

    class Int8(E5SmallInt8):
        def model_path(self) -> Path:
            return int8_dir

    return Fp32(), Int8()


@pytest.fixture(scope="module")
def gold_segments() -> list[str]:
    """200 real gold segments, drawn at random from four transcripts in both languages."""
    from pipeline.ingest import load_transcript, segment_table

    table = segment_table([load_transcript(GOLD / "transcripts" / f"{stem}.txt") for stem in STEMS])
    assert set(table.language) == {"en", "fr"}
    rng = np.random.default_rng(0)
    return table.text.iloc[np.sort(rng.choice(len(table), 200, replace=False))].tolist()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # the encoders return L2-normalised rows


# ----------------------------------------------------------------------------- the build


@pytest.mark.slow
def test_int8_folder_is_a_fused_int8_graph_and_is_reused(builds):
    import onnx

    _, int8 = builds
    info = json.loads((int8 / BUILD_INFO).read_text())
    assert info["fused_operators"]["Attention"] == 12 and info["fused_operators"]["EmbedLayerNormalization"] == 1
    graph = onnx.load(str(int8 / "model.onnx"), load_external_data=False).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QAttention") == 12 and "MatMulInteger" in ops
    assert "MatMul" not in ops  # every matrix product is int8, the feed-forward output projections too
    # each layer's four matrix products read their input through a smoothing Mul
    assert sum(node.op_type == "Mul" and node.name.startswith("Smooth_") for node in graph.node) == 48
    # residual additions and feed-forward biases stay unfused: the fused kernels are the slow ones on CPU
    assert "SkipLayerNormalization" not in ops and ops.count("LayerNormalization") == 24
    assert "BiasGelu" not in ops and ops.count("Gelu") == 12
    assert info["calibration"]["segments"] == len(calibration_texts()) > 500
    assert (int8 / "tokenizer.json").read_bytes() == (builds[0] / "tokenizer.json").read_bytes()
    assert not list(int8.parent.glob(".int8.*")), "temporary build folders left behind"

    stamp = (int8 / "model.onnx").stat().st_mtime_ns
    started = time.perf_counter()
    assert build_e5_small_int8(int8, fp32_dir=builds[0]) == int8
    assert time.perf_counter() - started < 5
    assert (int8 / "model.onnx").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_int8_build_refuses_a_foreign_folder(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="refusing"):
        build_e5_small_int8(precious, fp32_dir=tmp_path / "fp32")
    assert (precious / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "fp32").exists()


# ----------------------------------------------------------------------------- against fp32


@pytest.mark.slow
def test_int8_is_faithful_to_fp32_on_gold_segments(encoders, gold_segments):
    fp32, int8 = encoders
    cos = _cosines(int8.encode(gold_segments, "query"), fp32.encode(gold_segments, "query"))
    print(f"\nint8 vs fp32 on {len(cos)} gold segments: min {cos.min():.4f} mean {cos.mean():.4f}")
    assert cos.min() >= 0.99, sorted(cos)[:5]
    assert cos.mean() >= 0.995
    # the passage prefix (codebook descriptions) goes through the same graph
    passages = gold_segments[:40]
    assert _cosines(int8.encode(passages, "passage"), fp32.encode(passages, "passage")).min() >= 0.99


@pytest.mark.slow
def test_int8_tokens_match_the_fp32_tokenizer(encoders, gold_segments):
    fp32, int8 = encoders
    _, tokenizer, pad_id = int8.runtime
    assert pad_id == fp32.model.tokenizer.pad_token_id == 1
    prepared = int8.prepare(EDGE_TEXTS + gold_segments[:50], "query")
    for text, encoding in zip(prepared, tokenizer.encode_batch(prepared), strict=True):
        assert encoding.ids == fp32.model.tokenizer(text, truncation=True, max_length=512)["input_ids"], text[:40]
    assert len(tokenizer.encode(prepared[len(EDGE_TEXTS) - 1]).ids) == 512  # truncated like sentence-transformers
    long_text = EDGE_TEXTS[-1]
    assert _cosines(int8.encode([long_text]), fp32.encode([long_text]))[0] > 0.97


@pytest.mark.slow
def test_rows_come_back_in_input_order(encoders, gold_segments):
    _, int8 = encoders
    texts = gold_segments[:60]
    shuffled = np.random.default_rng(1).permutation(len(texts))
    # one text per batch: a row depends on its own text only, so any order must give the same rows
    alone = int8.encode(texts, batch_size=1)
    assert np.allclose(int8.encode([texts[i] for i in shuffled], batch_size=1), alone[shuffled], atol=1e-5)
    # batches sorted by length: activations are quantised per batch, so rows move a little with their neighbours
    batched = int8.encode([texts[i] for i in shuffled], batch_size=16)
    assert _cosines(batched, alone[shuffled]).min() >= 0.99


@pytest.mark.slow
def test_batches_side_by_side_give_the_vectors_of_one_at_a_time(encoders, gold_segments, monkeypatch):
    _, int8 = encoders
    texts = gold_segments[:300]
    monkeypatch.setenv("IMRI_THREADS", "1")
    one = int8.encode(texts, batch_size=8)
    monkeypatch.setenv("IMRI_THREADS", "3")  # more threads than cores: batches finish out of order
    told: list[int] = []
    side_by_side = int8.encode(texts, batch_size=8, progress=told.append)
    assert np.array_equal(one, side_by_side)  # the same batches, so the same bits, whatever order they ran in
    assert sum(told) == len(texts)


# ----------------------------------------------------------------------------- precision and threads


def test_precision_selects_the_encoder_id():
    assert encoder_id("e5-small") == encoder_id("e5-small", "fp32") == "e5-small"
    assert encoder_id("e5-small", "int8") == "e5-small-int8"
    assert encoder_id("e5-small-int8", "int8") == "e5-small-int8"
    assert encoder_id("use-m3", "fp32") == "use-m3"
    with pytest.raises(InputError, match="has no int8 build"):
        encoder_id("use-m3", "int8")
    with pytest.raises(InputError, match="unknown embed precision 'fp16'"):
        encoder_id("e5-small", "fp16")
    with pytest.raises(InputError, match="unknown encoder"):
        encoder_id("e5-large", "int8")


def test_int8_and_fp32_vectors_never_share_a_cache(tmp_path):
    int8, fp32 = get_encoder("e5-small-int8"), get_encoder("e5-small")
    assert isinstance(int8, E5SmallInt8) and int8.dim == fp32.dim
    assert EmbeddingCache(int8, tmp_path).folder != EmbeddingCache(fp32, tmp_path).folder
    assert int8.prepare(["x"], "query") == fp32.prepare(["x"], "query") == ["query: x"]


def test_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("IMRI_THREADS", raising=False)
    assert 1 <= cpu_threads() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("IMRI_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("IMRI_THREADS", "many")
    assert 1 <= cpu_threads() <= len(os.sched_getaffinity(0))


def test_use_m3_batches_sorted_by_length_keep_input_order():
    texts = ["Oui.", "I never felt heard by the social worker, so after a while I stopped going.", "Le loyer a monté."]
    encoder = UseM3()
    together = encoder.encode(texts, batch_size=2)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)
