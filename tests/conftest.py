"""Shared fixtures: run the real CLI in-process, find bundled and shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"


# two double-coded (bc-01, qc-02) and four single-coded gold transcripts, both languages
SUBSET = ["bc-01", "bc-02", "on-01", "qc-01", "qc-02", "nb1-03"]


@pytest.fixture(scope="session")
def small_gold(tmp_path_factory):
    """A gold folder with six real gold transcripts and a params.yaml for fast runs (use-m3, 3 folds)."""
    import shutil

    import pandas as pd
    import yaml

    gold = ROOT / "data" / "gold"
    folder = tmp_path_factory.mktemp("gold")
    (folder / "transcripts").mkdir()
    for stem in SUBSET:
        for suffix in (".txt", ".meta.yaml"):
            shutil.copy(gold / "transcripts" / f"{stem}{suffix}", folder / "transcripts")
    codings = pd.read_csv(gold / "codings.csv")
    codings[codings.source.isin([f"{s}.txt" for s in SUBSET])].to_csv(folder / "codings.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["cv_folds"] = 3
    params["embed"] = {"encoder": "use-m3", "precision": "fp32"}  # the fastest real encoder; e5-small: test_e5_rebuild
    params["evaluate"] = {
        "encoders": ["use-m3"],
        "heads": ["ridge"],
        "baselines": ["lexical", "tfidf-logreg"],
        "bootstrap": 50,
        "units": ["sentence", "turn"],
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return folder


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``imri ARGS`` through the real entry point; return exit code, stdout and stderr."""
    from pipeline.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["imri", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
