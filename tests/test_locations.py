"""Every command works from a folder outside the repository with its defaults; `imri code` finds its default
model (or trains it once into the user's folder); retraining never writes over another model folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.model import CARD_FILE
from tests.conftest import ROOT, TEST_DATA

NEW = ROOT / "data" / "new_study"


def imri(*args, cwd: Path, user: Path) -> subprocess.CompletedProcess:
    """``imri ARGS`` in a fresh process run from ``cwd``, this checkout's code, ``user`` as the user's data folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMRI_DATA": str(user)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fake_repository(folder: Path, small_gold: Path, with_gold: bool = True) -> Path:
    """A stand-in for the repository the package sits in: its marker, a (small) bundled gold set, params.yaml."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "imri-autocode"\n', encoding="utf-8")
    shutil.copy(small_gold / "params.yaml", folder / "params.yaml")
    if with_gold:
        shutil.copytree(small_gold / "transcripts", folder / "data" / "gold" / "transcripts")
        shutil.copy(small_gold / "codings.csv", folder / "data" / "gold" / "codings.csv")
    return folder


@pytest.fixture(scope="module")
def user_model(small_gold, tmp_path_factory):
    """`imri code` with no model anywhere: it trains the default once from the bundled gold set into the user's
    folder, then reuses it. Returns the user's folder and what the two runs printed."""
    import pipeline.locations
    from pipeline.cli import main

    base = tmp_path_factory.mktemp("nowhere")
    user, work = base / "user", base / "work"
    work.mkdir()
    runs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.locations, "REPOSITORY", fake_repository(base / "repo", small_gold))
        patch.setenv("IMRI_DATA", str(user))
        patch.chdir(work)
        for n in (1, 2):
            patch.setattr(sys, "argv", ["imri", "code", str(NEW / "ns-02.txt"), "--out", f"run{n}"])
            err = work / f"err{n}.txt"
            with open(err, "w", encoding="utf-8") as handle, pytest.MonkeyPatch.context() as streams:
                streams.setattr(sys, "stderr", handle)
                try:
                    main()
                    code = 0
                except SystemExit as exit_:
                    code = exit_.code
            runs.append((code, err.read_text(encoding="utf-8"), work / f"run{n}"))
            if n == 1:
                first = (user / "models" / "imri-default" / CARD_FILE).read_bytes()
    return user, runs, first


@pytest.mark.slow
def test_imri_code_trains_the_default_model_once_into_the_users_folder(user_model):
    user, runs, first = user_model
    model = user / "models" / "imri-default"
    (code, err, run), (code2, err2, run2) = runs
    assert code == 0 and code2 == 0, err + err2
    assert "no model yet" in err and "training the default model once from the bundled synthetic gold set" in err
    assert str(model) in err and f"model: {model} (the default" in err
    assert "no model yet" not in err2 and f"model: {model} (the default" in err2  # the second run reuses it
    assert (model / CARD_FILE).read_bytes() == first
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["transcripts"] == 1 and summary["segments"] > 0
    assert (run / "segments.csv").read_bytes() == (run2 / "segments.csv").read_bytes()


def test_without_a_model_or_a_bundled_gold_set_imri_code_says_how_to_get_one(
    small_gold, tmp_path, monkeypatch, run_cli
):
    import pipeline.locations

    monkeypatch.setattr(pipeline.locations, "REPOSITORY", fake_repository(tmp_path / "repo", small_gold, False))
    monkeypatch.setenv("IMRI_DATA", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    result = run_cli("code", NEW / "ns-02.txt", "--out", tmp_path / "run")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "no model" in result.err and "--model FOLDER" in result.err and "imri train --gold" in result.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "user").exists()


@pytest.mark.slow
def test_codebook_segment_and_code_work_from_another_folder_with_their_defaults(user_model, tmp_path):
    user, _, _ = user_model
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert ROOT not in elsewhere.resolve().parents

    shown = imri("codebook", "show", cwd=elsewhere, user=user)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("imri v1 (21 impacts)")

    segmented = imri("segment", TEST_DATA / "transcripts", "--out", "segs.csv", cwd=elsewhere, user=user)
    assert segmented.returncode == 0, segmented.stderr
    table = pd.read_csv(elsewhere / "segs.csv")
    assert set(table.source) == {"on-group-test.txt", "qc-groupe-test.txt"} and set(table.language) == {"en", "fr"}

    stats = imri("corpus", "stats", "--json", cwd=elsewhere, user=user)  # the bundled corpora, found by default
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["gold"]["interviews"] == len(list((ROOT / "data/gold/transcripts").glob("*.txt")))

    coded = imri("code", NEW / "ns-02.txt", "--out", "run", cwd=elsewhere, user=user)
    assert coded.returncode == 0, coded.stderr
    # the repository's model when `make demo` built one, else the user's (trained by the fixture)
    repository_model = ROOT / "models" / "imri-default"
    expected = repository_model if (repository_model / CARD_FILE).is_file() else user / "models" / "imri-default"
    assert f"model: {expected} (the default" in coded.stderr
    assert (elsewhere / "run" / "segments.csv").is_file() and "no model yet" not in coded.stderr
    assert json.loads((elsewhere / "run" / "summary.json").read_text(encoding="utf-8"))["transcripts"] == 1


