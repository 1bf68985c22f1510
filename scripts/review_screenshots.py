"""Screenshots of the review app for docs/: the queue, the transcript view and the French interface.

usage: .venv/bin/python scripts/review_screenshots.py RUN_DIR [--out docs]

RUN_DIR is an ``imri code`` output folder (``make demo`` writes ``runs/new_study``). It is copied to a
temporary folder first, without its ``review.db``, so the few decisions made for the pictures (accepting
the first queued segments of one transcript, so that the margin shows accepted codes) never reach the
run. Needs a Chromium, found as ``scripts/find-browser.sh`` finds it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.review import ReviewRun  # noqa: E402


def chromium() -> str | None:
    """``$IMRI_CHROMIUM``, Debian's ``/usr/bin/chromium``, else Playwright's own (None)."""
    given = os.environ.get("IMRI_CHROMIUM")
    if given:
        return given
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / args.run_dir.name
        shutil.copytree(args.run_dir, run_dir, ignore=shutil.ignore_patterns("review.db*"))
        run = ReviewRun.load(run_dir)
        english = [s for s in run.queue if run.transcript_language.get(run.segment(s).source) == "en"]
        french = [s for s in run.queue if run.transcript_language.get(run.segment(s).source) == "fr"]
        source = run.segment(english[0]).source
        in_source = [s for s in run.queue if run.segment(s).source == source]
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "review", "serve", str(run_dir), "--port", "0", "--reviewer", "ana"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = server.stdout.readline().strip()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium(), args=["--headless", "--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                base = page.url.split("?")[0]  # where the printed URL leads: the app's capability path, ending in /
                page.goto(f"{base}?source={source}&lang=en")  # the queue of one transcript, in English
                panel = page.locator("#panel")
                page.screenshot(path=str(args.out / "review-queue.png"))
                # the first queued segments in transcript order, accepted: the margin shows them as accepted
                page.goto(f"{base}?mode=browse&source={source}&status=queued&lang=en")
                for _ in range(min(3, len(in_source) - 1)):
                    current = panel.get_attribute("data-segment-id")
                    page.keyboard.press("a")
                    expect(panel).not_to_have_attribute("data-segment-id", current)
                page.set_viewport_size({"width": 1400, "height": 1300})
                page.goto(f"{base}transcript?source={source}")
                page.screenshot(path=str(args.out / "review-transcript.png"))
                page.set_viewport_size({"width": 1400, "height": 1500})
                page.goto(f"{base}?segment={french[0]}&lang=fr")
                page.screenshot(path=str(args.out / "review-fr.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"-> {args.out / 'review-queue.png'}, review-transcript.png, review-fr.png")


if __name__ == "__main__":
    main()
