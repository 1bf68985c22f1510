"""``imri code --engine ray``: the local engine's run folder, from a real two-node Ray cluster on loopback.

The slow tests start two ``ray start`` nodes (one CPU and an empty embedding cache each) once for the
module and code three transcripts of the new study (269 segments) with a model trained here (use-m3,
three folds) and zero-shot with the int8 encoder. Ray embeds in the local engine's windows
(``pipeline.coding.run.EMBED_WINDOW`` segments of whole transcripts, one actor call each); both engines run
here with windows of :data:`WINDOW` segments, so that the three transcripts make two windows, one for
each node. The run folder must equal the local engine's byte for byte (probabilities to 1e-6), on the
nodes' vectors and on vectors the local engine computed itself; a worker killed mid-run, an unreadable
transcript and the Ray logs are checked on it too. Without Ray installed they are skipped, saying what
to install.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="Ray is not installed: pip install 'imri-autocode[ray]' (make setup installs the extra)"
)
IMRI = str(Path(sys.executable).with_name("imri"))
STUDY = ["ns-01", "ns-02", "ns-05"]  # English and French; 89, 96 and 84 segments
WINDOW = 100  # segments a window: [ns-01, ns-02] and [ns-05] (the local engine's default is 4,096)
SAME_FILES = ("review_queue.csv", "summary.json", "model.json", "coded.qdpx")
BLOCK_RAY = """
import sys
class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, NoRay())
from pipeline.cli import main
sys.argv = ["imri", *sys.argv[1:]]
main()
"""
# imri with windows of WINDOW segments (argv[1]), for both engines: the local engine reads the constant when a
# run starts, the Ray engine's driver when it makes the windows
WINDOWED = """
import sys
import pipeline.coding.run
pipeline.coding.run.EMBED_WINDOW = int(sys.argv[1])
from pipeline.cli import main
sys.argv = ["imri", *sys.argv[2:]]
main()
"""
KILLED_ONCE = """
import os, signal, sys
from pathlib import Path
import pipeline.coding.run
pipeline.coding.run.EMBED_WINDOW = int(sys.argv[7])
from pipeline.codebook import load_codebook
from pipeline.params import load_params
from pipeline.coding.ray_engine import TranscriptCoder, code_transcripts_ray

marker = sys.argv[1]

class KilledOnce(TranscriptCoder):
    # the first window to arrive kills its own worker process, mid-run; Ray restarts the actor and retries
    def __call__(self, batch):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().__call__(batch)
        os.kill(os.getpid(), signal.SIGKILL)

