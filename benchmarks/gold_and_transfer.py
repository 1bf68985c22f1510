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
    gold: object  # pipeline.labels.GoldSet, labelled by train.coders
    transfer: object  # pipeline.transfer.TransferSet
    config: object  # pipeline.classify.ClassifierConfig
    evaluate: object  # pipeline.evaluate.EvaluateConfig


def load_sets(params_path: Path, gold_dir: Path, transfer_dir: Path) -> Sets:
    """Load the gold set (labelled by ``train.coders``) and the transfer set with ``params_path``'s settings."""
    from pipeline.classify import ClassifierConfig
    from pipeline.evaluate import EvaluateConfig
    from pipeline.labels import LabelConfig
    from pipeline.params import label_coders, load_params
    from pipeline.segment import SegmentConfig
    from pipeline.train import gold_codebook, load_gold
    from pipeline.transfer import load_transfer

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
