"""Human review of the model's codes (``imri review ...``).

The decisions store (review.db), review runs and their queue, blind mode and reconciliation, the final export,
retraining with reviewed decisions, and the local review app (FastAPI pages, their text in English and French,
templates/ and static/)."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.PKG import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "app": ["bind", "browser_language", "create_app", "searchable", "serve"],
        "export": ["export_final", "export_history", "export_reviews", "final_codings", "reviewed_codings"],
        "run": ["ReviewRun"],
        "simulate": ["SimulationConfig", "run_simulation", "simulate"],
        "store": ["CONSENSUS", "REVIEW_DB", "ReviewStore", "compute_run_id", "latest_decisions"],
        "text": ["EN", "FR"],
    },
)
