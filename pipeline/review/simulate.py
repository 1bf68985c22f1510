"""``imri review simulate``: the review loop replayed on the gold set, uncertainty-ordered vs random queues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError


@dataclass(frozen=True)
class SimulationConfig:
    """``imri review simulate``: how the review loop is replayed on the gold set."""

    rounds: int = 8  # review rounds after the initial model
    batch: int = 25  # segments the "reviewer" answers per round
    initial_transcripts: int = 4  # fully labelled transcripts the first model is trained on
    test_share: float = 0.3  # share of the transcripts held out as the fixed test set
    repeats: int = 3  # different initial pools and random draws; results are averaged
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.batch < 1 or self.initial_transcripts < 2 or self.repeats < 1:
            raise InputError("simulate needs rounds >= 1, batch >= 1, initial >= 2 transcripts and repeats >= 1")
        if not 0 < self.test_share < 1:
            raise InputError("test share must lie between 0 and 1")


def simulate(
    X: np.ndarray,
    Y: np.ndarray,
    groups: np.ndarray,
    impact_ids: list[str],
    make_model,
    config: SimulationConfig,
) -> pd.DataFrame:
    """Replay the review loop: uncertainty-ordered vs random queues, macro-F1 on a fixed test set per round.

    ``X``, ``Y`` and ``groups`` (transcript of each row) are the gold set's participant segments;
    ``make_model()`` returns an unfitted :class:`~pipeline.model.classify.CalibratedModel`. Test transcripts
    are held out once; in each repeat a few other transcripts form the initial labelled pool and the
    rest of their segments the unlabelled pool. Each round the model is refitted on the labelled
    pool and scored on the test set, then the "reviewer" answers ``batch`` segments of the unlabelled
    pool from their gold labels: the ones the review queue would put first (highest
    :func:`pipeline.coding.review_priority`) or a random draw. One row per strategy, repeat and round.
    """
    from pipeline.coding import ReviewConfig, review_priority
    from pipeline.model import f1_table

    transcripts = np.array(sorted(set(groups)))
    rng = np.random.default_rng(config.seed)
    n_test = max(1, round(config.test_share * len(transcripts)))
    if len(transcripts) - n_test < config.initial_transcripts + 1:
        raise InputError(
            f"simulate needs more transcripts: {len(transcripts)} in the gold set, {n_test} held out for testing, "
            f"{config.initial_transcripts} for the initial pool and at least one to review"
        )
    test_sources = set(rng.choice(transcripts, n_test, replace=False))
    test = np.isin(groups, list(test_sources))
    pool_sources = np.array([t for t in transcripts if t not in test_sources])
    review_config = ReviewConfig()
    records = []
    for repeat in range(config.repeats):
        rng = np.random.default_rng(config.seed + 1 + repeat)
        initial = set(rng.choice(pool_sources, config.initial_transcripts, replace=False))
        start_labelled = np.flatnonzero(np.isin(groups, list(initial)))
        for strategy in ("uncertainty", "random"):
            draw = np.random.default_rng(config.seed + 1000 + repeat)
            labelled = set(start_labelled.tolist())
            unlabelled = np.flatnonzero(~test & ~np.isin(groups, list(initial)))
            for round_ in range(config.rounds + 1):
                rows = np.array(sorted(labelled))
                model = make_model().fit(X[rows], Y[rows], groups[rows])
                predicted = (model.predict_proba(X[test]) >= model.thresholds_).astype(np.int8)
                scores = f1_table(Y[test], predicted, impact_ids)
                records.append(
                    {
                        "strategy": strategy,
                        "repeat": repeat,
                        "round": round_,
                        "reviewed": len(rows) - len(start_labelled),
                        "labelled": len(rows),
                        "macro_f1": scores["macro_f1"],
                        "micro_f1": scores["micro_f1"],
                    }
                )
                if round_ == config.rounds or not len(unlabelled):
                    break
                take = min(config.batch, len(unlabelled))
                if strategy == "uncertainty":
                    proba = model.predict_proba(X[unlabelled])
                    priority, _, _ = review_priority(proba, model.thresholds_, Y[rows].sum(axis=0), review_config)
                    chosen = unlabelled[np.argsort(-priority, kind="stable")[:take]]
                else:
                    chosen = draw.choice(unlabelled, take, replace=False)
                labelled.update(chosen.tolist())
                unlabelled = np.setdiff1d(unlabelled, chosen)
    return pd.DataFrame.from_records(records)


def simulation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean (and standard deviation over repeats) of macro-F1 per round, one column pair per strategy."""
    summary = results.groupby(["round", "strategy"]).agg(
        reviewed=("reviewed", "mean"), mean=("macro_f1", "mean"), sd=("macro_f1", "std")
    )
    table = summary.unstack("strategy")
    out = pd.DataFrame({"round": table.index, "reviewed": table[("reviewed", "uncertainty")].round().astype(int)})
    for strategy in ("uncertainty", "random"):
        out[f"{strategy}_macro_f1"] = table[("mean", strategy)].round(4).to_numpy()
        out[f"{strategy}_sd"] = table[("sd", strategy)].fillna(0).round(4).to_numpy()
    return out.reset_index(drop=True)


