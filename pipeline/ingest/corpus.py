"""Compile the gold corpus from its markup, and count what it holds.

The gold interviews are authored as plain transcripts with inline coding marks, so the text stays
editable and the offsets are computed, never typed:

* ``[[passage]]{code_a,code_b}`` is a passage coded by coder ``A``;
* ``<<passage>>{code_c}`` is a passage coded by coder ``B`` (double-coded transcripts only).

Marks of one coder may nest; marks of the two coders may overlap freely. ``build_corpus`` strips
the marks and writes ``transcripts/<stem>.txt`` (UTF-8), copies ``<stem>.meta.yaml`` beside it, and
writes ``codings.csv`` (``source,start,end,code,coder``, offsets in code points of the written text).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import limits
from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import InputError

MARKS = {"[[": ("A", "]]"), "<<": ("B", ">>")}
_TOKEN = re.compile(r"\[\[|<<|\]\]\{([^}]*)\}|>>\{([^}]*)\}|\]\]|>>")
CODING_COLUMNS = ("source", "start", "end", "code", "coder")


@dataclass(frozen=True)
class Coding:
    """One code applied by one coder to the span ``[start, end)`` of a source text."""

    source: str
    start: int
    end: int
    code: str
    coder: str


def compile_markup(markup: str, source: str = "<markup>") -> tuple[str, list[Coding]]:
    """Strip coding marks from ``markup``; return the plain text and the codings on it."""
    out: list[str] = []
    pos = 0  # offset in the plain text
    last = 0
    stacks: dict[str, list[tuple[int, int]]] = {"A": [], "B": []}
    codings: list[Coding] = []

    def line_of(index: int) -> int:
        return markup.count("\n", 0, index) + 1

    for match in _TOKEN.finditer(markup):
        piece = markup[last : match.start()]
        out.append(piece)
        pos += len(piece)
        last = match.end()
        token = match.group(0)
        if token in MARKS:
            stacks[MARKS[token][0]].append((pos, match.start()))
            continue
        coder = "A" if token.startswith("]]") else "B"
        codes_text = match.group(1) if coder == "A" else match.group(2)
        if codes_text is None:
            raise InputError(f"line {line_of(match.start())}: {token!r} closes a passage without {{codes}}", source)
        if not stacks[coder]:
            raise InputError(f"line {line_of(match.start())}: {token[:2]!r} without an opening mark", source)
        start, _ = stacks[coder].pop()
        codes = [c.strip() for c in re.split(r"[,;]", codes_text) if c.strip()]
        if not codes:
            raise InputError(f"line {line_of(match.start())}: empty code list", source)
        text_so_far = "".join(out)
        # trim whitespace at the edges of the passage
        end = pos
        while start < end and text_so_far[start].isspace():
            start += 1
        while end > start and text_so_far[end - 1].isspace():
            end -= 1
        if end <= start:
            raise InputError(f"line {line_of(match.start())}: empty passage", source)
        for code in codes:
            codings.append(Coding(source, start, end, code, coder))
    out.append(markup[last:])
    for coder, stack in stacks.items():
        if stack:
            raise InputError(f"line {line_of(stack[-1][1])}: coder {coder} passage never closed", source)
    return "".join(out), codings


def compile_file(path: Path, codebook: Codebook) -> tuple[str, list[Coding]]:
    """Compile one markup file, checking its codes against the codebook."""
    text = path.read_text(encoding="utf-8")
    plain, codings = compile_markup(text, path.name)
    unknown = sorted({c.code for c in codings} - set(codebook.impact_ids))
    if unknown:
        raise InputError(f"unknown code(s): {', '.join(unknown)}", path)
    return plain, codings


def write_codings(codings: list[Coding], path: Path) -> None:
    """Write codings as CSV (CRLF records, :func:`pipeline.io.write_csv`), sorted, through a temporary file."""
    from pipeline.io import write_csv

    rows = sorted(codings, key=lambda c: (c.source, c.start, c.end, c.code, c.coder))
    write_csv(path, CODING_COLUMNS, ((c.source, c.start, c.end, c.code, c.coder) for c in rows), "\r\n")


def read_codings(path: str | Path) -> list[Coding]:
    """Read a codings table (``source,start,end,code,coder``; ``.csv`` or ``.parquet``), checking every row."""
    import pandas as pd

    from pipeline.io import read_table, require_columns

    frame = read_table(path)
    require_columns(frame, CODING_COLUMNS, path)
    codings = []
    for row_number, row in enumerate(frame[list(CODING_COLUMNS)].itertuples(index=False), start=2):
        source, start, end, code, coder = row
        if any(pd.isna(value) or str(value).strip() == "" for value in row):
            raise InputError(f"row {row_number}: empty field", path)
        try:
            start_i, end_i = int(str(start).strip()), int(str(end).strip())
        except ValueError:
            raise InputError(f"row {row_number}: start and end must be integers", path) from None
        if not 0 <= start_i < end_i:
            raise InputError(f"row {row_number}: empty or negative span {start_i}-{end_i}", path)
        limits.check(end_i, "MAX_TRANSCRIPT_CHARS", f"row {row_number}: end offset", path)  # no transcript is longer
        codings.append(Coding(str(source).strip(), start_i, end_i, str(code).strip(), str(coder).strip()))
    return codings


def build_corpus(markup_dir: Path, out_dir: Path, codebook: Codebook | None = None) -> list[Coding]:
    """Compile every ``*.txt`` in ``markup_dir`` into ``out_dir/transcripts`` and ``out_dir/codings.csv``."""
    codebook = codebook or load_codebook()
    files = sorted(markup_dir.glob("*.txt"))
    if not files:
        raise InputError("no markup files (*.txt)", markup_dir)
    transcripts = out_dir / "transcripts"
    transcripts.mkdir(parents=True, exist_ok=True)
    codings: list[Coding] = []
    for path in files:
        plain, file_codings = compile_file(path, codebook)
        target = transcripts / f"{path.stem}.txt"
        target.write_text(plain, encoding="utf-8", newline="")
        meta = path.with_name(f"{path.stem}.meta.yaml")
        if meta.exists():
            shutil.copyfile(meta, transcripts / meta.name)
        codings.extend(Coding(target.name, c.start, c.end, c.code, c.coder) for c in file_codings)
    write_codings(codings, out_dir / "codings.csv")
    return codings


# --- coder files: passages named by their first and last words --------------------------------
#
# The transfer corpus (data/transfer) is coded after the talk was written, by coders who never saw
# the writers' brief. A coder names each passage by its opening and closing words, copied exactly
# from the transcript, so no offset is ever typed:
#
#     - from: "Well, the first thing I noticed"
#       to: "and that was new for her."
#       codes: [being_growth_service_users]
#
# ``data/transfer/codings/<stem>.<coder>.yaml`` holds one coder's passages for ``<stem>.txt``.


_LOOSE = {"'": "['’‘]", "’": "['’‘]", '"': '["“”«»]', "“": '["“”]', "”": '["“”]', "…": r"(?:…|\.\.\.)"}


def _anchor_pattern(anchor: str) -> re.Pattern[str]:
    """Match an anchor verbatim, except for straight/curly quotes and runs of white space."""
    parts = []
    for token in re.split(r"(\s+)", anchor.strip()):
        if token.isspace():
            parts.append(r"\s+")
        else:
            parts.append("".join(_LOOSE.get(ch, re.escape(ch)) for ch in token))
    return re.compile("".join(parts))


def resolve_passages(text: str, entries: object, source: str, coder: str, where: str) -> list[Coding]:
    """Turn anchored passages (``from``/``to``/``codes``) into codings on ``text``.

    ``from`` must occur exactly once in ``text``; the passage ends at the end of the first
    occurrence of ``to`` at or after it. Every problem is an :class:`InputError` naming the entry.
    """
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError("a coder file must be a YAML list of passages", where)
    codings: list[Coding] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not {"from", "to", "codes"} <= set(entry):
            raise InputError(f"passage {number}: needs the keys from, to and codes", where)
        first, last, codes = str(entry["from"]), str(entry["to"]), entry["codes"]
        if isinstance(codes, str):
            codes = [c.strip() for c in re.split(r"[,;]", codes) if c.strip()]
        if not codes:
            raise InputError(f"passage {number}: empty code list", where)
        if not first.strip() or not last.strip():
            raise InputError(f"passage {number}: empty from/to", where)
        hits = [m.start() for m in _anchor_pattern(first).finditer(text)]
        if not hits:
            raise InputError(f"passage {number}: 'from' text not found verbatim: {first[:60]!r}", where)
        if len(hits) > 1:
            raise InputError(
                f"passage {number}: 'from' text occurs {len(hits)} times; add words: {first[:60]!r}", where
            )
        start = hits[0]
        end_match = _anchor_pattern(last).search(text, start)
        if end_match is None:
            raise InputError(f"passage {number}: 'to' text not found after 'from': {last[:60]!r}", where)
        end = end_match.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        codings.extend(Coding(source, start, end, str(code).strip(), coder) for code in codes)
    return codings


def compile_coder_file(path: Path, transcripts: Path, codebook: Codebook) -> list[Coding]:
    """Read ``<stem>.<coder>.yaml`` and resolve it against ``transcripts/<stem>.txt``."""
    stem, coder = path.name[: -len(".yaml")].rsplit(".", 1)
    transcript = transcripts / f"{stem}.txt"
    if not transcript.is_file():
        raise InputError(f"no transcript {transcript.name} for this coder file", path)
    text = transcript.read_text(encoding="utf-8")
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({type(exc).__name__})", path) from None
    codings = resolve_passages(text, entries, transcript.name, coder, str(path))
    unknown = sorted({c.code for c in codings} - set(codebook.impact_ids))
    if unknown:
        raise InputError(f"unknown code(s): {', '.join(unknown)}", path)
    bounds = [(m.start(), m.group(1).strip()) for m in _LABEL.finditer(text)]
    meta_path = transcript.with_name(f"{stem}.meta.yaml")
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    interviewers = {str(label) for label in meta.get("interviewers") or []}
    for c in codings:
        opened = [(p, label) for p, label in bounds if p <= c.start]
        crossed = [p for p, _ in bounds if c.start < p < c.end]
        if opened and opened[-1][1] in interviewers:
            raise InputError(f"passage at {c.start}: starts in an interviewer turn ({opened[-1][1]})", path)
        if crossed:
            raise InputError(f"passage at {c.start}-{c.end}: crosses into the next speaker turn", path)
    return codings


def build_coded_folder(folder: Path, codebook: Codebook | None = None) -> list[Coding]:
    """Compile ``folder/codings/*.yaml`` against ``folder/transcripts`` into ``folder/codings.csv``."""
    codebook = codebook or load_codebook()
    files = sorted((folder / "codings").glob("*.yaml"))
    if not files:
        raise InputError("no coder files (codings/*.yaml)", folder)
    codings: list[Coding] = []
    for path in files:
        codings.extend(compile_coder_file(path, folder / "transcripts", codebook))
    write_codings(codings, folder / "codings.csv")
    return codings


# --- a quick checker for authors (the full statistics live in the datasheet command) -------------

_LABEL = re.compile(r"^(?:\[\d{1,2}:\d{2}(?::\d{2})?\]\s*)?([^\W\d][^:\n]{0,40}?)\s?:\s", re.M)


def _turn_labels(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(1).strip()) for m in _LABEL.finditer(text)]


def check(paths: list[Path]) -> None:
    """Print per-file and total counts for authors: words, passages per code, multi-code share."""
    codebook = load_codebook()
    per_code: Counter[str] = Counter()
    per_code_b: Counter[str] = Counter()
    total_words = 0
    passages = multi = 0
    for path in paths:
        plain, codings = compile_file(path, codebook)
        meta_path = path.with_name(f"{path.stem}.meta.yaml")
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        interviewers = set(meta.get("interviewers") or [])
        labels = _turn_labels(plain)
        by_span: dict[tuple[int, int, str], set[str]] = defaultdict(set)
        for c in codings:
            by_span[(c.start, c.end, c.coder)].add(c.code)
        # coverage of participant text by coder A
        covered = [False] * len(plain)
        for s, e, coder in by_span:
            if coder == "A":
                covered[s:e] = [True] * (e - s)
        participant = uncoded = 0
        bounds = [p for p, _ in labels] + [len(plain)]
        for i, (p, label) in enumerate(labels):
            if label in interviewers:
                continue
            for k in range(p, bounds[i + 1]):
                if not plain[k].isspace():
                    participant += 1
                    uncoded += not covered[k]
        for (s, _end, coder), codes in by_span.items():
            turn = [label for p, label in labels if p <= s]
            if turn and turn[-1] in interviewers:
                print(
                    f"  WARNING {path.name}: coder {coder} passage at {s} lies in an interviewer turn", file=sys.stderr
                )
            if coder == "A":
                passages += 1
                multi += len(codes) > 1
                per_code.update(codes)
            else:
                per_code_b.update(codes)
        words = len(plain.split())
        total_words += words
        share = uncoded / participant if participant else 0.0
        print(
            f"{path.name}: {words} words, {sum(1 for k in by_span if k[2] == 'A')} A passages, "
            f"{sum(1 for k in by_span if k[2] == 'B')} B passages, participant text uncoded by A: {share:.0%}"
        )
    print(
        f"TOTAL: {len(paths)} files, {total_words} words, {passages} A passages, "
        f"{multi / passages if passages else 0:.0%} with 2+ codes"
    )
    for impact in codebook.impact_ids:
        print(f"  {impact:40s} A={per_code[impact]:3d}  B={per_code_b[impact]:3d}")


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.ingest.corpus build [MARKUP_DIR OUT_DIR]``, ``check FILE...``,
    ``check-coding CODER_FILE...`` or ``build-coded FOLDER``."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "check":
            check([Path(p) for p in argv[1:]])
        elif argv and argv[0] == "check-coding":
            codebook = load_codebook()
            for name in argv[1:]:
                path = Path(name)
                codings = compile_coder_file(path, path.parent.parent / "transcripts", codebook)
                spans = {(c.start, c.end) for c in codings}
                print(f"{path.name}: OK, {len(spans)} passages, {len(codings)} codings")
        elif argv and argv[0] == "build-coded":
            print(f"{len(build_coded_folder(Path(argv[1])))} codings written")
        elif argv and argv[0] == "build":
            markup = Path(argv[1]) if len(argv) > 1 else Path("data/gold/markup")
            out = Path(argv[2]) if len(argv) > 2 else Path("data/gold")
            print(f"{len(build_corpus(markup, out))} codings written")
        else:
            print(main.__doc__)
            return 2
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
