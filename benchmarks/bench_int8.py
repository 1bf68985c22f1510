"""Is the int8 encoder faithful to fp32? The figures that decide ``embed.precision`` (issue 13), in one run.

For the two builds of e5-small (``e5-small``, fp32; ``e5-small-int8``, ONNX Runtime int8):

1. cosine of each gold segment's int8 vector to its fp32 vector (min, 1st percentile, mean; bound: min >= 0.99);
2. the default model (params.yaml's ``train`` section) on each: the gold set's cross-validated macro-F1
   and, trained on the whole gold set, the transfer set's figures (cross-corpus macro-F1, kappa with
   coder A, turn top-1/top-3, category top-1), with :func:`pipeline.evaluate.transfer.evaluate_variant`, the code
   ``imri evaluate`` runs;
3. the differences, against the bound of issue 13 (every figure within 0.01 of fp32);
4. with ``--noise-control N``, a control: the same figures from fp32 vectors with random noise of int8's
   size added (isotropic, each text its own fixed draw, scaled to int8's mean cosine), for N seeds. What
   the noise moves shows which of int8's differences these figures can tell apart from chance.

Vectors come from the user's embedding cache when it holds them (``dvc repro`` leaves both there).

    python benchmarks/bench_int8.py [--params params.yaml] [--gold data/gold] [--transfer data/transfer]
                                    [--noise-control 5]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOUND = 0.01
ENCODERS = ("e5-small", "e5-small-int8")


def figures(result: dict) -> dict[str, float]:
    """The figures compared between fp32 and int8, from one :func:`evaluate_variant` result."""
    cross, turns = result["cross_corpus"], result["turn_top1"]["all"]
    out = {
        "gold CV macro-F1": result["in_corpus_macro_f1"],
        "transfer macro-F1": cross["macro_f1"],
        "transfer kappa model vs A": cross["kappa"]["model vs A"]["value"],
        "turn top-1": turns["impact_top1"],
        "turn top-3": turns["impact_top3"],
        "turn category top-1": turns["category_top1"],
    }
    return {name: float(value) for name, value in out.items()}


class NoisyVectors:
    """While active, every vector an embedding cache returns gets fixed random noise of a given cosine.

    Each text's noise is drawn from a generator seeded by (seed, role, text), so a text repeated in
    another call gets the same vector, as with a real encoder. A benchmark control, not product code:
    it wraps :meth:`pipeline.embed.encoders.EmbeddingCache.encode` for the life of this process.
    """

    def __init__(self, cosine: float) -> None:
        from pipeline.embed import EmbeddingCache

        self.sigma = float(np.sqrt(1.0 / cosine**2 - 1.0))  # |v + sigma |v| n| for unit-norm n: cos = 1/sqrt(1+s^2)
        self.seed: int | None = None
        original = EmbeddingCache.encode

        def encode(cache, texts, role="query", **kwargs):  # noqa: ANN001, ANN202
            vectors = original(cache, texts, role, **kwargs)
            return vectors if self.seed is None else self.perturb(vectors, texts, role)

        EmbeddingCache.encode = encode

    def perturb(self, vectors: np.ndarray, texts: list[str], role: str) -> np.ndarray:
        out = np.empty_like(vectors)
        for i, text in enumerate(texts):
            key = hashlib.sha256(f"{self.seed}|{role}|{text}".encode()).digest()[:8]
            noise = np.random.default_rng(int.from_bytes(key, "little")).standard_normal(vectors.shape[1])
            noise *= self.sigma * np.linalg.norm(vectors[i]) / np.linalg.norm(noise)
            moved = vectors[i] + noise
            out[i] = moved * (np.linalg.norm(vectors[i]) / max(np.linalg.norm(moved), 1e-12))
        return out


def main() -> None:
    from gold_and_transfer import load_sets  # benchmarks/ is this script's folder: on sys.path

    from pipeline.embed import get_encoder
    from pipeline.evaluate import VariantFeatures, evaluate_variant
    from pipeline.model import embed_segments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--gold", type=Path, default=ROOT / "data" / "gold")
    parser.add_argument("--transfer", type=Path, default=ROOT / "data" / "transfer")
    parser.add_argument("--noise-control", type=int, default=0, metavar="N", help="seeds of the noise control")
    args = parser.parse_args()

    sets = load_sets(args.params, args.gold, args.transfer)
    book, gold, transfer, config = sets.codebook, sets.gold, sets.transfer, sets.config

    vectors = {}
    for encoder in ENCODERS:
        get_encoder(encoder)  # built into the user's cache if missing
        vectors[encoder], _ = embed_segments(gold.segments, encoder, False, "none")
    a, b = vectors["e5-small"], vectors["e5-small-int8"]
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"gold set: {len(gold.segments):,} segments ({int(gold.targets.sum()):,} participant segments scored)")
    print(
        f"cosine int8 to fp32 over the gold segments: min {cosine.min():.4f}, 1st percentile "
        f"{np.percentile(cosine, 1):.4f}, mean {cosine.mean():.4f} (bound: min >= 0.99: "
        f"{'met' if cosine.min() >= 0.99 else 'MISSED'})"
    )
    results = {}
    for encoder in ENCODERS:
        started = time.perf_counter()
        result = evaluate_variant(VariantFeatures(encoder, config, book), gold, transfer, sets.evaluate.bootstrap, 0)
        results[encoder] = figures(result)
        print(f"{encoder}: evaluated in {time.perf_counter() - started:.0f} s")
    print(f"\n{'figure':<28}{'fp32':>8}{'int8':>8}{'int8-fp32':>11}")
    worst = 0.0
    for name in results["e5-small"]:
        fp32, int8 = results["e5-small"][name], results["e5-small-int8"][name]
        worst = max(worst, abs(int8 - fp32))
        print(f"{name:<28}{fp32:>8.3f}{int8:>8.3f}{int8 - fp32:>+11.3f}")
    verdict = "met" if worst <= BOUND else "MISSED"
    print(f"\nlargest difference {worst:.3f} (bound: every figure within {BOUND} of fp32: {verdict})")
    if args.noise_control:
        noisy = NoisyVectors(float(cosine.mean()))
        fp32 = results["e5-small"]
        moved = {name: [] for name in fp32}
        for seed in range(args.noise_control):
            noisy.seed = seed
            control = figures(
                evaluate_variant(VariantFeatures("e5-small", config, book), gold, transfer, sets.evaluate.bootstrap, 0)
            )
            for name in fp32:
                moved[name].append(control[name] - fp32[name])
        noisy.seed = None
        print(
            f"\ncontrol: fp32 vectors plus random noise at int8's mean cosine ({cosine.mean():.4f}), "
            f"{args.noise_control} seeds; each figure's difference from fp32"
        )
        print(
            f"{'figure':<28}" + "".join(f"{'seed ' + str(k):>9}" for k in range(args.noise_control)) + f"{'largest':>9}"
        )
        for name, differences in moved.items():
            largest = max(abs(d) for d in differences)
            print(f"{name:<28}" + "".join(f"{d:>+9.3f}" for d in differences) + f"{largest:>9.3f}")
        within = sum(all(abs(moved[name][k]) <= BOUND for name in moved) for k in range(args.noise_control))
        print(f"seeds with every figure within {BOUND} of fp32: {within} of {args.noise_control}")
    print("data: the bundled synthetic gold and transfer sets (not real-world accuracy)")


if __name__ == "__main__":
    main()
