"""Every misuse of the command line: one line on stderr starting with ``error:``, exit code 2, no traceback.

Runs the real entry point (:func:`pipeline.cli.main`) in-process over wrong option forms, wrong types,
missing and extra arguments, unknown commands and missing files, for every command; and the installed
``python -m pipeline.cli`` in a subprocess for a few of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, TEST_DATA

TRANSCRIPT = str(TEST_DATA / "transcripts" / "on-group-test.txt")
MISSING = "no-such-file.txt"

# (argv, a piece of the line): {out} is a fresh folder of the test's tmp_path
MISUSES: list[tuple[list[str], str]] = [
    ([], "missing command: one of agreement, code, codebook"),
    (["--bogus"], "No such option: --bogus (see imri --help)"),
    (["-x"], "No such option: -x"),
    (["nope"], "No such command 'nope'"),
    (["Segment", TRANSCRIPT], "No such command 'Segment'"),
    (["segment"], "Missing argument 'inputs' (see imri segment --help)"),
    (["segment", TRANSCRIPT], "Missing option '--out'"),
    (["segment", TRANSCRIPT, "--out"], "Option '--out' requires an argument (see imri segment --help)"),
    (["segment", TRANSCRIPT, "--output", "{out}/s.csv"], "No such option: --output"),
    (["segment", MISSING, "--out", "{out}/s.csv"], f"{MISSING}: no such file"),
    (["segment", TRANSCRIPT, "--out", "{out}/s.xlsx"], "output must end in .csv or .parquet"),
    (["segment", TRANSCRIPT, "-out", "{out}/s.csv"], "output must end in .csv or .parquet"),  # -o ut
    (["segment", TRANSCRIPT, "--out", "{out}/s.csv", "--params", MISSING], MISSING),
    (["import-qdpx"], "Missing argument 'file'"),
    (["import-qdpx", "p.qdpx", "--out", "{out}/o", "--level", "abc"], "Invalid value for '--level'"),
    (["import-qdpx", "p.qdpx", "--out", "{out}/o", "--level", "1.5"], "Invalid value for '--level'"),
    (["import-qdpx", MISSING, "--out", "{out}/o"], MISSING),
    (["import-qdc", "a.qdc", "b.qdc", "--out", "{out}/o"], "unexpected extra argument"),
    (["import-qdc", "a.qdc", "--force=yes", "--out", "{out}/o"], "--force"),
    (["export-qdpx", "--codings"], "Option '--codings' requires an argument"),
    (["export-qdpx", "--codings", MISSING, "--text-dir", "{out}", "--out", "{out}/p.qdpx"], MISSING),
    (["agreement", "--bootstrap", "many"], "Invalid value for '--bootstrap'"),
    (["agreement", "--min-overlap", "half"], "Invalid value for '--min-overlap'"),
    (["agreement", MISSING], MISSING),
    (["agreement", MISSING, "--format", "xml"], "--format must be one of"),
    (["codebook"], "missing command: one of show (see imri codebook --help)"),
    (["codebook", "shwo"], "No such command 'shwo'"),
    (["codebook", "show", "--lang"], "Option '--lang' requires an argument"),
    (["codebook", "show", "--lang", "de"], "--lang must be one of en, fr"),
    (["codebook", "show", "--codebook", MISSING], f"{MISSING}: no such file"),
    (["corpus"], "missing command: one of build, datasheet, stats"),
    (["corpus", "stats", "extra"], "unexpected extra argument"),
    (["review"], "missing command: one of export, serve, simulate"),
    (["review", "serve", "run", "--port", "abc"], "Invalid value for '--port'"),
    (["review", "serve", "run", "--port", "70000"], "--port must lie between 0 and 65535"),
    (["review", "serve", "--port", "8000"], "Missing argument 'run_dir'"),
    (["review", "export", "run"], "Missing option '--out'"),
    (["review", "simulate", "--rounds", "x"], "Invalid value for '--rounds'"),
    (["review", "simulate", "--test-share", "lots"], "Invalid value for '--test-share'"),
    (["models"], "missing command: one of build"),
    (["models", "build", "extra"], "unexpected extra argument"),
    (["train", "--gold", "data/gold", "data/transfer"], "--gold takes one value: repeat it for each"),
    (["train", "--bogus"], "No such option: --bogus"),
    (["train", "--coder"], "Option '--coder' requires an argument"),
    (["code"], "Missing argument 'inputs'"),
    (["code", TRANSCRIPT, "--out"], "Option '--out' requires an argument (see imri code --help)"),
    (["code", TRANSCRIPT, "--out", "{out}/run", "--workers", "two"], "Invalid value for '--workers'"),
    (["code", TRANSCRIPT, "--out", "{out}/run", "--engine", "spark"], "--engine must be local or ray"),
    (["code", TRANSCRIPT, "--out", "{out}/run", "--zero-shot", "--codebook", MISSING], MISSING),
    (["finetune", "--gold", "a", "b"], "--gold takes one value: repeat it for each (--gold a --gold b)"),
    (["embed"], "Missing argument 'segments'"),
    (["embed", "s.csv", "--encoder"], "Option '--encoder' requires an argument"),
    (["evaluate", "--gold", "a", "b"], "unexpected extra argument"),
    (["report", "a.json", "b.json"], "unexpected extra argument"),
]


def _args(argv: list[str], tmp_path) -> list[str]:
    return [arg.replace("{out}", str(tmp_path)) for arg in argv]


@pytest.mark.parametrize("argv,problem", MISUSES, ids=[" ".join(a)[:60] or "no-arguments" for a, _ in MISUSES])
def test_every_misuse_is_one_line_and_exit_2(tmp_path, run_cli, monkeypatch, argv, problem):
    monkeypatch.chdir(tmp_path)  # relative names (data/gold, no-such-file.txt) do not exist here
    started = time.perf_counter()
    result = run_cli(*_args(argv, tmp_path))
    assert time.perf_counter() - started < 10
    assert result.code == 2, (result.code, result.err[-2000:])
    assert result.err.count("\n") == 1 and result.err.startswith("error: "), result.err[-2000:]
    assert problem in result.err, result.err
    assert "Traceback" not in result.err and "╭" not in result.err + result.out


@pytest.mark.parametrize(
    "argv", [["--help"], ["review", "--help"], ["segment", "--help"], ["review", "serve", "--help"]]
)
def test_help_still_exits_0(run_cli, argv):
    result = run_cli(*argv)
    assert result.code == 0 and "Usage: imri" in result.out and result.err == ""


@pytest.mark.parametrize(
    "argv,problem",
    [
        ([], "error: missing command"),
        (["--level", "abc"], "error: No such option: --level"),
        (["train", "--gold", "data/gold", "data/transfer"], "error: --gold takes one value: repeat it for each"),
        (["review", "serve", "run", "--port", "abc"], "error: Invalid value for '--port'"),
    ],
)
def test_the_console_script_prints_one_line(tmp_path, argv, problem):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(problem), done.stderr[-2000:]
    assert done.stdout == ""
