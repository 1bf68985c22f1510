"""Human review: review.db, the review app's API, export, training with reviews, simulate, a kill test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import markupsafe
import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import load_codebook
from tests.conftest import ROOT

BOOK = load_codebook()
IDS = BOOK.impact_ids

TRANSCRIPTS = {
    "alpha.txt": (
        "Interviewer: What changed for you since you joined the course?\n"
        "Student: I talk to my sister again. We have coffee every week now. I feel less alone <3 & calmer.\n"
        "Interviewer: And at the clinic, did anything change?\n"
        "Student: The staff write my care plan with me now. The peer workers lead the Monday meetings.\n"
    ),
    "beta.txt": (
        "Intervieweuse: Qu'est-ce qui a changé dans l'équipe?\n"
        "Pair aidant: Les gens me font confiance maintenant. On m'invite aux réunions cliniques.\n"
        "Intervieweuse: Et pour les usagers?\n"
        "Pair aidant: Ils osent dire ce qu'ils veulent. Certains animent même un atelier.\n"
    ),
}
INTERVIEWERS = {"Interviewer", "Intervieweuse"}


def segment_rows(source: str, text: str) -> list[dict]:
    """The segment table of a tiny transcript: one segment per sentence, offsets into ``text``."""
    rows, question = [], ""
    for turn, line in enumerate(re.finditer(r"([^:\n]+): ([^\n]+)", text)):
        speaker, body_start = line.group(1), line.start(2)
        role = "interviewer" if speaker in INTERVIEWERS else "participant"
        for sentence in re.finditer(r"[^.?!]+[.?!]", line.group(2)):
            start = body_start + sentence.start() + (len(sentence.group()) - len(sentence.group().lstrip()))
            end = body_start + sentence.end()
            rows.append(
                {
                    "source": source,
                    "segment_id": f"{source}:{start}-{end}",
                    "start": start,
                    "end": end,
                    "speaker": speaker,
                    "role": role,
                    "turn": turn,
                    "language": "fr" if source == "beta.txt" else "en",
                    "text": text[start:end],
                    "question": question if role == "participant" else "",
                    "stakeholder_group": "service_users",
                    "transcript_language": "fr" if source == "beta.txt" else "en",
                }
            )
        if role == "interviewer":
            question = line.group(2)
    return rows


def make_run(
    folder: Path,
    seed: int = 0,
    transcripts: dict[str, str] | None = None,
    thresholds: bool = False,
    budget: float = 1.0,
) -> Path:
    """A small but complete ``imri code`` output folder, written without a model (for API tests).

    ``thresholds``: the card lists the cut-offs (0.5 each) as a run may do; otherwise the app estimates them.
    """
    from pipeline.coding import ReviewConfig, code_segments
    from pipeline.qdpx import export_qdpx

    transcripts = TRANSCRIPTS if transcripts is None else transcripts
    table = pd.DataFrame([r for source, text in transcripts.items() for r in segment_rows(source, text)])
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0.0, 0.3, (len(table), len(IDS)))
    proba[:, 0] = np.linspace(0.35, 0.8, len(table))  # a few confident codes, most of them near the threshold
    proba[::2, 3] = 0.55
    segments, queue = code_segments(
        table, proba, np.full(len(IDS), 0.5), np.full(len(IDS), 100), BOOK, ReviewConfig(budget=budget)
    )
    folder.mkdir(parents=True, exist_ok=True)
    segments.to_csv(folder / "segments.csv", index=False)
    queue.to_csv(folder / "review_queue.csv", index=False)
    card = {
        "name": "test-model",
        "version": "1",
        "encoder": {"id": "none"},
        "codebook": {"id": BOOK.id, "version": BOOK.version, "sha256": BOOK.sha256, "impact_ids": IDS},
        "params": {},
    }
    if thresholds:
        card["thresholds"] = [0.5] * len(IDS)
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")
    empty = pd.DataFrame(columns=["source", "start", "end", "code", "coder"])
    export_qdpx(transcripts, empty, folder / "coded.qdpx", BOOK)
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "run")


@contextlib.contextmanager
def app_client(run_dir: Path, reviewer: str = "ana", blind: bool = False):
    """A test client of the review app that opened it with its secret; its base is the capability path."""
    from fastapi.testclient import TestClient

    from pipeline.review import create_app

    app = create_app(run_dir, reviewer, allowed_hosts=["testserver"], blind=blind)
    with TestClient(app) as test_client:
        opened = test_client.get("/", params={"token": app.state.secret})
        assert opened.status_code == 200 and opened.url.path == f"/s/{app.state.secret}/"
        test_client.base = f"/s/{app.state.secret}"  # every link of the app starts with it
        test_client.base_url = f"http://testserver{test_client.base}"
        test_client.token = app.state.view.token
        test_client.run = app.state.view.run
        test_client.secret = app.state.secret
        yield test_client


@pytest.fixture
def client(run_dir):
    with app_client(run_dir) as test_client:
        yield test_client


def escape(text: str) -> str:
    """Text as the templates write it (Jinja2 autoescaping)."""
    return str(markupsafe.escape(text))


def shown_segment(html: str) -> str | None:
    match = re.search(r'data-segment-id="([^"]+)"', html)
    return match.group(1) if match else None


def decide(client, segment_id: str, action: str, codes=(), memo: str = "", htmx: bool = True, where: str = ""):
    headers = {"HX-Request": "true"} if htmx else {}
    data = {"segment_id": segment_id, "action": action, "token": client.token, "codes": list(codes), "memo": memo}
    data["where"] = where
    return client.post("/decide", data=data, headers=headers, follow_redirects=False)


# --- review.db -------------------------------------------------------------------------------------


def test_store_is_wal_and_append_only(tmp_path):
    from pipeline.review import ReviewStore

    store = ReviewStore(tmp_path / "review.db")
    first = store.record("s:0-5", "s", 0, 5, "accept", ("a",), ("a",), "ana", "m-1", memo="fine")
    store.record("s:0-5", "s", 0, 5, "change", ("a",), ("b", "c"), "ana", "m-1")
    store.record("s:6-9", "s", 6, 9, "skip", (), None, "ana", "m-1")
    with pytest.raises(ValueError):
        store.record("s:6-9", "s", 6, 9, "skip", (), ("a",), "ana", "m-1")  # a skip decides nothing
    with pytest.raises(ValueError):
        store.record("s:6-9", "s", 6, 9, "delete", (), None, "ana", "m-1")

    reopened = ReviewStore(tmp_path / "review.db")  # a new connection sees every committed action
    history = reopened.history()
    assert list(history.action) == ["accept", "change", "skip"] and history.id.iloc[0] == first
    assert history.decided_at.is_monotonic_increasing and set(history.reviewer) == {"ana"}
    latest = reopened.decisions()
    assert list(latest.segment_id) == ["s:0-5"] and latest.codes_after.iloc[0] == "b;c"
    assert latest.codes_before.iloc[0] == "a" and latest.model_version.iloc[0] == "m-1"
    assert reopened.integrity() == "ok"

    conn = sqlite3.connect(tmp_path / "review.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE decisions SET codes_after = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM decisions")
    conn.close()
    assert len(ReviewStore(tmp_path / "review.db").history()) == 3


def test_store_refuses_a_foreign_database(tmp_path):
    from pipeline.errors import InputError
    from pipeline.review import ReviewStore

    (tmp_path / "review.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="review database"):
        ReviewStore(tmp_path / "review.db")
    with pytest.raises(InputError, match="no review.db"):
        ReviewStore(tmp_path / "other" / "review.db", create=False)


# --- the app ---------------------------------------------------------------------------------------


def test_page_shows_the_queue_in_priority_order(client, caplog):
    caplog.set_level("DEBUG")
    run = client.run
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    first = run.queue[0]
    assert shown_segment(html) == first
    row = run.segment(first)
    assert f'<mark id="segment-text">{escape(row.text)}</mark>' in html  # highlighted, HTML-escaped
    assert escape(row.question) in html
    before, _, after = run.turn(first)
    assert escape(before.strip()) in html and escape(after.strip()) in html
    top_id, top_p = run.probabilities(first)[0]
    # the page speaks its language: the impact's name in it, "0,65" in French
    language = re.search(r'<html lang="(\w+)"', html).group(1)
    shown_p = f"{top_p:.2f}" if language == "en" else f"{top_p:.2f}".replace(".", ",")
    assert BOOK.impact(top_id).name[language] in html and shown_p in html
    assert escape(BOOK.impact(top_id).definition) in html  # on demand, inside <details>
    assert 'data-shortcut="1"' in html and 'data-shortcut="9"' in html and 'data-shortcut="10"' not in html
    assert f'0</b> / <span id="queued-count">{len(run.queue)}</span>' in html
    assert "/static/htmx.min.js" in html and "https://" not in html  # everything local
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get("/static/htmx.min.js").status_code == 200

    french = client.get("/", params={"lang": "fr"})
    assert escape(BOOK.impact(top_id).name["fr"]) in french.text
    assert escape(BOOK.impact(top_id).name["fr"]) in client.get("/").text  # the cookie keeps the language
    assert client.get("/", params={"segment": "nope"}).status_code == 404
    assert all(run.segment(s).text not in caplog.text for s in run.queue)  # nothing logs segment text


def test_decisions_accept_reject_change_skip_memo(client, run_dir):
    from pipeline.review import ReviewStore

    run = client.run
    q = run.queue
    answer = decide(client, q[0], "accept", memo="clear case")
    assert answer.status_code == 200 and shown_segment(answer.text) == q[1]
    assert 'hx-swap-oob="true"' in answer.text and answer.headers["HX-Push-Url"].endswith(q[1].replace(":", "%3A"))
    assert shown_segment(decide(client, q[1], "reject").text) == q[2]
    assert shown_segment(decide(client, q[2], "change", codes=[IDS[5], IDS[2]]).text) == q[3]
    assert shown_segment(decide(client, q[3], "skip").text) == q[4]
    assert shown_segment(decide(client, q[4], "memo", memo="come back to this").text) == q[4]  # a memo stays put
    plain = decide(client, q[4], "accept", htmx=False)  # works without htmx too
    assert plain.status_code == 303 and plain.headers["location"].endswith(q[5].replace(":", "%3A"))

    history = ReviewStore(run_dir / "review.db").history()
    assert list(history.action) == ["accept", "reject", "change", "skip", "memo", "accept"]
    assert set(history.reviewer) == {"ana"} and set(history.model_version) == {"test-model-1"}
    assert history.memo.tolist()[:1] == ["clear case"] and history.memo.iloc[4] == "come back to this"
    assert history.codes_before.iloc[0] == run.segments.loc[q[0], "codes"]
    assert history.codes_after.iloc[0] == history.codes_before.iloc[0]
    assert history.codes_after.iloc[1] == "" and history.codes_after.iloc[2] == f"{IDS[2]};{IDS[5]}"
    assert pd.isna(history.codes_after.iloc[3]) and pd.isna(history.codes_after.iloc[4])  # NULL: decides nothing

    stats = client.get("/api/progress").json()
    assert stats["reviewed"] == 4 and stats["queued"] == len(q) and stats["skipped"] == 1
    accepted = 2
    assert stats["agreement"]["segments"] == 4 and stats["agreement"]["exact"] >= accepted
    # the skipped segment comes back after every other waiting one
    waiting = [s for s in q if s not in {q[0], q[1], q[2], q[4]}]
    assert shown_segment(client.get("/").text) == waiting[1]
    for segment_id in waiting[1:]:
        decide(client, segment_id, "reject")
    assert shown_segment(client.get("/").text) == q[3]
    decide(client, q[3], "accept")
    done = client.get("/")
    assert "Queue done" in done.text and shown_segment(done.text) is None
    # revisiting a decided segment shows the decision; a new one replaces it, the history keeps both
    again = client.get("/", params={"segment": q[1], "lang": "en"})
    assert "Decided:" in again.text and "no impact" in again.text
    decide(client, q[1], "change", codes=[IDS[0]])
    latest = ReviewStore(run_dir / "review.db").decisions().set_index("segment_id")
    assert latest.loc[q[1], "codes_after"] == IDS[0]
    assert client.get("/api/progress").json()["reviewed"] == len(q)


def test_bad_requests_are_refused(client):
    q = client.run.queue
    assert decide(client, q[0], "accept").status_code == 200
    bad_token = client.post("/decide", data={"segment_id": q[0], "action": "accept", "token": "forged"})
    assert bad_token.status_code == 403
    assert decide(client, "nope.txt:0-1", "accept").status_code == 404
    assert decide(client, q[0], "destroy").status_code == 400
    assert decide(client, q[0], "change", codes=["not_a_code"]).status_code == 400
    assert decide(client, q[0], "memo", memo="   ").status_code == 400
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400  # DNS rebinding
    decisions = client.get("/api/decisions").json()
    assert len(decisions) == 1
    assert list(decisions[0]) == [
        "id",
        "segment_id",
        "source",
        "start",
        "end",
        "action",
        "codes_before",
        "codes_after",
        "reviewer",
        "decided_at",
        "run_id",
    ]  # no memo (it may quote the transcript), no model version, no fingerprint
    assert decisions[0]["run_id"] == client.run.run_id


def test_serve_refuses_what_is_not_a_run(tmp_path, run_cli):
    result = run_cli("review", "serve", tmp_path, "--port", "0")
    assert result.code == 2 and result.out == "" and "not an `imri code` output folder" in result.err
    assert len(result.err.strip().splitlines()) == 1
    result = run_cli("review", "export", tmp_path, "--out", tmp_path / "x.csv")
    assert result.code == 2 and "not an `imri code` output folder" in result.err
    result = run_cli("review", "export", tmp_path, "--out", tmp_path / "x.csv", "--reviews-only")
    assert result.code == 2 and "no review.db" in result.err


# --- access: the server's secret ---------------------------------------------------------------------


def test_every_request_needs_the_server_secret(run_dir):
    from fastapi.testclient import TestClient

    from pipeline.review import create_app

    app = create_app(run_dir, "ana", allowed_hosts=["testserver"])
    secret, run = app.state.secret, app.state.view.run
    first = run.queue[0]
    with TestClient(app) as stranger:  # another local account: knows the port, not the secret
        for path in ("/", "/browse", "/transcript", "/agreement", "/history", "/api/progress", "/api/decisions"):
            answer = stranger.get(path)
            assert answer.status_code == 403 and escape(run.segment(first).text) not in answer.text, path
        assert stranger.get("/static/review.js").status_code == 403
        form = {"segment_id": first, "action": "accept", "token": app.state.view.token}
        assert stranger.post("/decide", data=form).status_code == 403  # no decision in the reviewer's name
        assert stranger.post("/undo", data={"token": app.state.view.token}).status_code == 403
        for wrong in ("forged", secret[:-1], secret + "x", "é" * 43, "😀", secret[:-1] + "é"):
            assert stranger.get("/", params={"token": wrong}).status_code == 403, wrong  # not 500
        assert stranger.get("/?token=%FF%FE%00").status_code == 403  # not UTF-8 at all

        base = f"/s/{secret}"
        for wrong in ("/s/forged/", f"/s/{secret[:-1]}/", f"/s/{secret}x/", "/s//", f"/x/{secret}/", f"/S/{secret}/"):
            assert stranger.get(wrong).status_code == 403, wrong  # the capability path, wrong: refused
        assert stranger.get(f"/s/{secret[:-1]}é/").status_code == 403  # not ASCII: refused, not a 500

        opened = stranger.get("/", params={"token": secret, "segment": first}, follow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == f"{base}/?segment={first.replace(':', '%3A')}"
        assert "set-cookie" not in opened.headers  # no cookie carries access
        assert stranger.get("/").status_code == 403  # the token opened nothing outside the capability path
        assert stranger.get(base, follow_redirects=False).headers["location"] == f"{base}/"
        page, script = stranger.get(f"{base}/"), stranger.get(f"{base}/static/review.js")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert script.status_code == 200 and "cache-control" not in script.headers  # scripts may be cached
        assert stranger.post("/decide", params={"token": secret}, data=form).status_code == 403  # only GET leads in
        for bad in ("é" * 32, "forged", "\u2028" * 3):  # the page's form token: refused, never a 500
            answer = stranger.post(f"{base}/decide", data={**form, "token": bad})
            assert answer.status_code == 403, bad
        assert not run.store().history().shape[0]

    other = create_app(run_dir, "ben", allowed_hosts=["testserver"])
    assert other.state.secret != secret
    with TestClient(other) as neighbour:  # a second server on the same machine: its own secret
        assert neighbour.get("/", params={"token": secret}).status_code == 403
        assert neighbour.get(f"{base}/").status_code == 403


def test_nothing_the_browser_holds_for_127_0_0_1_opens_the_app(run_dir):
    """Browsers send every cookie of 127.0.0.1 to every port of it: a server another local account runs
    on another port receives them when the reviewer visits it. Replayed here, they must open nothing."""
    from fastapi.testclient import TestClient

    from pipeline.review import create_app

    app = create_app(run_dir, "ana", allowed_hosts=["testserver"])
    secret, first = app.state.secret, app.state.view.run.queue[0]
    with TestClient(app) as reviewer:  # the reviewer's browser: opens the printed URL, works, switches language
        opened = reviewer.get("/", params={"token": secret})
        assert opened.status_code == 200
        app_url = str(opened.url).split("?")[0].rstrip("/")  # where the printed URL led
        assert reviewer.get(f"{app_url}/", params={"segment": first, "lang": "fr"}).status_code == 200
        for path in ("/browse", "/history", "/agreement", "/transcript", "/api/progress"):
            assert reviewer.get(app_url + path).status_code == 200
        held = dict(reviewer.cookies)  # every cookie the browser now holds for 127.0.0.1, whatever its port
    assert all(secret not in value for value in held.values())
    with TestClient(app) as neighbour:  # what the other local server received, replayed to the app's port
        neighbour.cookies.update(held)
        form = {"segment_id": first, "action": "accept", "token": app.state.view.token}
        for path in ("/", "/browse", "/history", "/api/progress", "/api/decisions", "/static/review.js"):
            answer = neighbour.get(path)
            assert answer.status_code == 403 and "segment" not in answer.text, path
        assert neighbour.post("/decide", data=form).status_code == 403
        for value in held.values():  # nor does any cookie value used as the token or the capability path
            assert neighbour.get("/", params={"token": value}).status_code == 403
            assert neighbour.get(f"/s/{value}/").status_code == 403
    assert not app.state.view.store.history().shape[0]


@pytest.mark.parametrize(
    "path", ["//evil.example/x", "///evil.example/x", "/\\evil.example/x", "/\\/evil.example", "/%2F%2Fevil.example/x"]
)
def test_the_token_redirect_stays_on_the_server(run_dir, path):
    """`//host/x?token=...` and its variants lead to the app's own page, never to another site."""
    from urllib.parse import urljoin

    from fastapi.testclient import TestClient

    from pipeline.review import create_app

    app = create_app(run_dir, "ana", allowed_hosts=["testserver"])
    with TestClient(app) as browser:
        answer = browser.get(f"http://testserver{path}?token={app.state.secret}&lang=fr", follow_redirects=False)
        assert answer.status_code == 303
        target = urlsplit(urljoin(f"http://testserver{path}", answer.headers["location"]))
        assert (target.scheme, target.netloc) == ("http", "testserver"), answer.headers["location"]
        assert target.path.startswith(f"/s/{app.state.secret}/") and "token" not in target.query


