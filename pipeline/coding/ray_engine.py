"""``imri code --engine ray``: the same coding run as :func:`pipeline.coding.run.code_transcripts`, on a Ray cluster.

Ray is an optional extra (``pip install 'imri-autocode[ray]'``); nothing imports this module unless
``--engine ray`` is asked for, and it imports Ray only when a run starts.

How a run goes (Ray Data):

1. The driver (the machine running ``imri code``) checks ``--out``, loads the model and lists the
   transcripts, as the local engine does, and reads them to decide who interviews across them
   (:func:`pipeline.ingest.transcripts.read_transcripts`).
2. One Ray task per transcript reads and segments it (:func:`pipeline.ingest.transcripts.read_transcript`, the
   driver's role call, and :func:`pipeline.ingest.segment.segment_table` on that transcript alone). The
   segmented transcripts are collected before any embedding: a transcript that fails is reported by
   name (the first in input order, as locally) and nothing is written.
3. The driver cuts the transcripts, in the local engine's order, into the local engine's windows
   (:func:`windows`: whole transcripts, ``pipeline.coding.run.EMBED_WINDOW`` segments or a little more).
   An actor pool (``--workers`` actors at most one per window, one CPU each, each loading the encoder
   once) embeds and scores each window in one call, as the local engine does
   (:class:`pipeline.coding.run.Scorer`): an int8 encoder's vector of a text depends on the other texts of
   its batch, so the same windows give the same vectors, and a window never splits a transcript (a
   segment's features depend on its neighbours, its probabilities are smoothed over its turn). The
   model's head travels with the actors (it is small); each node embeds through its own cache
   (``$IMRI_CACHE`` there).
4. The driver puts the scores together in window order and writes the run folder with the same
   :func:`pipeline.coding.outputs.write_run` (built aside, swapped in whole).

A local Ray instance (no ``--address``) gets token authentication with a fresh token.
Segment texts travel only between the driver and the cluster's own nodes (Ray's object store); no
text is logged: tasks return errors as the file name and the problem, Ray Data's progress bars are
off and worker output stays in the nodes' Ray log folders.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coding import run as local
from pipeline.coding.decisions import code_segments, standardise_zero_shot
from pipeline.coding.outputs import check_run_folder, summarise, write_run
from pipeline.coding.queue import ReviewConfig
from pipeline.coding.run import Clock, CodingRun, Scorer, code_transcripts, run_setup
from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.ingest import SegmentConfig

RAY_EXTRA = "pip install 'imri-autocode[ray]'"
# a worker process that dies (killed, out of memory) is restarted and its batch retried this many
# times; Ray Data's default is forever, which would hide a worker that dies on every batch
MAX_RESTARTS = 3
#: read-and-segment tasks per CPU of the cluster (each task segments a share of the transcripts)
SEGMENT_TASKS_PER_CPU = 4
_LOCAL_ARGUMENTS = ("inputs", "out", "model_dir", "codebook", "params")


@dataclass
class RayCodingRun(CodingRun):
    """A :class:`~pipeline.coding.run.CodingRun` with where it ran."""

    nodes: int = 0  # nodes whose actors embedded at least one transcript
    workers: int = 0  # actors in the pool: --workers (default one per CPU), at most one per window
    address: str = "local"  # the cluster joined, or "local" for an instance started for the run


def import_ray():
    """The ``ray`` module, or a one-line error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data comes with the extra, not with plain ray)
    except ImportError:
        raise InputError(f"--engine ray needs Ray, an optional extra: {RAY_EXTRA}") from None
    return ray


# --- on the cluster ---------------------------------------------------------------------------------