@pytest.mark.slow
def test_retraining_writes_a_new_model_folder_and_never_over_another(small_gold, tmp_path, monkeypatch, run_cli):
    monkeypatch.chdir(tmp_path)
    params = small_gold / "params.yaml"
    first = run_cli("train", "--gold", small_gold, "--params", params)
    assert first.code == 0, first.err
    (folder,) = (tmp_path / "models").iterdir()
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    assert folder.name == f"{card['name']}-{card['version']}"
    assert f"-> {Path('models') / folder.name}" in first.out
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "note.txt").write_text("mine", encoding="utf-8")  # a user's file in the model folder stays

    again = run_cli("train", "--gold", small_gold, "--params", params)  # the same version: refused
    (error,) = [line for line in again.err.splitlines() if "error" in line]  # after the progress bars: one line
    assert again.code == 2 and error.startswith(f"error: {Path('models') / folder.name}: already there"), again.err
    assert "nothing written" in error and "--force" in error
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "note.txt"} == before
    assert (folder / "note.txt").exists() and [p.name for p in (tmp_path / "models").iterdir()] == [folder.name]

    # an --out that holds a model is refused before any training
    over = run_cli("train", "--gold", small_gold, "--params", params, "--out", folder)
    assert over.code == 2 and "already there: a model folder is never written over" in over.err
    assert (folder / "note.txt").exists()
    forced = run_cli("train", "--gold", small_gold, "--params", params, "--out", folder, "--force")
    assert forced.code == 0, forced.err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # written again, whole


def test_a_training_that_fails_leaves_the_folder_as_it_was(tmp_path, monkeypatch, run_cli):
    """Without --out, training stages into models/: a failure (here: no gold set) takes the staging folder and
    a models/ folder it made away again, and keeps one that was there (found by the CLI fuzz test)."""
    monkeypatch.chdir(tmp_path)
    failed = run_cli("train", "--gold", tmp_path / "no-gold")
    assert failed.code == 2 and "a gold set needs transcripts/ and codings.csv" in failed.err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "models").mkdir()
    assert run_cli("train", "--gold", tmp_path / "no-gold").code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["models"] and list((tmp_path / "models").iterdir()) == []


def test_messages_know_whose_gold_set_it_is(small_gold, monkeypatch):
    """The bundled synthetic gold set is known by where it is: a copy of its transcripts elsewhere (small_gold) is a
    team's own gold set, named by its folder, and nothing said about it calls it synthetic."""
    from pipeline.evaluate import SYNTHETIC_NOTE
    from pipeline.locations import is_bundled_gold, model_name, scores_note

    bundled = ROOT / "data" / "gold"
    assert is_bundled_gold(bundled) and not is_bundled_gold(small_gold)
    monkeypatch.chdir(ROOT)
    assert is_bundled_gold(Path("data/gold"))  # relative, as the command's default gives it
    assert scores_note([bundled], SYNTHETIC_NOTE) == SYNTHETIC_NOTE and model_name([bundled]) == "imri-default"
    note = scores_note([small_gold], SYNTHETIC_NOTE)
    assert "synthetic" not in note and repr(small_gold.name) in note
    assert model_name([small_gold]) == f"imri-{small_gold.name}"
    both = scores_note([bundled, small_gold], SYNTHETIC_NOTE)
    assert "the bundled synthetic gold set" in both and repr(small_gold.name) in both
    assert model_name([bundled, small_gold]) == f"imri-{small_gold.name}"


def test_the_readme_tour_s_bundled_paths_work_from_another_folder(tmp_path, monkeypatch, run_cli):
    """`imri segment data/new_study` and `imri agreement data/gold/codings.csv --text-dir data/gold/transcripts`,
    typed as the README's tour types them, read the repository's bundled data from any folder."""
    monkeypatch.chdir(tmp_path)
    segmented = run_cli("segment", "data/new_study/ns-02.txt", "--out", "segs.csv")
    assert segmented.code == 0, segmented.err
    assert (tmp_path / "segs.csv").read_text(encoding="utf-8").count("ns-02.txt") > 10
    agreed = run_cli("agreement", "data/gold/codings.csv", "--text-dir", "data/gold/transcripts", "--coders", "A", "B")
    assert agreed.code == 0, agreed.err
    assert "kappa" in agreed.out.lower()
    typo = run_cli("segment", "dta/new_study", "--out", "x.csv")  # anything else is taken as given
    assert typo.code == 2 and "dta/new_study" in typo.err