def test_served_address_carries_the_secret(tmp_path):
    import httpx

    from pipeline.review import bind

    sock = bind(0)
    assert sock.getsockname()[0] == "127.0.0.1"  # loopback only
    sock.close()
    run = make_run(tmp_path / "run")
    process, url = start_server(run, "ana")
    try:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and len(parse_qs(parts.query)["token"][0]) >= 32
        bare = f"http://127.0.0.1:{parts.port}/"
        assert httpx.get(bare, timeout=10).status_code == 403
        assert httpx.get(bare + "?token=%C3%A9t%C3%A9", timeout=10).status_code == 403
        with session(url) as opened:
            assert opened.get("/").status_code == 200 and opened.get("/api/progress").json()["actions"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


# --- cut-offs: what is ticked first -------------------------------------------------------------------


def ticked(html: str) -> dict[str, bool]:
    """Impact id -> whether its box is ticked on a review page."""
    return {
        m.group(1): bool(m.group(2))
        for m in re.finditer(r'<input type="checkbox" name="codes" value="([a-z_]+)"( checked)?', html)
    }


def test_no_impact_is_ticked_below_its_cutoff(tmp_path):
    run_dir = make_run(tmp_path / "run", thresholds=True)  # the run lists its cut-offs (0.5 each)
    segments = pd.read_csv(run_dir / "segments.csv")
    queue = pd.read_csv(run_dir / "review_queue.csv")
    first = queue.segment_id.iloc[0]
    row = segments.index[segments.segment_id == first][0]
    low = next(i for i in IDS if segments.at[row, f"p:{i}"] < 0.5)
    claimed = [*str(segments.at[row, "codes"]).split(";"), low]  # a table claiming a code below its cut-off
    segments.loc[row, "codes"] = ";".join(c for c in claimed if c)
    segments.to_csv(run_dir / "segments.csv", index=False)

    with app_client(run_dir) as c:
        for segment_id in c.run.segments.segment_id[c.run.segments.role == "participant"]:
            boxes = ticked(c.get("/", params={"segment": segment_id, "lang": "en"}).text)
            assert len(boxes) == len(IDS)
            for impact_id, is_ticked in boxes.items():
                p = float(c.run.segments.at[segment_id, f"p:{impact_id}"])
                assert is_ticked == (p >= 0.5 and impact_id in c.run.model_codes(segment_id)), (segment_id, impact_id)
        html = c.get("/", params={"segment": first, "lang": "en"}).text
        assert not ticked(html)[low] and "cut-off 0.50" in html and "≈" not in html

    plain = make_run(tmp_path / "plain")  # no cut-offs listed: read off the run, and shown as estimates
    with app_client(plain) as c:
        for impact_id, cutoff in c.run.thresholds.items():
            carried = c.run.segments.codes.str.contains(impact_id).any()
            assert cutoff.kind == ("above" if not carried else cutoff.kind) and cutoff.kind != "exact"
            if cutoff.kind == "above":
                assert cutoff.low < 0.5
            else:
                assert cutoff.low <= 0.5 <= cutoff.high  # the true cut-off lies in what the page says
        html = c.get("/", params={"segment": c.run.queue[0], "lang": "en"}).text
        number = "{:.2f}".format
        assert all(escape(f"cut-off {cutoff.text(number)}") in html for cutoff in c.run.thresholds.values())


# --- filters, browse, transcript --------------------------------------------------------------------


def listed(html: str) -> list[str]:
    """Segment ids of the rows of the browse view, in order."""
    return re.findall(r'<tr class="row[^"]*" data-segment-id="([^"]+)"', html)


def test_filters_and_browse_reach_segments_outside_the_queue(tmp_path):
    run_dir = make_run(tmp_path / "run", budget=0.5)  # some participant segments stay out of the queue
    with app_client(run_dir) as c:
        run = c.run
        segments = run.segments
        participant = segments[segments.role == "participant"]
        outside = [s for s in participant.segment_id if s not in run.queue]
        assert outside and run.queue
        everything = listed(c.get("/browse", params={"lang": "en"}).text)
        assert everything == list(participant.segment_id)  # transcript order, queued or not
        assert listed(c.get("/browse", params={"status": "auto_accepted"}).text) == outside

        decide(c, run.queue[0], "change", codes=[IDS[7]])
        decide(c, outside[0], "reject")  # a decision outside the queue, reached by browsing
        skipped = next(s for s in run.queue[1:] if s != outside[0])
        decide(c, skipped, "skip")
        assert listed(c.get("/browse", params={"status": "reviewed"}).text) == [
            s for s in participant.segment_id if s in {run.queue[0], outside[0]}
        ]
        assert listed(c.get("/browse", params={"status": "skipped"}).text) == [skipped]
        queued = [s for s in participant.segment_id if s in run.queue and s not in {run.queue[0], skipped}]
        assert listed(c.get("/browse", params={"status": "queued"}).text) == queued
        suggested = [s for s in participant.segment_id if run.model_codes(s)]
        assert listed(c.get("/browse", params={"status": "suggested"}).text) == suggested
        french = list(participant.segment_id[participant.language == "fr"])
        assert listed(c.get("/browse", params={"language": "fr"}).text) == french
        assert listed(c.get("/browse", params={"source": "alpha.txt"}).text) == [
            s for s in participant.segment_id if s.startswith("alpha.txt")
        ]
        interviewer = list(segments.segment_id[segments.role == "interviewer"])
        assert listed(c.get("/browse", params={"role": "interviewer"}).text) == interviewer
        assert listed(c.get("/browse", params={"reviewer": "ana"}).text) == listed(
            c.get("/browse", params={"status": "reviewed"}).text
        )
        assert listed(c.get("/browse", params={"reviewer": "nobody"}).text) == []
        # impact: the model's suggestion or a reviewer's decision
        with_7 = [s for s in participant.segment_id if IDS[7] in run.model_codes(s) or s == run.queue[0]]
        assert listed(c.get("/browse", params={"impact": IDS[7]}).text) == with_7
        category = BOOK.category_of(IDS[0])
        in_category = [
            s
            for s in participant.segment_id
            if any(BOOK.category_of(i) == category for i in run.model_codes(s))
            or (s == run.queue[0] and BOOK.category_of(IDS[7]) == category)
        ]
        assert listed(c.get("/browse", params={"category": category}).text) == in_category
        assert listed(c.get("/browse", params={"impact": "no_such", "status": "bogus"}).text) == everything

        # queue mode with a filter: the first segment still waiting that the filter keeps
        waiting_fr = [s for s in run.queue if s in french and s not in {run.queue[0], skipped}]
        assert shown_segment(c.get("/", params={"language": "fr"}).text) == waiting_fr[0]
        # browse mode: a decision moves on to the next listed segment, queued or not
        answer = decide(c, outside[0], "accept", where=f"mode=browse&source={outside[0].split(':')[0]}")
        following = everything[everything.index(outside[0]) + 1 :]
        same_source = [s for s in following if s.split(":")[0] == outside[0].split(":")[0]]
        assert shown_segment(answer.text) == (same_source[0] if same_source else None)
        page = c.get("/", params={"segment": everything[1], "mode": "browse"}).text
        following, preceding = (everything[i].replace(":", "%3A") for i in (2, 0))
        assert f'id="next-link" href="{c.base}/?segment={following}&amp;mode=browse"' in page
        assert f'id="previous-link" href="{c.base}/?segment={preceding}&amp;mode=browse"' in page


def test_transcript_view_shows_the_whole_interview_with_codes_in_the_margin(client):
    run = client.run
    decided = run.queue[0]
    source = run.segment(decided).source
    decide(client, decided, "change", codes=[IDS[4], IDS[11]])
    html = client.get("/transcript", params={"source": source, "focus": decided, "lang": "en"}).text
    rows = run.segments[run.segments.source == source]
    positions = [html.index(escape(text)) for text in rows.text]
    assert positions == sorted(positions)  # every segment, in transcript order
    for speaker in rows.speaker.unique():
        assert escape(speaker) in html
    links = re.findall(r'<a class="seg row[^"]*" href="([^"]+)" data-segment-id="([^"]+)"', html)
    participant = list(rows.segment_id[rows.role == "participant"])
    assert [segment_id for _, segment_id in links] == participant  # interviewer turns: context, no link
    assert all(href.startswith(f"{client.base}/?segment=") and "mode=browse" in href for href, _ in links)
    row_html = html[html.index(f'data-segment-id="{decided}"') :].split('class="seg-row', 1)[0]
    for impact_id in run.suggested(decided):
        assert escape(BOOK.impact(impact_id).name["en"]) in row_html  # the model's suggestion
    assert f"✓ {escape(BOOK.impact(IDS[4]).name['en'])}" in row_html  # the decision
    assert f"✓ {escape(BOOK.impact(IDS[11]).name['en'])}" in row_html
    assert 'data-focus="seg-' in html and 'seg-row focus"' in html
    french = client.get("/transcript", params={"source": source, "lang": "fr"}).text
    assert f"✓ {escape(BOOK.impact(IDS[4]).name['fr'])}" in french
    # a filter dims the segments it leaves out
    filtered = client.get("/transcript", params={"source": source, "status": "reviewed"}).text
    assert filtered.count('class="seg-row dim') == len(participant) - 1
    # the review page links to its place in the transcript
    page = client.get("/", params={"segment": decided}).text
    assert f'href="{client.base}/transcript?source={source}&amp;focus={decided.replace(":", "%3A")}"' in page


def test_a_decision_with_a_code_the_codebook_no_longer_has_is_shown_marked(client, run_dir):
    """A review.db row naming a code the codebook does not have (an impact removed or renamed since):
    every page still answers, and shows the code as it is, marked unknown."""
    from pipeline.review import ReviewStore

    run = client.run
    segment_id = run.queue[0]
    row = run.segment(segment_id)
    ReviewStore(run_dir / "review.db").record(
        segment_id,
        row.source,
        int(row.start),
        int(row.end),
        "change",
        ["retired_code"],
        ["retired_code", IDS[2]],
        "ana",
        run.model_version,
        run_id=run.run_id,
        transcript_sha256=run.fingerprints[row.source],
    )
    pages = {
        "segment": client.get("/", params={"segment": segment_id, "lang": "en"}),
        "browse": client.get("/browse", params={"lang": "en"}),
        "history": client.get("/history", params={"lang": "fr"}),
        "transcript": client.get("/transcript", params={"source": row.source, "lang": "en"}),
        "agreement": client.get("/agreement", params={"lang": "en"}),
        "progress": client.get("/api/progress"),
        "decisions": client.get("/api/decisions"),
    }
    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    for name in ("segment", "browse", "transcript"):
        assert "retired_code (unknown code)" in pages[name].text, name
        assert escape(BOOK.impact(IDS[2]).name["en"]) in pages[name].text, name
    assert "retired_code (code inconnu)" in pages["history"].text
    assert decide(client, segment_id, "accept").status_code == 200  # and the segment can be decided again


# --- undo and history -----------------------------------------------------------------------------


def test_undo_is_an_action_and_the_history_keeps_skips(client, run_dir):
    from pipeline.review import ReviewStore, latest_decisions

    q = client.run.queue
    decide(client, q[0], "accept")
    decide(client, q[1], "skip")
    decide(client, q[2], "change", codes=[IDS[3]], memo="a reason")
    sidebar = client.get("/", params={"lang": "en"}).text
    recent = sidebar[sidebar.index('id="recent"') :]
    assert recent.count("<li") == 3 and ">skip<" in recent and 'id="undo-button"' in recent
    assert 'id="undo-button" disabled' not in recent

    answer = client.post("/undo", data={"token": client.token}, follow_redirects=False)
    assert answer.status_code == 303 and q[2].replace(":", "%3A") in answer.headers["location"]  # back to it
    store = ReviewStore(run_dir / "review.db")
    assert set(latest_decisions(store.history()).segment_id) == {q[0]}
    client.post("/undo", data={"token": client.token})  # the skip, now
    assert shown_segment(client.get("/").text) == q[1]  # no longer pushed to the back of the queue
    history = store.history()
    assert list(history.action) == ["accept", "skip", "change", "undo", "undo"]
    assert list(history.undoes.iloc[3:]) == [history.id.iloc[2], history.id.iloc[1]]  # nothing deleted

    page = client.get("/history", params={"lang": "en"}).text
    assert page.count("<tr") == 1 + 5 and page.count('<tr class="undone">') == 2
    assert client.get("/api/progress").json()["reviewed"] == 1
    client.post("/undo", data={"token": client.token})
    assert client.post("/undo", data={"token": client.token}).status_code == 200  # nothing left: no error
    assert ReviewStore(run_dir / "review.db").decisions().empty
    assert 'id="undo-button" disabled' in client.get("/").text
    conn = sqlite3.connect(run_dir / "review.db")
    with pytest.raises(sqlite3.IntegrityError):  # an undo must name what it takes back
        conn.execute(
            'INSERT INTO decisions (segment_id, source, start, "end", action, codes_before, reviewer, '
            "model_version, decided_at) VALUES ('a:0-1', 'a', 0, 1, 'undo', '', 'x', 'm', 'now')"
        )
    conn.close()


# --- two languages ------------------------------------------------------------------------------------


class VisibleText(HTMLParser):
    """The text a reader sees on a page, leaving out whatever sits inside an element marked lang="en"."""

    VOID = {"meta", "link", "input", "br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.parts: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        english = attrs.get("lang") == "en" or bool(self.stack and self.stack[-1])
        if tag not in self.VOID:
            self.stack.append(english and tag != "html")
        if not english:
            self.attributes += [attrs[a] for a in ("title", "placeholder", "aria-label", "label") if attrs.get(a)]

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(parser.parts + parser.attributes)


def test_the_whole_interface_speaks_french(client):
    from pipeline.review import EN, FR

    assert set(EN) == set(FR)
    english_only = {v for k, v in EN.items() if v and v != FR[k] and len(v) > 3 and k not in ("key_language",)}
    english_only -= {"Français", "English"}
    run = client.run
    q = run.queue
    decide(client, q[0], "change", codes=[IDS[2]])
    decide(client, q[1], "skip")
    french_segment = next(s for s in q if run.segment(s).source == "beta.txt")
    pages = {
        "segment": client.get("/", params={"segment": french_segment, "lang": "fr"}).text,
        "browse": client.get("/browse", params={"language": "fr"}).text,
        "transcript": client.get("/transcript", params={"source": "beta.txt"}).text,
        "agreement": client.get("/agreement").text,
        "history": client.get("/history").text,
        "filtered out": client.get("/", params={"status": "reviewed", "impact": IDS[20]}).text,
    }
    for name, html in pages.items():
        assert '<html lang="fr">' in html, name
        text = VisibleText.of(html).replace(run.model_version, "")  # data, not labels
        leaks = sorted(label for label in english_only if re.search(rf"(?<![\w·]){re.escape(label)}(?![\w·])", text))
        assert not leaks, (name, leaks)
    page = pages["segment"]
    for impact_id in IDS:  # the codebook in French, definitions in English and said to be
        assert escape(BOOK.impact(impact_id).name["fr"]) in page
    assert escape(FR["definitions_english_only"]) in page and '<div lang="en">' in page
    assert "Accepter" in page and "Rejeter : aucun impact" in page and "Annuler" in page
    assert re.search(r"\d,\d\d", page)  # numbers as French readers write them


def test_the_language_follows_the_browser_never_the_data_until_the_reviewer_chooses(run_dir):
    """Accept-Language chooses the interface's language (then the reviewer's toggle, kept in a cookie); a
    French transcript first in the queue never turns an English browser's interface French."""
    from pipeline.review import browser_language

    assert browser_language("fr-CA,fr;q=0.9,en;q=0.8") == "fr" and browser_language("de-DE,en;q=0.5") == "en"
    assert browser_language("en;q=0.2, fr;q=0.9") == "fr" and browser_language("") == "en"
    assert browser_language("de, es;q=0.8") == "en" and browser_language("fr;q=x") == "en"
    with app_client(run_dir) as c:
        french = next(s for s in c.run.queue if c.run.segment(s).source == "beta.txt")
        english = next(s for s in c.run.queue if c.run.segment(s).source == "alpha.txt")
        en_browser = {"Accept-Language": "en-GB,en;q=0.9"}
        fr_browser = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
        for url, params in (("/", {"segment": french}), ("/transcript", {"source": "beta.txt"}), ("/", {})):
            assert '<html lang="en">' in c.get(url, params=params, headers=en_browser).text
            assert '<html lang="en">' in c.get(url, params=params).text  # no header: English
        assert '<html lang="fr">' in c.get("/", params={"segment": english}, headers=fr_browser).text
        c.get("/", params={"segment": english, "lang": "fr"})  # the reviewer's choice sticks
        assert '<html lang="fr">' in c.get("/", params={"segment": english}, headers=en_browser).text
        c.get("/", params={"lang": "en"})
        assert '<html lang="en">' in c.get("/", params={"segment": french}, headers=fr_browser).text


def test_every_impact_can_be_found_by_name_in_either_language(client):
    from pipeline.review import searchable

    html = client.get("/", params={"segment": client.run.queue[0]}).text
    rows = dict(re.findall(r'data-search="([^"]+)" data-code="([a-z_]+)"', html))
    assert sorted(rows.values()) == sorted(IDS)  # every impact, not only the nine with number keys
    haystack = {code: text for text, code in rows.items()}
    for impact_id in IDS:
        impact = BOOK.impact(impact_id)
        for name in (impact.name["en"], impact.name["fr"]):
            assert searchable(name) in markupsafe.Markup(haystack[impact_id]).unescape()
    assert searchable("Résistance ÉTÉ") == "resistance ete"  # accents and case do not matter


# --- two reviewers, blind, and their agreement --------------------------------------------------------


def test_two_blind_reviewers_and_their_agreement(run_dir, run_cli, tmp_path):
    from pipeline.agreement import cohen_kappa

    with app_client(run_dir, "ana", blind=True) as ana, app_client(run_dir, "ben", blind=True) as ben:
        run = ana.run
        shared = run.queue  # blind reviewers see each other's figures once both have decided the whole queue
        assert len(shared) == 9
        ana_codes = [[IDS[0]], [IDS[0], IDS[3]], [], [IDS[3]], [IDS[0]], [IDS[5]], [IDS[1]], [], [IDS[2]]]
        ben_codes = [[IDS[0]], [IDS[3]], [], [IDS[3]], [IDS[5]], [IDS[5]], [IDS[1]], [IDS[2]], [IDS[2]]]
        for segment_id, codes in zip(shared, ana_codes, strict=True):
            decide(ana, segment_id, "change", codes=codes)
        # ben sees none of it: same queue start, nothing decided, nothing ticked (blind: not the model's codes)
        page = ben.get("/", params={"lang": "en"}).text
        assert shown_segment(page) == run.queue[0] and "Decided:" not in page
        assert not any(ticked(page).values()) and set(ticked(page)) == set(IDS)
        assert ben.get("/api/progress").json()["reviewed"] == 0 and ben.get("/api/decisions").json() == []
        assert "ana" not in VisibleText.of(ben.get("/history").text)
        for segment_id, codes in zip(shared[:6], ben_codes[:6], strict=True):
            decide(ben, segment_id, "change", codes=codes)
        assert ana.get("/api/progress").json()["reviewed"] == 9
        waiting = ben.get("/agreement", params={"lang": "en"}).text
        assert "ana" not in VisibleText.of(waiting) and "data-code=" not in waiting and "in common" not in waiting
        assert "3 queued segments left for you" in VisibleText.of(waiting)
        for segment_id, codes in zip(shared[6:], ben_codes[6:], strict=True):
            decide(ben, segment_id, "change", codes=codes)

        page = ben.get("/agreement", params={"lang": "en"}).text
    ids = list(IDS)
    a = [int(i in codes) for codes in ana_codes for i in ids]
    b = [int(i in codes) for codes in ben_codes for i in ids]
    m = [int(i in run.model_codes(s)) for s in shared for i in ids]
    pooled = f"{cohen_kappa(a, b):.2f}"
    assert f'<td class="pooled-between">{pooled}</td>' in page and "9 segments in common" in page
    assert f"<td>{cohen_kappa(m, a):.2f}</td>" in page and f"<td>{cohen_kappa(m, b):.2f}</td>" in page
    per_impact_0 = cohen_kappa([int(IDS[0] in c) for c in ana_codes], [int(IDS[0] in c) for c in ben_codes])
    row = page[page.index(f'data-code="{IDS[0]}"') :].split("</tr>")[0]
    assert f"<td>{per_impact_0:.2f}</td>" in row
    assert "<td>—</td>" in page[page.index(f'data-code="{IDS[20]}"') :].split("</tr>")[0]  # nobody used it

    with app_client(run_dir, "cleo") as cleo:  # not blind: everyone's decisions, and the pair in the header
        page = cleo.get("/", params={"segment": shared[1], "lang": "en"}).text
        assert page.count("Decided:") == 2 and f"κ ana–ben <b>{pooled}</b>" in page

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "both.csv", "--reviews-only")
    assert result.code == 0
    exported = pd.read_csv(tmp_path / "both.csv")
    assert set(exported.coder) == {"ana", "ben"}  # each reviewer's own codings, for imri agreement
    assert len(exported) == sum(map(len, ana_codes)) + sum(map(len, ben_codes))


def test_a_blind_reviewer_cannot_read_the_other_from_the_agreement_view(tmp_path):
    """Blind: while either reviewer still has queued segments, the agreement view shows nothing that
    changes with the other's decisions (no pair, no "segments in common", no per-impact count)."""
    run_dir = make_run(tmp_path / "run", budget=0.5)  # some segments outside the queue
    with app_client(run_dir, "ana", blind=True) as ana, app_client(run_dir, "ben", blind=True) as ben:
        q = ana.run.queue
        for segment_id in q[:3]:
            decide(ana, segment_id, "change", codes=[IDS[0]])
        decide(ben, q[0], "change", codes=[IDS[0]])
        before = ana.get("/agreement", params={"lang": "en"}).text
        decide(ben, q[1], "change", codes=[IDS[4]])  # what ana would probe for
        decide(ben, q[2], "reject")
        after = ana.get("/agreement", params={"lang": "en"}).text
        assert after == before  # nothing of ben's work moves ana's page
        assert "ben" not in VisibleText.of(after) and "data-code=" not in after
        for segment_id in q[3:]:  # ana done, ben not: still nothing
            decide(ana, segment_id, "reject")
        assert "ben" not in VisibleText.of(ana.get("/agreement").text)
        for segment_id in q[3:]:  # both done: the pair, over the queue
            decide(ben, segment_id, "reject")
        both_done = ana.get("/agreement", params={"lang": "en"}).text
        assert f"{len(q)} segments in common" in both_done and "data-code=" in both_done
        # deciding outside the queue afterwards changes nothing
        outside = next(s for s in ana.run.segments.segment_id[ana.run.segments.role == "participant"] if s not in q)
        decide(ben, outside, "change", codes=[IDS[1]])
        decide(ana, outside, "change", codes=[IDS[1]])
        assert f"{len(q)} segments in common" in ana.get("/agreement", params={"lang": "en"}).text


def test_blind_mode_shows_nothing_of_the_model_or_the_other_reviewer_then_reconciles(run_dir):
    """Blind: every page reviewer B can open, after A decided everything, holds no model code ticked or
    named as a suggestion, no probability, no ranking, nothing of A; once both finished, the agreement
    view lists the disagreements and each consensus is stored with who made it."""
    from pipeline.review import CONSENSUS, ReviewRun, final_codings

    first, memo = "zelda_first", "ZELDA-MEMO-7"
    with app_client(run_dir, first, blind=True) as a, app_client(run_dir, "ben", blind=True) as b:
        run = a.run
        q = run.queue
        a_codes = [[IDS[(3 * k) % len(IDS)]] for k in range(len(q))]
        for segment_id, codes in zip(q, a_codes, strict=True):
            decide(a, segment_id, "change", codes=codes, memo=memo)
        assert decide(b, q[0], "accept").status_code == 400  # accepting hidden codes is not a blind decision

        def pages() -> list[str]:
            participant = run.segments.segment_id[run.segments.role == "participant"]
            urls = ["/", "/browse", "/browse?status=suggested", "/agreement", "/history", "/?lang=fr"]
            urls += [f"/transcript?source={source}" for source in TRANSCRIPTS]
            urls += [f"/browse?impact={i}" for i in IDS[:4]]
            got = [b.get(u).text for u in urls] + [b.get("/", params={"segment": s}).text for s in participant]
            reconcile = b.get("/reconcile", params={"first": first, "second": "ben"})
            assert reconcile.status_code == 404
            return got

        def assert_blind(html: str) -> None:
            text = VisibleText.of(html)
            assert first not in html and memo not in html  # nothing of the other reviewer
            assert "agreement with the model" not in text and "accord avec le modèle" not in text
            assert not re.search(r"\d[.,]\d\d", text), "a probability, cut-off or figure is shown"
            assert 'class="bar"' not in html and "chip model" not in html and 'value="accept"' not in html
            assert "Model:" not in text and "suggested" not in text.lower()
            assert not any(ticked(html).values())  # nothing ticked in advance
            listed_codes = re.findall(r'<li class="code[^"]*" data-search="[^"]*" data-code="([a-z_]+)"', html)
            assert listed_codes in ([], IDS)  # the codebook's order, not the model's ranking

        for html in pages():
            assert_blind(html)
        progress = b.get("/api/progress").json()
        assert "agreement" not in progress and progress["reviewed"] == 0
        assert b.get("/export", params={"format": "csv"}).status_code == 403  # the final coding holds A's codes
        assert b.get("/api/decisions").json() == []
        b_codes = [codes if k % 2 else [IDS[1]] for k, codes in enumerate(a_codes)]
        for segment_id, codes in zip(q[:-1], b_codes[:-1], strict=True):
            decide(b, segment_id, "change", codes=codes)
        mine = b.get("/api/decisions").json()
        assert len(mine) == len(q) - 1 and all("codes_before" not in d for d in mine)
        for html in pages():  # B not finished: still nothing of A
            html = re.sub(r'<p class="decided".*?</p>', "", html, flags=re.S)  # B's own decisions
            assert first not in html and memo not in html and "agreement with the model" not in VisibleText.of(html)
        decide(b, q[-1], "change", codes=b_codes[-1])

        finished = b.get("/", params={"lang": "en"}).text  # the finished screen: no model figures, no download
        assert 'id="finished"' in finished and 'id="export-blind"' in finished and "download-qdpx" not in finished
        assert 'id="summary-agreement"' not in finished and 'id="summary-changed"' not in finished
        # both finished: the disagreements, one by one
        page = b.get("/agreement", params={"lang": "en"}).text
        wrong = [s for k, s in enumerate(q) if set(a_codes[k]) != set(b_codes[k])]
        assert f"Disagreements to reconcile: {len(wrong)}" in page
        assert re.findall(r'<tr data-segment-id="([^"]+)"', page) == wrong
        url = re.search(r'id="reconcile-next" href="([^"]+)"', page).group(1)
        for k, segment_id in enumerate(wrong):
            shown = b.get(url.replace("&amp;", "&").removeprefix(b.base))
            assert shown.status_code == 200 and f'data-segment-id="{segment_id}"' in shown.text
            index = q.index(segment_id)
            both = VisibleText.of(shown.text)
            assert (
                BOOK.impact(a_codes[index][0]).name["en"] in both and BOOK.impact(b_codes[index][0]).name["en"] in both
            )
            consensus = [IDS[7]] if k == 0 else a_codes[index]
            answer = b.post(
                "/reconcile",
                data={"token": b.token, "segment_id": segment_id, "first": first, "second": "ben", "codes": consensus},
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text
            url = answer.headers["location"]
        assert url.endswith("/agreement")
        page = b.get("/agreement", params={"lang": "en"}).text
        assert "Every disagreement has a consensus." in page and "decided by ben" in page
    history = ReviewRun.load(run_dir).store().history()
    stored = history[history.reviewer == f"{CONSENSUS}ben"]
    assert list(stored.segment_id) == wrong and stored.codes_after.iloc[0] == IDS[7]
    final = final_codings(ReviewRun.load(run_dir))
    where = run.segment(wrong[0])
    on_first = final[(final.source == where.source) & (final.start <= where.start) & (final.end >= where.end)]
    assert set(on_first.coder) == {f"{CONSENSUS}ben"} and set(on_first.code) == {IDS[7]}


def test_history_shows_text_memo_and_reviewer_and_the_finished_screen_sums_up(tmp_path):
    """History: each action with its segment's text, memo and reviewer. Finished: decided, changed,
    agreement with the model, time spent; the export as a download; retraining into a new model folder."""
    import io

    run_dir = make_run(tmp_path / "run")
    card = json.loads((run_dir / "model.json").read_text(encoding="utf-8"))
    card["training_data"] = {"gold": ["data/gold", "my gold"], "coders": ["A"]}
    (run_dir / "model.json").write_text(json.dumps(card), encoding="utf-8")
    with app_client(run_dir, "ana") as c:
        q = c.run.queue
        decide(c, q[0], "change", codes=[IDS[9]], memo="why: the sister")
        for segment_id in q[1:]:
            decide(c, segment_id, "accept")
        history = c.get("/history", params={"lang": "en"}).text
        row = history[history.index(escape(c.run.segment(q[0]).text)) :].split("</tr>")[0]
        assert "why: the sister" in row and "ana" in history and BOOK.impact(IDS[9]).name["en"] in row
        done = c.get("/", params={"lang": "en"}).text
        summary = VisibleText.of(done[done.index('id="session-summary"') :].split("</dl>")[0])
        changed = int(set(c.run.model_codes(q[0])) != {IDS[9]})
        assert re.search(rf"segments you decided {len(q)}\b", summary)
        assert re.search(rf"where you changed the model's codes {changed}\b", summary)
        assert f"{len(q) - changed}/{len(q)}" in summary and re.search(r"time spent \d+ min", summary)
        retrain = markupsafe.Markup(re.search(r'id="retrain-command">([^<]+)<', done).group(1)).unescape()
        assert retrain == f"imri train --gold data/gold --gold 'my gold' --coder A --include-reviews {run_dir}"
        assert "--out" not in retrain
        download = c.get("/export", params={"format": "csv"})
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        exported = pd.read_csv(io.StringIO(download.text), keep_default_na=False)
        reviewed = exported[exported.coder == "ana"]
        assert set(reviewed.status) == {"reviewed"} and IDS[9] in set(reviewed.code)
        assert c.get("/export", params={"format": "qdpx"}).content[:2] == b"PK"
    with app_client(make_run(tmp_path / "other"), "ben") as c:  # no gold set known: no command
        for segment_id in c.run.queue:
            decide(c, segment_id, "reject")
        done = c.get("/", params={"lang": "en"}).text
        assert 'id="retrain-unknown"' in done and "imri train" not in done


# --- export ----------------------------------------------------------------------------------------


def test_export_round_trip(client, run_dir, run_cli, tmp_path):
    from pipeline.model import read_codings
    from pipeline.qdpx import read_qdpx
    from pipeline.review import reviewed_codings

    q = client.run.queue
    decide(client, q[0], "change", codes=[IDS[1], IDS[4]], memo="two codes")
    decide(client, q[1], "reject")
    decide(client, q[2], "accept")
    decide(client, q[2], "change", codes=[IDS[7]])  # the latest decision wins
    decide(client, q[3], "skip")

    reviews = reviewed_codings(run_dir)
    assert set(reviews.segment_id) == {q[0], q[1], q[2]} and set(reviews.coder) == {"ana"}
    assert reviews[reviews.segment_id == q[1]].code.tolist() == [""]  # "no impact"
    expected = {
        (client.run.segment(s).source, int(client.run.segment(s).start), int(client.run.segment(s).end), c)
        for s, codes in ((q[0], [IDS[1], IDS[4]]), (q[2], [IDS[7]]))
        for c in codes
    }

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "reviews.csv", "--reviews-only")
    assert result.code == 0 and "3 reviewed segments, 3 codings" in result.out
    codings = read_codings(tmp_path / "reviews.csv", BOOK)
    assert {(r.source, r.start, r.end, r.code) for r in codings.itertuples()} == expected
    assert set(codings.coder) == {"ana"}
    exported = pd.read_csv(tmp_path / "reviews.csv", keep_default_na=False)
    assert exported.description.tolist().count("two codes") == 2
    # each code named beside its id, in its transcript's language (beta.txt is French)
    language = client.run.transcript_language
    assert exported.code_name.tolist() == [
        BOOK.impact(c).name[language[s]] for c, s in zip(exported.code, exported.source, strict=True)
    ]

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "reviews.qdpx", "--reviews-only")
    assert result.code == 0
    project = read_qdpx(tmp_path / "reviews.qdpx")
    assert set(project.users.values()) == {"ana"}
    assert {project.sources[c.source][c.start : c.end] for c in project.codings} == {
        client.run.segment(s).text for s in (q[0], q[2])
    }
    assert {(c.source + ".txt", c.start, c.end, c.code) for c in project.codings} == expected
    assert project.sources["alpha"] == TRANSCRIPTS["alpha.txt"]  # the run's transcripts, whole

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "history.csv", "--history")
    assert result.code == 0 and "5 review actions" in result.out
    history = pd.read_csv(tmp_path / "history.csv")
    assert "text" not in history.columns and len(history) == 5


