"""The model: encoders and their offline builds, fine-tuning, features, calibrated heads, training labels and training.

Stages 3-4 of the pipeline (``imri embed``, ``imri train``, ``imri finetune``). Modules: ``e5_rebuild`` (the e5-small
builds), ``embed`` (encoders and the embedding cache), ``finetune``, ``classify`` (scorers, calibration,
thresholds), ``impact_model`` (features, passages, the model folder), ``labels`` (labels from coded spans),
``reviewed`` (reviewed decisions as labels), ``train`` (gold sets, training, the default model).
Never imports coding, evaluate, review or report."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.PKG import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "classify": [
            "CalibratedModel",
            "ClassifierConfig",
            "LexicalScorer",
            "PriorBlendScorer",
            "RidgeScorer",
            "THRESHOLD_GRID",
            "TfidfLogRegScorer",
            "TrainingRows",
            "best_thresholds",
            "cross_validated_proba",
            "grouped_folds",
            "platt",
            "rows_of",
            "smooth_by_turn",
        ],
        "e5_rebuild": [
            "BUILD_INFO",
            "build_e5_small",
            "build_e5_small_int8",
            "calibration_texts",
            "default_e5_dir",
            "default_e5_int8_dir",
            "default_source_bin",
        ],
        "embed": [
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
        "finetune": ["FinetuneConfig", "finetune_e5", "finetuned_dir", "freeze"],
        "impact_model": [
            "CARD_FILE",
            "CodebookHead",
            "GUIDE_QUESTION",
            "ImpactModel",
            "PassageTexts",
            "codebook_prototypes",
            "default_encoder_id",
            "embed_for_features",
            "embed_segments",
            "model_features",
            "prior_columns",
            "question_texts",
            "segment_languages",
            "training_rows",
            "turn_keys",
            "unit_features",
        ],
        "labels": ["LabelConfig", "read_codings", "segment_labels"],
        "reviewed": ["REVIEW_COLUMNS", "read_run_segments", "run_texts"],
        "train": ["GoldSet", "default_model", "f1_table", "gold_codebook", "load_gold", "train_model"],
    },
)
