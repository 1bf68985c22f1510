"""The researcher's report and the gold corpus's datasheet.

``imri report``: report.html and one PNG per figure, drawn from reports/metrics.json. ``imri corpus stats``:
the counts of data/DATASHEET.md."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.PKG import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "datasheet": [
            "GENERATED_END",
            "GENERATED_START",
            "corpus_stats",
            "format_stats",
            "render_generated",
            "update_datasheet",
        ],
        "figures": ["DRAW"],
        "page": ["FIGURES", "build_report", "write_report"],
        "reading": ["Report", "impact_rows", "review_threshold"],
    },
)
