"""Benchmark the e5-small encoder at fp32 and in two int8 forms, on the same segment texts, in one run.

Candidates, each on ``--threads`` threads (default: the CPUs this process may use):

* ``fp32``: the rebuilt sentence-transformers folder (``embed.encoder: e5-small``), as ``imri code`` runs it;
* ``torch-dynamic-int8``: the same model after ``torch.ao.quantization.quantize_dynamic`` of every
  ``nn.Linear`` (int8 weights per output channel, the more faithful of torch's two dynamic schemes);
* ``onnx-int8``: the ONNX Runtime int8 build (``e5-small-int8``, ``pipeline.embed.e5_int8.build_e5_small_int8``).

The texts are the segments of a segment table (``imri segment data/gold/transcripts --out g.parquet``),
or ``--sample`` of them, with the ``query: `` prefix, through the encoders' own ``encode`` (no cache).
Each candidate runs ``--rounds`` times, interleaved (A B C A B C ...), because on a small shared machine
speed drifts between passes; the script prints each round and the median and best segments/s, then each
int8 candidate's cosine to fp32 (min, 1st percentile, mean; faithful means min >= 0.99).

    python benchmarks/bench_encoder.py --segments /tmp/g.parquet [--sample 1000] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", required=True, help="a segment table from `imri segment` (.parquet or .csv)")
    parser.add_argument("--sample", type=int, default=0, help="this many segments drawn at random (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="encoder threads (0: the CPUs this process may use)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from pipeline.io import read_table
    from pipeline.model import embed

    if args.threads:
        os.environ["IMRI_THREADS"] = str(args.threads)  # every encoder built below reads it
    threads = embed.cpu_threads()
    texts = read_table(args.segments).text.astype(str).tolist()
    if args.sample and args.sample < len(texts):
        rng = np.random.default_rng(0)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), args.sample, replace=False))]
    print(
        f"{len(texts)} segments ({sum(len(t) for t in texts) / len(texts):.0f} characters on average), "
        f"{threads} threads, batch {args.batch_size}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}"
    )

    fp32 = embed.E5Small()
    started = time.perf_counter()
    fp32.model  # noqa: B018  (load before timing)
    loads = {"fp32": time.perf_counter() - started}

    torch_int8 = embed.E5Small()
    started = time.perf_counter()
    torch_int8.__dict__["model"] = torch.ao.quantization.quantize_dynamic(
        torch_int8.model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8
    )
    loads["torch-dynamic-int8"] = loads["fp32"] + time.perf_counter() - started

    onnx_int8 = embed.E5SmallInt8()
    started = time.perf_counter()
    onnx_int8.runtime  # noqa: B018  (builds the int8 folder the first time, then loads it)
    loads["onnx-int8"] = time.perf_counter() - started

    candidates = {"fp32": fp32, "torch-dynamic-int8": torch_int8, "onnx-int8": onnx_int8}
    for encoder in candidates.values():
        encoder.encode(texts[:16])  # warm-up
    speeds: dict[str, list[float]] = {name: [] for name in candidates}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(1, args.rounds + 1):
        line = []
        for name, encoder in candidates.items():
            started = time.perf_counter()
            vectors[name] = encoder.encode(texts, "query", batch_size=args.batch_size)
            speeds[name].append(len(texts) / (time.perf_counter() - started))
            line.append(f"{name} {speeds[name][-1]:.1f}")
        print(f"round {round_}: " + ", ".join(line) + " segments/s", flush=True)

    print(f"\n{'encoder':<20} {'load s':>7} {'median seg/s':>13} {'best seg/s':>11} {'x fp32':>7}   cosine to fp32")
    base = float(np.median(speeds["fp32"]))
    for name, values in speeds.items():
        median = float(np.median(values))
        cosine = "" if name == "fp32" else _cosines(vectors[name], vectors["fp32"])
        print(f"{name:<20} {loads[name]:>7.1f} {median:>13.1f} {max(values):>11.1f} {median / base:>7.2f}   {cosine}")


def _cosines(a: np.ndarray, b: np.ndarray) -> str:
    cos = (a * b).sum(axis=1)  # rows are L2-normalised
    verdict = "faithful" if cos.min() >= 0.99 else "NOT faithful"
    return f"min {cos.min():.4f}  p1 {np.percentile(cos, 1):.4f}  mean {cos.mean():.4f}  ({verdict})"


if __name__ == "__main__":
    main()
