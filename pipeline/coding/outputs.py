"""What a coding run writes: its run folder (checked first, built aside and swapped in whole) and ``summary.json``.

Writes into the output folder:

* ``segments.csv`` and ``segments.parquet``: the segment table plus ``codes`` (``;``-joined impact
  ids above their thresholds), ``code_names`` (their names in the transcript's language, ``; ``-joined),
  ``confidence``, ``needs_review`` and one ``p:<impact_id>`` column per impact. Interviewer segments stay
  in the table with empty codes and empty probabilities.
* ``passages.csv``: one row per participant turn (the passage a coder reads): its span, speaker, the
  codes of its sentences and its three most probable impacts with names and probabilities.
* ``review_queue.csv``: the segments of the passages (participant turns) whose review is expected to change
  the most, up to ``review.budget`` of the participant text (:func:`pipeline.coding.queue.review_budget`),
  highest value first; every other participant segment keeps the model's codes, unreviewed, with its
  confidence. Its top-3 ``suggestions`` read ``Name [impact_id] (probability)``.
* ``summary.json`` (counts for the run and per transcript, what the queue holds and what is left unreviewed,
  and each impact's most probable coded passages, with their text); ``coded.qdpx`` (REFI-QDA project with the
  suggestions as codings by the model: adjacent
  sentences of one turn with the same code are one coding, a passage);
  ``model.json`` (a copy of the model's card, so the run says what coded it).

The folder is built beside ``--out`` and swapped in whole (:func:`write_run`, :func:`pipeline.io.build_folder`):
a crash leaves the earlier folder or the new one, never a mix. :func:`check_run_folder` checks ``--out`` before
any work: an earlier run there is replaced, its ``review.db`` (the reviewers' decisions) kept; any other
non-empty folder needs ``--force``. :func:`summarise` makes ``summary.json``, with impacts and categories named
as the codebook names them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coding.decisions import passage_codings, passage_table
from pipeline.coding.queue import ReviewConfig, review_summary
from pipeline.errors import InputError

#: What ``imri code`` writes into a run folder.
RUN_FILES = frozenset(
    {
        "segments.csv",
        "segments.parquet",
        "passages.csv",
        "review_queue.csv",
        "summary.json",
        "model.json",
        "coded.qdpx",
        "transcripts",
        "roles.csv",
    }
)


REVIEW_DB = "review.db"  # = pipeline.review.store.REVIEW_DB: kept when a run folder is replaced


def names_language(segments: pd.DataFrame) -> str:
    """The language the run's summary names impacts in: French when most participant segments are French."""
    participant = segments[segments.role == "participant"]
    return "fr" if len(participant) and (participant.language == "fr").mean() > 0.5 else "en"


def summarise(segments: pd.DataFrame, codebook: Codebook, model_name: str, review: ReviewConfig | None = None) -> dict:
    """``summary.json``: counts of the run, with impacts and categories named as the codebook names them.

    ``codes_per_category`` and ``codes_per_impact`` are lists in codebook order of ``{"id", "name",
    "count"}`` (impacts also give their ``category``); names are in ``names_language``. ``per_transcript``
    gives the same counts for each transcript (impacts it got at least once), and ``confident_passages``
    each impact's most probable coded passages (:func:`confident_passages`). ``review`` says what the queue
    holds within ``review.budget`` and what is left unreviewed (:func:`review_summary`).
    """
    participant = segments[segments.role == "participant"]
    language = names_language(segments)
    applied = [set(codes.split(";")) - {""} for codes in participant.codes.astype(str)]
    per_code = {i: sum(i in codes for codes in applied) for i in codebook.impact_ids}
    per_impact = [
        {"id": impact.id, "name": impact.name[language], "category": impact.category, "count": per_code[impact.id]}
        for impact in codebook.impacts
    ]
    per_category = [
        {
            "id": category.id,
            "name": category.name[language],
            "count": sum(n for i, n in per_code.items() if codebook.category_of(i) == category.id),
        }
        for category in codebook.categories
    ]
    return {
        "model": model_name,
        "transcripts": int(segments.source.nunique()),
        "segments": int(len(segments)),
        "participant_segments": int(len(participant)),
        "participant_passages": int(participant.groupby(["source", "turn"]).ngroups) if len(participant) else 0,
        "coded_segments": int((participant.codes != "").sum()),
        "names_language": language,
        "codes_per_category": per_category,
        "codes_per_impact": per_impact,
        "sent_to_review": int(participant.needs_review.sum()),
        "share_sent_to_review": round(float(participant.needs_review.mean()) if len(participant) else 0.0, 4),
        "review": review_summary(segments, review),
        "languages": {k: int(v) for k, v in participant.language.value_counts().sort_index().items()},
        "per_transcript": per_transcript(segments, codebook, language),
        "confident_passages": confident_passages(segments, codebook, language),
    }


