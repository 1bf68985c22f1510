"""Hostile and large transcripts at (and past) the bounds of ``pipeline/limits.py``.

Each case is built in a temporary folder and run as ``imri segment`` in a fresh child process; the
benchmark prints, per case, the exit code, the wall time, the child's peak RSS and the first words of
its error line. Target (issue 15): every case ends in a result or a one-line error with exit code 2,
and peak memory stays under 1.5 GB up to the bounds.

    python benchmarks/bench_ingest_bounds.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imri_child import run_imri  # noqa: E402  (benchmarks/ is this script's folder: on sys.path)

from pipeline import limits  # noqa: E402

TURN = "Tenant: I sleep better now, and I see my peer worker every week. We plan things together.\n"


def _docx_parts() -> dict[str, bytes]:
    """The parts of a small real .docx (python-docx's template with two paragraphs)."""
    import docx

    document = docx.Document()
    document.add_paragraph("Interviewer: How was it?")
    document.add_paragraph("Tenant: Better, honestly.")
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_docx(path: Path, body_filler: Callable[[io.BufferedWriter], None] | None, extra: bytes = b"") -> None:
    """A .docx whose ``word/document.xml`` gets ``body_filler`` streamed in after ``<w:body>``."""
    parts = _docx_parts()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in parts.items():
            if name != "word/document.xml" or body_filler is None:
                archive.writestr(name, data)
                continue
            head, tail = data.split(b"<w:body>", 1)
            with archive.open(name, "w", force_zip64=True) as handle:
                handle.write(head + b"<w:body>")
                body_filler(handle)
                handle.write(extra + tail)


def docx_bomb(folder: Path) -> Path:
    """About 1 MB on disk, 1 GiB of XML once inflated (spaces inside the body)."""
    path = folder / "bomb.docx"
    block = b" " * (1 << 20)

    def fill(handle):
        for _ in range(1024):
            handle.write(block)

    _write_docx(path, fill)
    return path


def _docx_filled(path: Path, paragraph: bytes) -> Path:
    """A .docx whose XML is just under MAX_DOCX_XML_BYTES, its body ``paragraph`` repeated."""
    parts = _docx_parts()
    xml = sum(len(data) for name, data in parts.items() if name.endswith((".xml", ".rels")))
    count = (limits.MAX_DOCX_XML_BYTES - xml - 1024) // len(paragraph)

    def fill(handle):
        for _ in range(count):
            handle.write(paragraph)

    _write_docx(path, fill)
    return path


def docx_turns_at_xml_bound(folder: Path) -> Path:
    """Turns of about 90 characters, one a paragraph (more text than MAX_TRANSCRIPT_CHARS: refused after parsing)."""
    return _docx_filled(folder / "turns.docx", b"<w:p><w:r><w:t>" + TURN.strip().encode() + b"</w:t></w:r></w:p>")


def docx_empty_paragraphs_at_xml_bound(folder: Path) -> Path:
    """Empty paragraphs (``<w:p/>``) up to MAX_DOCX_XML_BYTES: 2.7 million elements, past the element bound."""
    return _docx_filled(folder / "xml-paragraphs.docx", b"<w:p/>")


def docx_empty_paragraphs_at_element_bound(folder: Path) -> Path:
    """Empty paragraphs (``<w:p/>``) up to MAX_DOCX_XML_ELEMENTS: the most paragraphs python-docx is given."""
    path = folder / "paragraphs.docx"
    parts = _docx_parts()
    xml = [data for name, data in parts.items() if name.endswith((".xml", ".rels"))]
    template = sum(d.count(b"<") - d.count(b"</") - d.count(b"<!") - d.count(b"<?") for d in xml)
    count = limits.MAX_DOCX_XML_ELEMENTS - template

    def fill(handle):
        for _ in range(count):
            handle.write(b"<w:p/>")

    _write_docx(path, fill)
    return path


def text_at_char_bound(folder: Path) -> Path:
    path = folder / "long-interview.txt"
    turns = limits.MAX_TRANSCRIPT_CHARS // (len(TURN) + 40)
    path.write_text(("Interviewer: And then what happened?\n" + TURN) * turns, encoding="utf-8")
    return path


def line_at_line_bound(folder: Path) -> Path:
    """One line of MAX_LINE_CHARS: runs of emoji and elisions (spaCy's slowest tokens) between words."""
    path = folder / "long-line.txt"
    unit = "😊" * 300 + " " + "l'" * 150 + " je me sens mieux. "
    line = (unit * (limits.MAX_LINE_CHARS // len(unit)))[: limits.MAX_LINE_CHARS - 20]
    path.write_text("Interviewer: Et puis?\nLocataire: " + line + "\n", encoding="utf-8")
    return path


def two_mb_line(folder: Path) -> Path:
    path = folder / "2mb-line.txt"
    path.write_text("Tenant: " + "word " * 420_000, encoding="utf-8")
    return path


def whisper_at_byte_bound(folder: Path) -> Path:
    """Whisper JSON with word timings, just under MAX_TRANSCRIPT_BYTES."""
    path = folder / "whisper.json"
    words = [{"word": " better", "start": 1.0, "end": 1.2, "score": 0.9}] * 12
    segment = {"start": 0.0, "end": 2.0, "text": " I sleep better now.", "speaker": "SPEAKER_01", "words": words}
    size = len(json.dumps(segment)) + 2
    count = (limits.MAX_TRANSCRIPT_BYTES - 100) // size
    path.write_text(json.dumps({"segments": [segment] * count}), encoding="utf-8")
    return path


CASES: dict[str, Callable[[Path], Path]] = {
    "docx-bomb-1GiB": docx_bomb,
    "docx-turns-at-xml-bound": docx_turns_at_xml_bound,
    "docx-paras-at-elem-bound": docx_empty_paragraphs_at_element_bound,
    "docx-paras-at-xml-bound": docx_empty_paragraphs_at_xml_bound,
    "text-at-char-bound": text_at_char_bound,
    "line-at-line-bound": line_at_line_bound,
    "2MB-line": two_mb_line,
    "whisper-at-byte-bound": whisper_at_byte_bound,
}


def run_case(name: str, build: Callable[[Path], Path]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = build(Path(folder))
        size = path.stat().st_size
        child = run_imri(["segment", str(path), "--out", str(Path(folder) / "s.parquet")])
    error = next((line for line in child.lines if line.startswith("error: ")), "")
    return {
        "case": name,
        "file_mb": size / 1e6,
        "exit": child.returncode,
        "wall_s": child.seconds,
        "peak_rss_mb": child.peak_rss_mb,
        "result": error.split(": ", 2)[-1][:90] if error else (child.stdout.strip().splitlines() or [""])[-1][:90],
        "stderr_lines": len(child.lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    args = parser.parse_args()
    print(f"{platform.machine()}, {platform.python_version()}, limits from pipeline/limits.py")
    print(f"{'case':24s} {'file MB':>8s} {'exit':>4s} {'wall s':>7s} {'peak MB':>8s}  result")
    for name, build in CASES.items():
        if args.only and name not in args.only:
            continue
        r = run_case(name, build)
        figures = f"{r['file_mb']:8.2f} {r['exit']:4d} {r['wall_s']:7.1f} {r['peak_rss_mb']:8.0f}"
        print(f"{r['case']:24s} {figures}  {r['result']}", flush=True)


if __name__ == "__main__":
    main()
