"""The local review app behind ``imri review serve RUN_DIR``: FastAPI, Jinja2 templates and htmx.

Server-rendered pages, no front-end build step and no network resource: htmx is vendored in
``pipeline/review/static``. Every decision is committed to ``RUN_DIR/review.db`` before the answer is sent
(see :mod:`pipeline.review.store`).

Views: the *queue* (one segment at a time, in priority order), *browse* (every segment, filtered, in
transcript order, queued or not), the *transcript* (a whole interview, turns in order, the model's
and the reviewers' codes in the margin), *agreement* (reviewers with each other and with the model)
and the *history* of actions (skips, memos and undos included). Filters (impact, category,
transcript, language, speaker role, status, reviewer) apply to the queue, browse and the transcript.
Every label is in English or French (:mod:`pipeline.review.text`), the codebook's names too.

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
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pipeline.codebook import LANGUAGES, Codebook
from pipeline.errors import InputError
from pipeline.review.run import ReviewRun, agreement, disagreements, pending, progress, reviewer_agreement, statuses
from pipeline.review.store import (
    CONSENSUS,
    DECIDING,
    HISTORY_COLUMNS,
    MAX_MEMO,
    applies,
    effective,
    latest_decisions,
    reviewers_only,
    set_aside_count,
    split_codes,
)
from pipeline.review.text import Strings, format_number, reason_text, strings

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
HOST = "127.0.0.1"
LANG_COOKIE = "imri_review_lang"
SECRET_PARAM = "token"
CAPABILITY = "s"  # every page of the app is under /s/<secret>/
SHORTCUTS = 9  # codes 1-9 toggle the nine most probable impacts; "/" searches every one
PAGE_SIZE = 100  # rows per page of the browse view
RECENT = 8  # actions in the history side panel
MODES = ("queue", "browse")
ROLES = ("participant", "interviewer")
STATUS_FILTERS = ("queued", "suggested", "auto_accepted", "reviewed", "skipped")
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


def code_name(book: Codebook, code: str, lang: str) -> str:
    """The impact's name in ``lang``; a code the codebook does not have (removed or renamed since the
    decision was made) as it is, marked unknown."""
    try:
        return book.impact(code).name[lang]
    except KeyError:
        return f"{code} ({strings(lang).unknown_code})"


def blind_pairs(run: ReviewRun, decisions: pd.DataFrame, reviewer: str) -> tuple[list[dict], int]:
    """What blind mode's agreement view shows: (``reviewer``'s pairs, queued segments ``reviewer`` has left).

    Figures that change with each decision would let a reviewer probe the other's decisions one
    segment at a time ("segments in common", an impact's count). So: nothing of another reviewer until
    both have decided every queued segment, and then figures over the queue only (deciding segments
    outside it changes nothing). ``decisions``: :func:`latest_decisions` of every reviewer.
    """
    queued = set(run.queue)
    decided = {name: set(rows.segment_id) for name, rows in decisions.groupby("reviewer")} if len(decisions) else {}
    left = len(queued - decided.get(reviewer, set()))
    if left:
        return [], left
    done = {name for name, segments in decided.items() if queued <= segments}
    compared = decisions[decisions.reviewer.isin(done) & decisions.segment_id.isin(queued)]
    return [pair for pair in reviewer_agreement(run, compared) if reviewer in pair["reviewers"]], 0


def browser_language(header: str) -> str:
    """The first language of an ``Accept-Language`` header the app speaks (by weight), else English."""
    weighted = []
    for position, part in enumerate(header[:1000].split(",")):
        tag, _, rest = part.strip().partition(";")
        weight = 1.0
        if rest.strip().startswith("q="):
            try:
                weight = float(rest.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, position, tag.strip().split("-")[0].casefold()))
    for weight, _, primary in sorted(weighted):
        if weight < 0 and primary in LANGUAGES:
            return primary
    return "en"


def session_summary(history: pd.DataFrame, reviewer: str, queued: set[str], pause: float = 600.0) -> dict:
    """What one reviewer did in this run: decisions (on the queue), how many changed the model's codes,
    agreement with the model, and the time spent (gaps between actions, pauses over ``pause`` seconds
    left out)."""
    mine = history[history.reviewer == reviewer] if len(history) else history
    decisions = latest_decisions(mine)
    changed = (
        sum(
            set(split_codes(b)) != set(split_codes(a))
            for b, a in zip(decisions.codes_before, decisions.codes_after, strict=True)
        )
        if len(decisions)
        else 0
    )
    times = pd.to_datetime(mine.decided_at, utc=True, format="ISO8601").sort_values() if len(mine) else None
    seconds = 0.0
    if times is not None and len(times) > 1:
        gaps = times.diff().dt.total_seconds().dropna()
        seconds = float(gaps[gaps <= pause].sum())
    return {
        "reviewed": len(decisions),
        "in_queue": int(decisions.segment_id.isin(queued).sum()) if len(decisions) else 0,
        "changed": int(changed),
        "agreement": agreement(decisions),
        "minutes": round(seconds / 60),
        "actions": len(mine),
    }


def link(path: str, **params: object) -> str:
    """``path?query`` with the non-empty parameters."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def searchable(*names: str) -> str:
    """Names folded for type-ahead search: lower case, accents removed (``é`` matches ``e``)."""
    text = " | ".join(names)
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Filters:
    """Which segments a view shows; an empty field does not filter. ``role`` empty means participants."""

    impact: str = ""
    category: str = ""
    source: str = ""
    language: str = ""
    role: str = ""
    status: str = ""
    reviewer: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str], run: ReviewRun) -> Filters:
        """The filters of a query; values the run does not know are dropped."""
        allowed = {
            "impact": set(run.codebook.impact_ids),
            "category": set(run.codebook.category_ids),
            "source": set(run.segments.source),
            "language": set(run.segments.language) - {""} if "language" in run.segments else set(),
            "role": set(ROLES),
            "status": set(STATUS_FILTERS),
        }
        values = {}
        for name in (f.name for f in fields(cls)):
            value = str(params.get(name) or "")
            if name == "reviewer":
                values[name] = value.strip()[:200]
            else:
                values[name] = value if value in allowed[name] else ""
        return cls(**values)

    def params(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    @property
    def active(self) -> bool:
        return bool(self.params())


class ReviewView:
    """What the pages show, computed from the run and the decisions that count for this reviewer."""

    def __init__(self, run: ReviewRun, reviewer: str, token: str, blind: bool = False, base: str = "") -> None:
        self.run, self.reviewer, self.token, self.blind = run, reviewer, token, blind
        self.base = base  # the capability path every link starts with
        self.store = run.store()
        self.position = {segment_id: i + 1 for i, segment_id in enumerate(run.queue)}
        book = run.codebook
        self.category_of = {i: book.category_of(i) for i in book.impact_ids}

    # --- the decisions that count ----------------------------------------------------------------

    def snapshot(self) -> tuple[pd.DataFrame, pd.DataFrame, int]:
        """(the actions shown: this run's, only the reviewer's own when blind; every action of this
        run, all reviewers; decisions set aside because they belong to another run)."""
        history = self.store.history()
        if len(history):
            mask = applies(history, self.run.segments, self.run.fingerprints)
            current, other = history[mask], history[~mask]
        else:
            current, other = history, history
        if self.blind:
            other = other[other.reviewer == self.reviewer] if len(other) else other
        shown = current[current.reviewer == self.reviewer] if self.blind and len(current) else current
        return shown, current, set_aside_count(other)

    def stats(self, history: pd.DataFrame) -> dict:
        """:func:`pipeline.review.store.progress`, the share of the queue done, and reviewer pairs (not blind)."""
        stats = progress(self.run, history)
        stats["percent"] = round(100 * stats["reviewed"] / stats["queued"]) if stats["queued"] else 100
        stats["pairs"] = [] if self.blind else reviewer_agreement(self.run, latest_decisions(history))
        if self.blind:  # blind: nothing of the model, not even how far one agrees with it
            stats["agreement"] = None
        return stats

    # --- which segments ----------------------------------------------------------------------------

    def listing(self, filters: Filters, history: pd.DataFrame) -> pd.DataFrame:
        """The segments the filters keep, in transcript order, with a ``status`` column."""
        segments = self.run.segments
        rows = segments[segments.role == (filters.role or "participant")]
        if filters.source:
            rows = rows[rows.source == filters.source]
        if filters.language:
            rows = rows[rows.language == filters.language]
        status = statuses(self.run, history)
        rows = rows.assign(status=rows.segment_id.map(status).fillna(""))
        if filters.status == "suggested" and not self.blind:
            rows = rows[rows.codes != ""]
        elif filters.status:
            rows = rows[rows.status == filters.status]
        decisions = latest_decisions(history)
        if filters.reviewer:
            rows = rows[rows.segment_id.isin(set(decisions.segment_id[decisions.reviewer == filters.reviewer]))]
        if filters.impact or filters.category:
            wanted = set(self.run.codebook.impact_ids)
            if filters.impact:
                wanted &= {filters.impact}
            if filters.category:
                wanted &= {i for i, c in self.category_of.items() if c == filters.category}
            decided: dict[str, set[str]] = {}
            for d in decisions.itertuples():
                decided.setdefault(d.segment_id, set()).update(split_codes(d.codes_after))
            keep = [
                bool(wanted & ((set() if self.blind else set(split_codes(codes))) | decided.get(segment_id, set())))
                for segment_id, codes in zip(rows.segment_id, rows.codes, strict=True)
            ]
            rows = rows[keep]
        return rows

    def order(self, mode: str, filters: Filters, history: pd.DataFrame) -> list[str]:
        """The segments J/K step through: the queue (priority order) or the browse list (transcript order)."""
        kept = list(self.listing(filters, history).segment_id)
        if mode == "browse":
            return kept
        chosen = set(kept)
        return [s for s in self.run.queue if s in chosen]

    def next_segment(self, mode: str, filters: Filters, history: pd.DataFrame, after: str | None = None) -> str | None:
        """Queue: the first segment still waiting that the filters keep. Browse: the one after ``after``."""
        if mode == "browse":
            order = self.order(mode, filters, history)
            if after is None:
                return order[0] if order else None
            index = order.index(after) + 1 if after in order else 0
            return order[index] if index < len(order) else None
        chosen = set(self.listing(filters, history).segment_id)
        return next((s for s in pending(self.run, history) if s in chosen), None)

    # --- what the templates show -----------------------------------------------------------------------

    def decisions_of(self, segment_id: str, history: pd.DataFrame, lang: str) -> list[dict]:
        """The shown decisions on one segment, newest first."""
        decisions = latest_decisions(history)
        mine = decisions[decisions.segment_id == segment_id] if len(decisions) else decisions
        return [
            {
                "action": d.action,
                "reviewer": d.reviewer,
                "decided_at": str(d.decided_at)[:19].replace("T", " "),
                "codes": [code_name(self.run.codebook, c, lang) for c in split_codes(d.codes_after)],
                "ids": split_codes(d.codes_after),
            }
            for d in mine.iloc[::-1].itertuples()
        ]

    def segment(self, segment_id: str, history: pd.DataFrame, lang: str, t: Strings, nav: dict) -> dict:
        """Template context of the review panel for one segment."""
        run, book = self.run, self.run.codebook
        row = run.segment(segment_id)
        decisions = self.decisions_of(segment_id, history, lang)
        blind = self.blind  # blind: no model code, no probability, codebook order, nothing ticked in advance
        suggested = set() if blind else set(run.suggested(segment_id))
        checked = set(decisions[0]["ids"]) if decisions else suggested
        other = next(x for x in LANGUAGES if x != lang)
        codes = []
        ranked = [(i, None) for i in book.impact_ids] if blind else run.probabilities(segment_id)
        for rank, (impact_id, p) in enumerate(ranked):
            impact = book.impact(impact_id)
            category = next(c for c in book.categories if c.id == impact.category)
            cutoff = run.thresholds[impact_id]
            codes.append(
                {
                    "id": impact_id,
                    "name": impact.name[lang],
                    "other_name": impact.name[other],
                    "search": searchable(impact.name["en"], impact.name["fr"], impact_id.replace("_", " ")),
                    "category": category.name[lang],
                    "kind": impact.kind,
                    "p": p,
                    "p_text": "" if blind else format_number(p, lang),
                    "cutoff": None if blind or cutoff.kind == "above" else (cutoff.low, cutoff.high),
                    "cutoff_text": "" if blind else cutoff.text(lambda x: format_number(x, lang)),
                    "model": impact_id in suggested,
                    "checked": impact_id in checked,
                    "shortcut": rank + 1 if rank < SHORTCUTS else None,
                    "definition": book.with_names(impact.definition, lang),
                    "include": impact.include,
                    # impact ids named as the reviewer sees them in the list
                    "exclude": [book.with_names(hint, lang) for hint in impact.exclude],
                }
            )
        before, text, after = run.turn(segment_id)
        previous = run.previous_turn(segment_id)
        question = str(row.get("question", "") or "")
        info = run.queue_info.get(segment_id, {})
        kept = effective(history)
        memos = kept.memo[(kept.segment_id == segment_id) & (kept.memo != "")] if len(kept) else []
        language = str(row.get("language", "") or "")
        role = str(row.get("role", ""))
        return {
            "id": segment_id,
            "source": row.source,
            "start": int(row.start),
            "end": int(row.end),
            "speaker": row.get("speaker", ""),
            "role": role,
            "role_name": t.get(f"role_{role}", role),
            "language": language,
            "language_name": t.get(f"language_{language}", language),
            "transcript_language": run.transcript_language.get(str(row.source), language) or language,
            "before": before,
            "text": text,
            "after": after,
            "question": question,
            "previous": previous if previous and previous[1].strip() != question.strip() else None,
            "position": self.position.get(segment_id),
            "priority": None if blind else info.get("priority"),
            "reasons": "" if blind else reason_text(info.get("reason", ""), lang),
            "codes": codes,
            "model_codes": [c for c in codes if c["model"]],
            "decisions": decisions,
            "memos": list(memos),
            **nav,
        }

    def recent(self, history: pd.DataFrame, where: dict) -> list[dict]:
        """The latest actions shown (undos and skips included), newest first."""
        if history.empty:
            return []
        undone = set(history.undoes.dropna().astype("int64"))
        return [
            {
                "url": self.base + link("/", segment=r.segment_id, **where),
                "source": r.source,
                "start": r.start,
                "end": r.end,
                "action": r.action,
                "codes": len(split_codes(r.codes_after)),
                "reviewer": r.reviewer,
                "undone": r.id in undone,
            }
            for r in history.tail(RECENT).iloc[::-1].itertuples()
        ]


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

    def at(path: str, **params: object) -> str:
        """:func:`link` under the capability path."""
        return base + link(path, **params)

    def language(request: Request, lang: str | None, source: str | None = None) -> str:
        """The reviewer's choice (this request, then the cookie), else the browser's ``Accept-Language``,
        else English; never the data's language (``source`` is not used for it)."""
        if lang in LANGUAGES:
            return lang
        chosen = request.cookies.get(LANG_COOKIE)
        if chosen in LANGUAGES:
            return chosen
        return browser_language(request.headers.get("accept-language", ""))

    def state(params: Mapping[str, str]) -> tuple[str, Filters]:
        mode = params.get("mode", "queue")
        return (mode if mode in MODES else "queue"), Filters.parse(params, run)

    def where_of(mode: str, filters: Filters) -> dict[str, str]:
        return {**({"mode": mode} if mode != "queue" else {}), **filters.params()}

    def segment_link(segment_id: str | None, mode: str, filters: Filters) -> str:
        return (
            at("/", **where_of(mode, filters))
            if segment_id is None
            else at("/", segment=segment_id, **where_of(mode, filters))
        )

    def common(
        request: Request, view_name: str, lang: str, mode: str, filters: Filters, shown: pd.DataFrame, set_aside: int
    ) -> dict:
        t = strings(lang)
        other = next(x for x in LANGUAGES if x != lang)
        where = where_of(mode, filters)
        mine = effective(shown[shown.reviewer == view.reviewer]) if len(shown) else shown
        mine = mine[mine.action != "undo"] if len(mine) else mine
        book = run.codebook
        filter_params = filters.params()
        transcript_source = filters.source or None
        return {
            "run": run,
            "reviewer": view.reviewer,
            "blind": view.blind,
            "token": view.token,
            "base": base,
            "lang": lang,
            "other_lang": other,
            "t": t,
            "num": lambda value, digits=2: format_number(value, lang, digits),
            "view": view_name,
            "mode": mode,
            "filters": filters,
            "where": urlencode(where),
            "stats": view.stats(shown),
            "recent": view.recent(shown, where),
            "can_undo": bool(len(mine)),
            "back_url": segment_link(mine.segment_id.iloc[-1], mode, filters) if len(mine) else None,
            "set_aside": set_aside,
            "max_memo": MAX_MEMO,
            "lang_url": request.url.path + "?" + urlencode([*request.query_params.multi_items(), ("lang", other)]),
            "urls": {
                "queue": at("/", **filter_params),
                "browse": at("/browse", **filter_params),
                "transcript": at("/transcript", source=transcript_source),
                "agreement": base + "/agreement",
                "history": base + "/history",
            },
            "view_path": base + {"browse": "/browse", "transcript": "/transcript"}.get(view_name, "/"),
            "clear_url": {"browse": base + "/browse", "transcript": at("/transcript", source=filters.source)}.get(
                view_name, at("/", **({"mode": mode} if mode != "queue" else {}))
            ),
            "filter_form": view_name in ("queue", "browse", "transcript"),
            "filters_narrowed": Filters(**{**asdict(filters), "source": ""}).active
            if view_name == "transcript"
            else filters.active,
            "options": {
                "categories": [
                    {
                        "id": c.id,
                        "name": c.name[lang],
                        "impacts": [{"id": i.id, "name": i.name[lang]} for i in book.impacts if i.category == c.id],
                    }
                    for c in book.categories
                ],
                "sources": sorted(set(run.segments.source)),
                "languages": sorted(set(run.segments.get("language", pd.Series([], dtype=str))) - {""}),
                "roles": ROLES,
                "statuses": tuple(x for x in STATUS_FILTERS if not (view.blind and x == "suggested")),
                "reviewers": sorted(set(shown.reviewer)) if len(shown) else [],
            },
            "missing": False,
            "oob": False,
        }

    def model_chips(segment_id: str, lang: str) -> list[dict]:
        """The model's suggested impacts of a segment: name and probability (none in blind mode)."""
        if view.blind:
            return []
        return [
            {
                "name": run.codebook.impact(c).name[lang],
                "p_text": format_number(float(run.segments.at[segment_id, f"p:{c}"]), lang),
            }
            for c in run.suggested(segment_id)
        ]

    def decision_chips(decisions: pd.DataFrame | None, lang: str) -> list[dict]:
        """Shown decisions on a segment: reviewer, action and the impacts' names."""
        if decisions is None:
            return []
        return [
            {
                "reviewer": d.reviewer,
                "action": d.action,
                "codes": [code_name(run.codebook, c, lang) for c in split_codes(d.codes_after)],
            }
            for d in decisions.itertuples()
        ]

    def with_lang_cookie(response: Response, lang: str | None) -> Response:
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True)
        return response

    def panel_context(
        request: Request, segment_id: str | None, lang: str, mode: str, filters: Filters, snapshot: tuple
    ) -> dict:
        shown, _, set_aside = snapshot
        context = common(request, "queue" if mode == "queue" else "browse", lang, mode, filters, shown, set_aside)
        context["segment"] = None
        if segment_id is not None:
            order = view.order(mode, filters, shown)
            index = order.index(segment_id) if segment_id in order else None
            nav = {
                "previous_url": segment_link(order[index - 1], mode, filters) if index else None,
                "next_url": (
                    segment_link(order[index + 1], mode, filters)
                    if index is not None and index + 1 < len(order)
                    else (segment_link(order[0], mode, filters) if index is None and order else None)
                ),
                "transcript_url": at("/transcript", source=run.segment(segment_id).source, focus=segment_id),
                "url": segment_link(segment_id, mode, filters),
            }
            context["segment"] = view.segment(segment_id, shown, lang, context["t"], nav)
        else:
            context["finished"] = finished(shown)
        return context

    def finished(shown: pd.DataFrame) -> dict:
        """The finished screen: this reviewer's session, the export, and retraining where the gold set is known."""
        import shlex

        folder = shlex.quote(str(run.folder))
        training = run.card.get("training_data") or {}
        gold = [str(g) for g in training.get("gold") or []]
        coders = [str(c) for c in training.get("coders") or []]
        retrain = None
        if gold:
            retrain = " ".join(
                [
                    "imri train",
                    *(f"--gold {shlex.quote(g)}" for g in gold),
                    *(f"--coder {shlex.quote(c)}" for c in coders),
                    f"--include-reviews {folder}",
                ]
            )
        return {
            "summary": session_summary(shown, view.reviewer, set(run.queue)),
            "export_qdpx": f"imri review export {folder} --out {shlex.quote(str(run.folder / 'final-coding.qdpx'))}",
            "export_csv": f"imri review export {folder} --out {shlex.quote(str(run.folder / 'final-coding.csv'))}",
            "download_qdpx": at("/export", format="qdpx"),
            "download_csv": at("/export", format="csv"),
            "retrain": retrain,
            "gold": gold,
        }

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, segment: str | None = None, lang: str | None = None) -> Response:
        """One segment to review: the given one, else the first one waiting (queue) or listed (browse)."""
        mode, filters = state(request.query_params)
        snapshot = view.snapshot()
        missing = segment is not None and segment not in run.segments.index
        segment_id = None if missing else segment or view.next_segment(mode, filters, snapshot[0])
        chosen = language(request, lang, run.segment(segment_id).source if segment_id else filters.source or None)
        context = panel_context(request, segment_id, chosen, mode, filters, snapshot)
        context["missing"] = missing
        response = templates.TemplateResponse(request, "review.html", context, status_code=404 if missing else 200)
        return with_lang_cookie(response, lang)

    @app.get("/browse", response_class=HTMLResponse)
    def browse(request: Request, lang: str | None = None, page: int = 1) -> Response:
        """Every segment the filters keep, queued or not, in transcript order; click or Enter to review one."""
        _, filters = state(request.query_params)
        shown, _, set_aside = view.snapshot()
        chosen = language(request, lang, filters.source or None)
        context = common(request, "browse", chosen, "browse", filters, shown, set_aside)
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
            "previous_page_url": at("/browse", page=page - 1, **filters.params()) if page > 1 else None,
            "next_page_url": at("/browse", page=page + 1, **filters.params()) if page < pages else None,
            "rows": [
                {
                    "id": r.segment_id,
                    "url": segment_link(r.segment_id, "browse", filters),
                    "source": r.source,
                    "start": r.start,
                    "end": r.end,
                    "speaker": getattr(r, "speaker", ""),
                    "language": getattr(r, "language", ""),
                    "text": r.text,
                    "status": r.status,
                    "model": model_chips(r.segment_id, chosen),
                    "decisions": decision_chips(by_segment.get(r.segment_id), chosen),
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
        _, filters = state({k: v for k, v in request.query_params.items() if k != "source"})
        shown, _, set_aside = view.snapshot()
        sources = sorted(set(run.segments.source))
        if source not in sources:
            waiting = pending(run, shown)
            source = run.segment(waiting[0]).source if waiting else sources[0]
        filters = Filters(**{**asdict(filters), "source": source})
        chosen = language(request, lang, source)
        context = common(request, "transcript", chosen, "browse", filters, shown, set_aside)
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
                        "url": segment_link(r.segment_id, "browse", plain),
                        "focus": r.segment_id == focus,
                        "match": matching is None or not reviewable or r.segment_id in matching,
                        "status": status.get(r.segment_id, "") if reviewable else "",
                        "model": model_chips(r.segment_id, chosen) if reviewable else [],
                        "decisions": decision_chips(by_segment.get(r.segment_id), chosen),
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

    def compared(everyone: pd.DataFrame) -> tuple[list[dict], int, list[str] | None]:
        """(the reviewer pairs this reviewer may see, queued segments left in blind mode, the segments
        compared: the queue in blind mode, else every segment both decided (None))."""
        if view.blind:
            pairs, left = blind_pairs(run, everyone, view.reviewer)
            return pairs, left, run.queue
        return reviewer_agreement(run, everyone), 0, None

    def to_reconcile(everyone: pd.DataFrame, pair: tuple[str, str], among: list[str] | None, lang: str) -> list[dict]:
        """The disagreements of one pair, each with both codings' names and the consensus if any."""
        book = run.codebook
        rows = disagreements(everyone, pair[0], pair[1], among)
        for number, row in enumerate(rows, 1):
            segment = run.segment(row["segment_id"])
            row |= {
                "number": number,
                "source": segment.source,
                "start": int(segment.start),
                "end": int(segment.end),
                "text": segment.text,
                "first_names": [code_name(book, c, lang) for c in row["first"]],
                "second_names": [code_name(book, c, lang) for c in row["second"]],
                "consensus_names": None
                if row["consensus"] is None
                else [code_name(book, c, lang) for c in row["consensus"]],
                "url": at("/reconcile", first=pair[0], second=pair[1], segment=row["segment_id"]),
            }
        return rows

    @app.get("/agreement", response_class=HTMLResponse)
    def agreement_page(request: Request, lang: str | None = None) -> Response:
        """Reviewers with the model, and with each other on the segments both decided (Cohen's kappa);
        then each pair's disagreements, to reconcile one by one."""
        shown, current, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = common(request, "agreement", chosen, "queue", Filters(), shown, set_aside)
        everyone = latest_decisions(current)
        book = run.codebook
        pairs, blind_left, among = compared(everyone)
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
            pair["disagreements"] = to_reconcile(everyone, pair["reviewers"], among, chosen)
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

    def reconcilable(first: str, second: str) -> tuple[list[dict], list[str] | None] | None:
        """The pair's disagreements when this reviewer may see the pair (blind: once both finished)."""
        _, current, _ = view.snapshot()
        everyone = latest_decisions(current)
        pairs, _, among = compared(everyone)
        if (first, second) not in {tuple(p["reviewers"]) for p in pairs}:
            return None
        return disagreements(everyone, first, second, among), among

    @app.get("/reconcile", response_class=HTMLResponse)
    def reconcile_page(
        request: Request, first: str = "", second: str = "", segment: str | None = None, lang: str | None = None
    ) -> Response:
        """One disagreement of two reviewers: the segment, both codings, and the consensus to decide."""
        shown, current, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = common(request, "agreement", chosen, "queue", Filters(), shown, set_aside)
        first, second = sorted((first, second))  # pairs are named in alphabetical order
        found = reconcilable(first, second)
        if found is None:
            return PlainTextResponse("no such pair of reviewers to reconcile (yet)", status_code=404)
        everyone = latest_decisions(current)
        rows = to_reconcile(everyone, (first, second), found[1], chosen)
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
        found = reconcilable(first, second)
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
        rows = reconcilable(first, second)[0]
        order = [r["segment_id"] for r in rows]
        after = order[order.index(segment_id) + 1 :] + order[: order.index(segment_id)]
        waiting = {r["segment_id"] for r in rows if r["consensus"] is None}
        following = next((s for s in after if s in waiting), None)
        target = at("/reconcile", first=first, second=second, segment=following) if following else base + "/agreement"
        return RedirectResponse(target, status_code=303)

    @app.get("/history", response_class=HTMLResponse)
    def history_page(request: Request, lang: str | None = None) -> Response:
        """Every action shown, newest first: decisions, skips, memos, undos (the undone ones marked)."""
        shown, _, set_aside = view.snapshot()
        chosen = language(request, lang)
        context = common(request, "history", chosen, "queue", Filters(), shown, set_aside)
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
                "url": at("/", segment=r.segment_id),
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

    def parse_where(where: str) -> tuple[str, Filters]:
        return state(dict(parse_qsl(where[:2000])))

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
        mode, filters = parse_where(where)
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
        url = segment_link(following, mode, filters)
        if request.headers.get("HX-Request") != "true":
            return RedirectResponse(url, status_code=303)
        chosen = lang if lang in LANGUAGES else language(request, None)
        context = panel_context(request, following, chosen, mode, filters, snapshot) | {"oob": True}
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
        mode, filters = parse_where(where)
        taken = view.store.undo(view.reviewer, keep=run.applies_to, run_id=run.run_id)
        return RedirectResponse(segment_link(None if taken is None else taken.segment_id, mode, filters), 303)

    @app.get("/export")
    def export(format: str = "qdpx") -> Response:  # noqa: A002 -- the query parameter's name
        """The run's final coding (:func:`pipeline.review.store.export_final`) as a download: .qdpx or .csv."""
        import tempfile

        from pipeline.review.export import export_final

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