def per_transcript(segments: pd.DataFrame, codebook: Codebook, language: str) -> list[dict]:
    """``summary.json: per_transcript``: for each transcript (by source), its segments, participant segments,
    coded segments, segments sent to review and the impacts it got (codebook order, named in ``language``)."""
    rows = []
    for source, frame in segments.groupby("source", sort=True):
        participant = frame[frame.role == "participant"]
        applied = [set(str(codes).split(";")) - {""} for codes in participant.codes]
        counts = [(impact, sum(impact.id in codes for codes in applied)) for impact in codebook.impacts]
        rows.append(
            {
                "source": source,
                "segments": int(len(frame)),
                "participant_segments": int(len(participant)),
                "coded_segments": int(sum(bool(codes) for codes in applied)),
                "sent_to_review": int(participant.needs_review.sum()),
                "codes_per_impact": [
                    {"id": impact.id, "name": impact.name[language], "count": n} for impact, n in counts if n
                ],
            }
        )
    return rows


def confident_passages(segments: pd.DataFrame, codebook: Codebook, language: str, top: int = 3) -> list[dict]:
    """``summary.json: confident_passages``: per impact (codebook order, named in ``language``), its ``top``
    passages (participant turns, as in ``passages.csv``) that carry it, most probable first: source, start,
    end, speaker, the probability (the highest of the turn's sentences) and the passage's text."""
    participant = segments[segments.role == "participant"]
    keys = [participant.source.to_numpy(), participant.turn.to_numpy()]
    turns = participant.groupby(keys, sort=True).agg(
        start=("start", "min"), end=("end", "max"), speaker=("speaker", "first"), text=("text", " ".join)
    )
    coded = participant.codes.astype(str).str.get_dummies(sep=";").reindex(columns=codebook.impact_ids, fill_value=0)
    out = []
    for impact in codebook.impacts:
        carries = coded[impact.id].astype(bool)
        probability = participant[f"p:{impact.id}"].where(carries).groupby(keys, sort=True).max().dropna()
        best = probability.sort_values(ascending=False, kind="mergesort").head(top)  # ties: source, then turn
        passages = [
            {
                "source": source,
                "start": int(turns.at[(source, turn), "start"]),
                "end": int(turns.at[(source, turn), "end"]),
                "speaker": turns.at[(source, turn), "speaker"],
                "p": round(float(p), 4),
                "text": turns.at[(source, turn), "text"],
            }
            for (source, turn), p in best.items()
        ]
        out.append({"id": impact.id, "name": impact.name[language], "passages": passages})
    return out


def _is_review_file(name: str) -> bool:
    """``review.db`` and its SQLite journal files: the reviewers' decisions, never deleted by a new run."""
    return name == REVIEW_DB or name.startswith(f"{REVIEW_DB}-")


def _from_earlier_run(name: str) -> bool:
    """What an earlier run left in its folder (staging folders of older versions, the Finder's notes included)."""
    return name in RUN_FILES or _is_review_file(name) or name.startswith(".imri-code-") or name == ".DS_Store"


