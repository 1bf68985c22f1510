"""Who interviews: decided across the files given together, then per file by more than question counts;
files without speakers skipped; the calls printed, kept as roles.csv and hashed into the model version."""

import logging

import pandas as pd

from pipeline.ingest import load_transcript, read_transcripts
from tests.conftest import TEST_DATA

ROLES = TEST_DATA / "roles"
# tie.txt: both ask 4 questions; Alex's are short turns that end in "?", Sam talks long and asks in passing
# more.txt: Sam asks 7 questions in passing (in 4 turns), Alex 3 short ones (in 3 turns)


def _roles(transcript):
    return {t.speaker: t.role for t in transcript.turns}


def test_a_tie_in_questions_is_decided_by_the_other_clues_with_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="imri.roles"):
        transcript = load_transcript(ROLES / "tie.txt")
    assert _roles(transcript) == {"Alex": "interviewer", "Sam": "participant"}
    assert "asks 4 questions against 4" in transcript.roles.how
    assert "ask as many questions" in transcript.roles.warning
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("tie.txt: ")
    assert any(r.getMessage().startswith("tie.txt: interviewer 'Alex' (in this file: ") for r in caplog.records)


def test_a_participant_who_asks_more_questions_stays_the_participant():
    transcript = load_transcript(ROLES / "more.txt")
    assert _roles(transcript) == {"Alex": "interviewer", "Sam": "participant"}
    assert "asks 3 questions against 7" in transcript.roles.how and transcript.roles.warning is None


PROJECT = {
    "a.txt": "Karen: What changed for you?\nDave: I sleep better, and I see my brother again after years apart.\n"
    "Karen: How did that happen?\nDave: The peer worker drove me to his place the first time, and we kept going.\n",
    "b.txt": "Karen: Can you tell me about the group?\nLee: It meets on Fridays. We cook, we talk, we plan.\n"
    "Karen: Why do you go?\nLee: Because I feel useful there, and people are glad when I turn up on time.\n",
    # alone, this one is a coin toss: both ask two short questions
    "c.txt": "Pat: Can we start with the garden?\nKaren: Sure, what about it?\nPat: Who waters it on weekends?\n"
    "Karen: The tenants do, in turns. Why?\n",
}


def test_the_interviewer_of_a_project_interviews_in_every_file(tmp_path):
    for name, text in PROJECT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    alone = load_transcript(tmp_path / "c.txt")
    assert alone.roles.warning is not None  # a weak call, or none at all
    together = {t.source: t for t in read_transcripts([tmp_path / n for n in PROJECT])}
    assert [t.roles.interviewers for t in together.values()] == [("Karen",)] * 3
    assert _roles(together["c.txt"]) == {"Pat": "participant", "Karen": "interviewer"}
    assert together["c.txt"].roles.how == (
        "interviews in 2 of the 3 files where they speak; this file alone is ambiguous"
    )
    assert together["c.txt"].roles.warning is None


def test_diarisation_labels_are_no_one_across_files(tmp_path):
    # Speaker 1 asks in one file and answers in the other: each file decides for itself
    (tmp_path / "x.txt").write_text(
        "Speaker 1: What changed?\nSpeaker 2: I go out more now, most days, with the walking group from the centre.\n"
        "Speaker 1: Why?\nSpeaker 2: Because they wait for me at the door every morning at nine.\n",
        encoding="utf-8",
    )
    (tmp_path / "y.txt").write_text(
        "Speaker 2: What changed?\nSpeaker 1: I go out more now, most days, with the walking group from the centre.\n"
        "Speaker 2: Why?\nSpeaker 1: Because they wait for me at the door every morning at nine.\n",
        encoding="utf-8",
    )
    x, y = read_transcripts([tmp_path / "x.txt", tmp_path / "y.txt"])
    assert x.roles.interviewers == ("Speaker 1",) and y.roles.interviewers == ("Speaker 2",)


