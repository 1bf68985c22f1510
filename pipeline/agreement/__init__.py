"""Coder agreement (``imri agreement``): coefficients, coding units, bootstrap intervals and a methods text.

Modules, lowest first: ``coefficients`` (percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha,
Gwet's AC1, PABAK on a coders x units table), ``units`` (agreement with bootstrap intervals; coded spans to
character, segment or document units; the results), ``command`` (``imri agreement``: reading codings tables,
.qdpx projects and model output, picking coders and codes; the coding-comparison and readable tables),
``methods_text`` (the compact table, interpretation bands and paragraph).
Used by evaluate (model vs coders), review (reviewer vs reviewer) and the datasheet. Imports ingest and qdpx.
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "coefficients": [
            "METRICS",
            "cohen_kappa",
            "fleiss_kappa",
            "gwet_ac1",
            "krippendorff_alpha",
            "pabak",
            "percent_agreement",
            "reliability_metrics",
        ],
        "command": [
            "coding_comparison",
            "expand_list_options",
            "read_model_output",
            "run_agreement",
            "transcript_from_text",
        ],
        "methods_text": [
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
        "units": ["UnitConfig", "agreement", "binary_agreement", "segment_presence", "span_agreement"],
    },
)