def table_to_bytes(table: pd.DataFrame) -> bytes:
    """A segment table as Arrow IPC bytes: how it travels between nodes, its columns' types kept."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    return sink.getvalue().to_pybytes()


def table_from_bytes(data: bytes) -> pd.DataFrame:
    """The segment table back from :func:`table_to_bytes`."""
    import pyarrow as pa

    with pa.ipc.open_stream(pa.BufferReader(data)) as reader:
        return reader.read_all().to_pandas()


def array_to_bytes(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes (dtype and shape kept, no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def array_from_bytes(data: bytes) -> np.ndarray:
    """The array back from :func:`array_to_bytes`."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def segment_transcript(
    row: dict, config: SegmentConfig, interviewers: tuple[str, ...], no_speakers: str = "skip"
) -> dict:
    """A Ray task: read and segment one transcript; a problem comes back as the file and the problem.

    Who interviews was decided by the driver across all the files (``row["interviewers"]``, ``row["how"]``).

    Returns ``order``, ``source``, ``text``, ``built``, ``skipped``, ``warnings``, ``table`` (Arrow IPC bytes,
    segments sorted by start), ``segments`` and, when it failed, ``problem``, ``path`` and
    ``failed_at`` (``read`` or ``segment``).
    """
    import socket

    from pipeline.ingest import RoleCall, apply_roles, read_transcript, segment_table

    path = Path(row["path"])
    result = {"order": int(row["order"]), "source": path.name, "text": "", "built": False, "warnings": []}
    result["skipped"] = False
    result |= {"table": b"", "segments": 0, "problem": "", "path": str(path), "failed_at": ""}
    stage = "read"
    try:
        if not path.exists():
            raise InputError(
                f"not found on Ray node {socket.gethostname()}: every node must see the transcripts "
                "at the same path (a shared file system)",
                path,
            )
        transcript = read_transcript(path, interviewers=interviewers, no_speakers=no_speakers)
        if transcript.turns and row.get("how"):
            speakers = tuple(dict.fromkeys(turn.speaker for turn in transcript.turns))
            apply_roles(transcript, RoleCall(transcript.source, speakers, tuple(row["interviewers"]), row["how"]))
        stage = "segment"
        table = segment_table([transcript], config)
    except InputError as error:
        return result | {"problem": error.problem, "path": error.path or "", "failed_at": stage}
    table = table.sort_values("start").reset_index(drop=True)
    result |= {"source": transcript.source, "text": transcript.text, "built": transcript.built}
    result |= {"skipped": transcript.skipped}
    result |= {"warnings": list(transcript.warnings), "table": table_to_bytes(table), "segments": len(table)}
    return result


class TranscriptCoder:
    """A Ray Data actor: embeds and scores windows of whole transcripts, its encoder loaded once.

    A window is one of the local engine's (:func:`windows`), and the actor scores it as the local
    engine does (:class:`pipeline.coding.run.Scorer`): the window's texts embedded in one encoder call
    (batches sorted by length over it), then each transcript scored from the cache: with a model, its
    calibrated, turn-smoothed probabilities; zero-shot, the codebook head's raw scores, which the driver
    standardises over the whole run. The actor keeps one embedding cache open (its node's
    ``$IMRI_CACHE``), so the cache's shards are read once, not once per window.
    """

    def __init__(self, model, codebook: Codebook, encoder_id: str, threads: int = 1) -> None:
        # before the encoder loads: the actor's own CPUs, and offline
        os.environ["IMRI_THREADS"] = str(threads)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ.setdefault(name, "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import ray

        from pipeline.embed import EmbeddingCache, get_encoder

        self.node = ray.get_runtime_context().get_node_id()
        encoder = get_encoder(encoder_id)
        encoder.encode(["…"], "query")  # loads the encoder now, not in the first window
        self.cache = EmbeddingCache(encoder, whole_calls=True)  # as the local engine: a window's texts alone
        self.scorer = Scorer(model, encoder_id, codebook)

    def __call__(self, batch: dict) -> dict:
        """Score each window of the batch (a row: ``window``, its number, and ``table``, its segments)."""
        scores = []
        for data in batch["table"]:
            table = table_from_bytes(data)
            self.scorer.embed(table, cache=self.cache)
            # then transcript by transcript from the cache, as locally
            transcripts = [one.reset_index(drop=True) for _, one in table.groupby("source", sort=False)]
            scores.append(np.vstack([self.scorer.scores(one, cache=self.cache) for one in transcripts]))
        return {
            "window": list(batch["window"]),
            "scores": [array_to_bytes(one) for one in scores],
            "node": [self.node] * len(scores),
        }


def windows(sizes: list[int], window: int) -> list[list[int]]:
    """The local engine's windows: consecutive transcripts (their participant segment counts ``sizes``
    (:func:`pipeline.coding.run.window_rows`), in source order) gathered until they hold at least ``window``
    segments; a list of indices per window."""
    out: list[list[int]] = [[]]
    held = 0
    for i, size in enumerate(sizes):
        if held >= window:
            out.append([])
            held = 0
        out[-1].append(i)
        held += size
    return out if out[0] else []


# --- on the driver -----------------------------------------------------------------------------------


def _connect(ray, address: str | None) -> str:
    """Join the cluster at ``address``, or start a local Ray instance for this run; return where it runs."""
    from pipeline.embed import cpu_threads

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    if address:
        _check_answers(address)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", num_cpus=cpu_threads(), **quiet)
    except Exception as error:  # a refused token, an unknown cluster, a Ray of another version: one line
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        problem = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"cannot start or join {where} ({type(error).__name__}: {problem})") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-dataset lines on the console
    return address or "local"


