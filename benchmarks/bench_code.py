"""Benchmark `imri code` end to end against the encoder alone, on the same segments, in one run.

Prints: segments/s of `imri code` in a fresh process with an empty embedding cache; then, in this
process with the models already loaded, `--repeats` interleaved pairs of (`imri code` with the
cache emptied, the encoder alone on the same texts: every segment, and the questions that are not
also segments, which is what `imri code` embeds), each pair's ratio and their median; peak RSS of
the `imri code` process; and the time to train the head once embeddings are cached. Interleaving
matters on a small machine: the encoder's own speed drifts by 5-10% between passes, so one pair
alone can land on either side of a target. Each pair also prints `imri code`'s own step timings.
Targets (issue 4): ratio >= 0.9, peak RSS < 1.5 GB, head < 60 s.

    python benchmarks/bench_code.py [--inputs data/new_study] [--model models/imri-default] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=str(ROOT / "data" / "new_study"))
    parser.add_argument("--model", default=str(ROOT / "models" / "imri-default"))
    parser.add_argument("--gold", default=str(ROOT / "data" / "gold"))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved (imri code, encoder alone) pairs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = Path(args.model)
    if not (model / "model.json").exists():
        sys.exit(f"error: {model}: no model; run `make demo` or `imri train` first")
    encoder_id = json.loads((model / "model.json").read_text(encoding="utf-8"))["encoder"]["id"]
    imri = str(Path(sys.executable).with_name("imri"))

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IMRI_CACHE": str(Path(tmp) / "cache")}
        # an empty embedding cache; the encoders built in the user's cache (once, by imri models build) are linked in
        subprocess.run([imri, "models", "build"], check=True, capture_output=True)
        built = Path(os.environ.get("IMRI_CACHE") or Path.home() / ".cache" / "imri")
        (Path(tmp) / "cache").mkdir()
        (Path(tmp) / "cache" / "models").symlink_to(built / "models", target_is_directory=True)
        started = time.perf_counter()
        done = subprocess.run(
            [imri, "code", args.inputs, "--model", str(model), "--out", str(Path(tmp) / "run")],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"imri code failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        end_to_end = time.perf_counter() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        import pandas as pd

        segments = pd.read_parquet(Path(tmp) / "run" / "segments.parquet")

        # in this process: coding with the models already loaded (a warm-up run loads spaCy and the
        # encoder), the embedding cache emptied first; then the encoder alone on the same texts
        import shutil

        from pipeline.codebook import load_codebook
        from pipeline.coding import code_transcripts
        from pipeline.embed import get_encoder
        from pipeline.params import load_params

        user_cache = os.environ.get("IMRI_CACHE")
        os.environ["IMRI_CACHE"] = env["IMRI_CACHE"]
        book, params = load_codebook(), load_params(ROOT / "params.yaml")
        # warm up on one transcript per language, so that every spaCy pipeline is loaded
        from pipeline.ingest import collect_transcripts, read_sidecar

        by_language = {read_sidecar(p).get("language"): p for p in collect_transcripts([args.inputs])}
        code_transcripts(list(by_language.values()), Path(tmp) / "warm-up", model, book, params)
        encoder = get_encoder(encoder_id)
        # exactly the texts `imri code` has to embed: every segment, and each question that is not
        # also a segment's text (its embedding cache never encodes one text twice)
        texts = segments.text.tolist()
        questions = sorted(set(segments.question.fillna("")) - {""} - set(texts))
        # torch on CPU is slow the first time it meets each batch shape: one untimed pass first
        encoder.encode(texts, "query")
        encoder.encode(questions, "query")
        pairs, steps = [], []
        for repeat in range(args.repeats):
            shutil.rmtree(Path(env["IMRI_CACHE"]) / "embeddings", ignore_errors=True)
            gc.collect()  # no collection of the previous pass's garbage inside a timed pass
            started = time.perf_counter()
            run = code_transcripts([Path(args.inputs)], Path(tmp) / f"run-warm-{repeat}", model, book, params)
            warm = time.perf_counter() - started
            steps.append(run.timings)
            gc.collect()
            started = time.perf_counter()
            encoder.encode(texts, "query")
            encoder.encode(questions, "query")
            pairs.append((warm, time.perf_counter() - started))

    # training the head with embeddings cached (the user's cache, as `make demo` left it)
    if user_cache is None:
        os.environ.pop("IMRI_CACHE", None)
    else:
        os.environ["IMRI_CACHE"] = user_cache
    from pipeline.model import train_model
    from pipeline.params import load_params

    with tempfile.TemporaryDirectory() as tmp:
        card = train_model([Path(args.gold)], Path(tmp) / "m", load_params(ROOT / "params.yaml"))
    n = len(segments)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"inputs: {args.inputs} ({segments.source.nunique()} transcripts, {n} segments); encoder {encoder_id}")
    print(f"imri code, fresh process, empty cache : {n / end_to_end:6.1f} segments/s ({end_to_end:.1f} s)")
    for i, ((warm, encoder_alone), timings) in enumerate(zip(pairs, steps, strict=True), 1):
        print(
            f"pair {i}: imri code, models loaded, empty cache {n / warm:6.1f} segments/s ({warm:.1f} s); "
            f"encoder alone {n / encoder_alone:6.1f} segments/s ({encoder_alone:.1f} s); "
            f"ratio {encoder_alone / warm:.2f}"
        )
        print("        imri code steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    ratios = sorted(e / w for w, e in pairs)
    median = float(np.median(ratios))
    encoder_median = float(np.median([e for _, e in pairs]))
    # the same question inside each run, free of drift between passes: the share of `imri code`'s own
    # time spent in its embedding step (encoder and embedding cache)
    shares = sorted(t["embed"] / sum(t.values()) for t in steps)
    code_median = float(np.median([w for w, _ in pairs]))
    print(
        f"median of {len(pairs)}: imri code {n / code_median:.1f} segments/s ({code_median:.1f} s), "
        f"encoder alone {n / encoder_median:.1f} segments/s ({encoder_median:.1f} s)"
    )
    print(f"encoder alone: same {len(texts)} segments + {len(questions)} questions, same process")
    print(
        f"ratio, models loaded  : {median:6.2f} median of {len(pairs)} pairs "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.9)"
    )
    print(
        f"embedding share of imri code's time: {float(np.median(shares)):.2f} median "
        f"(range {shares[0]:.2f}-{shares[-1]:.2f})"
    )
    print(
        f"ratio, fresh process  : {encoder_median / end_to_end:6.2f} "
        "(median encoder time over the fresh run: includes imports and loading the models)"
    )
    print(f"peak RSS of imri code: {peak_rss_mb:7.0f} MB (target < 1500)")
    timings = card["timings_s"]
    print(
        f"train head (cached)  : {timings['fit_head']:7.1f} s fit + {timings['cross_validate']} s cross-validation; "
        f"segment+embed {timings['segment_and_embed']} s (target: fit < 60 s)"
    )


if __name__ == "__main__":
    main()
