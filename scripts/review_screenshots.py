"""Screenshots of the review app for docs/: the queue (with its legend), type-ahead, the transcript view,
history, the French interface, the finished screen, and blind review (a blind reviewer's page, the
agreement view with the disagreements, reconciling one), at 1366x900 in an English browser.

usage: .venv/bin/python scripts/review_screenshots.py RUN_DIR [--out docs]

RUN_DIR is an ``imri code`` output folder (``make demo`` writes ``runs/new_study``). It is copied to a
temporary folder first, without its ``review.db``, so the decisions made for the pictures never reach
the run: the first queued segments of one transcript accepted with the keyboard (so that the margin
shows accepted codes), then, written straight into the copy's ``review.db`` so that the finished and
blind screens can be shown, reviewer ana accepting the rest of the queue and a blind reviewer ben
deciding the whole queue as the model did except every fifth segment (no impact). Needs a Chromium,
found as ``scripts/find-browser.sh`` finds it.
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


def serve(run_dir: Path, reviewer: str, *options: str) -> tuple[subprocess.Popen, str]:
    """``imri review serve`` on a free port; the process and the address it printed."""
    command = [sys.executable, "-m", "pipeline.cli", "review", "serve", str(run_dir), "--port", "0"]
    server = subprocess.Popen(
        [*command, "--reviewer", reviewer, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return server, server.stdout.readline().strip()


def decide_all(run: ReviewRun, reviewer: str, codes_of) -> None:
    """Record ``reviewer``'s decision (``codes_of(segment_id)``) on every queued segment they have not decided."""
    from pipeline.review import latest_decisions

    store = run.store()
    decided = latest_decisions(store.history())
    done = set(decided.segment_id[decided.reviewer == reviewer]) if len(decided) else set()
    for segment_id in run.queue:
        if segment_id in done:
            continue
        row = run.segment(segment_id)
        codes = codes_of(segment_id)
        action = "accept" if codes == run.model_codes(segment_id) else ("reject" if not codes else "change")
        store.record(
            *(segment_id, row.source, int(row.start), int(row.end), action, run.model_codes(segment_id), codes),
            *(reviewer, run.model_version),
            run_id=run.run_id,
            transcript_sha256=run.fingerprints[row.source],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    out = args.out
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / args.run_dir.name
        shutil.copytree(args.run_dir, run_dir, ignore=shutil.ignore_patterns("review.db*"))
        run = ReviewRun.load(run_dir)
        english = [s for s in run.queue if run.transcript_language.get(run.segment(s).source) == "en"]
        french = [s for s in run.queue if run.transcript_language.get(run.segment(s).source) == "fr"]
        source = run.segment(english[0]).source
        in_source = [s for s in run.queue if run.segment(s).source == source]
        servers = []
        try:
            server, url = serve(run_dir, "ana")
            servers.append(server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium(), args=["--headless", "--no-sandbox"])
                context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
                page = context.new_page()
                page.goto(url)
                base = page.url.split("?")[0]  # where the printed URL leads: the app's capability path, ending in /
                page.goto(f"{base}?source={source}")  # the queue of one transcript, in the browser's language
                panel = page.locator("#panel")
                page.screenshot(path=str(out / "review-queue.png"), caret="initial")
                page.keyboard.press("/")
                page.keyboard.type("relation")
                page.screenshot(path=str(out / "review-typeahead.png"), caret="initial")
                page.keyboard.press("Escape")
                # the first queued segments in transcript order, accepted: the margin shows them as accepted
                page.goto(f"{base}?mode=browse&source={source}&status=queued")
                for k in range(min(3, len(in_source) - 1)):
                    current = panel.get_attribute("data-segment-id")
                    if k == 0:
                        page.keyboard.press("m")
                        page.keyboard.type("Describes the course more than a change; accepted for now.")
                        page.keyboard.press("Escape")
                    page.keyboard.press("a")
                    expect(panel).not_to_have_attribute("data-segment-id", current)
                page.set_viewport_size({"width": 1366, "height": 1300})
                page.goto(f"{base}transcript?source={source}")
                page.screenshot(path=str(out / "review-transcript.png"), caret="initial")
                page.set_viewport_size({"width": 1366, "height": 900})
                page.goto(f"{base}history")
                page.screenshot(path=str(out / "review-history.png"), caret="initial")
                page.set_viewport_size({"width": 1366, "height": 1500})
                page.goto(f"{base}?segment={french[0]}&lang=fr")
                page.screenshot(path=str(out / "review-fr.png"), caret="initial")
                page.goto(f"{base}?lang=en")
                decide_all(run, "ana", run.model_codes)  # the rest of the queue, for the finished screen
                page.set_viewport_size({"width": 1366, "height": 900})
                page.goto(base)
                expect(page.locator("#finished")).to_be_visible()
                page.screenshot(path=str(out / "review-finished.png"), full_page=True, caret="initial")

                # blind review: ben's first page, then (his decisions written) the agreement and reconciling
                server, blind_url = serve(run_dir, "ben", "--blind")
                servers.append(server)
                blind = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US").new_page()
                blind.goto(blind_url)
                blind_base = blind.url.split("?")[0]
                blind.screenshot(path=str(out / "review-blind.png"), caret="initial")
                position = {s: k for k, s in enumerate(run.queue)}
                decide_all(run, "ben", lambda s: () if position[s] % 5 == 0 else run.model_codes(s))
                blind.goto(f"{blind_base}agreement")
                blind.locator("#disagreements").scroll_into_view_if_needed()
                blind.screenshot(path=str(out / "review-agreement.png"), caret="initial")
                blind.locator("#reconcile-next").click()
                expect(blind.locator("#reconcile")).to_be_visible()
                blind.screenshot(path=str(out / "review-reconcile.png"), caret="initial")
                browser.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)
    names = "queue, typeahead, transcript, history, fr, finished, blind, agreement, reconcile"
    print(f"-> {out}/review-{{{names}}}.png")


if __name__ == "__main__":
    main()
