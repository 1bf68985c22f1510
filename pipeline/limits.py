"""Bounds on what imri reads, in one place.

Every reader of user files checks its input against these bounds before parsing it, and a file
past a bound gets one line naming the file, the bound and its value (:func:`check`), exit code 2.
Transcripts, sidecars and tables have the module constants below; REFI-QDA archives have
:class:`ArchiveLimits`, a set of bounds that a caller can loosen or tighten per archive.
The values leave room for any real interview (a three-hour interview is about 200,000 characters)
and keep a hostile file from taking more than a few hundred megabytes or more than seconds per
megabyte. ``docs/reliability.md`` lists them with the reasons behind each value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

MiB = 1024 * 1024

#: Size on disk of one transcript file (.txt .md .docx .vtt .srt .json). Read in one piece, so this
#: bounds the memory of reading it; Whisper JSON with word timings is the most verbose format.
MAX_TRANSCRIPT_BYTES = 16 * MiB
#: Characters of one transcript's text (the text that offsets refer to: decoded, or built from
#: captions, JSON or a .docx): about 330,000 words, ten long interviews in one file.
MAX_TRANSCRIPT_CHARS = 2_000_000
#: Characters of one line of that text (turns are on lines of their own): about 33,000 words.
MAX_LINE_CHARS = 200_000
#: Built transcripts (captions, JSON): a speaker's consecutive cues are merged into one turn, up to
#: this many characters; a longer monologue goes on as a new turn (line) of the same speaker.
MAX_BUILT_TURN_CHARS = 20_000

#: A .docx is a zip: the uncompressed size of all its parts, as its directory declares them (the
#: zip reader never inflates a part past its declared size). A 1 MB file can declare gigabytes.
MAX_DOCX_UNCOMPRESSED_BYTES = 64 * MiB
#: Uncompressed size of the XML parts of a .docx together (parsed into trees, about ten times
#: their size in memory); a three-hour interview's ``word/document.xml`` is a few megabytes.
MAX_DOCX_XML_BYTES = 16 * MiB
#: XML elements in the XML parts of a .docx together, counted from their tags before parsing (each
#: becomes a tree node and a Python object in python-docx): a long, heavily formatted interview has
#: a few hundred thousand.
MAX_DOCX_XML_ELEMENTS = 1_000_000
#: Parts (zip entries) of a .docx: Word writes a few dozen.
MAX_DOCX_PARTS = 2_000

#: Size of a transcript's ``.meta.yaml`` sidecar.
MAX_SIDECAR_BYTES = 1 * MiB
#: Size of a table read from disk (codings, segment tables: ``.csv`` or ``.parquet``).
MAX_TABLE_BYTES = 100 * MiB

#: Size of a codebook YAML file (``--codebook``, an imported ``codebook.yaml``). The bundled IMRI
#: codebook is 23 KB for 21 impacts; an imported codebook of MAX_CODEBOOK_CODES codes with long
#: descriptions stays well under this.
MAX_CODEBOOK_BYTES = 2 * MiB
#: Characters of a codebook's values plus one per YAML node, with every alias counted as the whole
#: value it names: a few hundred bytes of nested aliases ("billion laughs") stand for billions of
#: values. A codebook without aliases is about its file size.
MAX_CODEBOOK_EXPANDED = 2 * MAX_CODEBOOK_BYTES
#: Nesting of a codebook's YAML (mappings and lists, the values inside them included): the format
#: itself needs 5 (codebook, impacts, impact, include hints, hint).
MAX_CODEBOOK_DEPTH = 20
#: Codes (impacts) of a codebook, and categories: zero-shot coding and every model's output grow with
#: the number of codes (10,000 codes asked for 4.4 GiB); a REFI-QDA project with more is rolled up
#: with ``imri import-qdpx --level``.
MAX_CODEBOOK_CODES = 1_000
#: Include and exclude hints of all codes together: zero-shot coding embeds every include hint and
#: compares each segment with each of them.
MAX_CODEBOOK_HINTS = 10_000
#: Characters of a code or category id (ids are columns, CSV values and names in every output).
MAX_CODE_ID_CHARS = 200

#: Segmentation hands spaCy at most this many characters at once: a longer line is cut first, at the
#: last space after a full stop (else the last space) before this length. Keeps a trained pipeline's
#: memory small whatever the line length; no real sentence is this long.
SPACY_PIECE_CHARS = 10_000
#: Characters handed to spaCy in one batch of pieces (trained pipelines take memory per batch).
SPACY_BATCH_CHARS = 100_000
#: A run of non-space characters longer than this reaches spaCy's tokenizer as plain letters of the
#: same length (its affix rules take time quadratic in a token's length: 20,000 emoji took two
#: minutes); no sentence boundary is looked for inside such a run.
SPACY_TOKEN_CHARS = 100


def check(value: int, name: str, what: str, path: str | Path | None = None, unit: str = "") -> None:
    """Raise :class:`InputError` when ``value`` exceeds the bound called ``name`` in this module.

    ``what`` says what was measured ("file size", "line 3"); the message gives both figures and the
    bound's name. The bound is looked up when called, so it is the value in force.
    """
    bound = globals()[name]
    if value > bound:
        unit = f" {unit}" if unit else ""
        raise InputError(f"{what} is {value:,}{unit}, over the limit of {bound:,}{unit} ({name} in {__name__})", path)


@dataclass(frozen=True)
class ArchiveLimits:
    """Every bound on what the REFI-QDA reader and writer accept, each named once, here.

    Input past a bound is refused with one line naming the file, what was found and the bound
    (``refused: ... (limit max_codes = 20000)``), before the work it would cost is done: archive
    entries are checked before anything is decompressed, XML elements are counted while they are
    parsed, the code tree while it is walked. With the defaults, reading stays well under 1.5 GB.

    Archive (zip) entries:

    - ``max_entries`` (10,000): entries in the archive;
    - ``max_total_bytes`` (4 GiB): declared sizes of all entries together, media sources included;
    - ``max_entry_bytes`` (128 MiB): one entry that is read (``project.qde``, a text, a ``.docx`` or one of
      its parts);
    - ``max_ratio`` (200:1): compression ratio of an entry larger than ``ratio_floor_bytes`` (1 MiB).

    XML (``project.qde``, a ``.qdc`` codebook): ``max_xml_bytes`` (64 MiB), ``max_xml_elements``
    (1,000,000), ``max_xml_depth`` (100 nested elements).

    Content: ``max_codes`` (20,000 codes in the code tree), ``max_code_depth`` (50 levels, also for the
    code paths of an export), ``max_sources`` (50,000 text sources), ``max_codings`` (200,000 codings read
    or exported), ``max_source_bytes`` (32 MiB: bytes of one source's text file, in the archive or in
    ``--text-dir``, or characters of an inline or ``.docx`` text), ``max_text_bytes`` (64 MiB for all texts
    together), ``max_sidecar_bytes``
    (1 MiB: a ``.meta.yaml`` sidecar that ``export-qdpx`` reads for the transcripts' language).
    """

    max_entries: int = 10_000
    max_total_bytes: int = 4 * 1024**3
    max_entry_bytes: int = 128 * 1024**2
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024**2
    max_xml_bytes: int = 64 * 1024**2
    max_xml_elements: int = 1_000_000
    max_xml_depth: int = 100
    max_codes: int = 20_000
    max_code_depth: int = 50
    max_sources: int = 50_000
    max_codings: int = 200_000
    max_source_bytes: int = 32 * 1024**2
    max_text_bytes: int = 64 * 1024**2
    max_sidecar_bytes: int = MAX_SIDECAR_BYTES

    def refuse(self, what: str, bound: str, path: str | Path | None) -> InputError:
        """The one-line error for input past the bound named ``bound`` (a field of this class)."""
        return InputError(f"refused: {what} (limit {bound} = {getattr(self, bound)})", path)


DEFAULT_LIMITS = ArchiveLimits()
