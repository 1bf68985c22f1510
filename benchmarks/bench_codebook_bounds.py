"""Hostile codebooks (issue 24, defects 8-10) given to the real CLI: each ends in one line and exit code 2.

Each case is built in a temporary folder and run in a fresh child process (``imri codebook show
--codebook FILE``, or ``imri code --zero-shot`` where the defect showed there); the benchmark prints the
exit code, wall time, the child's peak RSS and its error line. Target: within 10 s and 1 GB each.

    python benchmarks/bench_codebook_bounds.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imri_child import run_imri  # noqa: E402  (benchmarks/ is this script's folder: on sys.path)

from pipeline.codebook import DEFAULT_CODEBOOK  # noqa: E402

TRANSCRIPT = ROOT / "tests" / "data" / "transcripts" / "on-group-test.txt"


def _book(impacts: list[dict]) -> str:
    raw = yaml.safe_load(DEFAULT_CODEBOOK.read_text(encoding="utf-8"))
    raw["impacts"] = impacts
    return yaml.safe_dump(raw, allow_unicode=True)


def _impact(ident: str) -> dict:
    return {"id": ident, "category": "ways_of_being", "kind": "innovation", "name_en": "x", "name_fr": "y"}


def cases(folder: Path) -> list[tuple[str, list[str]]]:
    """(name, imri arguments) for every case, their files written into ``folder``."""
    bomb = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb += ["impacts:", "- id: x", "  include: *l9"]
    (folder / "bomb.yaml").write_text("\n".join(bomb) + "\n", encoding="utf-8")
    (folder / "deep.yaml").write_text("impacts: " + "[" * 100_000 + "]" * 100_000, encoding="utf-8")
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "semicolon.yaml").write_text(_book([_impact("a;b"), _impact("c")]), encoding="utf-8")
    (folder / "codes.yaml").write_text(_book([_impact(f"c{i}") for i in range(10_000)]), encoding="utf-8")
    (folder / "codes-small.yaml").write_text(_book([_impact(f"c{i}") for i in range(1_001)]), encoding="utf-8")
    show = ["codebook", "show", "--codebook"]
    code = ["code", str(TRANSCRIPT), "--out", str(folder / "run"), "--zero-shot", "--codebook"]
    return [
        ("billion laughs (9^10)", [*show, str(folder / "bomb.yaml")]),
        ("100,000 nested lists", [*show, str(folder / "deep.yaml")]),
        ("a FIFO", [*show, str(folder / "fifo.yaml")]),
        ("a link to /dev/zero", [*show, str(folder / "zero.yaml")]),
        ("id with ';', zero-shot", [*code, str(folder / "semicolon.yaml")]),
        ("10,000 codes, zero-shot", [*code, str(folder / "codes.yaml")]),
        ("1,001 codes, zero-shot", [*code, str(folder / "codes-small.yaml")]),
    ]


def main() -> None:
    print(f"{platform.machine()}, Python {platform.python_version()}, limits from pipeline/limits.py")
    print(f"{'case':26s} {'exit':>4s} {'wall s':>7s} {'peak MB':>8s}  result")
    with tempfile.TemporaryDirectory() as folder:
        for name, args in cases(Path(folder)):
            child = run_imri(args, timeout=120)
            result = child.lines[-1][:110] if child.lines else "(no error line)"
            print(
                f"{name:26s} {child.returncode:4d} {child.seconds:7.1f} {child.peak_rss_mb:8.0f}  {result}", flush=True
            )


if __name__ == "__main__":
    main()
