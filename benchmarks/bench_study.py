"""Benchmark `imri code` on a study-sized corpus against the fp32 encoder alone, in one run (issue 13).

1. Builds a corpus of at least ``--words`` words (default 350,000, the IMRI study's size) of distinct text
   from the bundled transcripts (data/gold, data/transfer, data/new_study): each variant of a transcript
   gets other names and numbers, another order of the sentences within each turn and a discourse marker
   on each sentence chosen by variant, so no segment text repeats and the embedding cache cannot help.
2. Trains the default model on data/gold with the int8 encoder (and, with ``--fp32-code``, with fp32),
   unless ``--model-int8`` / ``--model-fp32`` name model folders already trained.
3. Runs ``imri code`` on the corpus in a fresh process with an empty embedding cache (``IMRI_CACHE`` in a
   temporary folder; its ``models/`` links to the built encoders of the user's cache), and times it:
   wall time, seconds per step as ``imri code`` reports them (``start`` is imports and model loading,
   from the process's start), CPU utilisation (CPU seconds of the process over its wall time and the
   cores it may use) and peak RSS.
4. Times the fp32 encoder alone (``e5-small``, no cache, loaded before timing, batches of 32) on the
   distinct segment texts of that run, in a fresh process.

Prints words, segments, the wall time of each, their ratio and the figures of each run. Targets (issue 13):
``imri code`` >= 2.0x the segments/s of the fp32 encoder alone, < 3 min wall, start < 5 s, peak RSS < 1 GB.

    python benchmarks/bench_study.py [--words 350000] [--fp32-code] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("data/gold/transcripts", "data/transfer/transcripts", "data/new_study")
TARGETS = {"ratio": 2.0, "wall_s": 180.0, "start_s": 5.0, "peak_rss_mb": 1000.0}

# discourse markers, one per sentence, chosen by variant: the same sentence never gets the same one twice
MARKERS = {
    "en": [
        "Honestly",
        "You know",
        "I mean",
        "Well",
        "So",
        "Actually",
        "To be fair",
        "Basically",
        "Okay",
        "Right",
        "Anyway",
        "Frankly",
        "Like I said",
        "In a way",
        "At the end of the day",
        "To be honest",
        "For sure",
        "Mind you",
    ],
    "fr": [
        "Honnêtement",
        "Tu sais",
        "Je veux dire",
        "Ben",
        "Alors",
        "En fait",
        "Bon",
        "Disons",
        "Bref",
        "Franchement",
        "Écoute",
        "Voilà",
        "En tout cas",
        "Donc",
        "Mettons",
        "Au fond",
        "Pour vrai",
        "Tsé",
    ],
}
NAMES = [
    "Alex",
    "Sam",
    "Jordan",
    "Maria",
    "Louis",
    "Chantal",
    "Denis",
    "Priya",
    "Kevin",
    "Nadia",
    "Omar",
    "Julie",
    "Marc",
    "Sophie",
    "Tyler",
    "Amélie",
    "Hugo",
    "Grace",
    "Ravi",
    "Manon",
]
_HEADER = re.compile(r"^((?:\[\d\d:\d\d:\d\d\]\s*)?[^\s:.!?][^:.!?\n]{0,59}?\s?:[ \t]+)(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_NUMBER = re.compile(r"\b\d+\b")
_PLACEHOLDER = re.compile(r"\[(?:name|staff name|Staff name|nom|prénom)\]")


def _vary_sentence(sentence: str, marker: str) -> str:
    first = sentence.split(" ", 1)[0]
    if first not in ("I", "I'm", "I've", "I'd", "I'll") and len(first) > 1 and first[1:].islower():
        sentence = sentence[0].lower() + sentence[1:]
    return f"{marker}, {sentence}"


def vary_text(text: str, language: str, source: str, variant: int) -> str:
    """One variant of a transcript's text: names, numbers, sentence order within turns and markers changed.

    Speaker labels and timestamps stay as they are, so the transcript reads the same way.
    """
    markers = MARKERS.get(language, MARKERS["en"])
    rng = random.Random(f"{source}:{variant}")
    lines = []
    for line in text.split("\n"):
        match = _HEADER.match(line)
        header, body = (match.group(1), match.group(2)) if match else ("", line)
        if not body.strip():
            lines.append(line)
            continue
        body = _PLACEHOLDER.sub(lambda _: rng.choice(NAMES), body)
        body = _NUMBER.sub(lambda m: str(int(m.group(0)) + variant) if len(m.group(0)) < 6 else m.group(0), body)
        sentences = _SENTENCE_END.split(body.strip())
        if len(sentences) > 2:
            rng.shuffle(sentences)
        varied = []
        for sentence in sentences:
            # the marker depends on the variant and the sentence: variants of one sentence never share one
            index = (zlib.crc32(f"{source}\0{sentence}".encode()) + variant) % len(markers)
            varied.append(_vary_sentence(sentence, markers[index]))
        lines.append(header + " ".join(varied))
    return "\n".join(lines)


def build_corpus(out: Path, min_words: int) -> dict:
    """Write variants of the bundled transcripts (with their sidecars) into ``out`` until ``min_words``."""
    import yaml

    sources = sorted(p for folder in SOURCES for p in (ROOT / folder).glob("*.txt"))
    out.mkdir(parents=True, exist_ok=True)
    words, files, variant = 0, 0, 0
    while words < min_words:
        variant += 1
        if variant >= len(MARKERS["en"]):
            sys.exit("error: not enough markers for that many variants")
        for path in sources:
            sidecar = path.with_suffix(".meta.yaml")
            meta = yaml.safe_load(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
            text = vary_text(path.read_text(encoding="utf-8"), meta.get("language", "en"), path.stem, variant)
            name = f"{path.stem}-v{variant}"
            (out / f"{name}.txt").write_text(text, encoding="utf-8")
            if sidecar.exists():
                shutil.copyfile(sidecar, out / f"{name}.meta.yaml")
            words += len(text.split())
            files += 1
            if words >= min_words:
                break
    return {"words": words, "transcripts": files, "variants": variant}


def _train(params: Path, precision: str, out: Path, env: dict) -> Path:
    import yaml

    settings = yaml.safe_load(params.read_text(encoding="utf-8"))
    settings.setdefault("embed", {})["precision"] = precision
    copy = out.with_suffix(".params.yaml")
    copy.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    imri = str(Path(sys.executable).with_name("imri"))
    command = [imri, "train", "--gold", str(ROOT / "data" / "gold"), "--out", str(out), "--params", str(copy)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"imri train failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return out


def _run(command: list[str], env: dict) -> dict:
    """Run ``command`` in a fresh process and measure it: wall time, CPU seconds and peak RSS of that process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # read the pipes in threads so a chatty child never blocks; reap it with wait4 for its own resource usage
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, pipe) -> None:
        chunks[name] = pipe.read()

    readers = [
        threading.Thread(target=drain, args=(n, p)) for n, p in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = chunks["out"].decode("utf-8", "replace")
    stderr = chunks["err"].decode("utf-8", "replace")
    if process.returncode:
        sys.exit(f"{Path(command[0]).name} failed ({process.returncode}): {stderr.strip().splitlines()[-3:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stdout": stdout,
    }


def _steps(stdout: str) -> dict[str, float]:
    """The ``seconds: step x, ...`` line that ``imri code`` prints last."""
    line = [row for row in stdout.splitlines() if row.startswith("seconds: ")][-1]
    return {k: float(v) for k, v in (item.rsplit(" ", 1) for item in line[len("seconds: ") :].split(", "))}


ENCODER_ALONE = """
import json, sys, time
from pipeline.embed.encoders import get_encoder
from pipeline.io import read_table
texts = list(dict.fromkeys(read_table(sys.argv[1]).text.astype(str)))
encoder = get_encoder("e5-small")
encoder.encode(texts[:64], "query")  # loads the model; torch meets its first batch shapes
started = time.perf_counter()
encoder.encode(texts, "query", batch_size=32)
print(json.dumps({"texts": len(texts), "seconds": time.perf_counter() - started}))
"""


def _code(corpus: Path, model: Path, out: Path, env: dict) -> dict:
    imri = str(Path(sys.executable).with_name("imri"))
    run = _run([imri, "code", str(corpus), "--model", str(model), "--out", str(out)], env)
    run["steps"] = _steps(run["stdout"])
    return run


def _cores() -> int:
    sys.path.insert(0, str(ROOT))
    from pipeline.embed import cpu_threads

    return cpu_threads()


def _print_code(label: str, run: dict, segments: int, cores: int) -> None:
    steps = run["steps"]
    wall = run["wall"]
    print(f"imri code, {label}: {wall:.1f} s wall, {segments / wall:.1f} segments/s")
    print(
        "  seconds per step (imri code's own; segment runs beside embed): "
        + ", ".join(f"{k} {v:.1f} ({v / wall:.0%} of wall)" for k, v in steps.items())
    )
    print(
        f"  CPU: {run['cpu']:.0f} CPU-seconds, {run['cpu'] / wall:.2f} cores busy on average "
        f"({run['cpu'] / wall / cores:.0%} of {cores}); peak RSS {run['peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=350_000, help="at least this many words in the corpus")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="parameters the models are trained with")
    parser.add_argument("--model-int8", help="a model folder trained on e5-small-int8 (default: train one)")
    parser.add_argument("--model-fp32", help="a model folder trained on e5-small (default: train one)")
    parser.add_argument("--fp32-code", action="store_true", help="also time imri code with the fp32 model")
    parser.add_argument("--keep", help="build the corpus and runs in this folder and keep them")
    args = parser.parse_args()

    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    user_cache = Path(os.environ.get("IMRI_CACHE") or Path.home() / ".cache" / "imri")
    cores = _cores()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        corpus_dir = work / "corpus"
        shutil.rmtree(corpus_dir, ignore_errors=True)
        corpus = build_corpus(corpus_dir, args.words)
        # models are trained with the user's cache (gold-set embeddings are reused there)
        model_int8 = (
            Path(args.model_int8) if args.model_int8 else _train(Path(args.params), "int8", work / "m-int8", base_env)
        )
        # read now: a trained model lives in the temporary folder, gone after this block
        int8_encoder = json.loads((model_int8 / "model.json").read_text(encoding="utf-8"))["encoder"]["id"]
        model_fp32 = None
        if args.fp32_code:
            model_fp32 = (
                Path(args.model_fp32)
                if args.model_fp32
                else _train(Path(args.params), "fp32", work / "m-fp32", base_env)
            )
        # coding: a fresh, empty embedding cache; the built encoders are linked in, not rebuilt
        fresh = work / "cache"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        (fresh / "models").symlink_to(user_cache / "models", target_is_directory=True)
        env = {**base_env, "IMRI_CACHE": str(fresh)}
        int8 = _code(corpus_dir, model_int8, work / "run-int8", env)
        import pandas as pd

        table = pd.read_parquet(work / "run-int8" / "segments.parquet", columns=["text"])
        segments, distinct = len(table), table.text.nunique()
        encoder = _run([sys.executable, "-c", ENCODER_ALONE, str(work / "run-int8" / "segments.parquet")], base_env)
        encoder_seconds = json.loads(encoder["stdout"].strip().splitlines()[-1])["seconds"]
        fp32 = None
        if model_fp32 is not None:
            shutil.rmtree(fresh / "embeddings", ignore_errors=True)
            fp32 = _code(corpus_dir, model_fp32, work / "run-fp32", env)
    load_after = os.getloadavg()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({cores} usable), Python {platform.python_version()}")
    print(
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + " (above the core count: other processes shared the machine)"
    )
    print(
        f"corpus: {corpus['words']:,} words in {corpus['transcripts']} transcripts ({corpus['variants']} variants of "
        f"the bundled transcripts); {segments:,} segments, {distinct:,} distinct texts"
    )
    print(
        f"fp32 encoder alone (e5-small, {distinct:,} distinct texts, fresh process, model loaded): "
        f"{encoder_seconds:.1f} s, {distinct / encoder_seconds:.1f} segments/s; "
        f"peak RSS {encoder['peak_rss_mb']:.0f} MB, {encoder['cpu'] / encoder['wall']:.2f} cores busy"
    )
    _print_code(f"int8 model ({int8_encoder})", int8, segments, cores)
    ratio = (segments / int8["wall"]) / (distinct / encoder_seconds)
    print(f"ratio: imri code (int8) segments/s over the fp32 encoder's: {ratio:.2f} (target >= {TARGETS['ratio']})")
    if fp32 is not None:
        _print_code("fp32 model (e5-small)", fp32, segments, cores)
        fp32_ratio = (segments / fp32["wall"]) / (distinct / encoder_seconds)
        print(f"ratio: imri code (fp32) segments/s over the fp32 encoder's: {fp32_ratio:.2f}")
    checks = {
        f"ratio >= {TARGETS['ratio']}": ratio >= TARGETS["ratio"],
        f"wall < {TARGETS['wall_s']:.0f} s": int8["wall"] < TARGETS["wall_s"],
        f"start < {TARGETS['start_s']:.0f} s": int8["steps"].get("start", float("inf")) < TARGETS["start_s"],
        f"peak RSS < {TARGETS['peak_rss_mb']:.0f} MB": int8["peak_rss_mb"] < TARGETS["peak_rss_mb"],
    }
    print("targets (issue 13): " + "; ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks.items()))


if __name__ == "__main__":
    main()
