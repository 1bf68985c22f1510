"""Coding new transcripts with a trained model: ``imri code`` (local, or on Ray with ``--engine ray``).

Writes segments.csv, passages.csv, coded.qdpx, review_queue.csv and summary.json. Imports ingest, qdpx and model.

Modules: ``queue`` (the review queue: which passages a human reads, within ``review.budget``), ``decisions``
(probabilities to codes and confidence, the coded segment table, passages and the model's codings),
``outputs`` (the run folder, checked and swapped in whole, and ``summary.json``), ``run`` (the local engine:
read, segment, embed and score in windows, then code and write), ``ray_engine`` (the same run on Ray).
"""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "queue": [
            "ReviewConfig",
            "expected_changes",
            "kappa_weights",
            "passage_keys",
            "review_budget",
            "review_priority",
            "within_budget",
        ],
        "decisions": ["code_segments", "decide", "passage_codings"],
        "outputs": ["REVIEW_DB", "check_run_folder", "summarise", "write_run"],
        "run": ["code_transcripts"],
        "ray_engine": ["code_transcripts_ray", "import_ray", "local_cluster", "windows"],
    },
)
