import docx
import pytest

from pipeline.errors import InputError
from pipeline.ingest import RoleResolver, decode_bytes, find_turns, load_transcript
from tests.conftest import TEST_DATA

FRENCH = "Intervieweuse : Qu'est-ce qui a changé?\nLocataire : Ben, je me sens mieux, là. Ça a été très difficile.\n"


def test_turns_with_french_colon_timestamps_and_multiline():
    text = (
        "[00:12:03] Intervieweuse : Pis, pour les intervenants?\r\n"
        "[00:12:09] Intervenante 2 : Ben... au début, non.\r\n"
        "Mais après: oui, on a changé.\r\n"
        "\r\n"
        "Vraiment.\r\n"
        "[00:13:00] Intervieweuse : Merci.\r\n"
    )
    turns = find_turns(text, RoleResolver())
    assert [(t.speaker, t.role, t.timestamp) for t in turns] == [
        ("Intervieweuse", "interviewer", "00:12:03"),
        ("Intervenante 2", "participant", "00:12:09"),
        ("Intervieweuse", "interviewer", "00:13:00"),
    ]
    assert (
        text[turns[1].start : turns[1].end] == "Ben... au début, non.\r\nMais après: oui, on a changé.\r\n\r\nVraiment."
    )


def test_a_colon_inside_speech_does_not_open_a_turn():
    text = (
        "Interviewer: And then?\nTenant: She told me this: you can do it.\n"
        "And so I said: fine, okay.\nInterviewer: Right.\n"
    )
    turns = find_turns(text, RoleResolver())
    assert [t.speaker for t in turns] == ["Interviewer", "Tenant", "Interviewer"]
    assert "And so I said: fine" in text[turns[1].start : turns[1].end]


@pytest.mark.parametrize(
    "label,role",
    [
        ("Interviewer", "interviewer"),
        ("Intervieweuse", "interviewer"),
        ("Intervieweur 2", "interviewer"),
        ("I", "interviewer"),
        ("Q", "interviewer"),
        ("Moderator", "interviewer"),
        ("Animatrice", "interviewer"),
        ("Tenant 3", "participant"),
        ("Pair aidante", "participant"),
        ("Iris", "participant"),
    ],
)
def test_default_interviewer_patterns(label, role):
    assert RoleResolver().role(label) == role


def test_sidecar_interviewer_list_wins(tmp_path):
    # in a family support group the "Animatrice" is a participant, not the interviewer
    (tmp_path / "g.txt").write_text(
        "Chercheuse : Bonjour.\nAnimatrice : Bonjour à vous.\nMère : Allo.\nChercheuse : On commence.\n",
        encoding="utf-8",
    )
    (tmp_path / "g.meta.yaml").write_text(
        "language: fr\ninterviewers: [Chercheuse]\nparticipants: {Animatrice: other_actors, Mère: family_members}\n",
        encoding="utf-8",
    )
    transcript = load_transcript(tmp_path / "g.txt")
    assert [(t.speaker, t.role) for t in transcript.turns] == [
        ("Chercheuse", "interviewer"),
        ("Animatrice", "participant"),
        ("Mère", "participant"),
        ("Chercheuse", "interviewer"),
    ]


def test_encodings_utf8_bom_utf16_and_cp1252(tmp_path):
    for name, raw, encoding in [
        ("bom.txt", b"\xef\xbb\xbf" + FRENCH.encode("utf-8"), "utf-8-sig"),
        ("u16.txt", FRENCH.encode("utf-16"), "utf-16"),
        ("plain.txt", FRENCH.encode("utf-8"), "utf-8"),
    ]:
        (tmp_path / name).write_bytes(raw)
        transcript = load_transcript(tmp_path / name)
        assert transcript.text == FRENCH and transcript.encoding == encoding and not transcript.warnings
    (tmp_path / "win.txt").write_bytes(FRENCH.replace("\n", "\r\n").encode("cp1252"))
    transcript = load_transcript(tmp_path / "win.txt")
    assert transcript.text == FRENCH.replace("\n", "\r\n")
    assert transcript.encoding == "cp1252"
    assert "win.txt: decoded as cp1252" in transcript.warnings[0]
    turn = transcript.turns[1]
    assert transcript.text[turn.start : turn.end] == "Ben, je me sens mieux, là. Ça a été très difficile."