def _token_for_local_instance() -> None:
    """Token authentication for a local Ray instance, unless ``RAY_AUTH_MODE`` is set already.

    Ray 2.60 has authentication off by default, and its ports listen on every interface of the machine:
    a fresh token in a folder of its own (mode 0600), named in the environment that Ray and its workers
    read when they start; the folder is removed when the process ends (Ray keeps the settings it read
    at import for the whole process).
    """
    import atexit
    import secrets
    import tempfile

    if os.environ.get("RAY_AUTH_MODE"):
        return
    folder = Path(tempfile.mkdtemp(prefix="imri-ray-token-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32), encoding="ascii")
    token.chmod(0o600)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)


def _check_answers(address: str) -> None:
    """Refuse a ``HOST:PORT`` that nothing answers at, in seconds (Ray itself would retry for minutes)."""
    import socket

    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or "://" in address:
        return  # "auto" and the like: Ray finds the cluster itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except OSError as error:
        raise InputError(
            f"nothing answers at {address} ({error.strerror or type(error).__name__}): "
            "is the cluster's head node running there (ray start --head)?"
        ) from None


def code_transcripts_ray(
    *args, address: str | None = None, workers: int | None = None, coder_class: type = TranscriptCoder, **kwargs
) -> RayCodingRun:
    """``imri code --engine ray``: :func:`pipeline.coding.run.code_transcripts` with the work done by Ray.

    Takes the local engine's arguments (bound to its signature, so both engines take the same ones;
    ``progress`` and ``stream`` are accepted and change nothing: a Ray run shows no progress bar) and:
    ``address``, the cluster to join (``auto`` or the head's ``HOST:PORT``; without it a local Ray
    instance is started, one CPU per core, and stopped at the end); ``workers``, the number of encoder
    actors (default: one per CPU of the cluster); ``coder_class``, the actor class (a subclass of
    :class:`TranscriptCoder`; tests use one that kills its own process). The run folder is the one the
    local engine writes for the same inputs, model and vectors (docs/scale-out.md).
    """
    bound = inspect.signature(code_transcripts).bind(*args, **kwargs)
    bound.apply_defaults()
    inputs, out, model_dir, codebook, params = (bound.arguments[name] for name in _LOCAL_ARGUMENTS)
    with_gold, warn, force = bound.arguments["with_gold"], bound.arguments["warn"], bound.arguments["force"]
    from pipeline.ingest import collect_transcripts, read_transcripts, role_rows
    from pipeline.model import read_codings

    if not address:
        _token_for_local_instance()  # before Ray is imported: it reads the settings then
    ray = import_ray()
    interviewers = tuple(bound.arguments["interviewers"])
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    holds = [*inputs, *(path for path in (model_dir, with_gold) if path is not None)]
    check_run_folder(out, force, holds)
    review = ReviewConfig.from_dict(params.get("review"))
    model, segment_config, encoder_id, card = run_setup(model_dir, codebook, params)
    gold = read_codings(with_gold, codebook) if with_gold else None
    paths = collect_transcripts(inputs, warn)
    no_speakers = bound.arguments["no_speakers"]
    clock = Clock()
    where = _connect(ray, address)
    try:
        clock.lap("start ray")
        # who interviews is decided across all the files, here (reading is quick); the tasks read them again
        decided = read_transcripts(paths, interviewers, no_speakers=no_speakers)
        calls = {str(p): t.roles for p, t in zip(paths, decided, strict=True)}
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.wait_for_min_actors_s = 600  # every actor's encoder loaded before the first batch goes out
        items = [
            {
                "order": i,
                "path": str(p),
                "interviewers": list(calls[str(p)].interviewers) if calls[str(p)] else [],
                "how": calls[str(p)].how if calls[str(p)] else "",
            }
            for i, p in enumerate(paths)
        ]
        cpus = int(ray.cluster_resources().get("CPU", 1))
        segmented = (
            # a few transcripts a task: one a task spent more on Ray's task overhead than on segmenting (146
            # transcripts of the study-sized corpus on 2 CPUs: 11.6 s read and segmented, against 6.3 s in 8 tasks)
            ray.data.from_items(items, override_num_blocks=min(len(items), SEGMENT_TASKS_PER_CPU * cpus))
            .map(
                segment_transcript,
                fn_kwargs={"config": segment_config, "interviewers": interviewers, "no_speakers": no_speakers},
                num_cpus=1,
            )
            .materialize()
        )
        read = sorted(segmented.take_all(), key=lambda r: r["order"])
        # the error the local engine reports: it reads every transcript, in input order, then segments them
        failed = sorted((r for r in read if r["problem"]), key=lambda r: (r["failed_at"] != "read", r["order"]))
        if failed:
            raise InputError(failed[0]["problem"], failed[0]["path"] or None)
        for row in read:
            for warning in row["warnings"]:
                if warn:
                    warn(warning)
        clock.lap("read and segment")
        # the local engine's row order: all segments sorted by transcript, then start
        tables = [table_from_bytes(r["table"]) for r in sorted(read, key=lambda r: r["source"]) if r["segments"]]
        if not tables:
            raise InputError("the transcripts hold no text to code", out)
        table = pd.concat(tables, ignore_index=True)
        # the local engine's windows, one actor call each: an int8 encoder's vector of a text moves with the
        # other texts of its batch, so the same windows give the same vectors (docs/scale-out.md)
        groups = windows([local.window_rows(t) for t in tables], local.EMBED_WINDOW)
        items = [
            {"window": i, "table": table_to_bytes(pd.concat([tables[j] for j in group], ignore_index=True))}
            for i, group in enumerate(groups)
        ]
        del tables
        cpus = int(ray.cluster_resources().get("CPU", 1))  # again: an autoscaling cluster may have grown
        pool = min(workers or max(1, cpus), len(items))  # an actor per window at the most
        with warnings.catch_warnings():  # per-actor retries are only settable the deprecated way in Ray 2.60
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            coded = (
                ray.data.from_items(items, override_num_blocks=len(items))
                .map_batches(
                    coder_class,
                    fn_constructor_kwargs={"model": model, "codebook": codebook, "encoder_id": encoder_id},
                    batch_size=1,
                    batch_format="numpy",
                    # as many actors as there are CPUs now (no more than windows), more if the cluster grows
                    # (an autoscaling cluster); one window at a time per actor, so that windows go to different nodes
                    compute=ray.data.ActorPoolStrategy(
                        min_size=max(1, min(pool, cpus)),
                        max_size=pool,
                        max_tasks_in_flight_per_actor=1,
                    ),
                    num_cpus=1,
                    max_restarts=MAX_RESTARTS,
                    max_task_retries=MAX_RESTARTS,
                )
                .take_all()
            )
        clock.lap("embed and classify")
    finally:
        ray.shutdown()
    clock.lap("stop ray")
    k = len(codebook.impacts)
    scores = np.vstack([array_from_bytes(r["scores"]) for r in sorted(coded, key=lambda r: r["window"])])
    if model is not None:
        proba, thresholds, positives = scores, model.thresholds, model.arrays["positives"]
    else:
        proba = standardise_zero_shot(scores, table)
        thresholds, positives = np.full(k, 0.5), np.full(k, 10**6)
    segments, queue = code_segments(table, proba, thresholds, positives, codebook, review)
    summary = summarise(segments, codebook, f"{card['name']}-{card['version']}", review)
    clock.lap("classify")
    texts = {r["source"]: r["text"] for r in read if not r["skipped"]}
    built = {r["source"] for r in read if r["built"] and not r["skipped"]}
    replaced = check_run_folder(out, force, holds)  # again: the folder may have changed while this ran
    write_run(out, segments, queue, summary, card, texts, codebook, gold, built, role_rows(decided))
    clock.lap("write")
    nodes = len({r["node"] for r in coded})
    return RayCodingRun(
        segments, queue, summary, clock.laps, replaced, decided, nodes=nodes, workers=pool, address=where
    )


# --- a throwaway cluster on this machine -------------------------------------------------------------


@dataclass
class LocalCluster:
    """A running :func:`local_cluster`: its address and the environment a driver process needs to join it."""

    address: str
    env: dict[str, str]  # os.environ plus the cluster's token settings
    folder: Path  # the nodes' Ray session files (logs, sockets), removed with the cluster


@contextlib.contextmanager
def local_cluster(
    nodes: int = 2, cpus_per_node: int = 1, env: dict[str, str] | None = None, object_store_mb: int = 200
) -> Iterator[LocalCluster]:
    """A Ray cluster of ``nodes`` nodes on this machine's loopback interface, for tests and benchmarks.

    Each node is a real ``ray start`` (the head, then ``ray start --address`` for the others) with
    ``cpus_per_node`` CPUs and node address 127.0.0.1, in a process session of its own, its session
    files in a fresh temporary folder, token authentication with a fresh token kept in that folder
    (Ray's ports listen on every interface) and no usage statistics. ``env`` is added to the nodes'
    environment (e.g. ``IMRI_CACHE``). Drivers join it from a process started with
    :attr:`LocalCluster.env` (``imri code --engine ray --address ADDRESS``): Ray reads the token
    settings when it is imported. On exit, also on error or SIGTERM (turned into KeyboardInterrupt
    while the cluster runs, in the main thread), the nodes' processes are stopped by their process groups
    (``ray stop`` would stop every Ray process of the machine) and the folder is removed.
    """
    import secrets
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile

    import_ray()
    folder = Path(tempfile.mkdtemp(prefix="imri-ray-", dir="/tmp"))  # short: Ray's socket paths must fit
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32), encoding="ascii")
    token.chmod(0o600)
    settings = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    driver_env = {**os.environ, **settings}
    node_env = {**driver_env, **(env or {})}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    python = Path(sys.executable)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node), "--disable-usage-stats"]
    common += ["--object-store-memory", str(object_store_mb * 10**6), "--block"]
    processes: list[subprocess.Popen] = []

    def start(args: list[str], log: str) -> None:
        with open(folder / log, "wb") as out:
            processes.append(
                subprocess.Popen(
                    [str(python.with_name("ray")), "start", *args, *common],
                    env=node_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: all of the node's processes
                )
            )

    restore = _sigterm_interrupts()
    try:
        start(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(folder)], "head.log")
        for i in range(1, nodes):
            start(["--address", address], f"node-{i}.log")
        # a driver that waits until every node has joined (Ray's settings are read when it is imported)
        joined = (
            "import sys, time, ray\n"
            f"ray.init(address={address!r}, log_to_driver=False)\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {nodes}:\n"
            "    time.sleep(0.5)\n"
        )
        try:
            subprocess.run(
                [str(python), "-c", joined], env=driver_env, timeout=120, check=True, capture_output=True, text=True
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            logs = "; ".join(
                f"{log.name}: {log.read_text(errors='replace').strip().splitlines()[-1:]}"
                for log in sorted(folder.glob("*.log"))
            )
            raise RuntimeError(f"the local Ray cluster did not start ({type(error).__name__}); {logs}") from None
        yield LocalCluster(address, driver_env, folder)
    finally:
        _stop_nodes(processes)
        shutil.rmtree(folder, ignore_errors=True)
        restore()


def _sigterm_interrupts():
    """Make SIGTERM (a CI job's timeout, ``timeout``, ``kill``) raise KeyboardInterrupt in the main thread, so
    that ``finally`` blocks run (Python's default for SIGTERM ends the process without them) and pytest
    tears its fixtures down; return what puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _stop_nodes(processes) -> None:
    """Stop ``ray start --block`` processes and every process they started, by process id.

    SIGTERM to each node's process group first (a node shuts down its own processes), then SIGKILL
    to whatever of the recorded processes is left: workers and actors that Ray put in sessions of
    their own are still children of their node's raylet, so they are found from the tree.
    """
    import signal

    import psutil  # a dependency of Ray

    started = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(process.pid)
            started += [root, *root.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(started, timeout=3)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for process in processes:
        process.wait(timeout=5)
