"""What the review app's pages show (the view model the templates read), computed from the run and the decisions.

Views: the *queue* (one segment at a time, in priority order), *browse* (every segment, filtered, in
transcript order, queued or not), the *transcript* (a whole interview, turns in order, the model's
and the reviewers' codes in the margin), *agreement* (reviewers with each other and with the model)
and the *history* of actions (skips, memos and undos included). Filters (impact, category,
transcript, language, speaker role, status, reviewer) apply to the queue, browse and the transcript.
Every label is in English or French (:mod:`pipeline.review.text`), the codebook's names too."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from urllib.parse import parse_qsl, urlencode

import pandas as pd
from fastapi import Request, Response

from pipeline.codebook import LANGUAGES, Codebook
from pipeline.review.run import (
    ReviewRun,
    agreement,
    applies,
    disagreements,
    pending,
    progress,
    reviewer_agreement,
    statuses,
)
from pipeline.review.store import MAX_MEMO, effective, latest_decisions, set_aside_count, split_codes
from pipeline.review.text import Strings, format_number, reason_text, strings

LANG_COOKIE = "imri_review_lang"
SHORTCUTS = 9  # codes 1-9 toggle the nine most probable impacts; "/" searches every one
RECENT = 8  # actions in the history side panel
MODES = ("queue", "browse")
ROLES = ("participant", "interviewer")
STATUS_FILTERS = ("queued", "suggested", "auto_accepted", "reviewed", "skipped")


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
        """:func:`pipeline.review.run.progress`, the share of the queue done, and reviewer pairs (not blind)."""
        stats = progress(self.run, history)
        stats["percent"] = round(100 * stats["reviewed"] / stats["queued"]) if stats["queued"] else 100
        stats["pairs"] = [] if self.blind else reviewer_agreement(self.run, latest_decisions(history))
        if self.blind:  # blind: nothing of the model, not even how far one agrees with it
            stats["agreement"] = None
        return stats

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

    def at(self, path: str, **params: object) -> str:
        """:func:`link` under the capability path."""
        return self.base + link(path, **params)

    def state(self, params: Mapping[str, str]) -> tuple[str, Filters]:
        mode = params.get("mode", "queue")
        return (mode if mode in MODES else "queue"), Filters.parse(params, self.run)

    def segment_link(self, segment_id: str | None, mode: str, filters: Filters) -> str:
        return (
            self.at("/", **where_of(mode, filters))
            if segment_id is None
            else self.at("/", segment=segment_id, **where_of(mode, filters))
        )

    def common(
        self,
        request: Request,
        view_name: str,
        lang: str,
        mode: str,
        filters: Filters,
        shown: pd.DataFrame,
        set_aside: int,
    ) -> dict:
        at, base = self.at, self.base
        t = strings(lang)
        other = next(x for x in LANGUAGES if x != lang)
        where = where_of(mode, filters)
        mine = effective(shown[shown.reviewer == self.reviewer]) if len(shown) else shown
        mine = mine[mine.action != "undo"] if len(mine) else mine
        book = self.run.codebook
        filter_params = filters.params()
        transcript_source = filters.source or None
        return {
            "run": self.run,
            "reviewer": self.reviewer,
            "blind": self.blind,
            "token": self.token,
            "base": base,
            "lang": lang,
            "other_lang": other,
            "t": t,
            "num": lambda value, digits=2: format_number(value, lang, digits),
            "view": view_name,
            "mode": mode,
            "filters": filters,
            "where": urlencode(where),
            "stats": self.stats(shown),
            "recent": self.recent(shown, where),
            "can_undo": bool(len(mine)),
            "back_url": self.segment_link(mine.segment_id.iloc[-1], mode, filters) if len(mine) else None,
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
            "clear_url": {
                "browse": base + "/browse",
                "transcript": at("/transcript", source=filters.source),
            }.get(view_name, at("/", **({"mode": mode} if mode != "queue" else {}))),
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
                "sources": sorted(set(self.run.segments.source)),
                "languages": sorted(set(self.run.segments.get("language", pd.Series([], dtype=str))) - {""}),
                "roles": ROLES,
                "statuses": tuple(x for x in STATUS_FILTERS if not (self.blind and x == "suggested")),
                "reviewers": sorted(set(shown.reviewer)) if len(shown) else [],
            },
            "missing": False,
            "oob": False,
        }

    def model_chips(self, segment_id: str, lang: str) -> list[dict]:
        """The model's suggested impacts of a segment: name and probability (none in blind mode)."""
        if self.blind:
            return []
        return [
            {
                "name": self.run.codebook.impact(c).name[lang],
                "p_text": format_number(float(self.run.segments.at[segment_id, f"p:{c}"]), lang),
            }
            for c in self.run.suggested(segment_id)
        ]

    def decision_chips(self, decisions: pd.DataFrame | None, lang: str) -> list[dict]:
        """Shown decisions on a segment: reviewer, action and the impacts' names."""
        if decisions is None:
            return []
        return [
            {
                "reviewer": d.reviewer,
                "action": d.action,
                "codes": [code_name(self.run.codebook, c, lang) for c in split_codes(d.codes_after)],
            }
            for d in decisions.itertuples()
        ]

    def panel_context(
        self, request: Request, segment_id: str | None, lang: str, mode: str, filters: Filters, snapshot: tuple
    ) -> dict:
        shown, _, set_aside = snapshot
        context = self.common(request, "queue" if mode == "queue" else "browse", lang, mode, filters, shown, set_aside)
        context["segment"] = None
        if segment_id is not None:
            order = self.order(mode, filters, shown)
            index = order.index(segment_id) if segment_id in order else None
            nav = {
                "previous_url": self.segment_link(order[index - 1], mode, filters) if index else None,
                "next_url": (
                    self.segment_link(order[index + 1], mode, filters)
                    if index is not None and index + 1 < len(order)
                    else (self.segment_link(order[0], mode, filters) if index is None and order else None)
                ),
                "transcript_url": self.at("/transcript", source=self.run.segment(segment_id).source, focus=segment_id),
                "url": self.segment_link(segment_id, mode, filters),
            }
            context["segment"] = self.segment(segment_id, shown, lang, context["t"], nav)
        else:
            context["finished"] = self.finished(shown)
        return context

    def finished(self, shown: pd.DataFrame) -> dict:
        """The finished screen: this reviewer's session, the export, and retraining where the gold set is known."""
        import shlex

        run = self.run
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
            "summary": session_summary(shown, self.reviewer, set(run.queue)),
            "export_qdpx": f"imri review export {folder} --out {shlex.quote(str(run.folder / 'final-coding.qdpx'))}",
            "export_csv": f"imri review export {folder} --out {shlex.quote(str(run.folder / 'final-coding.csv'))}",
            "download_qdpx": self.at("/export", format="qdpx"),
            "download_csv": self.at("/export", format="csv"),
            "retrain": retrain,
            "gold": gold,
        }

    def compared(self, everyone: pd.DataFrame) -> tuple[list[dict], int, list[str] | None]:
        """(the reviewer pairs this reviewer may see, queued segments left in blind mode, the segments
        compared: the queue in blind mode, else every segment both decided (None))."""
        if self.blind:
            pairs, left = blind_pairs(self.run, everyone, self.reviewer)
            return pairs, left, self.run.queue
        return reviewer_agreement(self.run, everyone), 0, None

    def to_reconcile(
        self, everyone: pd.DataFrame, pair: tuple[str, str], among: list[str] | None, lang: str
    ) -> list[dict]:
        """The disagreements of one pair, each with both codings' names and the consensus if any."""
        book = self.run.codebook
        rows = disagreements(everyone, pair[0], pair[1], among)
        for number, row in enumerate(rows, 1):
            segment = self.run.segment(row["segment_id"])
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
                "url": self.at("/reconcile", first=pair[0], second=pair[1], segment=row["segment_id"]),
            }
        return rows

    def reconcilable(self, first: str, second: str) -> tuple[list[dict], list[str] | None] | None:
        """The pair's disagreements when this reviewer may see the pair (blind: once both finished)."""
        _, current, _ = self.snapshot()
        everyone = latest_decisions(current)
        pairs, _, among = self.compared(everyone)
        if (first, second) not in {tuple(p["reviewers"]) for p in pairs}:
            return None
        return disagreements(everyone, first, second, among), among

    def parse_where(self, where: str) -> tuple[str, Filters]:
        return self.state(dict(parse_qsl(where[:2000])))


def language(request: Request, lang: str | None, source: str | None = None) -> str:
    """The reviewer's choice (this request, then the cookie), else the browser's ``Accept-Language``,
    else English; never the data's language (``source`` is not used for it)."""
    if lang in LANGUAGES:
        return lang
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return browser_language(request.headers.get("accept-language", ""))


def where_of(mode: str, filters: Filters) -> dict[str, str]:
    return {**({"mode": mode} if mode != "queue" else {}), **filters.params()}


def with_lang_cookie(response: Response, lang: str | None) -> Response:
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True)
    return response
