"""Transcript layouts as transcription tools export them, each written for the test in that tool's layout."""

import json

import docx
import pytest

from pipeline.errors import InputError
from pipeline.ingest import collect_transcripts, load_transcript, segment_table

OTTER_TXT = """Maria Lopez  0:02
Thanks for joining. What has been the impact of implementing peer support on tenants?

Dan Price  0:09
Well, I'd say people talk to us more now. One tenant started coming to the
Tuesday group, which she never did before.

Maria Lopez  0:31
Can you give me an example?

Dan Price  1:02:05
Sure. She told the peer worker about her panic attacks and made a plan with her.
"""


def _turns(transcript):
    return [(t.speaker, t.role, transcript.text[t.start : t.end]) for t in transcript.turns]


def _offsets_hold(transcript):
    table = segment_table([transcript])
    assert len(table) > 0
    for row in table.itertuples():
        assert row.text == transcript.text[row.start : row.end]
    return table


def test_otter_txt_header_lines_open_turns_and_the_asker_is_the_interviewer(tmp_path):
    path = tmp_path / "otter.txt"
    path.write_text(OTTER_TXT, encoding="utf-8")
    transcript = load_transcript(path)
    assert transcript.layout.startswith("header")
    assert transcript.text == OTTER_TXT  # offsets refer to the user's own file
    turns = _turns(transcript)
    assert [(s, r) for s, r, _ in turns] == [
        ("Maria Lopez", "interviewer"),
        ("Dan Price", "participant"),
        ("Maria Lopez", "interviewer"),
        ("Dan Price", "participant"),
    ]
    assert turns[1][2].startswith("Well, I'd say") and "0:09" not in turns[1][2]
    assert [t.start_time for t in transcript.turns] == [2.0, 9.0, 31.0, 3725.0]
    assert transcript.turns[0].end_time == 9.0
    # the call is printed, not warned: she asks, her turns end in "?", they are short, and she speaks first
    assert transcript.roles.interviewers == ("Maria Lopez",) and transcript.roles.warning is None
    assert "in this file: asks 2 questions against 0" in transcript.roles.how
    table = _offsets_hold(transcript)
    answer = table[table.role == "participant"].iloc[0]
    assert answer.question.startswith("Thanks for joining.")
    assert answer.start_time == 9.0


def test_otter_docx_and_teams_docx_with_a_title_block(tmp_path):
    otter = docx.Document()
    for line in OTTER_TXT.splitlines():
        otter.add_paragraph(line)
    otter.save(tmp_path / "otter.docx")
    transcript = load_transcript(tmp_path / "otter.docx")
    assert [t.speaker for t in transcript.turns] == ["Maria Lopez", "Dan Price", "Maria Lopez", "Dan Price"]
    _offsets_hold(transcript)

    teams = docx.Document()
    for line in [
        "Entrevue locataires - Projet IMRI",
        "3 décembre 2020, 14 h 00",
        "42m 10s",
        "",
        "Julie Tremblay   0:03",
        "Quel a été l'impact de l'implantation des pairs aidants sur les locataires?",
        "Marc Gagnon   0:12",
        "Ben, moi je trouve que ça a changé pas mal de choses, tsé.",
        "Julie Tremblay   0:40",
        "Peux-tu m'en dire plus?",
        "Marc Gagnon   0:44",
        "Je sors plus de mon appartement.",
    ]:
        teams.add_paragraph(line)
    teams.save(tmp_path / "teams.docx")
    transcript = load_transcript(tmp_path / "teams.docx", interviewers=["Julie Tremblay"])
    assert [(t.speaker, t.role) for t in transcript.turns] == [
        ("Julie Tremblay", "interviewer"),
        ("Marc Gagnon", "participant"),
        ("Julie Tremblay", "interviewer"),
        ("Marc Gagnon", "participant"),
    ]
    assert not any("42m" in transcript.text[t.start : t.end] for t in transcript.turns)  # title block is metadata
    _offsets_hold(transcript)


