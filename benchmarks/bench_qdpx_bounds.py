"""Hostile and large REFI-QDA inputs at (and past) the bounds of ``pipeline.limits.ArchiveLimits``.

Each case is built in a temporary folder and run as ``imri import-qdpx`` (or ``export-qdpx``) in a fresh
child process; the benchmark prints, per case, the exit code, the wall time, the child's peak RSS and the
first words of its error line. Target (issue 15): every case ends in a result or a one-line error with exit
code 2, and peak memory stays under 1.5 GB up to the bounds.

    python benchmarks/bench_qdpx_bounds.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imri_child import run_imri  # noqa: E402  (benchmarks/ is this script's folder: on sys.path)

from pipeline.limits import DEFAULT_LIMITS  # noqa: E402

HEAD = '<?xml version="1.0" encoding="utf-8"?><Project xmlns="urn:QDA-XML:project:1.0" name="bench">'
USER = "00000000-0000-4000-8000-00000000aaaa"


def guid(n: int, kind: int = 0) -> str:
    return f"{n:08x}-{kind:04x}-4000-8000-{n:012x}"


def archive(path: Path, qde: str, files: dict[str, bytes | str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.qde", qde)
        for name, data in (files or {}).items():
            zf.writestr(name, data)
    return path


def deep_tree(folder: Path) -> list[str]:
    """The report's file: a code tree 100,000 levels deep (refused at max_xml_depth)."""
    levels = 100_000
    codes = "".join(f'<Code guid="{guid(n)}" name="level {n}">' for n in range(levels)) + "</Code>" * levels
    path = archive(folder / "deep.qdpx", f"{HEAD}<CodeBook><Codes>{codes}</Codes></CodeBook></Project>")
    return ["import-qdpx", path, "--out", folder / "out"]


def codes_at_bound(folder: Path) -> list[str]:
    """max_codes codes in chains max_code_depth deep (read)."""
    depth, chains = DEFAULT_LIMITS.max_code_depth, DEFAULT_LIMITS.max_codes // DEFAULT_LIMITS.max_code_depth
    codes = "".join(
        "".join(f'<Code guid="{guid(c * depth + d)}" name="c{c}-{d}">' for d in range(depth)) + "</Code>" * depth
        for c in range(chains)
    )
    path = archive(folder / "codes.qdpx", f"{HEAD}<CodeBook><Codes>{codes}</Codes></CodeBook></Project>")
    return ["import-qdpx", path, "--out", folder / "out"]


def same_name_sources(folder: Path) -> list[str]:
    """40,000 text sources all named "same" (read; the report's took 137 s)."""
    sources = "".join(
        f'<TextSource guid="{guid(n, 1)}" name="same"><PlainTextContent>x</PlainTextContent></TextSource>'
        for n in range(40_000)
    )
    path = archive(folder / "same.qdpx", f"{HEAD}<Sources>{sources}</Sources></Project>")
    return ["import-qdpx", path, "--out", folder / "out"]


def users_at_bound(folder: Path) -> list[str]:
    """Just under max_xml_elements XML elements (project users, about 26 bytes each) in under max_xml_bytes (read)."""
    n = DEFAULT_LIMITS.max_xml_elements - 10
    users = "".join(f'<User guid="{i:x}" name="u"/>' for i in range(n))
    path = archive(folder / "users.qdpx", f"{HEAD}<Users>{users}</Users></Project>")
    return ["import-qdpx", path, "--out", folder / "out"]


