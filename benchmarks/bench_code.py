"""Benchmark `imri code` end to end against the encoder alone, on the same segments, in one run.

Prints: segments/s of `imri code` in a fresh process with an empty embedding cache, and in this
process with its models already loaded (cache emptied again), segments/s of the encoder alone on
the same texts (segments and questions, as `imri code` embeds them), the ratios, peak RSS of the
`imri code` process, and the time to train the head once embeddings are cached.
Targets (issue 4): ratio >= 0.9, peak RSS < 1.5 GB, head < 60 s.

    python benchmarks/bench_code.py [--inputs data/new_study] [--model models/imri-default]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=str(ROOT / "data" / "new_study"))
    parser.add_argument("--model", default=str(ROOT / "models" / "imri-default"))
    parser.add_argument("--gold", default=str(ROOT / "data" / "gold"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = Path(args.model)
    if not (model / "model.json").exists():
        sys.exit(f"error: {model}: no model; run `make demo` or `imri train` first")
    encoder_id = json.loads((model / "model.json").read_text(encoding="utf-8"))["encoder"]["id"]
    imri = str(Path(sys.executable).with_name("imri"))

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IMRI_CACHE": str(Path(tmp) / "cache")}
        # the e5 folder is rebuilt once into the fresh cache before timing (not part of coding)
        subprocess.run([imri, "models", "build"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        done = subprocess.run([imri, "code", args.inputs, "--model", str(model), "--out", str(Path(tmp) / "run")],
                              env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"imri code failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        end_to_end = time.perf_counter() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        import pandas as pd

        segments = pd.read_parquet(Path(tmp) / "run" / "segments.parquet")

        # in this process: coding with the models already loaded (a warm-up run loads spaCy and the
        # encoder), the embedding cache emptied first; then the encoder alone on the same texts
        import shutil

        from pipeline.code import code_transcripts
        from pipeline.codebook import load_codebook
        from pipeline.embed import get_encoder
        from pipeline.params import load_params

        os.environ["IMRI_CACHE"] = env["IMRI_CACHE"]
        book, params = load_codebook(), load_params(ROOT / "params.yaml")
        # warm up on one transcript per language, so that every spaCy pipeline is loaded
        from pipeline.ingest import collect_transcripts, read_sidecar

        by_language = {read_sidecar(p).get("language"): p for p in collect_transcripts([args.inputs])}
        code_transcripts(list(by_language.values()), Path(tmp) / "warm-up", model, book, params)
        encoder = get_encoder(encoder_id)
        texts = segments.text.tolist()
        questions = sorted(set(segments.question.fillna("")) - {""})
        # torch on CPU is slow the first time it meets each batch shape: one untimed pass first
        encoder.encode(texts, "query")
        encoder.encode(questions, "query")
        shutil.rmtree(Path(env["IMRI_CACHE"]) / "embeddings")
        started = time.perf_counter()
        code_transcripts([Path(args.inputs)], Path(tmp) / "run-warm", model, book, params)
        warm = time.perf_counter() - started

        started = time.perf_counter()
        encoder.encode(texts, "query")
        encoder.encode(questions, "query")
        encoder_alone = time.perf_counter() - started

    # training the head with embeddings cached (the user's cache, as `make demo` left it)
    from pipeline.params import load_params
    from pipeline.train import train_model

    with tempfile.TemporaryDirectory() as tmp:
        card = train_model([Path(args.gold)], Path(tmp) / "m", load_params(ROOT / "params.yaml"))
    n = len(segments)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"inputs: {args.inputs} ({segments.source.nunique()} transcripts, {n} segments); encoder {encoder_id}")
    print(f"imri code, fresh process, empty cache : {n / end_to_end:6.1f} segments/s ({end_to_end:.1f} s)")
    print(f"imri code, models loaded, empty cache : {n / warm:6.1f} segments/s ({warm:.1f} s, same process)")
    print(f"encoder alone, same texts, same process: {n / encoder_alone:6.1f} segments/s ({encoder_alone:.1f} s, "
          f"{len(texts)} segments + {len(questions)} questions)")
    print(f"ratio, models loaded  : {encoder_alone / warm:6.2f} (target >= 0.9)")
    print(f"ratio, fresh process  : {encoder_alone / end_to_end:6.2f} (includes imports and loading the models)")
    print(f"peak RSS of imri code: {peak_rss_mb:7.0f} MB (target < 1500)")
    timings = card["timings_s"]
    print(f"train head (cached)  : {timings['fit_head']:7.1f} s fit + {timings['cross_validate']} s cross-validation; "
          f"segment+embed {timings['segment_and_embed']} s (target: fit < 60 s)")


if __name__ == "__main__":
    main()
