"""Human review of the model's codes (``imri review ...``).

Modules: ``store`` (the decisions store, review.db), ``run`` (a run under review: queue, agreement, the final
export, the reviewed codings retraining reads), ``simulate`` (the active-learning simulation), ``views`` (what
the pages show), ``app`` (the local review app: security, routes, blind mode and reconciliation) and ``text``
(its labels in English and French); templates/ and static/ hold its pages."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "app": ["bind", "create_app", "serve"],
        "run": [
            "ReviewRun",
            "compute_run_id",
            "export_final",
            "export_history",
            "export_reviews",
            "final_codings",
            "reviewed_codings",
        ],
        "simulate": ["SimulationConfig", "run_simulation", "simulate"],
        "store": ["CONSENSUS", "REVIEW_DB", "ReviewStore", "latest_decisions"],
        "text": ["EN", "FR"],
        "views": ["browser_language", "searchable"],
    },
)
