"""The review app in a real headless browser: keyboard review, the transcript view, French, type-ahead,
filters and browse, undo and history, two blind reviewers and their agreement, and what a server on
another loopback port receives from the reviewer's browser (nothing that opens the app).

Playwright drives a Chromium found as ``scripts/find-browser.sh`` finds it: ``$IMRI_CHROMIUM``, then
Debian's ``/usr/bin/chromium``, then one installed by ``playwright install chromium``. Without one the
tests are skipped with a message saying what to run. Screenshots go to ``$IMRI_SCREENSHOTS`` when it is
set (else the test's temporary folder); ``scripts/review_screenshots.py`` makes the ones in ``docs/``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from pipeline.codebook import load_codebook
from tests.test_review import VisibleText, make_run, start_server

BOOK = load_codebook()
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_GET_ONE = (
    "no Chromium for the browser tests. Run one of: `sudo apt-get install chromium` (Debian), "
    "`.venv/bin/playwright install chromium` (downloads Playwright's build), or set IMRI_CHROMIUM=/path/to/chromium"
)


def find_chromium() -> str | None:
    """The Chromium to drive: ``$IMRI_CHROMIUM``, Debian's, or Playwright's own (``""``: its default path)."""
    given = os.environ.get("IMRI_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return str(DEBIAN_CHROMIUM)
    try:
        with sync_playwright() as playwright:
            bundled = playwright.chromium.executable_path
    except Exception:  # noqa: BLE001 -- any failure here means: no browser
        return None
    return "" if bundled and os.access(bundled, os.X_OK) else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=HOW_TO_GET_ONE)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM or None, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("IMRI_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def served(run: Path, reviewer: str, *options: str):
    """``imri review serve`` in a child process; yields the address it printed (with its secret)."""
    process, url = start_server(run, reviewer, *options)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


@contextmanager
def watched_page(browser, url: str, viewport=(1280, 900), locale: str | None = None):
    """A fresh page (own cookies) that records script errors, CSP violations and requests leaving the server.

    ``locale``: the browser's language (its ``Accept-Language``)."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale=locale)
    page = context.new_page()
    problems: list[str] = []
    base = url.split("?")[0]
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda r: None if r.url.startswith(base) else problems.append(f"external {r.url}"))
    page.goto(url)
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems  # no script error, no CSP violation, no request leaving the machine


