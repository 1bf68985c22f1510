"""Segment transcripts into coding units: turns -> sentences (spaCy) -> units, with a language each.

Output: the *segment table* (one row per segment), documented in ``docs/architecture.md``:
``source, segment_id, start, end, speaker, role, turn, language, text, question,
stakeholder_group, transcript_language``. ``text == transcript_text[start:end]`` always holds.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import ClassVar

import pandas as pd

from pipeline import limits
from pipeline.errors import InputError
from pipeline.ingest.formats import has_text
from pipeline.ingest.transcripts import Transcript
from pipeline.params import ParamsSection

SEGMENT_COLUMNS = (
    "source",
    "segment_id",
    "start",
    "end",
    "speaker",
    "role",
    "turn",
    "language",
    "text",
    "question",
    "stakeholder_group",
    "transcript_language",
    "start_time",
    "end_time",
)
UNITS = ("turn", "sentence", "window")


@dataclass(frozen=True)
class SegmentConfig(ParamsSection):
    """How transcripts are cut into coding units (``params.yaml: segment``)."""

    section: ClassVar[str] = "segment"

    unit: str = "sentence"  # turn | sentence | window
    max_tokens: int = 80  # a unit never grows past this many words (turns are split at sentences)
    min_chars: int = 25  # shorter sentences are merged into a neighbour within the same turn
    window_sentences: int = 3  # unit=window: at most this many sentences per unit
    languages: tuple[str, ...] = ("en", "fr")
    min_words_language: int = 5  # shorter segments inherit their turn's / transcript's language
    language_prior: float = 0.8  # langdetect's prior for the transcript's language (the other(s) share the rest)
    switch_probability: float = 0.9  # a segment leaves the transcript's language only at this probability or more
    seed: int = 0
    spacy_models: dict[str, str] = field(default_factory=dict)  # language -> trained spaCy pipeline

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(f"segment unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.max_tokens < 1 or self.min_chars < 0 or self.window_sentences < 1:
            raise InputError("segment max_tokens and window_sentences must be >= 1, min_chars >= 0")
        if not (0 < self.language_prior < 1 and 0 < self.switch_probability <= 1):
            raise InputError("segment language_prior must be between 0 and 1, switch_probability in (0, 1]")
        object.__setattr__(self, "languages", tuple(self.languages))


class LanguageDetector:
    """langdetect restricted to the configured languages, seeded so results are reproducible."""

    # a transcript's language is read from its first 100,000 characters (about 17,000 words; langdetect reads
    # 10,000 by default), which bounds the n-grams it lists for a very long transcript
    MAX_TEXT = 100_000

    def __init__(self, languages: tuple[str, ...], seed: int = 0) -> None:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

        factory = DetectorFactory()
        profiles = []
        for language in languages:
            profile = os.path.join(PROFILES_DIRECTORY, language)
            if not os.path.exists(profile):
                raise InputError(f"langdetect has no profile for language {language!r}")
            with open(profile, encoding="utf-8") as handle:
                profiles.append(handle.read())
        factory.load_json_profile(profiles)
        factory.set_seed(seed)
        self.languages = languages
        self._factory = factory
        # the same short answer often comes back within a transcript
        self._seen: dict[tuple[str, str | None, float], dict[str, float]] = {}

    def forget(self) -> None:
        """Drop the answers remembered so far (a run keeps them for one transcript at a time)."""
        self._seen.clear()

    def probabilities(self, text: str, prior: str | None = None, weight: float = 0.8) -> dict[str, float]:
        """Each configured language's probability for ``text`` (empty when it has no letters).

        ``prior``: a language that starts each of langdetect's trials with probability ``weight`` (the
        others share the rest), so that the text must outweigh it to be called another language.
        """
        from langdetect.lang_detect_exception import LangDetectException

        key = (text, prior, weight)
        if key not in self._seen:
            detector = self._factory.create()
            detector.set_max_text_length(self.MAX_TEXT)
            if prior in self.languages and len(self.languages) > 1:
                rest = (1 - weight) / (len(self.languages) - 1)
                detector.set_prior_map({lang: weight if lang == prior else rest for lang in self.languages})
            detector.append(text)
            try:
                self._seen[key] = {found.lang: found.prob for found in detector.get_probabilities()}
            except LangDetectException:
                self._seen[key] = {}
        return self._seen[key]

    def detect(self, text: str) -> str | None:
        """The most probable configured language of ``text``, or None when it has no letters."""
        found = self.probabilities(text)
        return max(found, key=found.__getitem__) if found else None


def import_spacy():
    """The ``spacy`` module, imported without thinc importing torch when torch is not loaded yet.

    thinc (spaCy's machine-learning library) imports torch at import time whenever it is installed: about
    1 s and 250 MB that the sentencizer and the trained CNN pipelines never use, and that the int8 encoder
    path otherwise never loads. While spaCy is imported, ``import torch`` fails, so thinc records torch as
    absent (only its PyTorch wrappers, which no pipeline here uses, would then be missing); torch itself
    stays importable afterwards. Import spaCy through this before any other thread may import torch.
    """
    if "spacy" in sys.modules or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError meanwhile
    try:
        import spacy
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return spacy


def french_tokenizer_file(spacy_version: str) -> Path:
    """Where spaCy's French tokenizer rules are kept, serialised, beside the built encoders in the user's cache."""
    from pipeline.locations import cache_dir

    return cache_dir() / "models" / "spacy" / f"fr-tokenizer-spacy-{spacy_version}.bin"


def build_french_tokenizer(replace: bool = False) -> Path:
    """Serialise spaCy's French tokenizer rules (all but ``token_match``) into the user's cache, once.

    Costs the 4 s compile of ``spacy.blank("fr")`` once; ``replace`` writes the file again (a damaged one).
    Returns its path (:func:`french_tokenizer_file`).
    """
    from pipeline.io import atomic_path

    spacy = import_spacy()
    path = french_tokenizer_file(spacy.__version__)
    if replace or not path.is_file():
        data = spacy.blank("fr").tokenizer.to_bytes(exclude=["token_match"])
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path


def _blank_french(spacy):
    """A blank pipeline with spaCy's French tokenizer rules, read from the user's cache (made once).

    ``spacy.blank("fr")`` spends about 4 s compiling one regular expression, French ``token_match``, which
    keeps hyphenated and elided words whole (letters, hyphens and apostrophes only, never a full stop).
    Every other rule (prefixes, suffixes, infixes, exceptions such as ``M.`` or ``etc.``) is French's own,
    serialised once by spaCy (:func:`build_french_tokenizer`) and loaded into a multi-language pipeline
    in about 0.1 s. The sentencizer starts a sentence at the first token after ``.``, ``!`` or ``?`` that
    is not punctuation, so the sentences are the same: on every line of the bundled transcripts (tested)
    and of 30,000 random strings of French words and punctuation. They differ only where such a word is
    glued to an abbreviation with no space (``sous-sol–etc.``: 8 of 30,000 strings made to provoke it).
    """
    nlp = spacy.blank("xx")
    for replace in (False, True):  # a damaged file is made again, once
        try:
            nlp.tokenizer.from_bytes(build_french_tokenizer(replace).read_bytes(), exclude=["token_match"])
            return nlp
        except (ValueError, KeyError, TypeError, re.error):
            continue
        except OSError:
            break  # a cache that cannot be written: compiled in this process, as spaCy does
    return spacy.blank("fr")


@cache
def load_sentence_pipeline(language: str, name: str | None):
    """A spaCy pipeline that sets sentence boundaries, loaded once per process.

    The named trained pipeline when installed (its senter, else its parser), else a blank pipeline
    with the rule-based sentencizer (French: :func:`_blank_french`, the same sentences without the
    4 s compile).
    """
    spacy = import_spacy()

    if name:
        unused = ["ner", "lemmatizer", "attribute_ruler", "morphologizer", "tagger"]
        try:
            # the trained sentence recogniser is faster than the parser and as good for units
            nlp = spacy.load(name, exclude=[*unused, "parser"])
            if "senter" not in nlp.component_names:
                nlp = spacy.load(name, exclude=unused)  # a pipeline whose parser sets sentences
            elif "senter" in nlp.disabled:
                nlp.enable_pipe("senter")
            return nlp
        except OSError:
            pass  # not installed: fall back to the rule-based sentencizer
    nlp = _blank_french(spacy) if language == "fr" else spacy.blank("en" if language == "en" else "xx")
    nlp.add_pipe("sentencizer")
    return nlp


class SentenceSplitter:
    """Sentence boundaries per language with spaCy: a trained pipeline when installed, else a sentencizer."""

    def __init__(self, models: dict[str, str]) -> None:
        self.models = models

    def nlp(self, language: str):
        return load_sentence_pipeline(language, self.models.get(language))

    def split(self, text: str, language: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each sentence in ``text``, whitespace trimmed."""
        return self.split_many([text], [language])[0]

    def split_many(self, texts: list[str], languages: list[str]) -> list[list[tuple[int, int]]]:
        """Sentence spans of several texts (one turn each), with one spaCy ``pipe`` call per language.

        A line break inside a turn is a hard boundary (transcribers start a new line for a new thought);
        spaCy then splits each line into sentences. Batching every line of a transcript into one call
        is about twice as fast as one call per turn, with the same boundaries.
        """
        lines: dict[str, list[tuple[int, int, str]]] = {}  # language -> (text index, offset, piece of a line)
        for index, (text, language) in enumerate(zip(texts, languages, strict=True)):
            for match in _LINE.finditer(text):
                for offset, piece in _pieces(match.group(0), match.start()):
                    lines.setdefault(language, []).append((index, offset, piece))
        spans: list[list[tuple[int, int]]] = [[] for _ in texts]
        for language, items in lines.items():
            longest = max(len(piece) for _, _, piece in items)
            batch = max(1, min(256, limits.SPACY_BATCH_CHARS // longest))
            docs = self.nlp(language).pipe((_mask_long_runs(piece) for _, _, piece in items), batch_size=batch)
            for (index, offset, _), doc in zip(items, docs, strict=True):
                text = texts[index]
                for sent in doc.sents:
                    start, end = sent.start_char + offset, sent.end_char + offset
                    while start < end and text[start].isspace():
                        start += 1
                    while end > start and text[end - 1].isspace():
                        end -= 1
                    if end > start:
                        spans[index].append((start, end))
        # each text has one language, so its lines (hence its spans) come back in order
        return [_reattach_openers(text, found) or [(0, len(text))] for found, text in zip(spans, texts, strict=True)]


#: A line of a turn: it ends at any line break of :data:`pipeline.ingest.formats.LINE_BREAK_CHARS`.
_LINE = re.compile(r"[^\r\n\x85\u2028\u2029]*\S[^\r\n\x85\u2028\u2029]*")
_LONG_RUN = re.compile(rf"(?<!\S)\S{{{limits.SPACY_TOKEN_CHARS + 1},}}?(?=[.!?…]*\s|[.!?…]*$)")
_PIECE_CUT = re.compile(r"[.!?…][\"'”»)\]]*\s+")
_SPACE = re.compile(r"\s+")


def _mask_long_runs(text: str) -> str:
    """``text`` with each run of non-space characters past ``SPACY_TOKEN_CHARS`` replaced by as many letters.

    Offsets stay the same (one letter per character) and a run's final full stop is kept. spaCy's
    tokenizer takes time quadratic in a token's length on emoji or elisions (20,000 emoji: two
    minutes), and no sentence ends inside such a run anyway.
    """
    if len(text) <= limits.SPACY_TOKEN_CHARS:
        return text
    return _LONG_RUN.sub(lambda m: "x" * len(m.group(0)), text)


def _pieces(line: str, offset: int) -> list[tuple[int, str]]:
    """``(offset, piece)`` of a line cut into pieces of at most ``SPACY_PIECE_CHARS`` for spaCy.

    A cut goes after the last full stop followed by a space within the bound, else at the last space,
    else at the bound; real lines are far shorter and come back whole.
    """
    size = limits.SPACY_PIECE_CHARS
    pieces = []
    while len(line) > size:
        window = line[: size + 1]
        stops = [m.end() for m in _PIECE_CUT.finditer(window, size // 2) if m.end() <= size]
        spaces = stops or [m.end() for m in _SPACE.finditer(window, size // 2) if m.end() <= size]
        cut = spaces[-1] if spaces else size
        pieces.append((offset, line[:cut]))
        line, offset = line[cut:], offset + cut
    pieces.append((offset, line))
    return pieces


_OPENERS = "([{«“"


def _reattach_openers(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Move an opening bracket or quote left at the end of a sentence to the start of the next one.

    spaCy's rule-based sentencizer keeps punctuation after a full stop in the sentence it ends, so
    "it again. [laughs] But" became "it again. [" + "laughs] But".
    """
    fixed = list(spans)
    for i in range(len(fixed) - 1):
        start, end = fixed[i]
        cut = end
        while cut > start and (text[cut - 1] in _OPENERS or text[cut - 1].isspace()):
            cut -= 1
        if cut in (end, start):
            continue
        opener = cut + len(text[cut:end]) - len(text[cut:end].lstrip())  # first opener after the trim
        fixed[i] = (start, cut)
        fixed[i + 1] = (opener, fixed[i + 1][1])
    return fixed


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` without the whitespace around it."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _words(text: str) -> int:
    return len(text.split())


_NOTES = re.compile(r"\[[^\]\n]*\]")  # transcribers' notes: [laughs], [rires], [inaudible 00:12]
_TOKEN = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…:;»\"”)\]]$")


def language_evidence(text: str) -> str:
    """The words of ``text`` that tell its language: without bracketed notes ("[laughs]", which
    transcribers write in their own language) and without capitalised words inside a sentence (names
    of people and places such as "Marie-Claude" or "Trois-Rivières"; "I" stays)."""
    kept: list[str] = []
    previous = ""
    for match in _TOKEN.finditer(_NOTES.sub(" ", text)):
        word = match.group()
        opens_sentence = not previous or _SENTENCE_END.search(previous) is not None
        letters = word.lstrip("\"'«“‘(-—–")
        name = letters[:1].isupper() and not opens_sentence and not re.match(r"I(?:\b|['’])", letters)
        if not name:
            kept.append(word)
        previous = word
    return " ".join(kept)


class Segmenter:
    """Turns transcripts into the segment table (a spaCy-like component: config in, rows out)."""

    def __init__(self, config: SegmentConfig | None = None) -> None:
        self.config = config or SegmentConfig()

    @cached_property
    def detector(self) -> LanguageDetector:
        return LanguageDetector(self.config.languages, self.config.seed)

    @cached_property
    def splitter(self) -> SentenceSplitter:
        return SentenceSplitter(self.config.spacy_models)

    def _merge_short(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Merge fragments shorter than ``min_chars`` into the next sentence (or the previous one)."""
        merged: list[tuple[int, int]] = []
        pending: int | None = None
        for start, end in spans:
            if pending is not None:
                start, pending = pending, None
            if end - start < self.config.min_chars:
                pending = start
                continue
            merged.append((start, end))
        if pending is not None:
            if merged:
                merged[-1] = (merged[-1][0], spans[-1][1])
            else:
                merged.append((pending, spans[-1][1]))
        return merged

    def _pack(self, text: str, spans: list[tuple[int, int]], max_sentences: int | None) -> list[tuple[int, int]]:
        """Greedily group consecutive sentences up to ``max_tokens`` words (and ``max_sentences``)."""
        units: list[tuple[int, int]] = []
        current: tuple[int, int] | None = None
        count = 0
        for start, end in spans:
            if current is not None:
                fits = _words(text[current[0] : end]) <= self.config.max_tokens
                if fits and (max_sentences is None or count < max_sentences):
                    current, count = (current[0], end), count + 1
                    continue
                units.append(current)
            current, count = (start, end), 1
        if current is not None:
            units.append(current)
        return units

    def needs_sentences(self, text: str) -> bool:
        """Whether a turn's units depend on its sentence boundaries."""
        return self.config.unit != "turn" or _words(text) > self.config.max_tokens

    def units(self, text: str, language: str, sentences: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
        """Coding units of one turn's ``text``, as offsets relative to it.

        ``sentences`` are the turn's sentence spans when already split (:meth:`SentenceSplitter.split_many`).
        """
        config = self.config
        if not self.needs_sentences(text):
            return [(0, len(text))]
        if sentences is None:
            sentences = self.splitter.split(text, language)
        sentences = self._merge_short(text, sentences)
        pieces = [piece for sentence in sentences for piece in self._split_long(text, sentence)]
        if config.unit == "sentence":
            return pieces
        return self._pack(text, pieces, config.window_sentences if config.unit == "window" else None)

    def _split_long(self, text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
        """A single sentence longer than ``max_tokens`` words is cut at word boundaries."""
        start, end = span
        if _words(text[start:end]) <= self.config.max_tokens:
            return [span]
        words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
        step = self.config.max_tokens
        return [(words[i][0], words[min(i + step, len(words)) - 1][1]) for i in range(0, len(words), step)]

    def _language(self, text: str, prior: str) -> str | None:
        """The language of a segment: ``prior`` (its transcript's) unless the segment is confidently another.

        None when it has fewer than ``min_words_language`` words of evidence (:func:`language_evidence`:
        no notes such as "[laughs]", no names): it then takes its turn's language. Another language
        needs ``switch_probability`` from langdetect started from the prior, so "OK" or "merci" in a
        short English sentence does not switch it, while a sentence said in the other language does.
        """
        evidence = language_evidence(text)
        if _words(evidence) < self.config.min_words_language:
            return None
        found = self.detector.probabilities(evidence, prior, self.config.language_prior)
        best = max(found, key=found.__getitem__, default=prior)
        return best if best != prior and found[best] >= self.config.switch_probability else prior

    def transcript_language(self, transcript: Transcript) -> str:
        """The sidecar's ``language`` when it is one of ``segment.languages``, else langdetect on all turns.

        With no letters anywhere, the first configured language.
        """
        declared = transcript.meta.get("language")
        if declared in self.config.languages:
            return declared
        text = "\n".join(_NOTES.sub(" ", transcript.text[t.start : t.end]) for t in transcript.turns)
        return self.detector.detect(text) or self.config.languages[0]

    def segment(self, transcript: Transcript) -> list[dict]:
        """Rows of the segment table for one transcript.

        The transcript's language (:meth:`transcript_language`) is every segment's prior: a segment of
        ``min_words_language`` words or more switches to another language only on confident evidence
        (:meth:`_language`); shorter ones take their turn's language, the language of most of the
        turn's decided characters, else the transcript's. Turns are split into sentences with the
        transcript's language.
        """
        text, meta = transcript.text, transcript.meta
        self.detector.forget()  # what it remembers serves within a transcript; memory stays flat over a study
        transcript_language = self.transcript_language(transcript)
        stakeholders = {str(k).casefold(): str(v) for k, v in (meta.get("participants") or {}).items()}
        turn_texts = [text[t.start : t.end] for t in transcript.turns]
        # one spaCy call for the whole transcript
        needed = [i for i, turn_text in enumerate(turn_texts) if self.needs_sentences(turn_text)]
        sentences: list[list[tuple[int, int]] | None] = [None] * len(turn_texts)
        split = self.splitter.split_many([turn_texts[i] for i in needed], [transcript_language] * len(needed))
        for i, spans in zip(needed, split, strict=True):
            sentences[i] = spans
        rows: list[dict] = []
        question = ""
        for turn, turn_text, turn_sentences in zip(transcript.turns, turn_texts, sentences, strict=True):
            units = [
                _trim(text, start + turn.start, end + turn.start)
                for start, end in self.units(turn_text, transcript_language, turn_sentences)
            ]
            units = [(start, end) for start, end in units if has_text(text[start:end])]  # never an empty segment
            languages = [self._language(text[start:end], transcript_language) for start, end in units]
            by_chars: Counter[str] = Counter()
            for (start, end), language in zip(units, languages, strict=True):
                if language:
                    by_chars[language] += end - start
            turn_language = by_chars.most_common(1)[0][0] if by_chars else transcript_language
            for (start, end), language in zip(units, languages, strict=True):
                rows.append(
                    {
                        "source": transcript.source,
                        "segment_id": f"{transcript.source}:{start}-{end}",
                        "start": start,
                        "end": end,
                        "speaker": turn.speaker,
                        "role": turn.role,
                        "turn": turn.index,
                        "language": language or turn_language,
                        "text": text[start:end],
                        "question": question if turn.role == "participant" else "",
                        "stakeholder_group": stakeholders.get(turn.speaker.casefold(), ""),
                        "transcript_language": transcript_language,
                        "start_time": turn.start_time,
                        "end_time": turn.end_time,
                    }
                )
            if turn.role == "interviewer":
                question = turn_text
        return rows


def segment_table(
    transcripts: list[Transcript], config: SegmentConfig | None = None, progress: bool = False
) -> pd.DataFrame:
    """The segment table for several transcripts (columns: :data:`SEGMENT_COLUMNS`)."""
    from tqdm.auto import tqdm

    segmenter = Segmenter(config)
    rows: list[dict] = []
    for transcript in tqdm(transcripts, desc="segmenting", unit="file", disable=not progress):
        rows.extend(segmenter.segment(transcript))
    return segment_frame(rows)


def segment_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of :meth:`Segmenter.segment` as a segment table (columns :data:`SEGMENT_COLUMNS`, typed)."""
    frame = pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))
    return frame.astype(
        {"start": "int64", "end": "int64", "turn": "int64", "start_time": "float64", "end_time": "float64"}
    )