def codings_heavy(folder: Path) -> list[str]:
    """One source with as many coded passages as fit in max_xml_bytes (about 300,000 codings, read)."""

    def passage(i: int) -> str:
        return (
            f'<PlainTextSelection guid="s{i}" startPosition="{i}" endPosition="{i + 10}">'
            f'<Coding guid="c{i}" creatingUser="{USER}"><CodeRef targetGUID="{guid(1)}"/></Coding>'
            "</PlainTextSelection>"
        )

    n = int(DEFAULT_LIMITS.max_xml_bytes * 0.99) // (len(passage(999_999)) + 10)  # passage + a text character
    text = "abcdefghij" * (n // 10 + 2)
    selections = "".join(passage(i) for i in range(n))
    qde = (
        f'{HEAD}<Users><User guid="{USER}" name="A"/></Users><CodeBook><Codes><Code guid="{guid(1)}" name="x"/>'
        f'</Codes></CodeBook><Sources><TextSource guid="{guid(1, 1)}" name="s"><PlainTextContent>{text}'
        f"</PlainTextContent>{selections}</TextSource></Sources></Project>"
    )
    path = archive(folder / "codings.qdpx", qde)
    return ["import-qdpx", path, "--out", folder / "out"]


def texts_at_bound(folder: Path) -> list[str]:
    """Texts of max_text_bytes in all (sources of max_source_bytes), each opening with an emoji: Python then
    holds every character in 4 bytes, the worst case for memory (read)."""
    rng = random.Random(0)
    vocabulary = "hope fear housing money staff group peer worker change meeting tenant rent".split()
    per_source = DEFAULT_LIMITS.max_source_bytes
    files, sources = {}, ""
    for n in range(DEFAULT_LIMITS.max_text_bytes // per_source):
        words = " ".join(rng.choices(vocabulary, k=per_source // 5)).encode()
        files[f"sources/{n}.txt"] = ("😊".encode() + words)[:per_source]
        sources += f'<TextSource guid="{guid(n, 1)}" name="s{n}" plainTextPath="internal://{n}.txt"/>'
    path = archive(folder / "texts.qdpx", f"{HEAD}<Sources>{sources}</Sources></Project>", files)
    return ["import-qdpx", path, "--out", folder / "out"]


def all_at_bound(folder: Path) -> list[str]:
    """The two heaviest cases together: texts at max_text_bytes (4 bytes a character) beside a project.qde of
    just under max_xml_elements elements (read)."""
    texts_at_bound(folder)
    users = "".join(f'<User guid="{i:x}" name="u"/>' for i in range(DEFAULT_LIMITS.max_xml_elements - 100))
    with zipfile.ZipFile(folder / "texts.qdpx") as zf:
        qde = zf.read("project.qde").decode().replace("<Sources>", f"<Users>{users}</Users><Sources>")
        files = {name: zf.read(name) for name in zf.namelist() if name != "project.qde"}
    path = archive(folder / "all.qdpx", qde, files)
    (folder / "texts.qdpx").unlink()
    return ["import-qdpx", path, "--out", folder / "out"]


def xml_past_bound(folder: Path) -> list[str]:
    """A project.qde one byte past max_xml_bytes, of incompressible text (refused before parsing)."""
    import base64

    pad = DEFAULT_LIMITS.max_xml_bytes + 1 - len(HEAD) - len("</Project>") - len("<!--  -->")
    filler = base64.b64encode(random.Random(1).randbytes(pad)).decode()[:pad]
    path = archive(folder / "big.qdpx", f"{HEAD}<!-- {filler} --></Project>")
    return ["import-qdpx", path, "--out", folder / "out"]


def export_at_bound(folder: Path) -> list[str]:
    """export-qdpx of max_codings codings (one code each, two coders) on texts of max_text_bytes (written)."""
    rng = random.Random(2)
    texts = folder / "texts"
    texts.mkdir()
    per_source = DEFAULT_LIMITS.max_source_bytes
    count = DEFAULT_LIMITS.max_text_bytes // per_source
    for n in range(count):
        words = " ".join(rng.choices("hope fear housing money staff group".split(), k=per_source // 6))
        (texts / f"t{n}.txt").write_bytes(("😊" + words).encode()[:per_source])
    per = DEFAULT_LIMITS.max_codings // count
    lines = ["source,start,end,code,coder"]
    lines += [
        f"t{n}.txt,{i * 40 + 1},{i * 40 + 30},code {i % 20},{'AB'[i % 2]}" for n in range(count) for i in range(per)
    ]
    (folder / "c.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["export-qdpx", "--codings", folder / "c.csv", "--text-dir", texts, "--out", folder / "p.qdpx"]


def export_fifo(folder: Path) -> list[str]:
    """export-qdpx with a FIFO named *.txt in --text-dir (refused without blocking)."""
    texts = folder / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello world", encoding="utf-8")
    os.mkfifo(texts / "b.txt")
    (folder / "c.csv").write_text("source,start,end,code,coder\na.txt,0,5,x,A\n", encoding="utf-8")
    return ["export-qdpx", "--codings", folder / "c.csv", "--text-dir", texts, "--out", folder / "p.qdpx"]


def export_dev_zero(folder: Path) -> list[str]:
    """export-qdpx with a link to /dev/zero named *.txt (refused without reading)."""
    texts = folder / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello world", encoding="utf-8")
    (texts / "b.txt").symlink_to("/dev/zero")
    (folder / "c.csv").write_text("source,start,end,code,coder\na.txt,0,5,x,A\n", encoding="utf-8")
    return ["export-qdpx", "--codings", folder / "c.csv", "--text-dir", texts, "--out", folder / "p.qdpx"]


CASES: dict[str, Callable[[Path], list[str]]] = {
    "deep-tree-100000": deep_tree,
    "codes-at-bound": codes_at_bound,
    "sources-40000-same-name": same_name_sources,
    "users-at-bound": users_at_bound,
    "codings-heavy": codings_heavy,
    "texts-at-bound": texts_at_bound,
    "all-at-bound": all_at_bound,
    "xml-past-bound": xml_past_bound,
    "export-at-bound": export_at_bound,
    "export-fifo": export_fifo,
    "export-dev-zero": export_dev_zero,
}


def run_case(name: str, timeout: int) -> None:
    """Build the case in one child process, run it in another: this process stays small, so the peak RSS that
    the second child reports is its own (Linux keeps a process's peak across fork and exec)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-qdpx-{name}-") as tmp:
        built = subprocess.run(
            [sys.executable, __file__, "--build", name, tmp], capture_output=True, text=True, check=True
        )
        args = json.loads(built.stdout)
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file() and not f.is_symlink())
        try:
            child = run_imri(args, timeout)
        except subprocess.TimeoutExpired:
            print(f"{name:26s} TIMEOUT after {timeout} s")
            return
        last = (child.stdout.strip().splitlines() or child.lines or [""])[-1]
        message = next((line for line in child.lines if line.startswith("error:")), last)
        message = message.split(": refused: ")[-1] if "refused" in message else message.split(" -> ")[0]
        print(f"{name:26s} input {size / 1024**2:6.1f} MB  exit {child.returncode}  {child.seconds:6.1f} s  "
              f"peak RSS {child.peak_rss_mb:6.0f} MB  {message[:90]}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per case")
    parser.add_argument("--build", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(json.dumps([str(a) for a in CASES[args.build[0]](Path(args.build[1]))]))
        return
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; limits: {DEFAULT_LIMITS}")
    for name in CASES:
        if not args.only or name in args.only:
            run_case(name, args.timeout)


if __name__ == "__main__":
    main()