def plot_simulation(table: pd.DataFrame, out: Path, title: str) -> Path:
    """Macro-F1 against reviewed segments for both queues, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.io import atomic_path

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for strategy, colour in (("uncertainty", "#1f6f8b"), ("random", "#c05a28")):
        mean, sd = table[f"{strategy}_macro_f1"], table[f"{strategy}_sd"]
        axes.plot(table.reviewed, mean, marker="o", color=colour, label=f"{strategy} queue")
        axes.fill_between(table.reviewed, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)
    axes.set_xlabel("segments reviewed")
    axes.set_ylabel("macro-F1 on held-out transcripts")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return out


def run_simulation(
    gold_dirs: list[Path],
    out: Path,
    params: dict,
    config: SimulationConfig,
    encoder: str | None = None,
    codebook_path: str | Path | None = None,
    coders: list[str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """``imri review simulate``: load the gold set, embed it, replay the loop, write the results.

    Writes ``simulation.csv`` (the table returned: mean and sd of macro-F1 per round and queue),
    ``simulation_rounds.csv`` (every repeat) and ``simulation.png`` into ``out``.
    """
    from pipeline.ingest import SegmentConfig
    from pipeline.io import write_table
    from pipeline.model import CalibratedModel, ClassifierConfig, LabelConfig, gold_codebook, load_gold, model_features
    from pipeline.params import label_coders

    codebook = gold_codebook(gold_dirs[0], codebook_path)
    train = dict(params.get("train") or {})
    encoder_id = encoder or train.get("encoder") or (params.get("embed") or {}).get("encoder", "use-m3")
    coders = label_coders(params, coders)
    classifier = ClassifierConfig.from_dict(ClassifierConfig.settings(params))
    segment_config = SegmentConfig.from_dict(params.get("segment"))
    gold = load_gold(
        gold_dirs, codebook, segment_config, LabelConfig.from_dict(params.get("labels")), coders, progress=progress
    )
    X = model_features(gold.segments, encoder_id, classifier, progress, codebook=codebook)
    targets = gold.targets
    results = simulate(
        X[targets],
        gold.labels[targets],
        gold.segments.source.to_numpy()[targets],
        codebook.impact_ids,
        lambda: CalibratedModel(classifier.make_scorer, classifier.cv_folds),
        config,
    )
    table = simulation_table(results)
    out = Path(out)
    write_table(table, out / "simulation.csv")
    write_table(results, out / "simulation_rounds.csv")
    n_test = max(1, round(config.test_share * len(gold.texts)))
    title = (
        f"{encoder_id}, {len(gold.texts) - n_test} pool / {n_test} test transcripts, "
        f"{config.batch} reviews per round, {config.repeats} repeat{'s' if config.repeats > 1 else ''}"
    )
    plot_simulation(table, out / "simulation.png", title)
    return table
