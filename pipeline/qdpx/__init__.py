"""REFI-QDA interchange: coded projects (.qdpx) and codebooks (.qdc) in, codings out as a project.

Reads the exports of NVivo, ATLAS.ti, MAXQDA and QualCoder within bounds, and writes codings back as a project.
Used by ``imri import-qdpx``, ``imri agreement``, ``imri code`` and ``imri review export``. Imports the ground
floor and :mod:`pipeline.ingest` (the codings table) only."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "project": [
            "export_qdpx",
            "export_qdpx_files",
            "import_qdc",
            "import_qdpx",
            "load_transcripts",
            "project_language",
            "read_qdpx",
            "source_problem",
            "unique_file_names",
        ],
    },
)
