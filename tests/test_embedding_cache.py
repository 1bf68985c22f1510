"""The embedding cache checks each shard's checksum: a corrupt shard is dropped with a warning and recomputed."""

from __future__ import annotations

import re
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.embed import EmbeddingCache, EmbeddingCacheWarning, UseM3

TEXTS = [
    "Je me sentais pas écoutée par l'intervenante.",
    "The landlord never answered our calls about the mould.",
    "On a déménagé trois fois l'an passé.",
    "My daughter's school is the only place where she feels safe.",
]


class CountingUse(UseM3):
    """The real USE-m3 encoder (the fastest real one), counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def _encode(self, texts, batch_size, progress):
        self.calls.append(len(texts))
        return super()._encode(texts, batch_size, progress)


@pytest.fixture(scope="module")
def encoder() -> CountingUse:
    return CountingUse()


@pytest.fixture
def cached(encoder, tmp_path):
    """A cache folder holding one shard written by a real run, and the vectors that run returned."""
    encoder.calls.clear()
    vectors = EmbeddingCache(encoder, tmp_path).encode(TEXTS)
    shards = list(EmbeddingCache(encoder, tmp_path).folder.glob("shard-*.parquet"))
    assert len(shards) == 1 and encoder.calls == [len(TEXTS)]
    encoder.calls.clear()
    return shards[0], vectors


def _intact(shard) -> bool:
    import hashlib

    return shard.name == f"shard-{hashlib.sha256(shard.read_bytes()).hexdigest()}.parquet"


def _reload(encoder, root, texts=TEXTS) -> tuple[np.ndarray, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = EmbeddingCache(encoder, root).encode(texts)
    return vectors, [w for w in caught if issubclass(w.category, EmbeddingCacheWarning)]


def test_shards_are_named_by_their_checksum(cached, encoder, tmp_path):
    shard, vectors = cached
    assert re.fullmatch(r"shard-[0-9a-f]{64}\.parquet", shard.name) and _intact(shard)
    again, dropped = _reload(encoder, tmp_path)
    assert not dropped and encoder.calls == []  # all read back from the cache
    assert np.array_equal(again, vectors)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:140]) + data[140:], id="bit-flips"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_corrupt_shard_is_dropped_with_a_warning_and_recomputed(cached, encoder, tmp_path, damage):
    shard, vectors = cached
    shard.write_bytes(damage(shard.read_bytes()))
    again, dropped = _reload(encoder, tmp_path)
    assert len(dropped) == 1
    message = str(dropped[0].message)
    assert str(shard) in message and "checksum mismatch" in message and "computed again" in message
    assert not any(word in message for text in TEXTS for word in text.split() if len(word) > 3)  # no text
    assert encoder.calls == [len(TEXTS)]  # every vector the shard held was embedded again
    assert np.allclose(again, vectors, atol=1e-6)
    # the recomputed shard is intact (same vectors, so the same bytes and name); the next run reads it quietly
    assert [p.name for p in shard.parent.glob("shard-*")] == [shard.name] and _intact(shard)
    encoder.calls.clear()
    third, dropped = _reload(encoder, tmp_path)
    assert not dropped and encoder.calls == [] and np.allclose(third, vectors, atol=1e-6)


def test_a_readable_but_altered_shard_is_caught_by_its_checksum(cached, encoder, tmp_path):
    """Parquet still parses after this change; only the checksum sees that a vector is wrong."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard, vectors = cached
    table = pq.read_table(shard)
    altered = [list(row) for row in table.column("vector").to_pylist()]
    altered[1] = list(-np.asarray(altered[1]))
    pq.write_table(table.set_column(1, "vector", pa.array(altered, type=pa.list_(pa.float32()))), shard)
    again, dropped = _reload(encoder, tmp_path)
    assert len(dropped) == 1 and "checksum mismatch" in str(dropped[0].message)
    assert np.allclose(again[1], vectors[1], atol=1e-6)  # recomputed, not the altered vector


def test_shards_from_before_checksums_are_still_read_and_checked(cached, encoder, tmp_path):
    shard, vectors = cached
    legacy = shard.with_name(f"shard-{uuid.uuid4().hex}.parquet")  # the name older versions wrote
    shard.rename(legacy)
    again, dropped = _reload(encoder, tmp_path)
    assert not dropped and encoder.calls == [] and np.array_equal(again, vectors)

    legacy.write_bytes(legacy.read_bytes()[:-20])  # no checksum to check: the Parquet reader catches this
    again, dropped = _reload(encoder, tmp_path)
    assert len(dropped) == 1 and "unreadable" in str(dropped[0].message) and not legacy.exists()
    assert encoder.calls == [len(TEXTS)] and np.allclose(again, vectors, atol=1e-6)


def test_a_shard_with_vectors_of_the_wrong_size_is_dropped(cached, encoder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard, vectors = cached
    keys = pq.read_table(shard).column("key").to_pylist()
    legacy = shard.with_name(f"shard-{uuid.uuid4().hex}.parquet")
    short = pa.array([[0.5] * 10 for _ in keys], type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"key": keys, "vector": short}), legacy)
    shard.unlink()
    again, dropped = _reload(encoder, tmp_path)
    assert len(dropped) == 1 and "wrong shape" in str(dropped[0].message)
    assert np.allclose(again, vectors, atol=1e-6)


def test_segment_embeddings_survive_a_corrupt_shard(monkeypatch, tmp_path):
    """The path `imri code` takes (``model.embed_segments`` on the user's cache) warns and carries on."""
    from pipeline.model import embed_segments

    monkeypatch.setenv("IMRI_CACHE", str(tmp_path))
    table = pd.DataFrame({"text": TEXTS, "question": ["", "How was the flat?", "", ""]})
    segments, questions = embed_segments(table, "use-m3")
    shards = sorted((tmp_path / "embeddings").glob("*/shard-*.parquet"))
    assert len(shards) == 2
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[:-50])
    with pytest.warns(EmbeddingCacheWarning, match="checksum mismatch"):
        again, again_questions = embed_segments(table, "use-m3")
    assert np.allclose(again, segments, atol=1e-6) and np.allclose(again_questions, questions, atol=1e-6)