ZOOM_VTT = """WEBVTT

1
00:00:01.000 --> 00:00:04.500
Karen Smith: What has been the impact on service providers?

2
00:00:05.000 --> 00:00:09.000
Joe Bloggs: Honestly it took a while.

3
00:00:09.000 --> 00:00:12.250
Joe Bloggs: But now we ask tenants what they want first.

4
00:00:13.000 --> 00:00:15.000
Karen Smith: How so?
"""

TEAMS_VTT = """WEBVTT

00:00:00.000 --> 00:00:03.000
<v Karen Smith>What has been the impact on you individually?</v>

00:00:03.500 --> 00:00:06.000
<v Joe Bloggs>I feel more confident.</v>

00:00:06.000 --> 00:00:08.000
<v Joe Bloggs>Way more than before.</v>
"""


@pytest.mark.parametrize("content,name", [(ZOOM_VTT, "zoom.vtt"), (TEAMS_VTT, "teams.vtt")])
def test_webvtt_cues_of_one_speaker_merge_into_a_built_transcript(tmp_path, content, name):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    transcript = load_transcript(path, interviewers=["Karen Smith"])
    assert transcript.built and transcript.layout == "WebVTT"
    speakers = [t.speaker for t in transcript.turns]
    assert speakers[:2] == ["Karen Smith", "Joe Bloggs"]
    joe = transcript.turns[1]
    words = transcript.text[joe.start : joe.end]
    assert "-->" not in transcript.text and not any(ch.isdigit() for ch in words)
    assert words in (
        "Honestly it took a while. But now we ask tenants what they want first.",
        "I feel more confident. Way more than before.",
    )
    assert transcript.text.splitlines()[1] == f"Joe Bloggs: {words}"
    assert joe.start_time in (5.0, 3.5) and joe.end_time in (12.25, 8.0)
    _offsets_hold(transcript)


def test_vtt_in_a_txt_file_is_recognised_by_content(tmp_path):
    path = tmp_path / "renamed.txt"
    path.write_text(ZOOM_VTT, encoding="utf-8")
    transcript = load_transcript(path)
    assert transcript.layout == "WebVTT"
    assert [t.role for t in transcript.turns] == ["interviewer", "participant", "interviewer"]


SRT_NAMED = """1
00:00:01,000 --> 00:00:03,000
Interviewer: What has implementing WRAP achieved in the organisation?

2
00:00:03,500 --> 00:00:07,000
Tenant: We have a wellness plan on the fridge now.
"""

SRT_PLAIN = """1
00:00:01,000 --> 00:00:03,000
I think it helped me a lot.

2
00:00:03,500 --> 00:00:07,000
I sleep better and I call my sister.
"""


def test_srt_with_and_without_names(tmp_path):
    (tmp_path / "named.srt").write_text(SRT_NAMED, encoding="utf-8")
    named = load_transcript(tmp_path / "named.srt")
    assert [(t.speaker, t.role) for t in named.turns] == [("Interviewer", "interviewer"), ("Tenant", "participant")]
    assert named.turns[1].start_time == 3.5
    _offsets_hold(named)
    (tmp_path / "plain.srt").write_text(SRT_PLAIN, encoding="utf-8")
    plain = load_transcript(tmp_path / "plain.srt")
    assert len(plain.turns) == 1 and plain.turns[0].role == "participant"
    assert plain.text[plain.turns[0].start : plain.turns[0].end].endswith("call my sister.")
    assert any("names no speakers" in w for w in plain.warnings)


def test_rev_and_descript_timestamped_labels(tmp_path):
    rev = (
        "Interviewer (00:00:01):\nWhat has been the impact on tenants?\n\n"
        "Speaker 2 (00:00:05):\nThey come down to the common room now.\n\n"
        "Interviewer (00:01:10):\nAnything else?\n"
    )
    (tmp_path / "rev.txt").write_text(rev, encoding="utf-8")
    transcript = load_transcript(tmp_path / "rev.txt")
    assert [(t.speaker, t.role, t.start_time) for t in transcript.turns] == [
        ("Interviewer", "interviewer", 1.0),
        ("Speaker 2", "participant", 5.0),
        ("Interviewer", "interviewer", 70.0),
    ]
    assert transcript.text[transcript.turns[1].start : transcript.turns[1].end] == (
        "They come down to the common room now."
    )
    descript = "[00:00:01] Ana: How was the group?\n[00:00:04] Luc: Good, I learned my triggers.\n"
    (tmp_path / "descript.md").write_text(descript, encoding="utf-8")
    transcript = load_transcript(tmp_path / "descript.md")
    assert [(t.speaker, t.role) for t in transcript.turns] == [("Ana", "interviewer"), ("Luc", "participant")]


