"""The researcher's report and the gold corpus's datasheet.

``imri report``: report.html and one PNG per figure, drawn from reports/metrics.json. ``imri corpus stats``:
the counts of data/DATASHEET.md.

Modules: ``page`` (build_report, write_report: the HTML page put together), ``reading`` (Report: the metrics
with the codebook's names; the summary's rule, the review threshold, calibration gaps), ``figures`` (one
drawing per PNG), ``captions`` (what each figure shows, what to do), ``sections`` (summary, per-impact table,
models, coding units), ``transfer`` (the transfer section), ``glossary`` (the terms and their links),
``formatting`` (numbers, shares and tables in HTML), ``datasheet`` (the corpus counts of data/DATASHEET.md).
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
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
