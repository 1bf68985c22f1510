"""Coding new transcripts with a trained model: ``imri code`` (local, or on Ray with ``--engine ray``).

Writes segments.csv, passages.csv, coded.qdpx, review_queue.csv and summary.json. Imports ingest, qdpx and model."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.PKG import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "code": [
            "REVIEW_DB",
            "ReviewConfig",
            "check_run_folder",
            "code_segments",
            "code_transcripts",
            "decide",
            "expected_changes",
            "kappa_weights",
            "passage_codings",
            "passage_keys",
            "review_budget",
            "review_priority",
            "summarise",
            "within_budget",
            "write_run",
        ],
        "ray_engine": ["code_transcripts_ray", "import_ray", "local_cluster", "windows"],
    },
)