def test_segment_prints_the_calls_and_skips_files_without_speakers(tmp_path, run_cli):
    notes = TEST_DATA / "notes"
    result = run_cli("segment", notes, "--out", tmp_path / "s.csv")
    assert result.code == 0, result.err
    assert "roles: interview.txt: interviewer 'Interviewer' (generic interviewer label)" in result.err
    assert "warning: field_notes.md: skipped: no speaker labels" in result.err
    assert "read 1 transcripts (text 1); skipped 1 without speaker labels" in result.out
    table = pd.read_csv(tmp_path / "s.csv")
    assert set(table.source) == {"interview.txt"} and "To do" not in set(table.speaker)
    # on request, read as one participant's words
    result = run_cli("segment", notes, "--out", tmp_path / "p.csv", "--no-speakers-as", "participant")
    assert result.code == 0, result.err
    table = pd.read_csv(tmp_path / "p.csv")
    notes_rows = table[table.source == "field_notes.md"]
    assert len(notes_rows) and set(notes_rows.role) == {"participant"}
    assert run_cli("segment", notes, "--out", tmp_path / "q.csv", "--no-speakers-as", "maybe").code == 2
    only_notes = tmp_path / "only"
    only_notes.mkdir()
    (only_notes / "field_notes.md").write_bytes((notes / "field_notes.md").read_bytes())
    result = run_cli("segment", only_notes, "--out", tmp_path / "r.csv")
    assert result.code == 2 and "no transcript with speaker labels" in result.err


def test_a_lone_time_inside_a_turn_is_cut_out(tmp_path):
    text = (
        "Ana Roy  0:02\nWhat changed?\n\nLuc Morin  0:05\nI sleep better.\n\n48:38\n\n"
        "And I cook again.\n\nAna Roy  1:02\nWhy?\n"
    )
    (tmp_path / "otter.txt").write_text(text, encoding="utf-8")
    transcript = load_transcript(tmp_path / "otter.txt")
    spoken = [(t.speaker, t.role, text[t.start : t.end]) for t in transcript.turns]
    assert spoken == [
        ("Ana Roy", "interviewer", "What changed?"),
        ("Luc Morin", "participant", "I sleep better."),
        ("Luc Morin", "participant", "And I cook again."),
        ("Ana Roy", "interviewer", "Why?"),
    ]


def test_the_model_version_changes_with_the_interviewers_and_code_keeps_the_calls(small_gold, tmp_path, run_cli):
    from pipeline.model import train_model
    from pipeline.params import load_params

    params = load_params(small_gold / "params.yaml")
    plain = train_model([small_gold], tmp_path / "plain", params)
    # --interviewer adds to the sidecars' interviewers: Provider 3 (a participant in on-01.txt) now interviews
    named = train_model([small_gold], tmp_path / "named", params, interviewers=["Provider 3"])
    assert named["training_data"]["sha256"] == plain["training_data"]["sha256"]
    assert named["version"] != plain["version"]
    assert train_model([small_gold], tmp_path / "again", params)["version"] == plain["version"]
    # imri code prints the calls and keeps them in the run folder
    result = run_cli("code", ROLES, "--model", tmp_path / "plain", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    # Alex interviews in both files: decided across them, so the tie in tie.txt no longer needs a warning
    assert "roles: tie.txt: interviewer 'Alex' (interviews in 2 of the 2 files where they speak)" in result.err
    assert "roles: more.txt: interviewer 'Alex' (" in result.err and "warning" not in result.err
    roles = pd.read_csv(tmp_path / "run" / "roles.csv")
    assert list(roles.columns) == ["source", "speaker", "role", "how"]
    assert sorted(zip(roles.source, roles.speaker, roles.role, strict=True)) == [
        ("more.txt", "Alex", "interviewer"),
        ("more.txt", "Sam", "participant"),
        ("tie.txt", "Alex", "interviewer"),
        ("tie.txt", "Sam", "participant"),
    ]
