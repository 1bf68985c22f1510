"""REFI-QDA interchange: coded projects (.qdpx) and codebooks (.qdc) in, codings out as a project.

Reads the exports of NVivo, ATLAS.ti, MAXQDA and QualCoder within bounds, and writes codings back as a project.
Used by ``imri import-qdpx``, ``imri agreement``, ``imri code`` and ``imri review export``. Imports the ground
floor and :mod:`pipeline.ingest` (the codings table) only. Modules, lowest first: ``archive`` (opening files
from outside within bounds: archive entries, paths, safe XML), ``refi`` (the namespaces and id lines both
directions share), ``read`` (a project's sources, code tree, users and codings; our codebook from its code
tree), ``importing`` (a project or codebook into a folder), ``write`` (codings and transcripts as a project)."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "importing": ["import_qdc", "import_qdpx", "unique_file_names"],
        "read": ["read_qdpx"],
        "write": ["export_qdpx", "export_qdpx_files", "load_transcripts", "project_language", "source_problem"],
    },
)