def rows(run: Path, columns: str = "segment_id, action, codes_before, codes_after, memo, reviewer"):
    conn = sqlite3.connect(run / "review.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute(f"SELECT {columns} FROM decisions ORDER BY id").fetchall()
    finally:
        conn.close()


def next_segment(panel, previous: str) -> str:
    expect(panel).not_to_have_attribute("data-segment-id", previous)
    return panel.get_attribute("data-segment-id")


def test_review_three_segments_with_the_keyboard(browser, tmp_path):
    run = make_run(tmp_path / "run")
    with served(run, "browser-test") as url, watched_page(browser, url) as page:
        panel = page.locator("#panel")
        expect(panel).to_have_attribute("data-segment-id", re.compile(".+"))
        reviewed: list[tuple[str, str]] = []

        # 1: accept the model's codes
        first = panel.get_attribute("data-segment-id")
        page.keyboard.press("a")
        reviewed.append((first, "accept"))
        second = next_segment(panel, first)

        # 2: a memo, then reject (no impact)
        page.keyboard.press("m")
        expect(page.locator("#memo")).to_be_focused()
        page.keyboard.type("only describes the course")
        page.keyboard.press("Escape")
        page.keyboard.press("r")
        reviewed.append((second, "reject"))
        third = next_segment(panel, second)

        # 3: toggle the two most probable codes, show the definitions, save the ticked codes
        boxes = [page.locator(f'#decision input[data-shortcut="{k}"]') for k in (1, 2)]
        checkboxes = page.locator("#decision input[name=codes]")
        boxes_all = [checkboxes.nth(i) for i in range(checkboxes.count())]
        ticked = {box.get_attribute("value") for box in boxes_all if box.is_checked()}
        for key, box in zip(("1", "2"), boxes, strict=True):
            page.keyboard.press(key)
            ticked ^= {box.get_attribute("value")}
        page.keyboard.press("d")
        expect(page.locator("#panel details.definition").first).to_have_attribute("open", "")
        page.keyboard.press("c")
        reviewed.append((third, "change"))
        next_segment(panel, third)

        expect(page.locator("#reviewed-count")).to_have_text("3")
        expect(page.locator("#recent li")).to_have_count(3)

    stored = rows(run)
    assert [(r[0], r[1]) for r in stored] == reviewed
    assert stored[0][3] == stored[0][2]  # accepted: the model's codes
    assert stored[1][3] == "" and stored[1][4] == "only describes the course"
    assert set(filter(None, stored[2][3].split(";"))) == ticked
    assert {r[5] for r in stored} == {"browser-test"}


def test_transcript_view_with_the_keyboard(browser, tmp_path, shots):
    run = make_run(tmp_path / "run")
    with served(run, "ana") as url, watched_page(browser, url) as page:
        panel = page.locator("#panel")
        first = panel.get_attribute("data-segment-id")
        page.keyboard.press("a")  # accepted: its codes show as accepted in the margin
        current = next_segment(panel, first)

        page.keyboard.press("t")  # the transcript, opened at the segment being reviewed
        expect(page).to_have_url(re.compile(r"/transcript\?"))
        expect(page.locator("a.seg:focus")).to_have_attribute("data-segment-id", current)
        links = page.locator(".seg-row:not(.dim) a.seg")
        order = [links.nth(i).get_attribute("data-segment-id") for i in range(links.count())]
        assert order == sorted(order, key=lambda s: int(s.split(":")[1].split("-")[0]))  # turns in order
        here = order.index(current)
        page.keyboard.press("j")
        expect(page.locator("a.seg:focus")).to_have_attribute("data-segment-id", order[here + 1])
        page.keyboard.press("k")
        expect(page.locator("a.seg:focus")).to_have_attribute("data-segment-id", order[here])
        if first in order:
            row = page.locator(".seg-row", has=page.locator(f'a.seg[data-segment-id="{first}"]'))
            expect(row.locator(".chip.accepted").first).to_be_visible()
        speakers = page.locator(".turn-block > .speaker")
        assert speakers.count() >= 4
        page.screenshot(path=str(shots / "review-transcript.png"), full_page=True)

        page.keyboard.press("j")
        page.keyboard.press("Enter")  # opens that segment for review, in transcript order
        expect(panel).to_have_attribute("data-segment-id", order[here + 1])
        expect(page).to_have_url(re.compile(r"mode=browse"))
        page.keyboard.press("j")
        expect(panel).to_have_attribute("data-segment-id", order[here + 2])


def test_french_interface_and_type_ahead_search(browser, tmp_path, shots):
    from pipeline.review import EN, FR

    run = make_run(tmp_path / "run")
    with served(run, "ana") as url, watched_page(browser, url) as page:
        expect(page.locator("html")).to_have_attribute("lang", "en")  # the first queued segment is English
        page.keyboard.press("l")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.locator('#decision button[value="accept"]')).to_contain_text("Accepter")
        expect(page.locator("#view-transcript")).to_contain_text("Transcription")
        english = {v for k, v in EN.items() if v and v != FR[k] and len(v) > 3 and v not in ("English", "Français")}
        text = VisibleText.of(page.content()).replace("test-model-1", "")
        leaks = [label for label in english if re.search(rf"(?<![\w·]){re.escape(label)}(?![\w·])", text)]
        assert not leaks, leaks

        # an impact beyond the nine number keys, found by typing part of its French name without accents
        target = page.locator("#code-list li.code").nth(15)
        impact_id = target.get_attribute("data-code")
        name = BOOK.impact(impact_id).name["fr"]
        assert target.locator("input[data-shortcut]").count() == 0
        word = max(re.findall(r"\w+", name), key=len)
        folded = word.replace("é", "e").replace("è", "e").replace("ê", "e").replace("à", "a").upper()
        page.keyboard.press("/")
        expect(page.locator("#code-search")).to_be_focused()
        page.keyboard.type(folded)
        expect(page.locator("#code-list li.code.active")).to_have_attribute("data-code", impact_id)
        visible = page.locator("#code-list li.code:not([hidden])")
        assert 1 <= visible.count() < 21
        page.keyboard.press("Enter")
        expect(target.locator("input[type=checkbox]")).to_be_checked()
        page.keyboard.press("Escape")
        expect(page.locator("#code-list li.code:not([hidden])")).to_have_count(21)
        page.screenshot(path=str(shots / "review-fr.png"), full_page=True, caret="initial")
        segment = page.locator("#panel").get_attribute("data-segment-id")
        page.keyboard.press("c")
        next_segment(page.locator("#panel"), segment)
    stored = rows(run)
    assert stored[-1][0] == segment and impact_id in stored[-1][3].split(";")