study, out, model, params, address = sys.argv[2:7]
run = code_transcripts_ray(
    [Path(study)], Path(out), Path(model), load_codebook(), load_params(Path(params)),
    address=address, workers=2, coder_class=KilledOnce,
)
print(f"nodes {run.nodes}")
"""


def imri(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IMRI, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def imri_windowed(*args, env: dict) -> subprocess.CompletedProcess:
    """``imri ARGS`` with windows of :data:`WINDOW` segments."""
    command = [sys.executable, "-c", WINDOWED, str(WINDOW), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def assert_same_run(expected: Path, actual: Path) -> None:
    """Same rows and codes; probabilities equal to 1e-6; the other files byte for byte."""
    for name in ("segments.csv", "segments.parquet"):
        read = pd.read_csv if name.endswith(".csv") else pd.read_parquet
        a, b = read(expected / name), read(actual / name)
        assert list(a.columns) == list(b.columns)
        probabilities = [c for c in a.columns if c.startswith("p:")]
        rest = [c for c in a.columns if c not in probabilities]
        pd.testing.assert_frame_equal(a[rest], b[rest])
        np.testing.assert_allclose(b[probabilities].to_numpy(float), a[probabilities].to_numpy(float), atol=1e-6)
    for name in SAME_FILES:
        assert (expected / name).read_bytes() == (actual / name).read_bytes(), name


def test_windows_are_the_local_engines():
    # the local engine closes a window once it holds EMBED_WINDOW segments or more
    from pipeline.coding import windows

    assert windows([89, 96, 84], WINDOW) == [[0, 1], [2]]
    assert windows([100, 1, 99, 5000, 3], WINDOW) == [[0], [1, 2], [3], [4]]
    assert windows([5], 4096) == [[0]]
    assert windows([], 4096) == []


def test_cli_does_not_import_ray():
    check = (
        "import sys, pipeline.cli, pipeline.coding.run; sys.exit(any(m.split('.')[0] == 'ray' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0


def test_without_ray_one_line_naming_the_extra(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_RAY, "code", ROOT / "data" / "new_study", "--out", tmp_path / "run"]
        + ["--engine", "ray"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == "error: --engine ray needs Ray, an optional extra: pip install 'imri-autocode[ray]'\n"
    assert not (tmp_path / "run").exists()


def test_ray_options_need_the_ray_engine(run_cli, tmp_path):
    study = ROOT / "data" / "new_study"
    result = run_cli("code", study, "--out", tmp_path / "run", "--address", "127.0.0.1:6379")
    assert (result.code, result.err) == (2, "error: --address and --workers need --engine ray\n")
    result = run_cli("code", study, "--out", tmp_path / "run", "--engine", "spark")
    assert (result.code, result.err) == (2, "error: --engine must be local or ray, not 'spark'\n")
    assert not (tmp_path / "run").exists()


@needs_ray
def test_nothing_at_the_address_one_line(run_cli, tmp_path):
    # Ray would retry for minutes; the run stops at once, before writing anything
    args = ("code", ROOT / "data" / "new_study", "--zero-shot", "--out", tmp_path / "run", "--engine", "ray")
    result = run_cli(*args, "--address", "127.0.0.1:1")
    assert result.code == 2
    assert result.err == (
        "error: nothing answers at 127.0.0.1:1 (Connection refused): "
        "is the cluster's head node running there (ray start --head)?\n"
    )
    assert not (tmp_path / "run").exists()


# --- on a cluster --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    for stem in STUDY:
        for suffix in (".txt", ".meta.yaml"):
            shutil.copy(ROOT / "data" / "new_study" / f"{stem}{suffix}", folder)
    return folder


@pytest.fixture(scope="module")
def study_with_repeats(study, tmp_path_factory) -> Path:
    """The study and a later copy of its first transcript with one line changed: with windows of 100 segments,
    its texts come again in the second window, after the first window embedded them."""
    folder = tmp_path_factory.mktemp("repeats")
    shutil.copytree(study, folder, dirs_exist_ok=True)
    lines = (study / f"{STUDY[0]}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[-1] = lines[-1].rstrip("\n") + " And that is the whole story, really.\n"
    (folder / "ns-09-again.txt").write_text("".join(lines), encoding="utf-8")
    shutil.copy(study / f"{STUDY[0]}.meta.yaml", folder / "ns-09-again.meta.yaml")
    return folder


@pytest.fixture(scope="module")
def model(small_gold, tmp_path_factory) -> Path:
    from pipeline.model import train_model
    from pipeline.params import load_params

    folder = tmp_path_factory.mktemp("model") / "m"
    train_model([small_gold], folder, load_params(small_gold / "params.yaml"))
    return folder


@pytest.fixture(scope="module")
def user_models() -> Path:
    """The built encoders of the user's cache: e5-small-int8 (built here once if missing), spaCy's French rules."""
    from pipeline.embed import build_e5_small_int8, default_e5_int8_dir
    from pipeline.locations import cache_dir

    build_e5_small_int8(default_e5_int8_dir())
    return cache_dir() / "models"


def empty_cache(folder: Path, models: Path) -> Path:
    """An embedding cache without embeddings, its ``models/`` the user's built encoders."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models").symlink_to(models, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def node_cache(tmp_path_factory, user_models) -> Path:
    """The embedding cache of the cluster's nodes (no embeddings at the start)."""
    return empty_cache(tmp_path_factory.mktemp("node") / "cache", user_models)


@pytest.fixture(scope="module")
def cluster(node_cache):
    """Two Ray nodes on 127.0.0.1, one CPU each, torn down at the end (also when a test fails)."""
    from pipeline.coding import local_cluster

    with local_cluster(nodes=2, cpus_per_node=1, env={"IMRI_CACHE": str(node_cache)}) as running:
        running.env["SOURCE_DATE_EPOCH"] = "1700000000"  # coded.qdpx dated the same in every run
        yield running


def code_args(study: Path, model: Path | None, params: Path, out: Path) -> list:
    return ["code", study, *(["--model", model] if model else ["--zero-shot"]), "--params", params, "--out", out]


