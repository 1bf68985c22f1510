"""The local review app behind ``imri review serve RUN_DIR``: FastAPI, Jinja2 templates and htmx.

Server-rendered pages, no front-end build step and no network resource: htmx is vendored in
``pipeline/static``. Every decision is committed to ``RUN_DIR/review.db`` before the answer is sent
(see :mod:`pipeline.review`). Privacy: the server binds 127.0.0.1 only, answers only requests for
127.0.0.1/localhost (no DNS rebinding), takes decisions only with the page's per-server token (no
cross-site form posts), keeps no access log and never logs segment text.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pipeline.codebook import LANGUAGES
from pipeline.errors import InputError
from pipeline.review import DECIDING, HISTORY_COLUMNS, MAX_MEMO, ReviewRun, pending, progress, split_codes

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
HOST = "127.0.0.1"
LANG_COOKIE = "imri_review_lang"
SHORTCUTS = 9  # codes 1-9 toggle the nine most probable impacts
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _segment_url(segment_id: str | None) -> str:
    return "/" if segment_id is None else f"/?segment={quote(segment_id, safe='')}"


class ReviewView:
    """What the templates show, computed from the run and the decisions so far."""

    def __init__(self, run: ReviewRun, reviewer: str, token: str) -> None:
        self.run, self.reviewer, self.token = run, reviewer, token
        self.store = run.store()
        self.position = {segment_id: i + 1 for i, segment_id in enumerate(run.queue)}

    def stats(self, history) -> dict:
        """:func:`pipeline.review.progress` plus the share of the queue done, in percent."""
        stats = progress(self.run, history)
        stats["percent"] = round(100 * stats["reviewed"] / stats["queued"]) if stats["queued"] else 100
        return stats

    def context(self, segment_id: str | None, lang: str) -> dict:
        """Template context for one segment (``None``: the queue is done)."""
        history = self.store.history()
        decided = history[history.action.isin(DECIDING)]
        recent = decided.drop_duplicates("segment_id", keep="last").tail(6).iloc[::-1]
        context = {
            "run": self.run,
            "reviewer": self.reviewer,
            "token": self.token,
            "lang": lang,
            "other_lang": next(x for x in LANGUAGES if x != lang),
            "stats": self.stats(history),
            "recent": [
                {
                    "id": r.segment_id,
                    "url": _segment_url(r.segment_id),
                    "source": r.source,
                    "start": r.start,
                    "end": r.end,
                    "action": r.action,
                    "codes": len(split_codes(r.codes_after)),
                }
                for r in recent.itertuples()
            ],
            "back_url": _segment_url(recent.segment_id.iloc[0]) if len(recent) else None,
            "segment": None,
            "max_memo": MAX_MEMO,
        }
        if segment_id is None:
            return context
        run, book = self.run, self.run.codebook
        row = run.segment(segment_id)
        mine = history[history.segment_id == segment_id]
        decision = mine[mine.action.isin(DECIDING)].tail(1)
        model_codes = set(run.model_codes(segment_id))
        checked = set(split_codes(decision.codes_after.iloc[0])) if len(decision) else model_codes
        codes = []
        for rank, (impact_id, p) in enumerate(run.probabilities(segment_id)):
            impact = book.impact(impact_id)
            category = next(c for c in book.categories if c.id == impact.category)
            codes.append(
                {
                    "id": impact_id,
                    "name": impact.name[lang],
                    "category": category.name[lang],
                    "kind": impact.kind,
                    "p": p,
                    "model": impact_id in model_codes,
                    "checked": impact_id in checked,
                    "shortcut": rank + 1 if rank < SHORTCUTS else None,
                    "definition": impact.definition,
                    "include": impact.include,
                    "exclude": impact.exclude,
                }
            )
        before, text, after = run.turn(segment_id)
        previous = run.previous_turn(segment_id)
        question = str(row.get("question", "") or "")
        info = run.queue_info.get(segment_id, {})
        context["segment"] = {
            "id": segment_id,
            "source": row.source,
            "start": int(row.start),
            "end": int(row.end),
            "speaker": row.get("speaker", ""),
            "role": row.get("role", ""),
            "language": row.get("language", ""),
            "before": before,
            "text": text,
            "after": after,
            "question": question,
            "previous": previous if previous and previous[1].strip() != question.strip() else None,
            "position": self.position.get(segment_id),
            "priority": info.get("priority"),
            "reason": info.get("reason", ""),
            "codes": codes,
            "model_codes": [c for c in codes if c["model"]],
            "decision": None
            if decision.empty
            else {
                "action": decision.action.iloc[0],
                "reviewer": decision.reviewer.iloc[0],
                "decided_at": decision.decided_at.iloc[0][:19].replace("T", " "),
                "codes": [book.impact(c).name[lang] for c in split_codes(decision.codes_after.iloc[0])],
            },
            "memos": [m for m in mine.memo if m],
            "url": _segment_url(segment_id),
        }
        return context

    def next_segment(self, history=None) -> str | None:
        """The first queued segment still waiting for a decision (``None`` when the queue is done)."""
        waiting = pending(self.run, self.store.history() if history is None else history)
        return waiting[0] if waiting else None


def create_app(
    run_dir: str | Path,
    reviewer: str,
    codebook_path: str | Path | None = None,
    allowed_hosts: Sequence[str] = (HOST, "localhost"),
) -> FastAPI:
    """The review app for one run folder, deciding as ``reviewer``."""
    if not reviewer.strip():
        raise InputError("--reviewer must not be empty")
    run = ReviewRun.load(run_dir, codebook_path)
    run.texts  # noqa: B018 -- read the transcripts once, at start-up
    view = ReviewView(run, reviewer.strip(), secrets.token_urlsafe(24))
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app = FastAPI(title="imri review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.state.view = view

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def language(request: Request, lang: str | None) -> str:
        if lang in LANGUAGES:
            return lang
        cookie = request.cookies.get(LANG_COOKIE)
        return cookie if cookie in LANGUAGES else "en"

    def not_found(request: Request, lang: str) -> Response:
        context = view.context(None, lang) | {"missing": True}
        return templates.TemplateResponse(request, "review.html", context, status_code=404)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, segment: str | None = None, lang: str | None = None) -> Response:
        """The review page: the given segment, else the first one still waiting in the queue."""
        chosen = language(request, lang)
        segment_id = segment or view.next_segment()
        if segment_id is not None and segment_id not in run.segments.index:
            return not_found(request, chosen)
        response = templates.TemplateResponse(request, "review.html", view.context(segment_id, chosen))
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True)
        return response

    @app.post("/decide")
    def decide(
        request: Request,
        segment_id: Annotated[str, Form()],
        action: Annotated[str, Form()],
        token: Annotated[str, Form()],
        codes: Annotated[list[str], Form()] = [],  # noqa: B006 -- FastAPI copies form defaults
        memo: Annotated[str, Form(max_length=MAX_MEMO)] = "",
    ) -> Response:
        """Record one action (committed before answering), then show the next segment waiting."""
        if not secrets.compare_digest(token, view.token):
            return JSONResponse({"error": "stale or foreign page: reload it"}, status_code=403)
        if segment_id not in run.segments.index:
            return JSONResponse({"error": "unknown segment"}, status_code=404)
        if action not in ("accept", "reject", "change", "skip", "memo"):
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=400)
        unknown = sorted(set(codes) - set(run.codebook.impact_ids))
        if unknown:
            return JSONResponse({"error": f"unknown code(s) {', '.join(unknown)}"}, status_code=400)
        memo = memo.strip()
        if action == "memo" and not memo:
            return JSONResponse({"error": "the memo is empty"}, status_code=400)
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
        )
        history = view.store.history()
        following = segment_id if action == "memo" else view.next_segment(history)
        if request.headers.get("HX-Request") != "true":
            return RedirectResponse(_segment_url(following), status_code=303)
        context = view.context(following, language(request, None)) | {"oob": True}
        response = templates.TemplateResponse(request, "review_update.html", context)
        response.headers["HX-Push-Url"] = _segment_url(following)
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/progress")
    def api_progress() -> dict:
        """Progress and agreement so far, as JSON."""
        return view.stats(view.store.history())

    @app.get("/api/decisions")
    def api_decisions() -> list[dict]:
        """The latest decision of each reviewed segment (ids, offsets, codes; no text), as JSON."""
        columns = [c for c in HISTORY_COLUMNS if c not in ("memo", "model_version")]  # memos may quote text
        return view.store.decisions()[columns].to_dict(orient="records")

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
) -> None:
    """Start the review app on 127.0.0.1; its URL is the first line ``echo`` gets. Returns on Ctrl+C."""
    import uvicorn

    app = create_app(run_dir, reviewer, codebook_path)
    sock = bind(port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    echo(url)
    stats = app.state.view.stats(app.state.view.store.history())
    echo(
        f"reviewing {stats['queued']} queued segments of {run_dir} as {app.state.view.reviewer} "
        f"({stats['reviewed']} done); decisions -> {Path(run_dir) / 'review.db'}; Ctrl+C stops"
    )
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