def test_the_final_export_holds_the_whole_run_and_survives_a_round_trip(run_dir, run_cli, tmp_path):
    """``imri review export``: reviewed decisions, consensus where there is one, the model's codes on the
    unreviewed text (marked, with their confidence), as passages; import-qdpx gives back the same codings."""
    from pipeline.qdpx import read_qdpx
    from pipeline.review import CONSENSUS

    with app_client(run_dir, "ana") as ana, app_client(run_dir, "ben") as ben:
        run = ana.run
        q = run.queue
        decide(ana, q[0], "change", codes=[IDS[1]])
        decide(ana, q[1], "reject")
        decide(ben, q[1], "change", codes=[IDS[2]])
        run.store().record(
            *(q[1], run.segment(q[1]).source, run.segment(q[1]).start, run.segment(q[1]).end),
            *("change", run.model_codes(q[1]), [IDS[6]], f"{CONSENSUS}cleo", run.model_version),
            run_id=run.run_id,
            transcript_sha256=run.fingerprints[run.segment(q[1]).source],
        )
    result = run_cli("review", "export", run_dir, "--out", tmp_path / "final.csv")
    assert result.code == 0, result.err
    final = pd.read_csv(tmp_path / "final.csv", keep_default_na=False)
    model = "imri model test-model 1"
    assert set(final.coder) == {"ana", f"{CONSENSUS}cleo", model}  # ben's decision gave way to the consensus
    seg = run.segment
    assert final[final.coder == "ana"][["source", "start", "end", "code"]].values.tolist() == [
        [seg(q[0]).source, seg(q[0]).start, seg(q[0]).end, IDS[1]]
    ]
    assert final[final.coder == f"{CONSENSUS}cleo"].code.tolist() == [IDS[6]]
    assert set(final[final.coder == model].status) == {"unreviewed"}
    assert final[final.coder == model].description.str.match(r"unreviewed: .*p=0\.\d{3}$").all()
    # the model's codes everywhere but on the reviewed segments, as passages: every coded sentence is covered
    participant = run.segments[run.segments.role == "participant"]
    for r in participant.itertuples():
        mine = final[(final.coder == model) & (final.source == r.source)]
        covered = mine[(mine.start <= r.start) & (mine.end >= r.end)]
        expected = set() if r.segment_id in (q[0], q[1]) else set(split(r.codes))
        assert set(covered.code) == expected, r.segment_id
    assert (final[final.coder == model].groupby(["source", "code"]).size() >= 1).all()
    merged = final[(final.coder == model) & (final.end - final.start > participant.text.str.len().max())]
    assert len(merged), "adjacent sentences of one turn with the same code are one passage"

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "final.qdpx")
    assert result.code == 0, result.err
    project = read_qdpx(tmp_path / "final.qdpx")
    assert set(project.users.values()) == set(final.coder)
    result = run_cli("import-qdpx", tmp_path / "final.qdpx", "--out", tmp_path / "back")
    assert result.code == 0, result.err
    back = pd.read_csv(tmp_path / "back" / "codings.csv", keep_default_na=False)
    key = ["source", "start", "end", "code", "coder"]
    assert sorted(map(tuple, back[key].values.tolist())) == sorted(map(tuple, final[key].values.tolist()))
    for source, text in TRANSCRIPTS.items():
        assert (tmp_path / "back" / "transcripts" / source).read_text(encoding="utf-8") == text


