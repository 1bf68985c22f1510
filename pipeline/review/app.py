"""The local review app behind ``imri review serve RUN_DIR``: FastAPI, Jinja2 templates and htmx.

Server-rendered pages, no front-end build step and no network resource: htmx is vendored in
``pipeline/review/static``. Every decision is committed to ``RUN_DIR/review.db`` before the answer is sent
(see :mod:`pipeline.review.store`); what each page shows: :mod:`pipeline.review.views`.

Access and privacy: the server binds 127.0.0.1 only and answers only requests for 127.0.0.1 or
localhost (no DNS rebinding). Each server has a secret, and every page, form and file of the app
lives under ``/s/<secret>/`` (a capability path): the URL the server prints carries the secret as
``?token=``, and a request with the right one is redirected to the same page under that path; every
other request gets 403, so another account on the machine cannot read transcripts or decide in the
reviewer's name. No cookie grants access: browsers send the cookies of 127.0.0.1 to every port of
it, so a page served by another local account on another port would receive them (see the threat
model in ``docs/reliability.md``). Pages send no Referer. Decisions also need the page's form token.
No access log; segment text is never logged.

With ``blind``, a reviewer sees only their own decisions (queue, pages, history) and nothing of the
model (no suggested or pre-ticked codes, no probabilities, cut-offs or ranking, no agreement with the
model, no accept), so two reviewers can code the same run independently; the agreement view shows
nothing of another reviewer until both have decided every queued segment (totals over shared segments
would reveal decisions), then lists their disagreements, reconciled one by one at ``/reconcile`` into
consensus decisions (reviewer ``consensus:<who made it>``). The interface's language comes from the
reviewer's choice, else the browser's ``Accept-Language``, never from the data.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pipeline.codebook import LANGUAGES
from pipeline.errors import InputError
from pipeline.review.run import ReviewRun, agreement, pending, statuses
from pipeline.review.store import (
    CONSENSUS,
    DECIDING,
    HISTORY_COLUMNS,
    MAX_MEMO,
    latest_decisions,
    reviewers_only,
    split_codes,
)
from pipeline.review.views import Filters, ReviewView, code_name, language, with_lang_cookie

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
HOST = "127.0.0.1"
SECRET_PARAM = "token"
CAPABILITY = "s"  # every page of the app is under /s/<secret>/
PAGE_SIZE = 100  # rows per page of the browse view
FORBIDDEN = "403: open the address that `imri review serve` printed (it carries ?token=...)\n"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a received token with the expected one; any text, ASCII or not."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


class CapabilityPath:
    """ASGI middleware: only requests under ``/s/<secret>/`` reach the app; ``?token=<secret>`` leads there.

    A GET or HEAD request anywhere with the right ``?token=`` is redirected to the same page under the
    capability path, without the token; every other request gets 403. Nothing is read from cookies:
    they are not port-scoped, so any cookie value also reaches every other server on 127.0.0.1.
    """

    def __init__(self, app: Callable, secret: str) -> None:
        self.app, self.secret = app, secret
        self.base = f"/{CAPABILITY}/{secret}"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        parts = path.split("/", 3)  # "", "s", the secret, the page
        request = Request(scope)
        if len(parts) >= 3 and parts[1] == CAPABILITY and same_secret(parts[2], self.secret):
            if len(parts) == 4:
                await self.app({**scope, "root_path": scope.get("root_path", "") + self.base}, receive, send)
                return
            query = request.url.query
            response: Response = RedirectResponse(self.base + "/" + (f"?{query}" if query else ""), status_code=307)
        elif scope["method"] in ("GET", "HEAD") and same_secret(request.query_params.get(SECRET_PARAM), self.secret):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != SECRET_PARAM]
            # the page's path after the base, so that `//host/x` or `/\host` can never lead off-site
            page = self.base + "/" + path.lstrip("/\\")
            response = RedirectResponse(page + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
        else:
            response = PlainTextResponse(FORBIDDEN, status_code=403)
        await response(scope, receive, send)


def folder_signature(folder: Path) -> tuple:
    """What changes when ``imri code`` writes a run folder again: its files' identity, size and time."""
    signature = []
    for name in ("model.json", "review_queue.csv", "segments.parquet", "segments.csv"):
        try:
            stat = (folder / name).stat()
            signature.append((name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            signature.append((name, None))
    return tuple(signature)


def create_app(
    run_dir: str | Path,
    reviewer: str,
    codebook_path: str | Path | None = None,
    allowed_hosts: Sequence[str] = (HOST, "localhost"),
    blind: bool = False,
    secret: str | None = None,
) -> FastAPI:
    """The review app for one run folder, deciding as ``reviewer``; ``app.state.secret`` opens it."""
    if not reviewer.strip():
        raise InputError("--reviewer must not be empty")

    def open_run() -> ReviewRun:
        opened = ReviewRun.load(run_dir, codebook_path)
        opened.texts  # noqa: B018 -- read the transcripts once, when the run is opened
        opened.thresholds  # noqa: B018
        return opened

    run = open_run()
    opened_as = folder_signature(run.folder)
    secret = secret or secrets.token_urlsafe(32)
    if not re.fullmatch(r"[A-Za-z0-9_-]{32,}", secret):  # it is a path segment of every address
        raise ValueError("the review app's secret must be 32 or more URL-safe characters")
    base = f"/{CAPABILITY}/{secret}"  # every address of the app starts with it (see CapabilityPath)
    view = ReviewView(run, reviewer.strip(), secrets.token_urlsafe(24), blind, base)
    reopening = asyncio.Lock()
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app = FastAPI(title="imri review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.state.view = view
    app.state.secret = secret

    @app.middleware("http")
    async def follow_the_folder(request: Request, call_next: Callable) -> Response:
        """Reopen the run when ``imri code`` has written its folder again since it was opened, so that
        pages show, and decisions are recorded against, the segments now in the folder."""
        nonlocal run, view, opened_as
        if folder_signature(run.folder) != opened_as:
            async with reopening:
                now = folder_signature(run.folder)
                if now != opened_as:
                    try:
                        fresh = await run_in_threadpool(open_run)
                    except InputError as error:
                        return PlainTextResponse(
                            f"the run folder changed and cannot be opened now ({error}): "
                            "reload this page when `imri code` has finished",
                            status_code=503,
                        )
                    run, opened_as = fresh, now
                    view = ReviewView(run, view.reviewer, view.token, view.blind, base)
                    app.state.view = view
        return await call_next(request)

    # added after follow_the_folder, so it runs before it: only a request that holds the secret reopens the run
    app.add_middleware(CapabilityPath, secret=secret)

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith(f"{base}/static/"):  # the app's own scripts and styles may be cached
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, segment: str | None = None, lang: str | None = None) -> Response:
        """One segment to review: the given one, else the first one waiting (queue) or listed (browse)."""
        mode, filters = view.state(request.query_params)
        snapshot = view.snapshot()
        missing = segment is not None and segment not in run.segments.index
        segment_id = None if missing else segment or view.next_segment(mode, filters, snapshot[0])
        chosen = language(request, lang, run.segment(segment_id).source if segment_id else filters.source or None)
        context = view.panel_context(request, segment_id, chosen, mode, filters, snapshot)
        context["missing"] = missing
        response = templates.TemplateResponse(request, "review.html", context, status_code=404 if missing else 200)
        return with_lang_cookie(response, lang)

    @app.get("/browse", response_class=HTMLResponse)
    def browse(request: Request, lang: str | None = None, page: int = 1) -> Response:
        """Every segment the filters keep, queued or not, in transcript order; click or Enter to review one."""
        _, filters = view.state(request.query_params)
        shown, _, set_aside = view.snapshot()
        chosen = language(request, lang, filters.source or None)
        context = view.common(request, "browse", chosen, "browse", filters, shown, set_aside)
        rows = view.listing(filters, shown)
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        visible = rows.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        decisions = latest_decisions(shown)
        by_segment = {s: group for s, group in decisions.groupby("segment_id")} if len(decisions) else {}
        context |= {
            "total": len(rows),
            "page": page,
            "pages": pages,
            "previous_page_url": view.at("/browse", page=page - 1, **filters.params()) if page > 1 else None,
            "next_page_url": view.at("/browse", page=page + 1, **filters.params()) if page < pages else None,
            "rows": [
                {
                    "id": r.segment_id,
                    "url": view.segment_link(r.segment_id, "browse", filters),
                    "source": r.source,
                    "start": r.start,
                    "end": r.end,
                    "speaker": getattr(r, "speaker", ""),
                    "language": getattr(r, "language", ""),
                    "text": r.text,
                    "status": r.status,
                    "model": view.model_chips(r.segment_id, chosen),
                    "decisions": view.decision_chips(by_segment.get(r.segment_id), chosen),
                }
                for r in visible.itertuples()
            ],
        }
        return with_lang_cookie(templates.TemplateResponse(request, "review_browse.html", context), lang)

    @app.get("/transcript", response_class=HTMLResponse)
    def transcript(
        request: Request, source: str | None = None, focus: str | None = None, lang: str | None = None
    ) -> Response:
        """A whole interview, turns in order, codes in the margin; the filters dim what they leave out."""
        _, filters = view.state({k: v for k, v in request.query_params.items() if k != "source"})
        shown, _, set_aside = view.snapshot()
        sources = sorted(set(run.segments.source))
        if source not in sources:
            waiting = pending(run, shown)
            source = run.segment(waiting[0]).source if waiting else sources[0]
        filters = Filters(**{**asdict(filters), "source": source})
        chosen = language(request, lang, source)
        context = view.common(request, "transcript", chosen, "browse", filters, shown, set_aside)
        status = statuses(run, shown)
        narrowed = Filters(**{**asdict(filters), "source": ""}).active
        matching = set(view.listing(filters, shown).segment_id) if narrowed else None
        plain = Filters(source=source)
        decisions = latest_decisions(shown)
        by_segment = {s: group for s, group in decisions.groupby("segment_id")} if len(decisions) else {}
        turns, index, focus_index = [], 0, None
        for turn in run.transcript(source):
            rows = []
            for r in turn["segments"].itertuples():
                reviewable = r.role == "participant"
                if r.segment_id == focus:
                    focus_index = index
                rows.append(
                    {
                        "index": index,
                        "id": r.segment_id,
                        "text": r.text,
                        "language": getattr(r, "language", ""),
                        "reviewable": reviewable,
                        "url": view.segment_link(r.segment_id, "browse", plain),
                        "focus": r.segment_id == focus,
                        "match": matching is None or not reviewable or r.segment_id in matching,
                        "status": status.get(r.segment_id, "") if reviewable else "",
                        "model": view.model_chips(r.segment_id, chosen) if reviewable else [],
                        "decisions": view.decision_chips(by_segment.get(r.segment_id), chosen),
                    }
                )
                index += 1
            turns.append({**{k: v for k, v in turn.items() if k != "segments"}, "segments": rows})
        participant = [s for turn in turns for s in turn["segments"] if s["reviewable"]]
        context |= {
            "source": source,
            "language": run.transcript_language.get(source, ""),
            "turns": turns,
            "focus_index": focus_index,
            "n_participant": len(participant),
            "n_queued": sum(s["status"] in ("queued", "skipped") for s in participant),
            "n_reviewed": sum(s["status"] == "reviewed" for s in participant),
            "reviewers_shown": len(set(decisions.reviewer)) if len(decisions) else 0,
        }
        return with_lang_cookie(templates.TemplateResponse(request, "review_transcript.html", context), lang)

    @app.get("/agreement", response_class=HTMLResponse)
    def agreement_page(request: Request, lang: str | None = None) -> Response:
        """Reviewers with the model, and with each other on the segments both decided (Cohen's kappa);
        then each pair's disagreements, to reconcile one by one."""
        shown, current, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = view.common(request, "agreement", chosen, "queue", Filters(), shown, set_aside)
        everyone = latest_decisions(current)
        book = run.codebook
        pairs, blind_left, among = view.compared(everyone)
        for pair in pairs:
            pair["rows"] = [
                {
                    "id": i,
                    "name": book.impact(i).name[chosen],
                    "used": pair["used"][i],
                    "between": pair["between"]["per_impact"][i],
                    "model_first": pair["model_first"]["per_impact"][i],
                    "model_second": pair["model_second"]["per_impact"][i],
                }
                for i in book.impact_ids
            ]
            pair["disagreements"] = view.to_reconcile(everyone, pair["reviewers"], among, chosen)
            waiting = [d for d in pair["disagreements"] if d["consensus"] is None]
            pair["next_url"] = waiting[0]["url"] if waiting else None
        human = reviewers_only(everyone)
        reviewers = sorted(set(human.reviewer)) if len(human) else []
        if view.blind:  # blind: how far one agrees with the model shows only once the pair is shown
            reviewers = [view.reviewer] if view.reviewer in reviewers and pairs else []
        context |= {
            "pairs": pairs,
            "blind_left": blind_left,
            "reviewer_rows": [
                {"name": name, "agreement": agreement(human[human.reviewer == name])} for name in reviewers
            ],
        }
        return with_lang_cookie(templates.TemplateResponse(request, "review_agreement.html", context), lang)

    @app.get("/reconcile", response_class=HTMLResponse)
    def reconcile_page(
        request: Request, first: str = "", second: str = "", segment: str | None = None, lang: str | None = None
    ) -> Response:
        """One disagreement of two reviewers: the segment, both codings, and the consensus to decide."""
        shown, current, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = view.common(request, "agreement", chosen, "queue", Filters(), shown, set_aside)
        first, second = sorted((first, second))  # pairs are named in alphabetical order
        found = view.reconcilable(first, second)
        if found is None:
            return PlainTextResponse("no such pair of reviewers to reconcile (yet)", status_code=404)
        everyone = latest_decisions(current)
        rows = view.to_reconcile(everyone, (first, second), found[1], chosen)
        if not rows:
            return RedirectResponse(base + "/agreement", status_code=303)
        index = next((i for i, r in enumerate(rows) if r["segment_id"] == segment), None)
        if index is None:
            index = next((i for i, r in enumerate(rows) if r["consensus"] is None), 0)
        row = rows[index]
        ticked = set(row["consensus"]) if row["consensus"] is not None else set(row["first"]) & set(row["second"])
        book = run.codebook
        before, text, after = run.turn(row["segment_id"])
        context |= {
            "pair": (first, second),
            "item": row,
            "total": len(rows),
            "left": sum(r["consensus"] is None for r in rows),
            "before": before,
            "text": text,
            "after": after,
            "segment_language": str(run.segment(row["segment_id"]).get("language", "") or ""),
            "previous_url": rows[index - 1]["url"] if index else None,
            "next_url": rows[index + 1]["url"] if index + 1 < len(rows) else None,
            "consensus_name": f"{CONSENSUS}{view.reviewer}",
            "codes": [
                {
                    "id": i.id,
                    "name": i.name[chosen],
                    "definition": i.definition,
                    "category": next(c.name[chosen] for c in book.categories if c.id == i.category),
                    "first": i.id in row["first"],
                    "second": i.id in row["second"],
                    "checked": i.id in ticked,
                }
                for i in book.impacts
            ],
        }
        return with_lang_cookie(templates.TemplateResponse(request, "review_reconcile.html", context), lang)

    @app.post("/reconcile")
    def reconcile(
        token: Annotated[str, Form()],
        segment_id: Annotated[str, Form()],
        first: Annotated[str, Form(max_length=200)],
        second: Annotated[str, Form(max_length=200)],
        codes: Annotated[list[str], Form()] = [],  # noqa: B006 -- FastAPI copies form defaults
        memo: Annotated[str, Form(max_length=MAX_MEMO)] = "",
    ) -> Response:
        """Record the consensus on one disagreement (reviewer ``consensus:<this reviewer>``), then the next."""
        if not same_secret(token, view.token):
            return JSONResponse({"error": "stale or foreign page: reload it"}, status_code=403)
        first, second = sorted((first, second))
        found = view.reconcilable(first, second)
        if found is None or segment_id not in {r["segment_id"] for r in found[0]}:
            return JSONResponse({"error": "not a disagreement of this pair"}, status_code=404)
        unknown = sorted(set(codes) - set(run.codebook.impact_ids))
        if unknown:
            return JSONResponse({"error": f"unknown code(s) {', '.join(unknown)}"}, status_code=400)
        row = run.segment(segment_id)
        view.store.record(
            segment_id,
            row.source,
            int(row.start),
            int(row.end),
            "change",
            run.model_codes(segment_id),
            tuple(i for i in run.codebook.impact_ids if i in codes),
            f"{CONSENSUS}{view.reviewer}",
            run.model_version,
            memo.strip(),
            run_id=run.run_id,
            transcript_sha256=run.fingerprints[row.source],
        )
        rows = view.reconcilable(first, second)[0]
        order = [r["segment_id"] for r in rows]
        after = order[order.index(segment_id) + 1 :] + order[: order.index(segment_id)]
        waiting = {r["segment_id"] for r in rows if r["consensus"] is None}
        following = next((s for s in after if s in waiting), None)
        target = (
            view.at("/reconcile", first=first, second=second, segment=following) if following else base + "/agreement"
        )
        return RedirectResponse(target, status_code=303)

    @app.get("/history", response_class=HTMLResponse)
    def history_page(request: Request, lang: str | None = None) -> Response:
        """Every action shown, newest first: decisions, skips, memos, undos (the undone ones marked)."""
        shown, _, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = view.common(request, "history", chosen, "queue", Filters(), shown, set_aside)
        undone = set(shown.undoes.dropna().astype("int64")) if len(shown) else set()
        book = run.codebook
        context["rows"] = [
            {
                "id": r.id,
                "when": str(r.decided_at)[:19].replace("T", " "),
                "reviewer": r.reviewer,
                "action": r.action,
                "undone": r.id in undone,
                "undoes": None if pd.isna(r.undoes) else int(r.undoes),
                "source": r.source,
                "start": r.start,
                "end": r.end,
                "url": view.at("/", segment=r.segment_id),
                "text": str(run.segments.at[r.segment_id, "text"]) if r.segment_id in run.segments.index else "",
                "memo": r.memo or "",
                "decides": r.action in DECIDING,
                "codes": ", ".join(code_name(book, c, chosen) for c in split_codes(r.codes_after))
                if r.action in DECIDING
                else "",
            }
            for r in shown.iloc[::-1].itertuples()
        ]
        return with_lang_cookie(templates.TemplateResponse(request, "review_history.html", context), lang)

    @app.post("/decide")
    def decide(
        request: Request,
        segment_id: Annotated[str, Form()],
        action: Annotated[str, Form()],
        token: Annotated[str, Form()],
        codes: Annotated[list[str], Form()] = [],  # noqa: B006 -- FastAPI copies form defaults
        memo: Annotated[str, Form(max_length=MAX_MEMO)] = "",
        where: Annotated[str, Form(max_length=2000)] = "",
        lang: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        """Record one action (committed before answering), then show the next segment."""
        if not same_secret(token, view.token):
            return JSONResponse({"error": "stale or foreign page: reload it"}, status_code=403)
        if segment_id not in run.segments.index:
            return JSONResponse({"error": "unknown segment"}, status_code=404)
        if action not in ("accept", "reject", "change", "skip", "memo"):
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=400)
        unknown = sorted(set(codes) - set(run.codebook.impact_ids))
        if unknown:
            return JSONResponse({"error": f"unknown code(s) {', '.join(unknown)}"}, status_code=400)
        if action == "accept" and view.blind:
            return JSONResponse({"error": "blind review: tick the codes and save them (C), or reject"}, status_code=400)
        memo = memo.strip()
        if action == "memo" and not memo:
            return JSONResponse({"error": "the memo is empty"}, status_code=400)
        mode, filters = view.parse_where(where)
        before = run.model_codes(segment_id)
        after = {"accept": before, "reject": (), "change": tuple(i for i in run.codebook.impact_ids if i in codes)}
        row = run.segment(segment_id)
        view.store.record(
            segment_id,
            row.source,
            int(row.start),
            int(row.end),
            action,
            before,
            after.get(action),
            view.reviewer,
            run.model_version,
            memo,
            run_id=run.run_id,
            transcript_sha256=run.fingerprints[row.source],
        )
        snapshot = view.snapshot()
        following = segment_id if action == "memo" else view.next_segment(mode, filters, snapshot[0], after=segment_id)
        url = view.segment_link(following, mode, filters)
        if request.headers.get("HX-Request") != "true":
            return RedirectResponse(url, status_code=303)
        chosen = lang if lang in LANGUAGES else language(request, None)
        context = view.panel_context(request, following, chosen, mode, filters, snapshot) | {"oob": True}
        response = templates.TemplateResponse(request, "review_update.html", context)
        response.headers["HX-Push-Url"] = url
        return response

    @app.post("/undo")
    def undo(
        token: Annotated[str, Form()],
        where: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """Take back the reviewer's latest action in this run (an ``undo`` row), then show its segment."""
        if not same_secret(token, view.token):
            return JSONResponse({"error": "stale or foreign page: reload it"}, status_code=403)
        mode, filters = view.parse_where(where)
        taken = view.store.undo(view.reviewer, keep=run.applies_to, run_id=run.run_id)
        return RedirectResponse(view.segment_link(None if taken is None else taken.segment_id, mode, filters), 303)

    @app.get("/export")
    def export(format: str = "qdpx") -> Response:  # noqa: A002 -- the query parameter's name
        """The run's final coding (:func:`pipeline.review.run.export_final`) as a download: .qdpx or .csv."""
        import tempfile

        from pipeline.review.run import export_final

        if view.blind:  # the final coding holds the model's codes and every reviewer's decisions
            return PlainTextResponse("blind review: the app does not export the final coding", status_code=403)
        if format not in ("qdpx", "csv"):
            return PlainTextResponse("format: qdpx or csv", status_code=400)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"final-coding.{format}"
            export_final(run.folder, out, codebook_path)
            body = out.read_bytes()
        name = re.sub(r"[^A-Za-z0-9._-]", "_", run.folder.name) or "run"
        media = "application/zip" if format == "qdpx" else "text/csv; charset=utf-8"
        disposition = f'attachment; filename="{name}-final-coding.{format}"'
        return Response(body, media_type=media, headers={"Content-Disposition": disposition})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/progress")
    def api_progress() -> dict:
        """Progress and agreement so far, as JSON; ``set_aside``: decisions of another run left out."""
        shown, _, set_aside = view.snapshot()
        stats = view.stats(shown)
        if view.blind:
            stats.pop("agreement")
        return {**stats, "set_aside": set_aside}

    @app.get("/api/decisions")
    def api_decisions() -> list[dict]:
        """The shown decisions (each reviewer's latest per segment; ids, offsets, codes; no text), as JSON."""
        # no memo (it may quote the transcript), no model version, no fingerprint
        hidden = ("memo", "model_version", "transcript_sha256", "undoes", *(("codes_before",) if view.blind else ()))
        columns = [c for c in HISTORY_COLUMNS if c not in hidden]
        shown, _, _ = view.snapshot()
        return latest_decisions(shown).reindex(columns=columns).to_dict(orient="records")

    return app


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        problem = f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another --port (0: any free one)"
        raise InputError(problem) from None
    sock.listen(128)
    return sock


def serve(
    run_dir: str | Path,
    port: int,
    reviewer: str,
    codebook_path: str | Path | None = None,
    echo: Callable[[str], None] = print,
    blind: bool = False,
) -> None:
    """Start the review app on 127.0.0.1; its URL (with the secret) is the first line ``echo`` gets."""
    import uvicorn

    app = create_app(run_dir, reviewer, codebook_path, blind=blind)
    sock = bind(port)
    echo(f"http://{HOST}:{sock.getsockname()[1]}/?{SECRET_PARAM}={app.state.secret}")
    view = app.state.view
    shown, _, set_aside = view.snapshot()
    stats = view.stats(shown)
    echo(
        f"reviewing {stats['queued']} queued segments of {run_dir} as {view.reviewer}{' (blind)' if blind else ''} "
        f"({stats['reviewed']} done); decisions -> {Path(run_dir) / 'review.db'}; Ctrl+C stops"
    )
    if set_aside:
        echo(f"{set_aside} earlier decision(s) set aside: their segment is not in this run (kept in review.db)")
    echo("open the address above (it carries this server's secret; other addresses get 403)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
