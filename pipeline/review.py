"""Human review of low-confidence segments (decisions kept in ``RUN_DIR/review.db``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import InputError


def reviewed_codings(run_dir: Path) -> pd.DataFrame:
    """The latest decision per reviewed segment of a run, as codings (``source,start,end,code,coder``)."""
    raise InputError("review decisions are not available yet (no review.db support)", run_dir)