def _listing(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_run_folder(out: Path, force: bool = False, holds: list[Path] | tuple[Path, ...] = ()) -> str | None:
    """Check ``--out`` before any work; return what writing the run there will replace, in words (or None).

    Refused: a file, a path under a file, a folder that holds an input (``holds``) or the current
    folder, and, without ``force``, a non-empty folder that is not an earlier ``imri code`` run.
    """
    from pipeline.io import check_output_path

    check_output_path(out, "folder")
    where = out.resolve()
    for path in [*holds, Path.cwd()]:
        inside = path.resolve()
        if inside == where or where in inside.parents:
            what = "the current folder" if path == Path.cwd() else str(path)
            raise InputError(f"--out would replace {what}; choose a folder of its own for the run", out)
    if not out.is_dir():
        return None
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return None
    kept = [n for n in names if _is_review_file(n)]
    others = [n for n in names if not _from_earlier_run(n)]
    earlier = "summary.json" in names and bool({"segments.csv", "segments.parquet"} & set(names))
    keeping = f"; its {REVIEW_DB} is kept" if kept else ""
    if earlier and not others:
        return f"replacing the earlier run in {out}{keeping}"
    if not force:
        what = "holds files that imri code did not write" if earlier else "is not empty and is not an imri code run"
        raise InputError(f"{what} ({_listing(others)}); pass --force to replace the folder{keeping}", out)
    return f"replacing {out} and everything in it ({_listing([n for n in names if n not in kept])}){keeping}"


def write_run(
    out_dir: Path,
    segments: pd.DataFrame,
    queue: pd.DataFrame,
    summary: dict,
    card: dict,
    texts: dict[str, str],
    codebook: Codebook,
    gold_codings: pd.DataFrame | None = None,
    built: set[str] | frozenset[str] = frozenset(),
    roles: list[dict] | None = None,
) -> None:
    """Write every output of a run into a staging folder beside ``out_dir``, then swap it in whole.

    ``out_dir`` should have passed :func:`check_run_folder`. The reviewers' ``review.db`` of an earlier
    run there is carried into the new folder; everything else of the old folder goes. Transcripts whose
    text was built from the source (captions, Whisper JSON, .docx) are kept as
    ``transcripts/<source>.txt``: the offsets of ``segments.csv`` refer to that text. ``roles``
    (:func:`pipeline.ingest.role_rows`) are kept as ``roles.csv``: who interviews in each file, and
    how decided.
    """
    from pipeline.io import build_folder, write_table
    from pipeline.qdpx import export_qdpx, project_language

    with build_folder(out_dir, keep=_is_review_file) as staging:
        write_table(segments, staging / "segments.csv")
        write_table(segments, staging / "segments.parquet")
        write_table(passage_table(segments, codebook), staging / "passages.csv")
        write_table(queue, staging / "review_queue.csv")
        if roles is not None:
            write_table(pd.DataFrame(roles, columns=["source", "speaker", "role", "how"]), staging / "roles.csv")
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "model.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        codings = passage_codings(segments, f"imri model {card['name']} {card['version']}")
        if gold_codings is not None:
            gold = gold_codings[gold_codings.source.isin(texts)].assign(description="")
            codings = pd.concat([codings, gold[codings.columns]], ignore_index=True)
        by_transcript = segments.drop_duplicates("source")
        language = project_language(
            by_transcript["transcript_language"] if "transcript_language" in segments else segments["language"]
        )
        export_qdpx(
            texts,
            codings,
            staging / "coded.qdpx",
            codebook,
            project_name=f"imri code: {card['name']} {card['version']}",
            language=language,
        )
        if built:
            (staging / "transcripts").mkdir()
            for source in sorted(built):
                (staging / "transcripts" / f"{source}.txt").write_text(texts[source], encoding="utf-8", newline="")