@pytest.fixture(scope="module")
def ray_run(cluster, study, model, small_gold, tmp_path_factory):
    """The study coded on the two nodes, their caches empty at the start (what the run printed, its folder)."""
    out = tmp_path_factory.mktemp("ray") / "run"
    args = code_args(study, model, small_gold / "params.yaml", out)
    done = imri_windowed(*args, "--engine", "ray", "--address", cluster.address, "--workers", 2, env=cluster.env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done, out


@pytest.mark.slow
@needs_ray
def test_same_run_folder_on_two_nodes(cluster, node_cache, user_models, ray_run, study, model, small_gold, tmp_path):
    done, out = ray_run
    assert f"ray: 2 workers, transcripts embedded on 2 node(s) ({cluster.address})" in done.stdout
    assert json.loads((out / "summary.json").read_text())["transcripts"] == len(STUDY)
    params = small_gold / "params.yaml"
    # the local engine on the vectors the nodes computed (their cache): the same folder
    env = {**cluster.env, "IMRI_CACHE": str(node_cache)}
    assert imri_windowed(*code_args(study, model, params, tmp_path / "on-nodes-vectors"), env=env).returncode == 0
    assert_same_run(tmp_path / "on-nodes-vectors", out)
    # the local engine with vectors of its own, computed in the same windows: the same folder (observed:
    # no difference at all; use-m3's vectors move in their 7th decimal when the batches are made up differently)
    env = {**cluster.env, "IMRI_CACHE": str(empty_cache(tmp_path / "cache", user_models))}
    assert imri_windowed(*code_args(study, model, params, tmp_path / "own-vectors"), env=env).returncode == 0
    assert_same_run(tmp_path / "own-vectors", out)


@pytest.mark.slow
@needs_ray
def test_no_segment_text_in_ray_logs(cluster, ray_run):
    done, out = ray_run
    texts = [t for t in pd.read_csv(out / "segments.csv").text if len(t) > 40]
    assert len(texts) > 100
    # what the run printed, and every file Ray wrote on the nodes (session logs, the workers' output)
    written = [done.stdout, done.stderr]
    written += [p.read_text(errors="replace") for p in cluster.folder.rglob("*") if p.is_file() and not p.is_socket()]
    assert len(written) > 20
    assert not [t for t in texts if any(t in w for w in written)]


@pytest.mark.slow
@needs_ray
def test_int8_zero_shot_same_on_two_nodes(cluster, user_models, study_with_repeats, small_gold, tmp_path):
    """e5-small-int8 quantises activations per batch: a text's vector depends on the other texts of its batch.

    Ray embeds in the local engine's windows, so each engine, from an empty cache, computes the same vectors
    and writes the same folder (zero-shot: the driver standardises the scores over the whole run, as locally).
    Observed on the whole new study (eight transcripts, 720 segments) with the default model trained on
    e5-small-int8, when Ray embedded in calls of four transcripts and the local engine in one call of eight:
    probabilities up to 0.15 apart and 45 segments coded differently, hence the windows. This test's own
    input, the local engine with windows of 4,096 (one call) against windows of 100: up to 0.16 apart and
    18 of 269 segments coded differently, so a Ray engine that embedded in other batches would fail here.
    The input repeats a transcript in the second window: locally the first window's vectors were in the
    cache, on the other node not; each engine embeds a window with any new text whole
    (``EmbeddingCache(whole_calls=True)``), else the local engine's second window was made of other batches.
    """
    study = study_with_repeats
    params = yaml.safe_load((small_gold / "params.yaml").read_text(encoding="utf-8"))
    params["embed"] = {"encoder": "e5-small", "precision": "int8"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    args = code_args(study, None, tmp_path / "params.yaml", tmp_path / "ray")
    on_ray = imri_windowed(*args, "--engine", "ray", "--address", cluster.address, "--workers", 2, env=cluster.env)
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    assert "zero-shot-e5-small-int8" in on_ray.stdout
    assert "transcripts embedded on 2 node(s)" in on_ray.stdout
    env = {**cluster.env, "IMRI_CACHE": str(empty_cache(tmp_path / "cache", user_models))}
    local = imri_windowed(*code_args(study, None, tmp_path / "params.yaml", tmp_path / "local"), env=env)
    assert local.returncode == 0, local.stderr[-2000:]
    assert_same_run(tmp_path / "local", tmp_path / "ray")


@pytest.mark.slow
@needs_ray
def test_killed_worker_is_retried(cluster, ray_run, study, model, small_gold, tmp_path):
    marker = tmp_path / "killed"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_ONCE, marker, study, tmp_path / "run", model, small_gold / "params.yaml"]
        + [cluster.address, str(WINDOW)],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert marker.exists()  # a worker was killed...
    assert_same_run(ray_run[1], tmp_path / "run")  # ...and the run is the same


@pytest.mark.slow
@needs_ray
def test_unreadable_transcript_is_named_and_nothing_is_lost(cluster, ray_run, study, model, small_gold, tmp_path):
    inputs = tmp_path / "inputs"
    shutil.copytree(study, inputs)
    (inputs / "ns-01b.txt").write_bytes(b"\x00\x01\x02 not a transcript")
    earlier = tmp_path / "run"
    shutil.copytree(ray_run[1], earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    args = code_args(inputs, model, small_gold / "params.yaml", earlier)
    local = imri(*args, env=cluster.env)
    on_ray = imri(*args, "--engine", "ray", env=cluster.env)  # no --address: a Ray instance of its own
    assert local.returncode == on_ray.returncode == 2
    problem = "binary file (NUL bytes; not a text transcript)"
    assert on_ray.stderr == local.stderr == f"error: {inputs / 'ns-01b.txt'}: {problem}\n"
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "run"]  # no staging folder left