def split(codes: str) -> list[str]:
    return [c for c in str(codes).split(";") if c]


# --- decisions belong to their run --------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, segment_id TEXT NOT NULL, source TEXT NOT NULL,
    start INTEGER NOT NULL CHECK (start >= 0), "end" INTEGER NOT NULL CHECK ("end" > start),
    action TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'change', 'skip', 'memo')),
    codes_before TEXT NOT NULL, codes_after TEXT, memo TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL CHECK (reviewer <> ''), model_version TEXT NOT NULL, decided_at TEXT NOT NULL,
    CHECK ((action IN ('skip', 'memo')) = (codes_after IS NULL))
);
CREATE INDEX decisions_by_segment ON decisions (segment_id, id);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
PRAGMA user_version = 1;
"""


def test_recoding_the_folder_sets_older_decisions_aside(tmp_path, run_cli):
    from pipeline.review import ReviewRun, compute_run_id, reviewed_codings

    run_dir = make_run(tmp_path / "run")
    with app_client(run_dir) as c:
        first_id = c.run.run_id
        alpha = [s for s in c.run.queue if s.startswith("alpha.txt")]
        beta = [s for s in c.run.queue if s.startswith("beta.txt")]
        for segment_id in alpha[:2] + beta[:2]:
            decide(c, segment_id, "change", codes=[IDS[6]])
        decide(c, beta[2], "skip")
    assert compute_run_id(make_run(run_dir)) == first_id  # the same run again: same id, nothing set aside
    assert len(reviewed_codings(run_dir)) == 4

    # `imri code` into the same folder, now with beta only and alpha edited under the same name
    edited = {"beta.txt": TRANSCRIPTS["beta.txt"], "alpha.txt": TRANSCRIPTS["alpha.txt"].replace("sister", "cousin")}
    make_run(run_dir, transcripts=edited)
    run = ReviewRun.load(run_dir)
    assert run.run_id != first_id
    assert set(alpha[:2]) <= set(run.segments.segment_id)  # same offsets, so the ids alone would match
    reviews = reviewed_codings(run_dir)
    assert set(reviews.segment_id) == set(beta[:2])  # the edited transcript's decisions are set aside
    result = run_cli("review", "export", run_dir, "--out", tmp_path / "reviews.csv", "--reviews-only")
    assert result.code == 0 and "2 reviewed segments" in result.out and "2 earlier decision(s) left out" in result.out
    assert set(pd.read_csv(tmp_path / "reviews.csv").source) == {"beta.txt"}
    with app_client(run_dir) as c:
        assert c.get("/api/progress").json()["set_aside"] == 2
        assert c.get("/api/progress").json()["reviewed"] == 2
        page = c.get("/", params={"lang": "en"}).text
        assert "2 earlier decision(s) set aside" in page
        assert shown_segment(page) not in set(beta[:2])
        assert f"alpha.txt {alpha[0].split(':')[1].replace('-', '–')}" not in page.split('id="recent"')[1]
        # every action of this run is tied to it
        decide(c, alpha[0], "accept")
        history = c.run.store().history()
        assert history.run_id.iloc[-1] == run.run_id and history.run_id.iloc[0] == first_id
        assert history.transcript_sha256.iloc[-1] == run.fingerprints["alpha.txt"]

    # a run of other transcripts only: every earlier decision is set aside, none is exported or trained on
    make_run(run_dir, transcripts={"gamma.txt": TRANSCRIPTS["alpha.txt"]})
    assert reviewed_codings(run_dir).empty
    result = run_cli("review", "export", run_dir, "--out", tmp_path / "none.csv", "--reviews-only")
    assert "0 reviewed segments" in result.out and "5 earlier decision(s) left out" in result.out


def test_the_app_follows_the_folder_when_it_is_coded_again(tmp_path):
    from pipeline.review import ReviewRun

    run_dir = make_run(tmp_path / "run")
    with app_client(run_dir) as c:
        first = c.run.run_id
        assert shown_segment(c.get("/", params={"lang": "en"}).text).startswith(("alpha.txt", "beta.txt"))
        # `imri code` writes the folder again, other transcripts, while the app runs
        make_run(run_dir, transcripts={"gamma.txt": TRANSCRIPTS["alpha.txt"]})
        shown = shown_segment(c.get("/", params={"lang": "en"}).text)
        assert shown.startswith("gamma.txt:")
        assert decide(c, shown, "accept").status_code == 200
        rerun = ReviewRun.load(run_dir)
        history = rerun.store().history()
        assert rerun.run_id != first and history.run_id.iloc[-1] == rerun.run_id
        assert c.get("/api/progress").json()["reviewed"] == 1  # the new run's decision, counted by the new run

        # a folder caught half-written: a clear 503 and the old run is not served, then it opens once whole
        (run_dir / "model.json").write_text("{", encoding="utf-8")
        refused = c.get("/", params={"lang": "en"})
        assert refused.status_code == 503 and "the run folder changed and cannot be opened now" in refused.text
        make_run(run_dir)
        assert shown_segment(c.get("/", params={"lang": "en"}).text).startswith(("alpha.txt", "beta.txt"))


def test_a_version_1_review_database_is_upgraded_in_place(run_dir):
    from pipeline.review import ReviewRun, ReviewStore, reviewed_codings

    run = ReviewRun.load(run_dir)
    first = run.segment(run.queue[0])
    conn = sqlite3.connect(run_dir / "review.db")
    conn.executescript(V1_SCHEMA)
    conn.execute(
        'INSERT INTO decisions (segment_id, source, start, "end", action, codes_before, codes_after, reviewer, '
        "model_version, decided_at) VALUES (?, ?, ?, ?, 'change', '', ?, 'old', 'm-1', '2024-01-01T00:00:00')",
        (first.segment_id, first.source, int(first.start), int(first.end), IDS[9]),
    )
    conn.execute(
        'INSERT INTO decisions (segment_id, source, start, "end", action, codes_before, codes_after, reviewer, '
        "model_version, decided_at) VALUES ('gone.txt:0-5', 'gone.txt', 0, 5, 'reject', '', '', 'old', 'm-1', 'x')"
    )
    conn.commit()
    conn.close()

    store = ReviewStore(run_dir / "review.db")
    history = store.history()
    assert list(history.id) == [1, 2] and history.run_id.isna().all() and history.codes_after.iloc[0] == IDS[9]
    with sqlite3.connect(run_dir / "review.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM decisions")
    assert store.undo("old", keep=run.applies_to).id == 1 and store.history().action.iloc[-1] == "undo"
    assert list(reviewed_codings(run_dir).segment_id) == []  # the change was undone; gone.txt set aside
    assert store.integrity() == "ok"


# --- killing the server ----------------------------------------------------------------------------


def start_server(run: Path, reviewer: str, *options: str) -> tuple[subprocess.Popen, str]:
    """``imri review serve RUN --port 0`` in a child process; returns it and the URL of its first line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "review",
            "serve",
            str(run),
            "--port",
            "0",
            "--reviewer",
            reviewer,
            *options,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"no URL on the first line: {url!r} {process.stderr.read()[-2000:]}")
    return process, url


