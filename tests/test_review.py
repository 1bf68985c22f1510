"""Human review: review.db, the review app's API, export, training with reviews, simulate, a kill test."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def make_run(folder: Path, seed: int = 0) -> Path:
    """A small but complete ``imri code`` output folder, written without a model (for API tests)."""
    from pipeline.code import ReviewConfig, code_segments
    from pipeline.qdpx import export_qdpx

    table = pd.DataFrame([r for source, text in TRANSCRIPTS.items() for r in segment_rows(source, text)])
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0.0, 0.3, (len(table), len(IDS)))
    proba[:, 0] = np.linspace(0.35, 0.8, len(table))  # a few confident codes, most of them near the threshold
    proba[::2, 3] = 0.55
    segments, queue = code_segments(
        table, proba, np.full(len(IDS), 0.5), np.full(len(IDS), 100), BOOK, ReviewConfig(margin=0.9)
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
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")
    empty = pd.DataFrame(columns=["source", "start", "end", "code", "coder"])
    export_qdpx(TRANSCRIPTS, empty, folder / "coded.qdpx", BOOK)
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "run")


@pytest.fixture
def client(run_dir):
    from fastapi.testclient import TestClient

    from pipeline.review_app import create_app

    app = create_app(run_dir, "ana", allowed_hosts=["testserver"])
    with TestClient(app) as test_client:
        test_client.token = app.state.view.token
        test_client.run = app.state.view.run
        yield test_client


def escape(text: str) -> str:
    """Text as the templates write it (Jinja2 autoescaping)."""
    return str(markupsafe.escape(text))


def shown_segment(html: str) -> str | None:
    match = re.search(r'data-segment-id="([^"]+)"', html)
    return match.group(1) if match else None


def decide(client, segment_id: str, action: str, codes=(), memo: str = "", htmx: bool = True):
    headers = {"HX-Request": "true"} if htmx else {}
    data = {"segment_id": segment_id, "action": action, "token": client.token, "codes": list(codes), "memo": memo}
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
    assert BOOK.impact(top_id).name["en"] in html and f"{top_p:.2f}" in html
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
    again = client.get("/", params={"segment": q[1]})
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
    ]  # no memo (it may quote the transcript) and no model version


def test_serve_refuses_what_is_not_a_run(tmp_path, run_cli):
    result = run_cli("review", "serve", tmp_path, "--port", "0")
    assert result.code == 2 and result.out == "" and "not an `imri code` output folder" in result.err
    assert len(result.err.strip().splitlines()) == 1
    result = run_cli("review", "export", tmp_path, "--out", tmp_path / "x.csv")
    assert result.code == 2 and "no review.db" in result.err


# --- export ----------------------------------------------------------------------------------------


def test_export_round_trip(client, run_dir, run_cli, tmp_path):
    from pipeline.labels import read_codings
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

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "reviews.csv")
    assert result.code == 0 and "3 reviewed segments, 3 codings" in result.out
    codings = read_codings(tmp_path / "reviews.csv", BOOK)
    assert {(r.source, r.start, r.end, r.code) for r in codings.itertuples()} == expected
    assert set(codings.coder) == {"ana"}
    assert pd.read_csv(tmp_path / "reviews.csv").description.fillna("").tolist().count("two codes") == 2

    result = run_cli("review", "export", run_dir, "--out", tmp_path / "reviews.qdpx")
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


# --- killing the server ----------------------------------------------------------------------------


def start_server(run: Path, reviewer: str) -> tuple[subprocess.Popen, str]:
    """``imri review serve RUN --port 0`` in a child process; returns it and the URL of its first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "review", "serve", str(run), "--port", "0", "--reviewer", reviewer],
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


def test_killing_the_server_mid_decisions_loses_nothing(tmp_path):
    import httpx

    from pipeline.review import ReviewRun, ReviewStore

    run = make_run(tmp_path / "run")
    targets = list(ReviewRun.load(run).queue)
    process, url = start_server(run, "kill-test")
    try:
        token = re.search(r'name="token" value="([^"]+)"', httpx.get(url, timeout=10).text).group(1)
        acknowledged: list[str] = []
        stop = threading.Event()

        def post_decisions(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
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
        stats = httpx.get(f"{url}api/progress", timeout=10).json()
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
    from pipeline.labels import LabelConfig
    from pipeline.params import load_params
    from pipeline.review import ReviewRun, reviewed_codings
    from pipeline.segment import SegmentConfig
    from pipeline.train import load_gold

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
