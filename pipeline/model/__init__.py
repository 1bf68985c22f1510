"""The model: features, calibrated heads, training labels and training (stage 4, ``imri train``).

Modules: ``classify`` (scorers, calibration, thresholds), ``impact_model`` (features, passages, the codebook prior
and the model folder), ``labels`` (labels from coded spans), ``reviewed`` (reviewed decisions as labels),
``train`` (gold sets, training, the default model). Imports ingest and embed; never coding, evaluate, review or
report.
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
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
