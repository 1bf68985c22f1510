"""Speakers and their roles: who interviews in each transcript, and how that was decided.

A speaker label (``Interviewer``, ``Q``, ``Manager (Dana)``, ``Speaker 1``) is an interviewer's when
``--interviewer`` or the sidecar names it, else when it is a generic interviewer label, else when that
person interviews in most of the files given together, else by the file's own clues (questions asked,
turns ending in "?", words per turn, who speaks first). Each file's decision is a :class:`RoleCall`,
logged to ``imri.roles`` (one line a file, ties and weak calls as warnings) and kept as roles.csv."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.ingest.formats import RawTurn

if TYPE_CHECKING:
    from pipeline.ingest.transcripts import Transcript


#: who interviews in each file: INFO one line per file, WARNING ties and weak calls (the CLI prints both)
_log = logging.getLogger("imri.roles")
_log.addHandler(logging.NullHandler())  # silent as a library; the CLI prints them

# --- speaker labels ------------------------------------------------------------------------------

#: Labels read as interviewer when the sidecar does not list the interviewers.
DEFAULT_INTERVIEWER_PATTERNS = (
    r"interviewer\s*\d*",
    r"interviewe(?:ur|use)\s*\d*",
    r"i",
    r"q",
    r"moderat(?:or|rice|eur)",
    r"modérat(?:eur|rice)",
    r"animat(?:eur|rice)",
    r"researcher",
    r"chercheu(?:r|se)",
)


def label_parts(label: str) -> tuple[str, str | None]:
    """``'Manager (Dana)'`` -> ``('Manager', 'Dana')``; ``'Dana'`` -> ``('Dana', None)``."""
    match = re.fullmatch(r"(?P<head>[^()]*?)[ \t]*\((?P<name>[^()]+)\)", label.strip())
    if match and match.group("head"):
        return match.group("head").strip(), match.group("name").strip()
    return label.strip(), None


def label_keys(label: str) -> set[str]:
    """What a label can be named by: the whole label, and its role and its name when it has both."""
    head, name = label_parts(label)
    return {k.casefold() for k in (label.strip(), head, name) if k}


class RoleResolver:
    """Decides whether a speaker label is an interviewer or a participant.

    Named interviewers (``--interviewer`` or the sidecar's ``interviewers``) win; otherwise labels
    are matched against configurable role patterns (case-insensitive, whole label, or the role or
    the name of ``Role (Name)``). Naming interviewers never hides anyone: every other speaker is a
    participant.
    """

    def __init__(self, interviewers: list[str] | None = None, patterns: tuple[str, ...] = DEFAULT_INTERVIEWER_PATTERNS):
        self.interviewers = {label.strip().casefold() for label in interviewers} if interviewers else None
        self.pattern = re.compile(rf"(?:{'|'.join(patterns)})", re.IGNORECASE)

    def is_role_label(self, label: str) -> bool:
        """A generic interviewer label (Interviewer, Intervieweuse 2, I, Q, Moderator, Interviewer (Karen), ...)."""
        head, name = label_parts(label)
        return any(self.pattern.fullmatch(part.casefold()) for part in (head, name) if part)

    def is_named(self, label: str) -> bool:
        """Whether the label is one of the named interviewers (by its whole label, role or name)."""
        return self.interviewers is not None and bool(label_keys(label) & self.interviewers)

    def role(self, label: str) -> str:
        if self.interviewers is not None:
            return "interviewer" if self.is_named(label) else "participant"
        return "interviewer" if self.is_role_label(label) else "participant"


# --- who interviews ------------------------------------------------------------------------------

#: Diarisation labels that name no one: the same label is another person in another file.
_ANONYMOUS = re.compile(
    r"(?:speaker|spk|unknown(?: speaker)?|intervenant(?:e)?|locut(?:eur|rice)|orateur|voix)[ _#-]*\d*|speaker_\d+",
    re.IGNORECASE,
)
_QUESTION_MARKS = re.compile(r"\?+")
_ENDS_IN_QUESTION = re.compile(r"\?[\"'”»)\]\s]*$")


@dataclass(frozen=True)
class RoleCall:
    """Who interviews in one file, and how that was decided (printed by every command, kept as roles.csv)."""

    source: str
    speakers: tuple[str, ...]  # in order of their first turn
    interviewers: tuple[str, ...]
    how: str
    warning: str | None = None  # a tie or a weak call, in words

    def line(self) -> str:
        """One line: the file, its interviewer label(s), how decided."""
        who = ", ".join(repr(label) for label in self.interviewers) or "none"
        return f"{self.source}: interviewer {who} ({self.how})"

    def rows(self) -> list[dict]:
        """One row per speaker: ``source, speaker, role, how``."""
        return [
            {
                "source": self.source,
                "speaker": speaker,
                "role": "interviewer" if speaker in self.interviewers else "participant",
                "how": self.how,
            }
            for speaker in self.speakers
        ]


@dataclass(frozen=True)
class _Evidence:
    """One file's own evidence of who interviews (when nobody is named and no label says it)."""

    winner: str | None
    how: str
    weak: bool
    tied_questions: bool


def speaker_evidence(text: str, turns: list[RawTurn]) -> _Evidence:
    """Who interviews, from the file alone: questions asked, share of turns ending in "?", words per turn
    (interviewers ask short questions, participants talk long) and who speaks first.

    Each clue is a vote for the one speaker who leads on it (weights 1, 2, 2, 1); no vote on a tie. The
    speaker with most votes interviews; equal votes decide nothing, and a lead of 2 or less is weak.
    """
    from statistics import median

    labels = list(dict.fromkeys(t.label for t in turns if t.label))
    asked = dict.fromkeys(labels, 0)
    ending = dict.fromkeys(labels, 0)
    count = dict.fromkeys(labels, 0)
    words: dict[str, list[int]] = {label: [] for label in labels}
    for turn in turns:
        if not turn.label:
            continue
        spoken = text[turn.start : turn.end]
        count[turn.label] += 1
        asked[turn.label] += len(_QUESTION_MARKS.findall(spoken))
        ending[turn.label] += bool(_ENDS_IN_QUESTION.search(spoken))
        words[turn.label].append(len(spoken.split()))
    share = {label: ending[label] / count[label] for label in labels}
    length = {label: median(words[label]) for label in labels}
    votes = dict.fromkeys(labels, 0)

    def vote(values: dict[str, float], weight: int, highest: bool = True) -> None:
        best = max(values.values()) if highest else min(values.values())
        leaders = [label for label, value in values.items() if value == best]
        if len(leaders) == 1:
            votes[leaders[0]] += weight

    vote(asked, 1)
    vote(share, 2)
    vote(length, 2, highest=False)
    votes[turns[0].label] += 1 if turns[0].label else 0  # speaks first
    ranked = sorted(labels, key=lambda label: -votes[label])
    top, second = ranked[0], ranked[1]
    most, next_most = sorted(asked.values())[-1], sorted(asked.values())[-2]
    tied_questions = most > 0 and most == next_most
    if votes[top] == votes[second]:
        return _Evidence(None, "the file alone cannot tell who interviews", True, tied_questions)
    other = second if len(labels) == 2 else "the others"
    others = [label for label in labels if label != top]
    how = (
        f"in this file: asks {asked[top]} questions against {max(asked[o] for o in others)}, "
        f"{share[top]:.0%} of turns end in '?' against {max(share[o] for o in others):.0%}, "
        f"{length[top]:g} words a turn against {min(length[o] for o in others):g}"
        + (", speaks first" if turns[0].label == top else "")
    )
    if len(labels) > 2:
        how += f" ({other} compared)"
    return _Evidence(top, how, votes[top] - votes[second] <= 2, tied_questions)


def _person(label: str) -> str | None:
    """The key that names a speaker across files (their name in brackets, else the label), or None for
    diarisation labels such as ``Speaker 1`` or ``SPEAKER_00``, which name no one."""
    head, name = label_parts(label)
    key = (name or head).strip()
    return None if _ANONYMOUS.fullmatch(key) else key.casefold()


def decide_roles(
    transcripts: list[Transcript],
    interviewers: list[str] | tuple[str, ...] = (),
    patterns: tuple[str, ...] = DEFAULT_INTERVIEWER_PATTERNS,
) -> None:
    """Decide who interviews in each transcript, across the files given together; set the turns' roles.

    In each file, in this order: the labels named by ``--interviewer`` or its sidecar's ``interviewers``;
    generic interviewer labels (Interviewer, Q, ...); a person (a name, not ``Speaker 1``) who interviews
    in most of the files where they speak (at least two), decided by the other rules; else the file's own
    evidence (:func:`speaker_evidence`). Sets ``transcript.roles`` (a :class:`RoleCall`) and the roles
    of ``transcript.turns``; ties and weak calls carry a warning.
    """
    calls: dict[str, RoleCall] = {}
    evidence: dict[str, _Evidence] = {}
    for t in transcripts:
        if t.roles is not None or not t.turns:  # already decided (one participant), or skipped
            continue
        speakers = tuple(dict.fromkeys(turn.speaker for turn in t.turns))
        sidecar = list(t.meta.get("interviewers") or [])
        named = [*interviewers, *sidecar]
        if named:
            resolver = RoleResolver(named, patterns)
            chosen = tuple(s for s in speakers if resolver.is_named(s))
            how = " and ".join(
                w for w, on in (("named by --interviewer", interviewers), ("named in the sidecar", sidecar)) if on
            )
            warning = None if chosen else "none of the named interviewers speaks in this file; all read as participants"
            calls[t.source] = RoleCall(t.source, speakers, chosen, how, warning)
            continue
        generic = RoleResolver(None, patterns)
        chosen = tuple(s for s in speakers if generic.is_role_label(s))
        if chosen:
            calls[t.source] = RoleCall(t.source, speakers, chosen, "generic interviewer label")
        elif len(speakers) < 2:
            calls[t.source] = RoleCall(t.source, speakers, (), "one speaker, read as a participant")
        else:
            evidence[t.source] = speaker_evidence(
                t.text, [RawTurn(turn.speaker, turn.start, turn.end) for turn in t.turns]
            )
    # the project: a person who interviews in most of the files where they speak interviews in all
    appears: dict[str, set[str]] = {}
    wins: dict[str, set[str]] = {}
    for t in transcripts:
        if t.source not in calls and t.source not in evidence:
            continue
        chosen = calls[t.source].interviewers if t.source in calls else ()
        if t.source in evidence and evidence[t.source].winner and not evidence[t.source].weak:
            chosen = (evidence[t.source].winner,)
        for speaker in dict.fromkeys(turn.speaker for turn in t.turns):
            person = _person(speaker)
            if person is None:
                continue
            appears.setdefault(person, set()).add(t.source)
            if speaker in chosen:
                wins.setdefault(person, set()).add(t.source)
    project = {p for p, files in appears.items() if len(files) >= 2 and 2 * len(wins.get(p, ())) > len(files)}
    for t in transcripts:
        if t.source not in evidence:
            continue
        found = evidence[t.source]
        speakers = tuple(dict.fromkeys(turn.speaker for turn in t.turns))
        chosen = tuple(s for s in speakers if _person(s) in project)
        if chosen:
            person = _person(chosen[0])
            how = f"interviews in {len(wins[person])} of the {len(appears[person])} files where they speak"
            warning = None
            if found.winner is None or found.weak:
                how += "; this file alone is ambiguous"
            elif found.winner not in chosen:
                warning = f"this file alone suggests {found.winner!r} ({found.how})"
            call = RoleCall(t.source, speakers, chosen, how, warning)
        elif found.winner is None:
            warning = "cannot tell who interviews; all read as participants"
            call = RoleCall(t.source, speakers, (), found.how, warning)
        else:
            warning = None
            if found.tied_questions:
                warning = "interviewer and participant ask as many questions; decided by the other clues"
            elif found.weak:
                warning = "a weak call: the clues disagree"
            call = RoleCall(t.source, speakers, (found.winner,), found.how, warning)
        calls[t.source] = call
    for t in transcripts:
        if t.source in calls:
            apply_roles(t, calls[t.source])
        if t.roles is not None:
            _log.info("%s", t.roles.line())
            if t.roles.warning:
                _log.warning(
                    "%s: %s; name interviewers with --interviewer or the sidecar's interviewers",
                    t.source,
                    t.roles.warning,
                )


def apply_roles(transcript: Transcript, call: RoleCall) -> None:
    """Give ``transcript`` its role call: its interviewers' turns are an interviewer's, all others a participant's."""
    transcript.roles = call
    transcript.turns = [
        replace(turn, role="interviewer" if turn.speaker in call.interviewers else "participant")
        for turn in transcript.turns
    ]


def role_rows(transcripts: list[Transcript]) -> list[dict]:
    """``source, speaker, role, how`` of every speaker of every transcript read (for ``roles.csv``)."""
    return [row for t in transcripts if t.roles is not None for row in t.roles.rows()]
