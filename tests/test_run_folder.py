"""The run folder of ``imri code``: checked before any work, built aside and swapped in whole,
review.db kept, never a silent replacement; and its summary names impacts as the codebook does."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import load_codebook
from pipeline.coding import REVIEW_DB, ReviewConfig, check_run_folder, code_segments, summarise, write_run
from pipeline.errors import InputError
from pipeline.io import OLD_MARK, STAGING_MARK, build_folder, clean_leftovers
from tests.conftest import ROOT

BOOK = load_codebook()
PARAMS = "segment:\n  spacy_models: {}\nembed:\n  encoder: use-m3\n"
TRANSCRIPT = (
    "Interviewer: How has the peer support programme changed things for you?\n"
    "Peer:\n"
    "Tenant: I sleep better now, honestly. I feel more hopeful about the future.\n"
    "Peer:   \n"
    "Interviewer: And with the staff?\n"
    "Tenant: The staff listen to me now, and we plan my recovery together.\n"
    "Peer:\n"
)


def _run_folder(folder, marker: str) -> None:
    """A folder as an earlier ``imri code`` left it (its files say ``marker``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("segments.csv", "segments.parquet", "review_queue.csv", "model.json", "coded.qdpx"):
        (folder / name).write_text(marker, encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps({"marker": marker}), encoding="utf-8")
    (folder / "transcripts").mkdir(exist_ok=True)
    (folder / "transcripts" / "old.vtt.txt").write_text(marker, encoding="utf-8")


def _review_db(folder) -> None:
    with sqlite3.connect(folder / REVIEW_DB) as db:
        db.execute("CREATE TABLE decisions (segment_id TEXT, action TEXT)")
        db.execute("INSERT INTO decisions VALUES ('a.txt:0-10', 'accept')")
    db.close()


def _coded(language: str = "en") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small segment table coded with given probabilities (no encoder)."""
    n = 6
    table = pd.DataFrame(
        {
            "source": ["a.txt"] * n,
            "segment_id": [f"a.txt:{10 * i}-{10 * i + 8}" for i in range(n)],
            "start": [10 * i for i in range(n)],
            "end": [10 * i + 8 for i in range(n)],
            "speaker": ["I", "P", "P", "P", "I", "P"],
            "role": ["interviewer", "participant", "participant", "participant", "interviewer", "participant"],
            "turn": [0, 1, 1, 1, 2, 3],
            "language": ["en", language, language, "en", "en", language],
            "text": ["question", "answer 1", "answer 2", "answer 3", "question", "answer 4"],
            "question": ["", "question", "question", "question", "", "question"],
        }
    )
    proba = np.full((n, len(BOOK.impacts)), 0.1)
    ids = BOOK.impact_ids
    proba[1, ids.index("being_growth_service_users")] = 0.9
    proba[2, ids.index("being_growth_service_users")] = 0.8
    proba[2, ids.index("operating_changing_practice")] = 0.7
    proba[0, ids.index("operating_changing_practice")] = 0.99  # interviewer: never coded
    thresholds, positives = np.full(len(ids), 0.5), np.full(len(ids), 100)
    return code_segments(table, proba, thresholds, positives, BOOK, ReviewConfig())


def _write(out, language: str = "en") -> dict:
    segments, queue = _coded(language)
    summary = summarise(segments, BOOK, "test-1")
    texts = {"a.txt": "x" * 60}
    card = {"name": "test", "version": "1", "encoder": {"id": "none"}}
    write_run(out, segments, queue, summary, card, texts, BOOK)
    return summary


# --- the summary speaks the codebook's names --------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr"])
def test_summary_names_impacts_and_categories_as_the_codebook_does(language):
    segments, _ = _coded(language)
    summary = summarise(segments, BOOK, "test-1")
    assert summary["names_language"] == language  # French when most participant segments are French
    growth = BOOK.impact("being_growth_service_users")
    practice = BOOK.impact("operating_changing_practice")
    impacts = {entry["id"]: entry for entry in summary["codes_per_impact"]}
    assert [entry["id"] for entry in summary["codes_per_impact"]] == BOOK.impact_ids
    assert impacts[growth.id] == {
        "id": growth.id,
        "name": growth.name[language],
        "category": growth.category,
        "count": 2,
    }
    assert impacts[practice.id]["count"] == 1 and impacts[practice.id]["name"] == practice.name[language]
    categories = {entry["id"]: entry for entry in summary["codes_per_category"]}
    being = BOOK.categories[BOOK.category_ids.index(growth.category)]
    assert categories[being.id] == {"id": being.id, "name": being.name[language], "count": 2}
    assert sum(entry["count"] for entry in summary["codes_per_category"]) == 3


# --- --out is checked before any work ------------------------------------------------------------


def test_out_that_is_a_file_or_under_a_file_or_holds_the_inputs(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_run_folder(a_file)
    with pytest.raises(InputError, match=f"cannot write here: {a_file} is a file, not a folder"):
        check_run_folder(a_file / "deeper" / "run")
    with pytest.raises(InputError, match="--out would replace"):
        check_run_folder(tmp_path, force=True, holds=[a_file])
    with pytest.raises(InputError, match="--out would replace the current folder"):
        check_run_folder(Path.cwd().parent, force=True)
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_a_folder_that_is_not_a_run_needs_force_and_is_named(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert check_run_folder(out) is None  # empty: nothing to replace
    (out / "thesis.docx").write_text("years of work", encoding="utf-8")
    (out / "data").mkdir()
    with pytest.raises(
        InputError, match=r"is not empty and is not an imri code run \(data, thesis.docx\); pass --force"
    ):
        check_run_folder(out)
    assert check_run_folder(out, force=True) == f"replacing {out} and everything in it (data, thesis.docx)"
    _run_folder(out, "old")  # a run with a user's file in it still needs --force, naming the file
    with pytest.raises(InputError, match=r"holds files that imri code did not write \(data, thesis.docx\)"):
        check_run_folder(out)
    run = tmp_path / "run"
    _run_folder(run, "old")
    _review_db(run)
    (run / ".imri-code-abc123").mkdir()  # what older versions left behind
    assert check_run_folder(run) == f"replacing the earlier run in {run}; its review.db is kept"


def test_code_refuses_a_bad_out_before_reading_or_embedding(tmp_path, run_cli):
    transcript = tmp_path / "t.txt"
    transcript.write_text(TRANSCRIPT, encoding="utf-8")
    # the model folder does not exist: the error about --out comes before anything else is looked at
    result = run_cli("code", transcript, "--model", tmp_path / "no-model", "--out", transcript / "run")
    assert result.code == 2 and result.err == (
        f"error: {transcript / 'run'}: cannot write here: {transcript} is a file, not a folder\n"
    )
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.md").write_text("keep", encoding="utf-8")
    result = run_cli("code", transcript, "--model", tmp_path / "no-model", "--out", folder)
    assert result.code == 2 and "pass --force to replace the folder" in result.err
    assert (folder / "notes.md").read_text(encoding="utf-8") == "keep"


# --- built aside, swapped in whole ----------------------------------------------------------------


def _siblings(out) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_new_run_replaces_an_earlier_one_whole_and_keeps_its_review_db(tmp_path):
    out = tmp_path / "run"
    _run_folder(out, "old")
    (out / ".imri-code-x1y2").mkdir()  # a staging folder an older version never removed
    _review_db(out)
    inode = (out / REVIEW_DB).stat().st_ino
    summary = _write(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "coded.qdpx",
        "model.json",
        "passages.csv",
        REVIEW_DB,
        "review_queue.csv",
        "segments.csv",
        "segments.parquet",
        "summary.json",
    ]  # the old transcripts/ and the old staging folder are gone with the old run
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
    assert (out / REVIEW_DB).stat().st_ino == inode  # the very same file: a running review app keeps writing to it
    with sqlite3.connect(out / REVIEW_DB) as db:
        assert db.execute("SELECT * FROM decisions").fetchall() == [("a.txt:0-10", "accept")]
    db.close()
    assert _siblings(out) == []  # no staging folder left beside it


def test_a_failure_while_building_leaves_the_old_folder_untouched(tmp_path):
    out = tmp_path / "run"
    _run_folder(out, "old")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RuntimeError), build_folder(out) as staging:
        (staging / "segments.csv").write_text("new", encoding="utf-8")
        raise RuntimeError("disk full")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _siblings(out) == []


def test_a_full_disk_while_building_is_one_line_and_the_old_folder_stays(tmp_path):
    import errno

    out = tmp_path / "run"
    _run_folder(out, "old")
    full = r"run: cannot write the new folder \(No space left on device\)"
    with pytest.raises(InputError, match=full), build_folder(out) as staging:
        (staging / "segments.csv").write_text("new", encoding="utf-8")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert (out / "segments.csv").read_text(encoding="utf-8") == "old" and _siblings(out) == []


def test_a_process_killed_while_building_leaves_the_old_folder_and_its_staging_goes_next_time(tmp_path):
    out = tmp_path / "run"
    _run_folder(out, "old")
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from pipeline.io import build_folder\n"
        f"with build_folder(Path({str(out)!r})) as staging:\n"
        "    (staging / 'segments.csv').write_text('new', encoding='utf-8')\n"
        "    print('built', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline().strip() == "built"
    child.kill()  # SIGKILL: no finally block runs
    child.wait()
    assert (out / "segments.csv").read_text(encoding="utf-8") == "old"
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == {"marker": "old"}
    stale = _siblings(out)
    assert len(stale) == 1 and stale[0].startswith(f".run{STAGING_MARK}{child.pid}-")
    _write(out)
    assert _siblings(out) == []  # the next run removed the dead process's staging folder
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["model"] == "test-1"


def test_a_crash_between_the_two_renames_of_the_fallback_swap_is_repaired(tmp_path):
    """Where the file system cannot exchange two folders atomically, two renames do it; a crash
    between them leaves the old folder under its .imri-old- name, which the next build puts back."""
    out = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = tmp_path / f".run{OLD_MARK}{dead.stdout.strip()}-abcd"
    _run_folder(old, "old")
    assert clean_leftovers(out) == []
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == {"marker": "old"}
    assert not old.exists()


def test_the_fallback_swap_gives_the_same_folder(tmp_path, monkeypatch):
    import pipeline.io

    monkeypatch.setattr(pipeline.io, "_exchange", lambda a, b: False)  # a file system without renameat2
    out = tmp_path / "run"
    _run_folder(out, "old")
    _review_db(out)
    _write(out)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["model"] == "test-1"
    assert (out / REVIEW_DB).is_file() and not (out / "transcripts").exists()
    assert _siblings(out) == []


def test_the_run_folder_keeps_ordinary_permissions(tmp_path):
    out = tmp_path / "run"
    _write(out)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not the 0700 of a temporary folder


# --- imri code end to end (zero-shot, the fastest real encoder) ----------------------------------


@pytest.mark.slow
def test_code_with_empty_turns_and_an_earlier_run_in_out(tmp_path, run_cli):
    transcript = tmp_path / "interview.txt"
    transcript.write_text(TRANSCRIPT, encoding="utf-8")
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS, encoding="utf-8")
    out = tmp_path / "runs" / "mine"
    _run_folder(out, "old")
    _review_db(out)
    result = run_cli("code", transcript, "--zero-shot", "--out", out, "--params", params)
    assert result.code == 0, result.err
    assert result.out.startswith(f"replacing the earlier run in {out}; its review.db is kept\n")
    segments = pd.read_csv(out / "segments.csv", keep_default_na=False)
    assert "Peer" not in set(segments.speaker)
    spans = zip(segments.start, segments.end, segments.text, strict=True)
    assert all(TRANSCRIPT[s:e] == t and t.strip() for s, e, t in spans)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["segments"] == len(segments)
    for category in summary["codes_per_category"]:
        assert f"  {category['count']:5d}  {category['name']}\n" in result.out
    assert (out / REVIEW_DB).is_file() and not (out / "transcripts").exists()
    assert _siblings(out) == []


def test_the_kept_database_is_the_review_apps():
    from pipeline.review import REVIEW_DB as REVIEW_APP_DB

    assert REVIEW_DB == REVIEW_APP_DB


# --- CSV outputs: rows never split, formulas never run, the text read back exact ---------------------

AWKWARD = [
    "line one\rline two",  # a bare CR: unquoted, Python's csv and pandas split the row there
    "line one\r\nline two",
    "line one\nline two",
    '=HYPERLINK("http://x.example","click")',
    "+1 more thing",
    "-- and then she left",
    "@SUM(A1:A2)",
    "'=already quoted",
    "''+twice",
    "'plain quote",
    'a "quoted", word',
    "",
]


def test_csv_tables_quote_every_line_break_and_neutralise_formulas(tmp_path):
    import csv

    from pipeline.io import read_table, write_table

    frame = pd.DataFrame({"text": AWKWARD, "n": range(-6, 6), "x": [-0.5] * len(AWKWARD)})
    write_table(frame, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == len(AWKWARD) + 1  # Python's csv reads one row per segment
    spreadsheet = [row[0] for row in rows[1:]]
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in spreadsheet)  # no formula runs
    assert [row[1] for row in rows[1:]] == [str(n) for n in range(-6, 6)]  # numbers stay numbers
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(AWKWARD)  # and so does pandas
    back = read_table(tmp_path / "t.csv")
    assert back.text.fillna("").tolist() == AWKWARD  # the text itself, quotes added for the spreadsheet taken off
    assert back.n.tolist() == list(range(-6, 6)) and back.x.tolist() == [-0.5] * len(AWKWARD)


def test_a_run_with_line_breaks_and_formulas_in_its_segments_reads_back(tmp_path):
    from pipeline.agreement import read_model_output
    from pipeline.io import read_table

    segments, queue = _coded()
    texts = ["Q?\rreally", "=1+1 is two", "-- she said", "+ more\r", "@home", "fine"]
    segments["text"] = texts
    segments["question"] = ["", *texts[:1] * 3, "", texts[4]]
    card = {"name": "test", "version": "1", "encoder": {"id": "none"}}
    out = tmp_path / "run"
    write_run(out, segments, queue, summarise(segments, BOOK, "test-1"), card, {"a.txt": "x" * 60}, BOOK)
    assert len(pd.read_csv(out / "segments.csv")) == len(segments)
    assert read_table(out / "segments.csv").text.tolist() == texts
    assert pd.read_parquet(out / "segments.parquet").text.tolist() == texts  # Parquet keeps the raw text
    assert read_table(out / "review_queue.csv").segment_id.tolist() == queue.segment_id.tolist()
    model = read_model_output(out)  # what `imri agreement` reads: refused before (a row split at the CR)
    assert len(model.segments) == len(segments)
    assert sorted(c.code for c in model.codings) == sorted(c for codes in segments.codes for c in codes.split(";") if c)


def test_codings_and_report_csv_use_the_same_writer(tmp_path):
    from pipeline.ingest import Coding, read_codings, write_codings
    from pipeline.io import csv_text

    write_codings([Coding("-a.txt", 0, 5, "code", "=coder")], tmp_path / "codings.csv")
    assert (tmp_path / "codings.csv").read_bytes() == b"source,start,end,code,coder\r\n'-a.txt,0,5,code,'=coder\r\n"
    assert read_codings(tmp_path / "codings.csv") == [Coding("-a.txt", 0, 5, "code", "=coder")]
    assert csv_text(["a", "b"], [["x\ry", -1.5], ["+x", None]]) == 'a,b\n"x\ry",-1.5\n\'+x,\n'


def test_code_refuses_an_unwritable_out_before_loading_the_model(tmp_path, run_cli):
    transcript = tmp_path / "t.txt"
    transcript.write_text(TRANSCRIPT, encoding="utf-8")
    if os.geteuid() == 0:  # root writes through permissions, not into sysfs
        if not Path("/sys/kernel").is_dir():
            pytest.skip("needs Linux's /sys to have a folder root cannot write in")
        out = Path("/sys/kernel/imri-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "run"
    # the model folder does not exist: before, that was found first (or the model loaded, 9-13 s and 1.3 GB)
    result = run_cli("code", transcript, "--model", tmp_path / "no-model", "--out", out)
    assert result.code == 2 and result.err.startswith(f"error: {out}: cannot write here ("), result.err
    assert result.err.count("\n") == 1
    result = run_cli("segment", transcript, "--out", out.with_suffix(".csv"))
    assert result.code == 2 and result.err.startswith(f"error: {out.with_suffix('.csv')}: cannot write here (")