def test_whisper_and_whisperx_json(tmp_path):
    whisperx = {
        "segments": [
            {"start": 0.0, "end": 2.0, "text": " What changed for you?", "speaker": "SPEAKER_00"},
            {"start": 2.5, "end": 5.0, "text": " I go out more.", "speaker": "SPEAKER_01"},
            {"start": 5.0, "end": 7.5, "text": " And I cook again.", "speaker": "SPEAKER_01"},
            {"start": 8.0, "end": 9.0, "text": " Why is that?", "speaker": "SPEAKER_00"},
        ]
    }
    (tmp_path / "x.json").write_text(json.dumps(whisperx), encoding="utf-8")
    transcript = load_transcript(tmp_path / "x.json", interviewers=["SPEAKER_00"])
    assert transcript.built and transcript.text.splitlines()[1] == "SPEAKER_01: I go out more. And I cook again."
    assert [(t.role, t.start_time, t.end_time) for t in transcript.turns] == [
        ("interviewer", 0.0, 2.0),
        ("participant", 2.5, 7.5),
        ("interviewer", 8.0, 9.0),
    ]
    _offsets_hold(transcript)
    (tmp_path / "bad.json").write_text('{"text": "no segments"}', encoding="utf-8")
    with pytest.raises(InputError, match="bad.json.*no 'segments' list"):
        load_transcript(tmp_path / "bad.json")


def test_one_off_header_lines_are_metadata_not_speakers(tmp_path):
    text = (
        "Date : 12 mars 2024 — Durée : 24 min\n"
        "Projet : IMRI\n"
        "Intervieweuse : Quel a été l'impact sur vous?\n"
        "Locataire : Je me sens mieux.\n"
        "Intervieweuse : Merci.\n"
    )
    (tmp_path / "fr.txt").write_text(text, encoding="utf-8")
    transcript = load_transcript(tmp_path / "fr.txt")
    assert [t.speaker for t in transcript.turns] == ["Intervieweuse", "Locataire", "Intervieweuse"]


def test_named_interviewer_never_hides_other_speakers(tmp_path):
    text = (
        "Helen: What has been the impact on tenants?\n"
        "Robert: They trust us more.\n"
        "Helen: And on staff?\n"
        "Robert: We listen better.\n"
        "Aisha: I agree with Robert.\n"
        "Aisha: Mostly.\n"
    )
    path = tmp_path / "named.txt"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "named.meta.yaml").write_text("interviewers: [Helen]\n", encoding="utf-8")
    transcript = load_transcript(path)
    assert [(t.speaker, t.role) for t in transcript.turns] == [
        ("Helen", "interviewer"),
        ("Robert", "participant"),
        ("Helen", "interviewer"),
        ("Robert", "participant"),
        ("Aisha", "participant"),
        ("Aisha", "participant"),
    ]
    # the command-line option does the same without a sidecar
    (tmp_path / "named.meta.yaml").unlink()
    again = load_transcript(path, interviewers=["helen"])
    assert [t.role for t in again.turns] == [t.role for t in transcript.turns]
    assert again.roles.how == "named by --interviewer"