def test_filters_browse_undo_and_a_history_with_skips(browser, tmp_path):
    run = make_run(tmp_path / "run", budget=0.5)
    with served(run, "ana") as url, watched_page(browser, url) as page:
        page.goto(page.url.split("?")[0] + "?lang=en")  # the reviewer's choice, whatever the transcript's language
        page.keyboard.press("v")
        expect(page).to_have_url(re.compile(r"/browse"))
        everything = page.locator("tr.row").count()
        page.select_option("#filters select[name=status]", "auto_accepted")  # outside the queue
        page.locator("#filters button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"status=auto_accepted"))
        outside = page.locator("tr.row").count()
        assert 0 < outside < everything
        page.keyboard.press("j")
        expect(page.locator("tr.row a.open").first).to_be_focused()
        chosen = page.locator("tr.row").first.get_attribute("data-segment-id")
        page.keyboard.press("Enter")
        panel = page.locator("#panel")
        expect(panel).to_have_attribute("data-segment-id", chosen)
        expect(panel).to_contain_text("not in the review queue")

        page.keyboard.press("s")  # skip: into the history like any action
        after_skip = next_segment(panel, chosen)
        expect(page.locator("#recent li").first).to_contain_text("skip")
        undo = page.locator("#undo-button")
        expect(undo).to_be_visible()
        expect(undo).to_be_enabled()
        page.keyboard.press("u")  # undo: the skip is taken back, its segment shown again
        expect(panel).to_have_attribute("data-segment-id", chosen)
        expect(page.locator("#recent li.undone")).to_have_count(1)
        page.keyboard.press("r")
        assert next_segment(panel, chosen) == after_skip
        page.keyboard.press("h")
        expect(page).to_have_url(re.compile(r"/history"))
        expect(page.locator("tr.undone")).to_have_count(1)
        expect(page.locator("table.history tbody tr")).to_have_count(3)
    assert [(r[0], r[1]) for r in rows(run)] == [(chosen, "skip"), (chosen, "undo"), (chosen, "reject")]


def blind_decide(page, keys: str, done: int) -> None:
    """One blind decision: ``r`` (no impact) or number keys then ``c`` (save the ticked codes)."""
    for key in keys:
        page.keyboard.press(key)
    expect(page.locator("#reviewed-count")).to_have_text(str(done))


def test_two_blind_reviewers_see_their_agreement_then_reconcile(browser, tmp_path, shots):
    from pipeline.agreement import cohen_kappa

    run = make_run(tmp_path / "run")
    ana_keys = ["1c", "r", "2c", "1c", "r", "12c", "1c", "r", "3c"]
    ben_keys = ["1c", "1c", "2c", "r", "r", "2c", "1c", "r", "3c"]
    with served(run, "ana", "--blind") as ana_url, served(run, "ben", "--blind") as ben_url:
        with watched_page(browser, ana_url, viewport=(1366, 900)) as ana:
            for done, keys in enumerate(ana_keys, start=1):  # the whole queue
                blind_decide(ana, keys, done)
        with watched_page(browser, ben_url, viewport=(1366, 900)) as ben:
            expect(ben.locator("#reviewed-count")).to_have_text("0")  # blind: ana's work is not shown
            expect(ben.locator(".decided")).to_have_count(0)
            # nothing of the model: no suggestion, no probability, nothing ticked, no accept, no agreement
            expect(ben.locator("#decision input[name=codes]:checked")).to_have_count(0)
            expect(ben.locator("#decision svg.bar, #decision .p, #decision .tag")).to_have_count(0)
            expect(ben.locator('#decision button[value="accept"]')).to_have_count(0)
            expect(ben.locator("#stats")).not_to_contain_text("agreement")
            expect(ben.locator("#blind-panel-note")).to_be_visible()
            ben.screenshot(path=str(shots / "review-blind.png"), caret="initial")
            for done, keys in enumerate(ben_keys[:-1], start=1):  # all but one
                blind_decide(ben, keys, done)
            ben.keyboard.press("g")
            expect(ben).to_have_url(re.compile(r"/agreement"))
            expect(ben.locator("#blind-notice")).to_contain_text("1 queued segments left")
            expect(ben.locator("section.pair")).to_have_count(0)  # nothing of ana's yet
            expect(ben.locator("#reviewer-table")).not_to_contain_text("ben")  # nor of the model
            ben.keyboard.press("q")  # back to the queue for the last one
            ben.wait_for_url(re.compile(r"/s/[^/]+/(\?.*)?$"))
            ben.wait_for_load_state("load")
            blind_decide(ben, ben_keys[-1], 9)
            ben.keyboard.press("g")
            expect(ben).to_have_url(re.compile(r"/agreement"))
            expect(ben.locator("section.pair h2")).to_contain_text("9")
            shown = ben.locator("td.pooled-between").inner_text()
            differ = sum(a != b for a, b in zip(ana_keys, ben_keys, strict=True))
            expect(ben.locator("table.disagreements tbody tr")).to_have_count(differ)
            ben.screenshot(path=str(shots / "review-agreement.png"), full_page=True, caret="initial")
            # reconcile them one by one: both codings shown, the consensus saved with who made it
            ben.locator("#reconcile-next").click()
            for k in range(differ):
                expect(ben.locator("#reconcile h1")).to_contain_text(f"{k + 1} of {differ}")
                expect(ben.locator("#both-codings tr")).to_have_count(2)
                if k == 0:
                    ben.screenshot(path=str(shots / "review-reconcile.png"), full_page=True, caret="initial")
                ben.locator("#save-consensus").click()
            expect(ben).to_have_url(re.compile(r"/agreement"))
            expect(ben.locator("#all-reconciled")).to_be_visible()
            expect(ben.locator("table.disagreements")).to_contain_text("decided by ben")

    stored = rows(run, "segment_id, codes_after, reviewer")
    ids = BOOK.impact_ids
    by = {(s, r): set(filter(None, c.split(";"))) for s, c, r in stored}
    shared = sorted({s for s, _, r in stored if r == "ana"} & {s for s, _, r in stored if r == "ben"})
    first = [int(i in by[(s, "ana")]) for s in shared for i in ids]
    second = [int(i in by[(s, "ben")]) for s in shared for i in ids]
    assert len(shared) == 9 and shown == f"{cohen_kappa(first, second):.2f}"
    consensus = [(s, c) for s, c, r in stored if r == "consensus:ben"]
    assert len(consensus) == differ
    for segment_id, codes in consensus:  # ticked first: the codes both chose
        assert set(filter(None, codes.split(";"))) == by[(segment_id, "ana")] & by[(segment_id, "ben")]


def test_the_app_explains_itself(browser, tmp_path, shots):
    """At 1366x900: the language from the browser, never from the data; full impact names with their
    definition on hover; the legend; type-ahead that stays on screen and says "no match"; history with
    text, memo and reviewer; the finished screen with the session, the export and the retraining command."""
    import json

    run = make_run(tmp_path / "run")
    card = json.loads((run / "model.json").read_text(encoding="utf-8"))
    card["training_data"] = {"gold": ["data/gold"], "coders": ["A"]}
    (run / "model.json").write_text(json.dumps(card), encoding="utf-8")
    with served(run, "ana") as url:
        with watched_page(browser, url, viewport=(1366, 900), locale="fr-FR") as page:  # a French browser
            expect(page.locator("html")).to_have_attribute("lang", "fr")  # the first queued segment is English
            expect(page.locator("#legend")).to_contain_text("seuil")
        with watched_page(browser, url, viewport=(1366, 900), locale="en-US") as page:
            base = page.url.split("?")[0]
            page.goto(base + "browse?language=fr")
            french = page.locator("tr.row").first.get_attribute("data-segment-id")
            page.goto(base + "?segment=" + french)  # a French segment: the interface stays English
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("#decision")).to_contain_text("Find an impact")
            page.keyboard.press("l")  # the toggle
            expect(page.locator("html")).to_have_attribute("lang", "fr")
            page.keyboard.press("l")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            page.goto(base)

            # every impact's full name, wrapped rather than cut, its definition on hover
            for impact in BOOK.impacts:
                name = page.locator(f'#code-list li[data-code="{impact.id}"] .name')
                expect(name).to_have_text(impact.name["en"])
                assert name.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), impact.id  # nothing cut
                assert impact.definition[:40] in name.get_attribute("title")
            longest = max(BOOK.impacts, key=lambda i: len(i.name["en"]))
            box = page.locator(f'#code-list li[data-code="{longest.id}"] .name').bounding_box()
            assert box["x"] + box["width"] <= 1366
            # the legend: confidence, cut-off, queue order
            legend = page.locator("#legend")
            expect(legend).to_be_visible()
            for term in ("confidence", "cut-off", "queue order"):
                expect(legend).to_contain_text(term)
            page.screenshot(path=str(shots / "review-queue.png"), caret="initial")

            # type-ahead: the box and its first match stay on screen; nothing found says so
            page.keyboard.press("/")
            page.keyboard.type("relation")
            search = page.locator("#code-search").bounding_box()
            active = page.locator("#code-list li.code.active")
            expect(active).to_have_count(1)
            found = active.bounding_box()
            assert search["y"] >= 0 and search["y"] + search["height"] <= 900
            assert found["y"] >= 0 and found["y"] + found["height"] <= 900
            expect(page.locator("#no-match")).to_be_hidden()
            matches = [i.id for i in BOOK.impacts if "relation" in (i.name["en"] + i.name["fr"]).lower()]
            expect(page.locator("#code-list li.code:visible")).to_have_count(len(matches))  # the others are gone
            page.screenshot(path=str(shots / "review-typeahead.png"), caret="initial")
            page.keyboard.press("Escape")
            page.keyboard.press("/")
            page.keyboard.type("zzqx")
            expect(page.locator("#no-match")).to_be_visible()
            expect(page.locator("#no-match")).to_have_text("No impact matches. Try another word, in English or French.")
            expect(page.locator("#code-list li.code:visible")).to_have_count(0)
            no_box = page.locator("#no-match").bounding_box()
            assert no_box["y"] >= 0 and no_box["y"] + no_box["height"] <= 900
            page.keyboard.press("Escape")

            # history: the text, the memo and the reviewer
            panel = page.locator("#panel")
            first = panel.get_attribute("data-segment-id")
            page.keyboard.press("m")
            page.keyboard.type("the sister, again")
            page.keyboard.press("Escape")
            page.keyboard.press("r")
            current = next_segment(panel, first)
            page.keyboard.press("h")
            row = page.locator("table.history tbody tr").first
            expect(row.locator(".history-text")).to_have_text(run_text(run, first))
            expect(row.locator(".history-memo")).to_have_text("the sister, again")
            expect(row).to_contain_text("ana")
            page.screenshot(path=str(shots / "review-history.png"), caret="initial")

            # the finished screen
            page.goto(base + "?segment=" + current)
            while panel.get_attribute("data-segment-id"):
                previous = panel.get_attribute("data-segment-id")
                page.keyboard.press("a")
                expect(panel).not_to_have_attribute("data-segment-id", previous)
            finished = page.locator("#finished")
            expect(finished).to_be_visible()
            expect(page.locator("#summary-reviewed")).to_have_text("9")
            expect(page.locator("#summary-changed")).to_have_text(re.compile(r"^[0-9]$"))
            expect(page.locator("#summary-agreement")).to_contain_text("/9")
            expect(page.locator("#summary-time")).to_contain_text("min")
            command = page.locator("#retrain-command").inner_text()
            assert command == f"imri train --gold data/gold --coder A --include-reviews {run}"  # no --out: a new folder
            with page.expect_download() as download:
                page.locator("#download-qdpx").click()
            assert download.value.suggested_filename == "run-final-coding.qdpx"
            page.screenshot(path=str(shots / "review-finished.png"), full_page=True, caret="initial")


