"""The gold and transfer sets as ``imri evaluate`` reads them, for the benchmarks that compare encoders on both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sets:
    """What params.yaml and the two folders give: the codebook, both sets, the classifier and evaluate settings."""

    params: dict
    codebook: object  # pipeline.codebook.Codebook
    gold: object  # pipeline.model.GoldSet, labelled by train.coders
    transfer: object  # pipeline.evaluate.transfer.TransferSet
    config: object  # pipeline.model.classify.ClassifierConfig
    evaluate: object  # pipeline.evaluate.evaluation.EvaluateConfig


def load_sets(params_path: Path, gold_dir: Path, transfer_dir: Path) -> Sets:
    """Load the gold set (labelled by ``train.coders``) and the transfer set with ``params_path``'s settings."""
    from pipeline.evaluate import EvaluateConfig, load_transfer
    from pipeline.ingest import SegmentConfig
    from pipeline.model import ClassifierConfig, LabelConfig, gold_codebook, load_gold
    from pipeline.params import label_coders, load_params

    params = load_params(params_path)
    book = gold_codebook(gold_dir, ROOT / params["codebook"] if "codebook" in params else None)
    segment = SegmentConfig.from_dict(params.get("segment"))
    labels = LabelConfig.from_dict(params.get("labels"))
    gold = load_gold([gold_dir], book, segment, labels, None).labelled_by(label_coders(params), book.impact_ids, labels)
    return Sets(
        params,
        book,
        gold,
        load_transfer(transfer_dir, book, segment, labels),
        ClassifierConfig.from_dict(ClassifierConfig.settings(params)),
        EvaluateConfig.from_dict(params.get("evaluate")),
    )
