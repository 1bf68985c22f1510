"""``imri code`` on this machine (the local engine): read, segment, embed and score the transcripts, write the run.

:func:`code_transcripts` checks ``--out`` and sets the run up (:func:`run_setup`: the model or zero-shot, the
encoder, the run's card), scores every segment (:class:`Scorer`), then codes the segment table and builds the
review queue (:func:`pipeline.coding.decisions.code_segments`) and writes the run folder
(:func:`pipeline.coding.outputs.write_run`). The Ray engine (:mod:`pipeline.coding.ray_engine`) runs the same
steps on a cluster, in the same windows.

How a run goes (:func:`code_transcripts`): a thread reads every transcript, then segments them one by
one in source order while the main thread embeds and classifies what is ready, so segmentation and
language detection stay off the encoder's path (ONNX Runtime and the tokenizer compute without the
GIL). Segments are embedded in windows of whole transcripts (:data:`EMBED_WINDOW` segments), batches
sorted by length inside each window; token ids and features live one window at a time. What the run
keeps to the end is what it writes: the segment table, the scores and each text's embedding (a few KB
a segment), not the encoder's working memory.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coding.decisions import code_segments, standardise_zero_shot
from pipeline.coding.outputs import check_run_folder, summarise, write_run
from pipeline.coding.queue import ReviewConfig
from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.ingest import SegmentConfig, Transcript

#: segments (whole transcripts) embedded in one call, batches sorted by length within it. int8, 2 threads, on
#: segments of the benchmark corpus: one call per transcript 196 segments/s, one call over 6,000 segments 271,
#: windows of 1,000 249 (one run each); a window holds a few MB of token ids and features
EMBED_WINDOW = 4096


def window_rows(table: pd.DataFrame) -> int:
    """What a transcript counts towards a window: its participant segments, whose speech is embedded.

    Interviewer turns do not count, so what the interviewer says never moves a window's boundary (an int8
    encoder's vector of a text moves with the other texts of its call).
    """
    return int((table.role != "interviewer").sum())


@dataclass
class CodingRun:
    """What ``imri code`` produced (the tables are also written to disk)."""

    segments: pd.DataFrame
    queue: pd.DataFrame
    summary: dict
    # seconds per step (read, segment, embed, classify, write); kept out of the files, which must
    # be the same for the same input and model
    timings: dict[str, float] = field(default_factory=dict)
    replaced: str | None = None  # what the run folder replaced, in words
    transcripts: list = field(default_factory=list)  # every transcript read (skipped ones too), for the CLI


def run_setup(model_dir: Path | None, codebook: Codebook, params: dict):
    """The model (or None for zero-shot), its segment parameters, the encoder that codes and the run's card.

    Returns ``(impact_model, segment_config, encoder_id, card)``: a model codes with the encoder it was
    trained on, zero-shot with ``embed.encoder`` at ``embed.precision``; the card (the run's ``model.json``)
    lists the cut-offs. Both engines (this module and :mod:`pipeline.coding.ray_engine`) set a run up with it.
    """
    from pipeline.ingest import SegmentConfig

    if model_dir is not None:
        from pipeline.model import ImpactModel

        impact_model = ImpactModel.load(model_dir)
        impact_model.check_codebook(codebook, model_dir)
        # the run's model.json lists the cut-offs, so the review app shows them exactly
        card = {
            **impact_model.card,
            "thresholds": dict(zip(impact_model.impact_ids, map(float, impact_model.thresholds), strict=True)),
        }
        # the encoder the heads were trained on codes with them (model.json names it: e5-small-int8, e5-small...)
        return (
            impact_model,
            SegmentConfig.from_dict(impact_model.card["params"]["segment"]),
            impact_model.encoder_id,
            card,
        )
    from pipeline.model import default_encoder_id

    encoder_id = default_encoder_id(params)
    card = {
        "name": "zero-shot",
        "version": encoder_id,
        "encoder": {"id": encoder_id},
        "codebook": codebook.card(),
        "note": "zero-shot scores come from the codebook alone, standardised; not calibrated probabilities",
        "thresholds": {impact_id: 0.5 for impact_id in codebook.impact_ids},
    }
    return None, SegmentConfig.from_dict(params.get("segment")), encoder_id, card


def code_transcripts(
    inputs: list[Path],
    out: Path,
    model_dir: Path | None,
    codebook: Codebook,
    params: dict,
    with_gold: Path | None = None,
    warn=None,
    interviewers: list[str] | tuple[str, ...] = (),
    force: bool = False,
    *,
    progress: bool | None = None,
    stream: bool = True,
    no_speakers: str = "skip",
) -> CodingRun:
    """``imri code``: read and segment the inputs, score them (model or zero-shot), write the run folder.

    ``out`` is checked first (:func:`check_run_folder`; ``force`` lets a non-empty folder that is not
    an earlier run be replaced), and every input is read and checked before anything is written.
    ``warn`` receives file warnings. ``progress``: one bar over the segments with an ETA (None: on a
    terminal only). A model codes with the encoder it was trained on (its card's ``encoder.id``);
    zero-shot with ``embed.encoder`` at ``embed.precision``.

    ``stream`` (the default) overlaps segmentation with embedding and embeds window by window (see the
    module's notes); ``stream=False`` segments everything, then embeds everything in one call. Given
    the same embeddings (the cache) both write the same files byte for byte. ``no_speakers``: what a file
    without speaker labels is (``--no-speakers-as``: skipped, or one participant's words).
    """
    holds = [*inputs, *(path for path in (model_dir, with_gold) if path is not None)]
    check_run_folder(out, force, holds)
    review = ReviewConfig.from_dict(params.get("review"))
    clock = Clock()
    impact_model, segment_config, encoder_id, card = run_setup(model_dir, codebook, params)
    from pipeline.model import read_codings

    gold = read_codings(with_gold, codebook) if with_gold else None
    reading = (interviewers, no_speakers)
    coded = (_code_streaming if stream else _code_whole)(
        inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock
    )
    transcripts, table, proba = coded
    if table.empty:
        raise InputError("the transcripts hold no text to code", out)
    if impact_model is not None:
        thresholds, positives = impact_model.thresholds, impact_model.arrays["positives"]
    else:
        proba = standardise_zero_shot(proba, table)
        thresholds, positives = np.full(len(codebook.impacts), 0.5), np.full(len(codebook.impacts), 10**6)
    segments, queue = code_segments(table, proba, thresholds, positives, codebook, review)
    summary = summarise(segments, codebook, f"{card['name']}-{card['version']}", review)
    clock.lap("classify")
    from pipeline.ingest import role_rows

    texts = {t.source: t.text for t in transcripts if not t.skipped}
    built = {t.source for t in transcripts if t.built and not t.skipped}
    replaced = check_run_folder(out, force, holds)  # again: the folder may have changed while this ran
    write_run(out, segments, queue, summary, card, texts, codebook, gold, built, role_rows(transcripts))
    clock.lap("write")
    return CodingRun(segments, queue, summary, clock.laps, replaced, transcripts)


def _read_all(inputs: list[Path], reading, warn) -> list[Transcript]:
    """Every transcript read and checked (a bad one raises), in input order, roles decided across them
    (``reading``: ``--interviewer`` labels and ``--no-speakers-as``); their warnings to ``warn``."""
    from pipeline.ingest import collect_transcripts, read_transcripts

    interviewers, no_speakers = reading
    transcripts = read_transcripts(collect_transcripts(inputs, warn), interviewers, no_speakers=no_speakers)
    for transcript in transcripts:
        for warning in transcript.warnings:
            if warn:
                warn(warning)
    return transcripts


class Scorer:
    """Scores segment tables: the model's probabilities, or the codebook head's raw scores (zero-shot).

    ``impact_model`` is None for zero-shot (its raw scores are standardised over the whole run afterwards,
    :func:`standardise_zero_shot`). :meth:`embed` fills an embedding cache with what :meth:`scores` needs
    for a window of whole transcripts in one encoder call; :meth:`scores` then reads it transcript by
    transcript. The local engine and the Ray engine's actors (:mod:`pipeline.coding.ray_engine`) both score with it.
    """

    def __init__(self, impact_model, encoder_id: str, codebook: Codebook) -> None:
        from pipeline.model import ClassifierConfig

        self.impact_model, self.encoder_id, self.codebook = impact_model, encoder_id, codebook
        # zero-shot: the codebook prior alone, on passages as the default configuration reads them
        self.config = impact_model.config if impact_model is not None else ClassifierConfig(prior_weight=1.0)

    def embed(self, table: pd.DataFrame, progress=False, cache=None) -> None:
        """Embed what :meth:`scores` will need for ``table`` into ``cache``, in one call (batches sorted over it)."""
        from pipeline.model import embed_for_features, embed_segments

        embed_for_features(table, self.encoder_id, self.config, progress, cache=cache)
        if self.config.question_weight:
            embed_segments(table, self.encoder_id, progress, "asked", cache=cache)

    def scores(self, table: pd.DataFrame, progress=False, cache=None) -> np.ndarray:
        """Scores of a segment table in transcript order (one transcript or several)."""
        if self.impact_model is not None:
            features = self.impact_model.features(table, progress=progress, codebook=self.codebook, cache=cache)
            return self.impact_model.predict_proba_features(features, table)
        from pipeline.model import model_features

        features = model_features(table, self.encoder_id, self.config, progress, codebook=self.codebook, cache=cache)
        return features[:, -len(self.codebook.impacts) :]  # the prior's columns: similarity to the codebook


def _code_whole(inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock):
    """Read everything, segment everything, embed and score everything at once (``stream=False``)."""
    from pipeline.ingest import segment_table

    transcripts = _read_all(inputs, reading, warn)
    clock.lap("read")
    table = segment_table(transcripts, segment_config, progress=bool(progress))
    table = table.sort_values(["source", "start"]).reset_index(drop=True)
    clock.lap("segment")
    if table.empty:
        return transcripts, table, np.zeros((0, len(codebook.impacts)))
    scores = Scorer(impact_model, encoder_id, codebook).scores(table, bool(progress))
    clock.lap("embed")
    return transcripts, table, scores


def _code_streaming(inputs, impact_model, encoder_id, codebook, segment_config, reading, warn, progress, clock):
    """Segment on a thread of its own while this one embeds and scores window after window (the default)."""
    from tqdm.auto import tqdm

    from pipeline.embed import EmbeddingCache, get_encoder
    from pipeline.ingest import import_spacy

    import_spacy()  # here, before any thread may import torch (see import_spacy)
    segmenting = _Segmenting(inputs, reading, segment_config, ahead=2 * EMBED_WINDOW)
    segmenting.start()
    bar = None
    try:
        encoder = get_encoder(encoder_id)
        encoder.encode(["…"], "query")  # loads the encoder now (and any first-call set-up), not in the first window
        clock.lap("load")
        age = _process_age()
        if age is not None:  # imports and model loading, from the process's start: first in the list
            clock.laps = {"start": round(age, 3), **clock.laps}
        transcripts = segmenting.read(warn)
        bar = tqdm(total=None, unit="segment", desc="coding", disable=None if progress is None else not progress)
        told = _Told(bar, segmenting)
        # one cache for the run, its shards read once; a window with any text not cached is embedded whole, so
        # its vectors depend on its own texts, not on what earlier windows embedded (the Ray engine's too)
        cache = EmbeddingCache(encoder, whole_calls=True)
        scorer = Scorer(impact_model, encoder_id, codebook)
        tables, scores, window, waited, embedded = [], [], [], 0.0, 0.0
        while True:
            started = time.perf_counter()
            frame = segmenting.next()
            waited += time.perf_counter() - started
            if frame is not None:
                window.append(frame)
                if sum(map(window_rows, window)) < EMBED_WINDOW:
                    continue
            if window:
                table = pd.concat(window, ignore_index=True) if len(window) > 1 else window[0]
                started = time.perf_counter()
                scorer.embed(table, told.tell, cache)
                # then transcript by transcript from the cache: features and scores stay small
                scores.extend(scorer.scores(one, cache=cache) for one in window)
                embedded += time.perf_counter() - started
                tables.extend(window)
                told.window_done(len(table))
                window = []
                _give_back_memory()
            if frame is None:
                break
    finally:
        segmenting.stop()
        if bar is not None:
            bar.close()
    # read and segment ran on their own thread, beside load and embed; "waiting" is this thread's wait for them
    clock.laps.update(segmenting.seconds)
    clock.laps.update({"embed": round(embedded, 3), "waiting": round(waited, 3)})
    clock.mark()
    if not tables:
        from pipeline.ingest import segment_frame

        return transcripts, segment_frame([]), np.zeros((0, len(codebook.impacts)))
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return transcripts, table, np.vstack(scores)


class _Told:
    """The run's one progress bar: segments embedded so far, over the segments expected."""

    def __init__(self, bar, segmenting: _Segmenting) -> None:
        self.bar, self.segmenting = bar, segmenting
        self.done = 0  # segments of finished windows
        self.inside = 0  # texts embedded in the current window (capped at its size when it ends)

    def tell(self, count: int) -> None:
        self.inside += count
        self._show()

    def window_done(self, segments: int) -> None:
        self.done += segments
        self.inside = 0
        self._show()

    def _show(self) -> None:
        total = self.segmenting.expected()
        if total is not None:
            self.bar.total = max(total, self.done)
        self.bar.n = min(self.done + self.inside, self.bar.total or self.done + self.inside)
        self.bar.refresh()


class _Segmenting(threading.Thread):
    """Reads every transcript, then segments them in source order, at most ``ahead`` segments ahead.

    The main thread takes whole transcripts' segment tables (rows sorted by start) with :meth:`next`.
    A problem (an :class:`InputError` naming the file) is raised in the main thread, reading problems
    first, in input order, as a run that reads everything first reports them.
    """

    def __init__(self, inputs: list[Path], reading, config: SegmentConfig, ahead: int) -> None:
        super().__init__(name="imri-segment", daemon=True)
        self.inputs, self.reading, self.config, self.ahead = inputs, reading, config, ahead
        self.seconds = {"read": 0.0, "segment": 0.0}
        self._ready: collections.deque[pd.DataFrame | None] = collections.deque()
        self._changed = threading.Condition()
        self._queued = 0  # segments segmented and not taken yet
        self._stopped = False
        self._transcripts: list[Transcript] | None = None
        self._error: BaseException | None = None
        self._characters = [0, 0]  # of all transcripts, of those segmented so far
        self._segmented = 0

    def run(self) -> None:
        from pipeline.ingest import Segmenter, segment_frame

        try:
            started = time.perf_counter()
            transcripts = _read_all(self.inputs, self.reading, None)
            self.seconds["read"] = round(time.perf_counter() - started, 3)
            with self._changed:
                self._transcripts = transcripts
                self._characters[0] = sum(len(t.text) for t in transcripts)
                self._changed.notify_all()
            segmenter = Segmenter(self.config)
            for transcript in sorted(transcripts, key=lambda t: t.source):  # the run's order: by source, then start
                if self._stopped:
                    return
                started = time.perf_counter()
                frame = segment_frame(segmenter.segment(transcript))
                frame = frame.sort_values("start").reset_index(drop=True)
                self.seconds["segment"] = round(self.seconds["segment"] + time.perf_counter() - started, 3)
                with self._changed:
                    while self._queued >= self.ahead and not self._stopped:
                        self._changed.wait()
                    if self._stopped:
                        return
                    self._characters[1] += len(transcript.text)
                    self._segmented += len(frame)
                    if len(frame):
                        self._ready.append(frame)
                        self._queued += len(frame)
                    self._changed.notify_all()
            with self._changed:
                self._ready.append(None)
                self._changed.notify_all()
        except BaseException as error:  # noqa: BLE001  (handed to the main thread, which raises it)
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _wait_for(self, ready) -> None:
        with self._changed:
            while not ready() and self._error is None:
                self._changed.wait()
            if self._error is not None:
                raise self._error

    def read(self, warn=None) -> list[Transcript]:
        """Every transcript, once all are read (their warnings to ``warn``, in input order)."""
        self._wait_for(lambda: self._transcripts is not None)
        for transcript in self._transcripts:
            for warning in transcript.warnings:
                if warn:
                    warn(warning)
        return self._transcripts

    def next(self) -> pd.DataFrame | None:
        """The next transcript's segment table (never an empty one), or None after the last."""
        self._wait_for(lambda: bool(self._ready))
        with self._changed:
            frame = self._ready.popleft()
            if frame is not None:
                self._queued -= len(frame)
            self._changed.notify_all()
        return frame

    def expected(self) -> int | None:
        """Segments of the run: exact once all are segmented, else estimated from the characters so far."""
        done = self._ready and self._ready[-1] is None
        total, seen = self._characters
        if done or (seen and seen == total):
            return self._segmented
        return round(self._segmented * total / seen) if seen else None

    def stop(self) -> None:
        """Stop segmenting (the run ended or failed)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _give_back_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A window's transient arrays and token lists, once freed, stay in the heap between what the run keeps,
    so resident memory would creep up window after window.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Seconds between successive laps."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

    def mark(self) -> None:
        """Start the next lap now (after laps recorded some other way)."""
        self._last = time.perf_counter()
