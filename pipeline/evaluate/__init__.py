"""Evaluation: the model against coders, on the gold set and on the transfer set (``imri evaluate``).

Modules: ``evaluation`` (cross-validation by transcript, model comparison), ``transfer`` (text the model was not
written for: passages, interviewer shift, learning curve, review effort), ``scores`` (F1, calibration, coverage,
confusion), ``summary`` (the printed headline and reports/metrics.json).
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "evaluation": ["EvaluateConfig", "SYNTHETIC_NOTE", "evaluate", "transfer_targets"],
        "scores": ["character_scores", "coverage_precision", "expected_calibration_error"],
        "summary": ["headline", "review_effort_headline", "timings", "write_metrics"],
        "transfer": [
            "CharacterCodes",
            "TransferSet",
            "VariantFeatures",
            "character_codes",
            "coded_passages",
            "effort_curve",
            "evaluate_variant",
            "load_transfer",
            "mean_kappa",
            "paired_bootstrap",
            "passage_hits",
            "replay_review",
            "review_effort",
            "shift_interviewer",
            "turn_top1",
        ],
    },
)
