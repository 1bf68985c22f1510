"""False language switches of `imri segment` on the bundled English and French transcripts (issue 23).

Runs the CLI (`imri segment`, this checkout's code, params.yaml's segment section) on data/gold and
data/transfer twice: as shipped (each sidecar declares the transcript's language) and with the
transcripts alone (no sidecar: the transcript's language is detected), and prints per set:

- false French: segments called French in English transcripts whose sidecar says there is no code
  switching, per 10,000 segments of those transcripts (target: at most 10);
- false English: the same for French transcripts;
- switches found in the transcripts that do switch (``code_switching: true``), for comparison: a
  rule that never switches would score 0 false switches and miss these.

    python benchmarks/bench_language.py [--sets data/gold data/transfer]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent


def sidecars(folder: Path) -> dict[str, dict]:
    """Each transcript's sidecar (by file stem) in ``folder/transcripts``."""
    return {
        path.name.removesuffix(".meta.yaml"): yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for path in sorted((folder / "transcripts").glob("*.meta.yaml"))
    }


def segment(inputs: Path, out: Path) -> pd.DataFrame:
    """The segment table `imri segment` writes for ``inputs`` (run from the repository root)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "segment", str(inputs), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"imri segment failed on {inputs}: {done.stderr.strip().splitlines()[-1:]}")
    return pd.read_csv(out, keep_default_na=False)


def figures(table: pd.DataFrame, meta: dict[str, dict]) -> dict[str, str]:
    """False switches per 10,000 segments and switches found, from a segment table and its sidecars."""
    stem = table["source"].map(lambda source: Path(str(source)).name.split(".")[0])
    declared = stem.map(lambda s: meta.get(s, {}).get("language"))
    switching = stem.map(lambda s: bool(meta.get(s, {}).get("code_switching")))
    other = declared.map({"en": "fr", "fr": "en"})
    result = {}
    for language, name in (("en", "false French"), ("fr", "false English")):
        rows = (declared == language) & ~switching
        wrong = int((rows & (table["language"] == other)).sum())
        rate = 10_000 * wrong / max(int(rows.sum()), 1)
        result[name] = f"{wrong} of {int(rows.sum())} ({rate:.1f} per 10,000)"
    for source in sorted(set(stem[switching])):
        rows = stem == source
        found = int((rows & (table["language"] == other)).sum())
        result[f"switches in {source} ({meta[source]['language']})"] = f"{found} of {int(rows.sum())}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[str(ROOT / "data" / "gold"), str(ROOT / "data" / "transfer")])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for folder in map(Path, args.sets):
            meta = sidecars(folder)
            bare = Path(tmp) / folder.name
            bare.mkdir()
            for text in (folder / "transcripts").glob("*.txt"):
                shutil.copy(text, bare / text.name)
            for mode, inputs in (("sidecar language", folder / "transcripts"), ("detected language", bare)):
                table = segment(inputs, Path(tmp) / f"{folder.name}-{mode[0]}.csv")
                print(f"{folder.name}, {mode}: {len(table)} segments")
                for name, value in figures(table, meta).items():
                    print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