@contextlib.contextmanager
def session(url: str):
    """An HTTP client that opened the printed URL; its base is the page it was redirected to (the app)."""
    import httpx

    with httpx.Client(timeout=10, follow_redirects=True) as client:
        opened = client.get(url)
        assert opened.status_code == 200 and "token=" not in str(opened.url)  # redirected without the secret
        client.base_url = str(opened.url)
        yield client


def test_killing_the_server_mid_decisions_loses_nothing(tmp_path):
    import httpx

    from pipeline.review import ReviewRun, ReviewStore

    run = make_run(tmp_path / "run")
    targets = list(ReviewRun.load(run).queue)
    process, url = start_server(run, "kill-test")
    try:
        with session(url) as opened:
            token = re.search(r'name="token" value="([^"]+)"', opened.get("/").text).group(1)
            app_url = str(opened.base_url)
        acknowledged: list[str] = []
        stop = threading.Event()

        def post_decisions(worker: int) -> None:
            with httpx.Client(base_url=app_url, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    memo = f"w{worker}-{i}"
                    data = {
                        "segment_id": targets[(worker + i) % len(targets)],
                        "action": "change",
                        "token": token,
                        "codes": [IDS[i % len(IDS)], IDS[(i + 3) % len(IDS)]],
                        "memo": memo,
                    }
                    try:
                        answer = http.post("/decide", data=data)
                    except httpx.TransportError:
                        return  # the server died mid-request: this one was never acknowledged
                    if answer.status_code == 303:
                        acknowledged.append(memo)

        workers = [threading.Thread(target=post_decisions, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)  # with four requests in flight
        process.wait(timeout=10)
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()
    assert len(acknowledged) >= 40

    conn = sqlite3.connect(run / "review.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT memo, codes_after, reviewer, model_version, decided_at FROM decisions").fetchall()
    conn.close()
    stored = {memo for memo, *_ in rows}
    assert set(acknowledged) <= stored  # every acknowledged decision survived
    assert all(
        len(codes.split(";")) == 2 and reviewer == "kill-test" and version and when
        for _, codes, reviewer, version, when in rows
    )  # and no half-written one
    assert ReviewStore(run / "review.db").integrity() == "ok"

    process, url = start_server(run, "after-restart")  # the same database serves again
    try:
        with session(url) as opened:
            stats = opened.get("/api/progress").json()
        assert stats["actions"] == len(rows)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


# --- a real model: training with reviews, simulate -------------------------------------------------

SMALL_GOLD = ["bc-01", "bc-02", "on-01", "qc-01", "qc-02", "nb1-01"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A gold folder of six transcripts and a real ``imri code`` run (zero-shot, use-m3) on three transcripts."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    base = tmp_path_factory.mktemp("review-real")
    gold = base / "gold"
    (gold / "transcripts").mkdir(parents=True)
    for name in SMALL_GOLD:
        for path in (ROOT / "data" / "gold" / "transcripts").glob(f"{name}.*"):
            (gold / "transcripts" / path.name).write_bytes(path.read_bytes())
    codings = pd.read_csv(ROOT / "data" / "gold" / "codings.csv")
    codings[codings.source.isin([f"{n}.txt" for n in SMALL_GOLD])].to_csv(gold / "codings.csv", index=False)
    params = base / "params.yaml"
    # the rule-based sentencizer (no spaCy model to load) and two folds keep these tests quick
    params.write_text(
        "segment:\n  spacy_models: {}\nembed:\n  encoder: use-m3\ntrain:\n  cv_folds: 2\n", encoding="utf-8"
    )
    inputs = [
        ROOT / "data" / "new_study" / "ns-01.txt",
        ROOT / "data" / "new_study" / "ns-05.txt",
        gold / "transcripts" / "bc-01.txt",
    ]
    coded = CliRunner().invoke(
        app, ["code", *map(str, inputs), "--zero-shot", "--out", str(base / "run"), "--params", str(params)]
    )
    assert coded.exit_code == 0, coded.output
    return {"gold": gold, "params": params, "run": base / "run"}


def test_real_run_is_shown_with_its_own_transcripts(real_run):
    from pipeline.review import ReviewRun

    run = ReviewRun.load(real_run["run"])
    original = (ROOT / "data" / "new_study" / "ns-01.txt").read_text(encoding="utf-8")
    assert run.texts["ns-01.txt"] == original  # read back from coded.qdpx, not rebuilt
    first = run.queue[0]
    before, text, after = run.turn(first)
    assert text == run.segment(first).text and (before + text + after) in run.texts[run.segment(first).source]


def test_train_with_reviews_changes_the_training_labels(real_run, run_cli, tmp_path):
    from pipeline.ingest import SegmentConfig
    from pipeline.model import LabelConfig, load_gold
    from pipeline.params import load_params
    from pipeline.review import ReviewRun, reviewed_codings

    run = ReviewRun.load(real_run["run"])
    settings = load_params(real_run["params"])
    config, labels = SegmentConfig.from_dict(settings["segment"]), LabelConfig()
    plain = load_gold([real_run["gold"]], BOOK, config, labels, ["A"])
    gold_rows = {(r.source, r.start, r.end): i for i, r in enumerate(plain.segments.itertuples())}

    participant = run.segments[run.segments.role == "participant"]
    # a gold segment that coder A coded: the reviewer says "no impact", which must win
    coded_gold = next(
        s
        for s in participant[participant.source == "bc-01.txt"].itertuples()
        if plain.labels[gold_rows[(s.source, s.start, s.end)]].any()
    )
    new = participant[participant.source == "ns-01.txt"].segment_id.tolist()[:2]
    french = participant[participant.source == "ns-05.txt"].segment_id.iloc[0]
    store = run.store()

    def record(segment_id, action, codes):
        row = run.segment(segment_id)
        store.record(
            segment_id,
            row.source,
            row.start,
            row.end,
            action,
            run.model_codes(segment_id),
            codes,
            "rev",
            run.model_version,
        )

    record(coded_gold.segment_id, "reject", ())
    record(new[0], "change", (IDS[3], IDS[9]))
    record(new[1], "accept", run.model_codes(new[1]))
    record(new[1], "change", (IDS[12],))  # the latest decision is the label
    record(french, "reject", ())
    store.record(new[0], "ns-01.txt", 0, 1, "skip", (), None, "rev", "m")  # history only

    reviews = reviewed_codings(real_run["run"])
    merged = load_gold([real_run["gold"]], BOOK, config, labels, ["A"], extra_codings=reviews)
    rows = {(r.source, r.start, r.end): i for i, r in enumerate(merged.segments.itertuples())}
    key = (coded_gold.source, coded_gold.start, coded_gold.end)
    assert plain.labels[gold_rows[key]].any() and not merged.labels[rows[key]].any()
    first, second = run.segment(new[0]), run.segment(new[1])
    assert set(np.flatnonzero(merged.labels[rows[("ns-01.txt", first.start, first.end)]])) == {3, 9}
    assert set(np.flatnonzero(merged.labels[rows[("ns-01.txt", second.start, second.end)]])) == {12}
    fr = run.segment(french)
    assert not merged.labels[rows[("ns-05.txt", fr.start, fr.end)]].any()
    # only reviewed segments of the run's new transcripts are used, all of them training targets
    assert (merged.segments.source == "ns-01.txt").sum() == 2 and (merged.segments.source == "ns-05.txt").sum() == 1
    assert merged.targets.sum() == plain.targets.sum() + 3
    assert set(merged.texts) == set(plain.texts) | {"ns-01.txt", "ns-05.txt"} and merged.data_hash != plain.data_hash
    assert "rev" in set(merged.codings.coder)  # the reviewer's codings are kept, whatever --coder says
    unchanged = [i for k, i in gold_rows.items() if k != key]
    assert (merged.labels[[rows[k] for k in gold_rows if k != key]] == plain.labels[unchanged]).all()

    result = run_cli(
        "train",
        "--gold",
        real_run["gold"],
        "--encoder",
        "use-m3",
        "--params",
        real_run["params"],
        "--include-reviews",
        real_run["run"],
        "--out",
        tmp_path / "model",
    )
    assert result.code == 0, result.err
    card = json.loads((tmp_path / "model" / "model.json").read_text(encoding="utf-8"))
    assert card["training_data"]["transcripts"] == 8 and card["training_data"]["reviewed_codings"] == len(reviews)
    assert card["training_data"]["target_segments"] == int(merged.targets.sum())


def test_simulate_reports_rounds_for_both_queues(real_run, run_cli, tmp_path):
    out = tmp_path / "sim"
    result = run_cli(
        "review",
        "simulate",
        "--gold",
        real_run["gold"],
        "--params",
        real_run["params"],
        "--rounds",
        "2",
        "--batch",
        "15",
        "--initial",
        "2",
        "--test-share",
        "0.34",
        "--repeats",
        "1",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    table = pd.read_csv(out / "simulation.csv")
    assert table["round"].tolist() == [0, 1, 2] and table.reviewed.tolist() == [0, 15, 30]
    scores = table[["uncertainty_macro_f1", "random_macro_f1"]].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (out / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rounds = pd.read_csv(out / "simulation_rounds.csv")
    assert set(rounds.strategy) == {"uncertainty", "random"} and len(rounds) == 6
    assert "uncertainty_macro_f1" in result.out


def test_simulate_needs_enough_transcripts():
    from pipeline.errors import InputError
    from pipeline.review import SimulationConfig, simulate

    X, Y = np.zeros((30, 4)), np.zeros((30, 2), dtype=np.int8)
    groups = np.repeat(["a", "b", "c"], 10)
    with pytest.raises(InputError, match="more transcripts"):
        simulate(X, Y, groups, ["x", "y"], None, SimulationConfig(initial_transcripts=2, test_share=0.34))
    with pytest.raises(InputError):
        SimulationConfig(rounds=0)
