"""End to end in a real headless browser: review three segments with the keyboard, find them in review.db.

Drives Debian's chromium (``apt-get install -y chromium``) through Playwright; skipped only when that
browser is not installed.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.test_review import make_run, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium (apt-get install -y chromium)"
)


def test_review_three_segments_with_the_keyboard(tmp_path):
    run = make_run(tmp_path / "run")
    server, url = start_server(run, "browser-test")
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda r: None if r.url.startswith(url) else problems.append(f"external {r.url}"))
            page.goto(url)
            panel = page.locator("#panel")
            expect(panel).to_have_attribute("data-segment-id", re.compile(".+"))
            reviewed: list[tuple[str, str]] = []

            def next_segment(previous: str) -> str:
                expect(panel).not_to_have_attribute("data-segment-id", previous)
                return panel.get_attribute("data-segment-id")

            # 1: accept the model's codes
            first = panel.get_attribute("data-segment-id")
            page.keyboard.press("a")
            reviewed.append((first, "accept"))
            second = next_segment(first)

            # 2: a memo, then reject (no impact)
            page.keyboard.press("m")
            expect(page.locator("#memo")).to_be_focused()
            page.keyboard.type("only describes the course")
            page.keyboard.press("Escape")
            page.keyboard.press("r")
            reviewed.append((second, "reject"))
            third = next_segment(second)

            # 3: toggle the two most probable codes, show the definitions, save the ticked codes
            boxes = [page.locator(f'#decision input[data-shortcut="{k}"]') for k in (1, 2)]
            checkboxes = page.locator("#decision input[name=codes]")
            ticked = {
                checkboxes.nth(i).get_attribute("value")
                for i in range(checkboxes.count())
                if checkboxes.nth(i).is_checked()
            }
            for key, box in zip(("1", "2"), boxes, strict=True):
                page.keyboard.press(key)
                ticked ^= {box.get_attribute("value")}
            page.keyboard.press("d")
            expect(page.locator("#panel details.definition").first).to_have_attribute("open", "")
            page.keyboard.press("c")
            reviewed.append((third, "change"))
            next_segment(third)

            expect(page.locator("#reviewed-count")).to_have_text("3")
            expect(page.locator("#recent li")).to_have_count(3)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
        server.stderr.close()

    assert not problems, problems  # no script error, no CSP violation, no request leaving the machine
    conn = sqlite3.connect(run / "review.db")
    rows = conn.execute(
        "SELECT segment_id, action, codes_before, codes_after, memo, reviewer FROM decisions ORDER BY id"
    ).fetchall()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert [(r[0], r[1]) for r in rows] == reviewed
    assert rows[0][3] == rows[0][2]  # accepted: the model's codes
    assert rows[1][3] == "" and rows[1][4] == "only describes the course"
    assert set(filter(None, rows[2][3].split(";"))) == ticked
    assert {r[5] for r in rows} == {"browser-test"}