def run_text(run: Path, segment_id: str) -> str:
    import pandas as pd

    table = pd.read_csv(run / "segments.csv", keep_default_na=False)
    return str(table.set_index("segment_id").at[segment_id, "text"])


@contextmanager
def recording_server():
    """Another local HTTP server (another account's, say) on another port of 127.0.0.1: it records every
    request it receives (path and headers, cookies included) and answers with a plain page."""
    received: list[dict] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's name
            received.append({"path": self.path, "headers": dict(self.headers.items())})
            body = b"<!doctype html><title>elsewhere</title><p>another local server</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_on_another_port_receives_nothing_that_opens_the_app(browser, tmp_path):
    """The reviewer opens the app, works, then visits a page of another local server (typed, and by a
    link from the app's page): everything that server received, replayed to the app's port, gets 403."""
    import httpx

    run = make_run(tmp_path / "run")
    with served(run, "ana") as url, recording_server() as (elsewhere, received):
        app_port = urlsplit(url).port
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        app_page = page.url
        assert "token=" not in app_page and page.locator("#panel").get_attribute("data-segment-id")
        page.goto(app_page.split("?")[0] + "?lang=fr")  # the language cookie: harmless, and it is sent along
        panel = page.locator("#panel")
        current = panel.get_attribute("data-segment-id")
        page.keyboard.press("a")
        next_segment(panel, current)
        page.goto(f"{elsewhere}/typed")  # the reviewer types the other server's address
        page.goto(app_page)
        page.evaluate(  # a link on the app's page to the other server (as if a segment's text held one)
            "url => { const a = document.createElement('a'); a.href = url; a.id = 'out';"
            " document.body.appendChild(a); a.click(); }",
            f"{elsewhere}/linked",
        )
        page.wait_for_url(f"{elsewhere}/linked")
        context.close()

        pages = [r for r in received if r["path"] != "/favicon.ico"]  # the browser also asks for its icon
        assert [r["path"] for r in pages] == ["/typed", "/linked"]
        cookies = [r["headers"].get("Cookie", "") for r in received]
        assert all("imri_review_lang=fr" in r["headers"].get("Cookie", "") for r in pages)  # 127.0.0.1's cookies
        # but no address of the app (no Referer from its pages)
        secret = parse_qs(urlsplit(url).query)["token"][0]
        assert not any(secret in v or f":{app_port}" in v for r in received for v in r["headers"].values())
        values = [part.split("=", 1)[-1] for c in cookies for part in c.split("; ")]
        app = f"http://127.0.0.1:{app_port}"
        with httpx.Client(timeout=10) as replay:
            for request in received:  # every header it received, sent to the app's port
                headers = {k: v for k, v in request["headers"].items() if k.lower() not in ("host", "connection")}
                for path in ("/", "/browse", "/history", "/api/decisions", request["path"]):
                    answer = replay.get(app + path, headers=headers)
                    assert answer.status_code == 403, (path, answer.status_code)
            for value in values:  # any value it received, used as the token or as the capability path
                assert replay.get(f"{app}/", params={"token": value}).status_code == 403
                assert replay.get(f"{app}/s/{value}/").status_code == 403
    assert len(rows(run)) == 1  # only the reviewer's own decision