def test_skipped_files_are_named(tmp_path):
    (tmp_path / "a.txt").write_text("Interviewer: Hi?\nTenant: Hello there.\n", encoding="utf-8")
    (tmp_path / "a.meta.yaml").write_text("language: en\n", encoding="utf-8")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    warnings = []
    files = collect_transcripts([tmp_path], warnings.append)
    assert [p.name for p in files] == ["a.txt"]
    assert len(warnings) == 1 and "notes.pdf" in warnings[0] and "skipped" in warnings[0]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("broken.vtt", "WEBVTT\n\n00:00:01.000 --> garbage\nhello\n", "WebVTT"),
        ("nohead.vtt", "just words\n", "no WEBVTT header"),
        ("broken.json", "{not json", "not valid JSON"),
        ("empty.srt", "", "empty file"),
    ],
)
def test_bad_caption_files_give_one_line_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        load_transcript(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


# --- captions: a cue that cannot be read refuses the file, naming the line ----------------------------

MALFORMED_TIMES = {
    "letter": "00:00:0x.000",
    "hours": "aa:00:02.000",
    "negative": "-00:00:02.000",
    "nan": "NaN",
    "minutes": "00:75:02.000",
    "seconds": "00:00:61.000",
    "digits": "9" * 5000 + ":00:02.000",
    "fraction": "00:00:02.000.5",
}


@pytest.mark.parametrize("kind", MALFORMED_TIMES)
@pytest.mark.parametrize("form", ["vtt", "srt"])
def test_a_cue_with_a_malformed_timing_line_refuses_the_file_naming_the_line(tmp_path, kind, form):
    bad = MALFORMED_TIMES[kind]
    if form == "vtt":
        text = (
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nAnn: What changed?\n\n"
            f"{bad} --> 00:00:05.000\nBob: I sleep better.\n\n00:00:05.000 --> 00:00:06.000\nAnn: Good.\n"
        )
    else:
        bad = bad.replace(".", ",")
        text = (
            "1\n00:00:00,000 --> 00:00:01,000\nAnn: What changed?\n\n"
            f"2\n{bad} --> 00:00:05,000\nBob: I sleep better.\n\n3\n00:00:05,000 --> 00:00:06,000\nAnn: Good.\n"
        )
    path = tmp_path / f"captions.{form}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_transcript(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 6: malformed ") and "cue timing" in message and "\n" not in message


@pytest.mark.parametrize(
    "name,text,line",
    [
        # a blank line inside a cue: webvtt-py dropped the words after it
        (
            "blank.vtt",
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nAnn: What changed?\n\nAnn goes on here.\n\n"
            "00:00:01.000 --> 00:00:02.000\nBob: I sleep.\n",
            "line 6: text outside any cue",
        ),
        # the block starts with a line of spaces (an IndexError in the first version of this check)
        ("spaces.vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\nSam: Hello there.\n\n \nmore\n", "line 6: text outside"),
        # not a number above a timing line: srt read the cue into the one before (Bob's words became Ann's)
        (
            "nonumber.srt",
            "1\n00:00:00,000 --> 00:00:01,000\nAnn: What changed?\n\nx\n00:00:01,000 --> 00:00:02,000\nBob: I sleep.\n",
            "line 6: this cue could not be read",
        ),
    ],
)
def test_caption_text_that_would_be_dropped_or_misplaced_refuses_the_file(tmp_path, name, text, line):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=line) as info:
        load_transcript(tmp_path / name)
    assert str(info.value).startswith(f"{tmp_path / name}: ")


def test_well_formed_caption_times_still_read(tmp_path):
    vtt = "WEBVTT\n\n1\n00:01.5 --> 0:0:3.25 align:start\nAnn: What changed?\n\n"
    vtt += "100:00:01.000-->100:00:02.000\nBob: Yes.\n"
    (tmp_path / "a.vtt").write_text(vtt, encoding="utf-8")
    turns = load_transcript(tmp_path / "a.vtt").turns
    assert [(t.speaker, t.start_time, t.end_time) for t in turns] == [("Ann", 1.5, 3.25), ("Bob", 360001.0, 360002.0)]
    srt = "1\n00:00:01,500 --> 00:00:03.250 X1:0\nAnn: What changed?\n\n2\n00:00:04 --> 00:00:05\nBob: Yes.\n"
    (tmp_path / "a.srt").write_text(srt, encoding="utf-8")
    turns = load_transcript(tmp_path / "a.srt").turns
    assert [(t.speaker, t.start_time, t.end_time) for t in turns] == [("Ann", 1.5, 3.25), ("Bob", 4.0, 5.0)]
