"""Evaluation: model against coders on the gold set and on the transfer set, and coder agreement.

``imri evaluate`` (``evaluation``, ``transfer``, ``scores``, ``summary``) and ``imri agreement`` (``agreement`` and its
methods text). Writes reports/metrics.json."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.PKG import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "agreement": [
            "METRICS",
            "UnitConfig",
            "binary_agreement",
            "coding_comparison",
            "cohen_kappa",
            "expand_list_options",
            "fleiss_kappa",
            "gwet_ac1",
            "krippendorff_alpha",
            "pabak",
            "percent_agreement",
            "read_model_output",
            "reliability_metrics",
            "run_agreement",
            "segment_presence",
            "span_agreement",
            "transcript_from_text",
        ],
        "agreement_report": [
            "FORMATS",
            "alpha_band",
            "format_result",
            "format_text",
            "kappa_band",
            "methods_paragraph",
            "notes",
            "paradox_codes",
            "unit_words",
        ],
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
