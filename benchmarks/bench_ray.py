"""Benchmark `imri code --engine ray` against the local engine on the same input, in one run (issue 14).

1. The input: ``--inputs`` (default data/new_study), or with ``--words N`` the study-sized corpus of
   benchmarks/bench_study.py (its ``build_corpus``: variants of the bundled transcripts, no segment
   text repeated), built in a temporary folder.
2. Trains a model on data/gold into a temporary folder with ``--params`` as it is (``embed.encoder`` at
   ``embed.precision``), unless ``--model`` names one. The training reads the user's embedding cache,
   warm or not: the output says how many new cache shards it wrote.
3. Times ``imri code INPUTS`` in a fresh process, ``--repeats`` rounds of, in turn:
   * the local engine;
   * Ray, a local instance that ``imri code`` starts and stops itself (one node, every CPU);
   * Ray, joining a one-node cluster (``ray start`` with every CPU);
   * Ray, joining a two-node cluster (two ``ray start`` nodes on loopback, half the CPUs each).
   The clusters are started before their run and stopped after it, untimed (a cluster is already
   running when a team codes on it). Every run starts from an empty embedding cache (``IMRI_CACHE``
   in a temporary folder, its ``models/`` linked to the user's built encoders; the nodes use it too).
4. Prints the input's size, each run's segments/s and the steps ``imri code`` reports, the median and
   the best run of each engine, and Ray's overhead over the local engine ((Ray's wall time - local's)
   / local's; issue 14's target: < 25% on the study-sized corpus).
5. Compares every Ray run's segments.csv with the local run of its round, each having computed its own
   vectors in batches made up differently: rows equal?, segments whose codes differ, the largest
   probability difference (docs/scale-out.md says why they differ, most with the int8 encoder). Then
   one more pair, a local run and a Ray run on the vectors a first local run left in the cache, must be
   equal byte for byte. Prints the load average around the rounds (other work on the machine slows every
   engine).

On a machine of two cores no speed-up is expected from more nodes: the figure to watch is the overhead.

    python benchmarks/bench_ray.py [--inputs data/new_study | --words 350000] [--model DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
IMRI = str(Path(sys.executable).with_name("imri"))
TARGET_OVERHEAD = 0.25
ENGINES = ("local", "ray, local instance", "ray, 1 node", "ray, 2 nodes")


def vectors_in(cache: Path) -> int:
    """Embedding cache shards of every encoder in ``cache`` (a proxy for what training had to compute)."""
    return len(list((cache / "embeddings").glob("*/shard-*.parquet")))


def compare(expected: Path, actual: Path) -> tuple[bool, int, int, float]:
    """segments.csv: rows equal?; segments whose codes differ; probability cells that differ; the largest difference.

    Rows: every column but the scores (codes, probabilities, confidence, review flag) equal.
    """
    a, b = pd.read_csv(expected / "segments.csv"), pd.read_csv(actual / "segments.csv")
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False, -1, -1, float("nan")
    p = [c for c in a.columns if c.startswith("p:")]
    scored = [*p, "codes", "confidence", "needs_review"]
    rows = a.drop(columns=scored).equals(b.drop(columns=scored))
    codes = int((a.codes.fillna("") != b.codes.fillna("")).sum())
    diff = np.abs(a[p].to_numpy(float) - b[p].to_numpy(float))
    return rows, codes, int(np.nansum(diff > 1e-6)), float(np.nanmax(diff))


def code(args: list[str], out: Path, env: dict[str, str], empty_cache: bool = True) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``imri code`` process and the steps it reports."""
    if empty_cache:
        shutil.rmtree(Path(env["IMRI_CACHE"]) / "embeddings", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([IMRI, "code", *args, "--out", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"imri code {' '.join(args[-4:])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    steps = re.search(r"^seconds: (.*)$", done.stdout, re.M)
    parsed = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in steps.group(1).split(", "))} if steps else {}
    return wall, parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=str(ROOT / "data" / "new_study"), help="transcripts to code")
    parser.add_argument("--words", type=int, help="code bench_study.py's corpus of at least this many words instead")
    parser.add_argument("--model", help="a model folder (default: train one on data/gold into a temporary folder)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the four runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from pipeline.coding import local_cluster
    from pipeline.embed import cpu_threads
    from pipeline.locations import cache_dir

    cpus = cpu_threads()
    user_cache = cache_dir()
    with tempfile.TemporaryDirectory(prefix="imri-bench-ray-", dir="/tmp") as tmp:
        tmp = Path(tmp)
        if args.model:
            model = Path(args.model)
            encoder = json.loads((model / "model.json").read_text(encoding="utf-8"))["encoder"]["id"]
            trained = f"given: {args.model} ({encoder})"
        else:
            from pipeline.model import train_model
            from pipeline.params import load_params

            model, before, started = tmp / "model", vectors_in(user_cache), time.perf_counter()
            card = train_model([ROOT / "data" / "gold"], model, load_params(Path(args.params)))
            new = vectors_in(user_cache) - before
            trained = f"trained on data/gold in {time.perf_counter() - started:.0f} s ({card['encoder']['id']}); " + (
                "the user's embedding cache was warm (no new vectors)" if not new else f"{new} new cache shards"
            )
        if args.words:
            from bench_study import build_corpus  # benchmarks/ is this script's folder: on sys.path

            built = build_corpus(tmp / "corpus", args.words)
            args.inputs = str(tmp / "corpus")
            inputs = f"bench_study.py's corpus of {built['words']:,} words ({built['variants']} variants)"
        else:
            inputs = args.inputs
        cache = tmp / "cache"
        (cache / "models").parent.mkdir(parents=True)
        if (user_cache / "models").is_dir():  # the built encoders, not their embeddings
            (cache / "models").symlink_to(user_cache / "models", target_is_directory=True)
        token = tmp / "auth_token"
        token.write_text(secrets.token_hex(32), encoding="ascii")
        env = {
            **os.environ,
            "IMRI_CACHE": str(cache),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        base = [args.inputs, "--model", str(model), "--params", args.params]
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {engine: [] for engine in ENGINES}
        compared: list[tuple[bool, int, int, float]] = []
        load = [os.getloadavg()[0]]
        for round_ in range(args.repeats):
            runs["local"].append(code(base, tmp / "local", env))
            runs["ray, local instance"].append(code([*base, "--engine", "ray"], tmp / "ray", env))
            compared.append(compare(tmp / "local", tmp / "ray"))
            for nodes in (1, 2):
                with local_cluster(nodes, cpus_per_node=max(1, cpus // nodes), env={"IMRI_CACHE": str(cache)}) as c:
                    run_env = {**c.env, "IMRI_CACHE": str(cache)}
                    runs[f"ray, {nodes} node{'s' if nodes > 1 else ''}"].append(
                        code([*base, "--engine", "ray", "--address", c.address], tmp / "ray", run_env)
                    )
                compared.append(compare(tmp / "local", tmp / "ray"))
            load.append(os.getloadavg()[0])
            print(f"round {round_ + 1} of {args.repeats} done", file=sys.stderr)
        # the same vectors for both engines: a local run fills the cache, which then serves a local run and a Ray
        # run (a repeated text has one vector in the cache, but each window's own in the run that filled it)
        code(base, tmp / "local", env)
        code(base, tmp / "local", env, empty_cache=False)
        code([*base, "--engine", "ray"], tmp / "ray", env, empty_cache=False)
        same_vectors = compare(tmp / "local", tmp / "ray")
        same_files = all(
            (tmp / "local" / name).read_bytes() == (tmp / "ray" / name).read_bytes()
            for name in ("segments.csv", "review_queue.csv", "summary.json", "model.json")
        )
        segments = pd.read_csv(tmp / "local" / "segments.csv")

    n, transcripts = len(segments), segments.source.nunique()
    words = int(segments.text.str.split().str.len().sum())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({cpus} usable), Python {platform.python_version()}")
    print(f"inputs: {inputs} ({transcripts} transcripts, {n} segments, {words} words); model {trained}")
    print("every run: a fresh `imri code` process, empty embedding cache; clusters started before their run")
    for engine in ENGINES:
        for i, (wall, steps) in enumerate(runs[engine], 1):
            shown = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
            print(f"  {engine:<20} run {i}: {n / wall:6.1f} segments/s ({wall:5.1f} s); steps (s): {shown}")
    # the median, and the best run (the one least slowed by other work on the machine)
    for name, pick in (("median", statistics.median), ("best", min)):
        local = pick(w for w, _ in runs["local"])
        print(f"{name} of {args.repeats}:")
        for engine in ENGINES:
            wall = pick(w for w, _ in runs[engine])
            overhead = "" if engine == "local" else f"; overhead over local {(wall - local) / local:+.0%}"
            print(f"  {engine:<20} {n / wall:6.1f} segments/s ({wall:5.1f} s){overhead}")
    local = statistics.median(w for w, _ in runs["local"])
    worst = max(statistics.median(w for w, _ in runs[e]) for e in ENGINES[2:]) / local - 1
    print(
        f"target (issue 14): Ray's overhead over local < {TARGET_OVERHEAD:.0%} on the study-sized corpus (clusters of "
        f"1 and 2 nodes, medians): {worst:+.0%}, {'met' if worst < TARGET_OVERHEAD else 'MISSED'}"
        + ("" if args.words else " (this input is not the study-sized corpus: pass --words 350000)")
    )
    rows = all(same for same, _, _, _ in compared)
    codes = [c for _, c, _, _ in compared]
    cells = [c for _, _, c, _ in compared]
    largest = max(d for _, _, _, d in compared)
    print(
        f"every Ray run against the local run of its round ({len(compared)} runs, each computing its own vectors): "
        f"rows equal: {'yes' if rows else 'NO'}; segments whose codes differ: {min(codes)}-{max(codes)} of {n}; "
        f"probability cells that differ: {min(cells)}-{max(cells)} of {n * len(segments.filter(like='p:').columns)}, "
        f"by at most {largest:.4f}"
    )
    same = same_files and same_vectors[0] and same_vectors[1] == 0 and same_vectors[2] == 0
    print(
        "a local run and a Ray run on the vectors a first local run left in the cache: segments.csv, "
        f"review_queue.csv, summary.json and model.json byte for byte equal: {'yes' if same else 'NO'}"
    )
    print(f"load average (1 min) before and after each round: {', '.join(f'{x:.1f}' for x in load)}")


if __name__ == "__main__":
    main()
