"""``imri ARGS`` in a fresh child process that reports its own peak resident memory (the bounds benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = (
    "import resource, sys\n"
    "from pipeline.cli import main\n"
    "sys.argv = ['imri', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    sys.stderr.write(f'\\nMAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n"
)


@dataclass
class ChildRun:
    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    lines: list[str]  # stderr's non-empty lines, the peak-memory line left out


def run_imri(args: list[str], timeout: float | None = None) -> ChildRun:
    """Run ``imri *args`` in a child (raises :class:`subprocess.TimeoutExpired` past ``timeout``)."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - started
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    rss_kb = next((int(line.split()[1]) for line in lines if line.startswith("MAXRSS_KB")), 0)
    lines = [line for line in lines if not line.startswith("MAXRSS_KB")]
    return ChildRun(child.returncode, seconds, rss_kb / 1024, child.stdout, lines)