@pytest.mark.parametrize(
    "raw,problem",
    [
        (b"", "empty file"),
        (b"  \n\r\n", "empty file"),
        ("\u00a0\u3000\u2003\n\u2028\u200b\ufeff\t".encode(), "empty file"),  # Unicode spaces and format marks only
        ("\u3000 \u00a0".encode("utf-16"), "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"\xff\xfe" + "Intervieweuse : allo".encode("utf-16-le")[:-1], "undecodable"),
    ],
)
def test_bad_bytes(raw, problem):
    with pytest.raises(InputError, match=problem):
        decode_bytes(raw, "x.txt")


def test_docx(tmp_path):
    document = docx.Document()
    for line in FRENCH.strip().split("\n"):
        document.add_paragraph(line)
    document.save(tmp_path / "entrevue.docx")
    transcript = load_transcript(tmp_path / "entrevue.docx")
    assert [t.role for t in transcript.turns] == ["interviewer", "participant"]
    assert transcript.text[transcript.turns[1].start : transcript.turns[1].end].startswith("Ben, je me sens")


def test_unlabelled_text_is_one_participant_turn_per_paragraph_when_asked(tmp_path):
    (tmp_path / "notes.txt").write_text("First paragraph,\nstill first.\n\n\nSecond one.\n", encoding="utf-8")
    assert load_transcript(tmp_path / "notes.txt").skipped  # by default: skipped (issue 23)
    transcript = load_transcript(tmp_path / "notes.txt", no_speakers="participant")
    assert [transcript.text[t.start : t.end] for t in transcript.turns] == [
        "First paragraph,\nstill first.",
        "Second one.",
    ]
    assert "no speaker labels" in transcript.warnings[0]


def test_test_transcripts_have_the_right_speakers():
    transcript = load_transcript(TEST_DATA / "transcripts" / "qc-groupe-test.txt")
    assert {t.speaker for t in transcript.turns} == {
        "Intervieweuse",
        "Locataire 1",
        "Locataire 2",
        "Locataire 3",
        "Intervenant",
    }


@pytest.mark.parametrize(
    "text",
    [
        "Interviewer: How was it?\nPeer:\nTenant: I sleep better now.\n",
        "Interviewer: How was it?\nPeer:   \u00a0\u200b\r\nTenant: I sleep better now.\r\n",
        "Interviewer: How was it?\nTenant: I sleep better now.\nPeer:\n",
        "Interviewer:\nTenant: I sleep better now.\nInterviewer: Thanks.\nPeer: \u3000\n",
    ],
)
def test_a_speaker_label_with_nothing_said_is_no_turn(tmp_path, text):
    (tmp_path / "t.txt").write_text(text, encoding="utf-8", newline="")
    transcript = load_transcript(tmp_path / "t.txt")
    spoken = [transcript.text[t.start : t.end] for t in transcript.turns]
    assert "I sleep better now." in spoken
    assert all(s.strip() and s.strip("\u200b\u00a0\u3000") for s in spoken)
    assert [t.index for t in transcript.turns] == list(range(len(transcript.turns)))
    assert "Peer" not in {t.speaker for t in transcript.turns}


def test_sidecar_values_of_the_wrong_type_are_one_line_errors(tmp_path):
    (tmp_path / "t.txt").write_text("Interviewer: Hi?\nTenant: Hello there.\n", encoding="utf-8")
    for content, problem in [
        ("interviewers: [[Interviewer]]\n", "interviewers must be a list of names"),
        ("participants: {Tenant: [a, b]}\n", "participants must map"),
        ("language: [en]\n", "language must be"),
        ("notes: " + "[" * 5000 + "]" * 5000 + "\n", "not valid UTF-8 YAML"),
    ]:
        (tmp_path / "t.meta.yaml").write_text(content, encoding="utf-8")
        with pytest.raises(InputError, match=problem):
            load_transcript(tmp_path / "t.txt")
    (tmp_path / "t.meta.yaml").write_text("interviewers: [Interviewer]\nparticipants: {2: peers}\n", encoding="utf-8")
    transcript = load_transcript(tmp_path / "t.txt")  # a number as a speaker label reads as that label
    assert transcript.meta["participants"] == {"2": "peers"}


# --- every line-break convention reads as LF does ---------------------------------------------------

LINE_BREAKS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r", "NEL": "\x85", "U+2028": "\u2028", "U+2029": "\u2029"}
LABELLED = (
    "Interviewer: What changed for you?\nTenant: I sleep better now. The team listened.\nIt took a year.\n\n"
    "Interviewer: And then?\nTenant: Then I found work, at last.\n"
)
OTTER = "Sam  0:01\nWhat changed for you, then?\nAlex  0:09\nI sleep better now.\nSam  0:15\nGood.\nAlex  0:20\nYes.\n"
UNLABELLED = "I sleep better now, honestly.\nThe team listened.\n\nThen I found work.\n"


def _mixed(text: str) -> str:
    """``text`` with each of its line breaks written in the next convention in turn."""
    breaks = list(LINE_BREAKS.values())
    lines = text.split("\n")
    return "".join(line + breaks[i % len(breaks)] for i, line in enumerate(lines[:-1])) + lines[-1]


def _read(tmp_path, text: str, name: str = "t.txt"):
    """Turns and sentence segments of ``text`` written to a file, line breaks shown as LF."""
    import re

    from pipeline.ingest import SegmentConfig, Segmenter

    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    # unlabelled paragraphs are read only when asked (--no-speakers-as participant): a turn per paragraph
    transcript = load_transcript(path, no_speakers="participant")
    rows = Segmenter(SegmentConfig(spacy_models={})).segment(transcript)
    for row in rows:
        assert row["text"] == transcript.text[row["start"] : row["end"]]  # offsets index the file's own text

    def lf(span: str) -> str:
        return re.sub(r"\r\n|[\r\x85\u2028\u2029]", "\n", span)

    turns = [(t.speaker, t.role, lf(transcript.text[t.start : t.end])) for t in transcript.turns]
    return turns, [lf(row["text"]) for row in rows], transcript


@pytest.mark.parametrize("convention", [*LINE_BREAKS, "mixed"])
@pytest.mark.parametrize("text", [LABELLED, OTTER, UNLABELLED], ids=["labelled", "otter", "paragraphs"])
def test_every_line_break_convention_gives_the_turns_and_segments_of_lf(tmp_path, convention, text):
    expected_turns, expected_segments, _ = _read(tmp_path, text, "lf.txt")
    written = _mixed(text) if convention == "mixed" else text.replace("\n", LINE_BREAKS[convention])
    turns, segments, transcript = _read(tmp_path, written)
    assert transcript.text == written  # the file's own text: offsets refer to it
    assert turns == expected_turns and len(turns) > 1
    assert segments == expected_segments


@pytest.mark.parametrize("convention", [*LINE_BREAKS, "mixed"])
def test_captions_with_every_line_break_convention(tmp_path, convention):
    cue = "00:00:00.000 --> 00:00:02.000\nSam: What changed?\n\n"
    vtt = "WEBVTT\n\n" + cue + "00:00:02.000 --> 00:00:05.000\nAlex: I sleep.\n"
    srt = "1\n00:00:00,000 --> 00:00:02,000\nSam: What changed?\n\n2\n00:00:02,000 --> 00:00:05,000\nAlex: I sleep.\n"
    for name, text in (("c.vtt", vtt), ("c.srt", srt)):
        written = _mixed(text) if convention == "mixed" else text.replace("\n", LINE_BREAKS[convention])
        turns, _, transcript = _read(tmp_path, written, name)
        assert turns == [("Sam", "interviewer", "What changed?"), ("Alex", "participant", "I sleep.")], name
        assert [(t.start_time, t.end_time) for t in transcript.turns] == [(0.0, 2.0), (2.0, 5.0)]
