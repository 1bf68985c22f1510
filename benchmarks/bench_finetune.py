"""Fine-tuning e5-small on the gold set: how long it takes on this machine, and whether it earns the default (issue 11).

1. Times ``imri finetune`` on the whole gold set (``data/gold``), as a user runs it, in a fresh process
   (issue 11's bound: under 20 minutes on 2 CPU cores).
2. Fine-tunes again on the gold transcripts of four of five folds (grouped by transcript, the first fold of
   the cross-validation held out), then trains the default head (params.yaml's ``train`` section) on those
   four folds with the base encoder and with the fine-tuned one, and scores both on what the fine-tuning
   never saw: the held-out fold (macro-F1) and the transfer set (macro-F1, kappa with coder A, turn
   top-1/top-3, category top-1).

Everything runs in a temporary ``IMRI_CACHE`` whose built models and e5-small vectors link to the user's
cache, so the user's ``models/e5-small-ft`` is left alone.

    python benchmarks/bench_finetune.py [--params params.yaml] [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def link_user_cache(fresh: Path) -> None:
    """``fresh/models/*`` and ``fresh/embeddings/e5-small--*`` as links to the user's built models and vectors."""
    from pipeline.locations import cache_dir

    user = cache_dir()
    (fresh / "models").mkdir(parents=True)
    (fresh / "embeddings").mkdir()
    for entry in (user / "models").iterdir():
        if entry.name != "e5-small-ft":
            (fresh / "models" / entry.name).symlink_to(entry)
    for entry in (user / "embeddings").glob("e5-small--*"):
        (fresh / "embeddings" / entry.name).symlink_to(entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--gold", type=Path, default=ROOT / "data" / "gold")
    parser.add_argument("--transfer", type=Path, default=ROOT / "data" / "transfer")
    parser.add_argument("--skip-full", action="store_true", help="do not time the fine-tuning on the whole gold set")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="imri-bench-ft-") as tmp:
        link_user_cache(Path(tmp) / "cache")
        os.environ["IMRI_CACHE"] = str(Path(tmp) / "cache")
        print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)", flush=True)
        if not args.skip_full:
            imri = str(Path(sys.executable).with_name("imri"))
            started = time.perf_counter()
            command = [imri, "finetune", "--gold", str(args.gold), "--params", str(args.params)]
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if done.returncode:
                sys.exit(f"imri finetune failed: {done.stderr.strip().splitlines()[-1:]}")
            print(f"imri finetune, whole gold set: {time.perf_counter() - started:.0f} s wall in a fresh process")
            print("  " + done.stdout.strip().splitlines()[-1], flush=True)
        compare(args)
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def compare(args: argparse.Namespace) -> None:
    """Fine-tune on four folds; base and fine-tuned encoders scored on the fifth fold and the transfer set."""
    import numpy as np
    from gold_and_transfer import load_sets  # benchmarks/ is this script's folder: on sys.path
    from sklearn.model_selection import GroupKFold

    from pipeline.embed import FinetuneConfig, finetune_e5, finetuned_dir
    from pipeline.evaluate import VariantFeatures, mean_kappa, turn_top1
    from pipeline.model import f1_table, training_rows, turn_keys

    sets = load_sets(args.params, args.gold, args.transfer)
    params, book, gold, transfer, config = sets.params, sets.codebook, sets.gold, sets.transfer, sets.config
    ids = book.impact_ids

    table, targets = gold.segments, gold.targets
    groups = table.source.to_numpy()
    train_rows, test_rows = next(GroupKFold(config.cv_folds).split(table, groups=groups))
    in_train = np.zeros(len(table), bool)
    in_train[train_rows] = True
    fit_mask, test_mask = targets & in_train, targets & ~in_train
    texts = table.text.astype(str).to_numpy()
    ft = FinetuneConfig.from_dict(params.get("finetune"))
    info = finetune_e5(texts[fit_mask].tolist(), gold.labels[fit_mask], book, finetuned_dir(), ft)
    print(
        f"fine-tuned on four folds ({len(set(groups[fit_mask]))} transcripts, {info['pairs']:,} pairs): "
        f"{info['seconds']:.0f} s (frozen: embeddings {ft.freeze_embeddings}, lower {ft.frozen_layers} layers)",
        flush=True,
    )

    t_table, t_targets = transfer.gold.segments, transfer.targets
    YA = transfer.gold.labels[t_targets]
    clusters = t_table.source.to_numpy()[t_targets]
    rows = {}
    for encoder in ("e5-small", "e5-small-ft"):
        features = VariantFeatures(encoder, config, book)
        X = features.features(table)
        turns = turn_keys(table)
        extra = training_rows(table, encoder, config, book, fit_mask)
        model = config.make_model().fit(X[fit_mask], gold.labels[fit_mask], groups[fit_mask], turns[fit_mask], extra)
        held_out = (model.predict_proba(X[test_mask], turns[test_mask]) >= model.thresholds_).astype(np.int8)
        XT = features.features(t_table)[t_targets]
        proba = model.predict_proba(XT, turn_keys(t_table)[t_targets])
        predicted = (proba >= model.thresholds_).astype(np.int8)
        turn = turn_top1(transfer.table, proba, YA, book)["all"]
        rows[encoder] = {
            "held-out fold macro-F1": f1_table(gold.labels[test_mask], held_out, ids)["macro_f1"],
            "transfer macro-F1": f1_table(YA, predicted, ids)["macro_f1"],
            "transfer kappa vs A": mean_kappa(predicted, YA, ids, clusters, sets.evaluate.bootstrap, 0)["value"],
            "turn top-1": turn["impact_top1"],
            "turn top-3": turn["impact_top3"],
            "turn category top-1": turn["category_top1"],
        }
    print(f"\n{'figure (default head)':<26}{'base':>8}{'fine-tuned':>12}")
    for name in rows["e5-small"]:
        print(f"{name:<26}{rows['e5-small'][name]:>8.3f}{rows['e5-small-ft'][name]:>12.3f}")
    print("data: the bundled synthetic gold and transfer sets (not real-world accuracy)")


if __name__ == "__main__":
    main()
