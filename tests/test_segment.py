import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import (
    RoleResolver,
    SegmentConfig,
    Segmenter,
    Transcript,
    find_turns,
    load_transcript,
    segment_table,
)
from tests.conftest import ROOT, TEST_DATA

SEGMENTERS = {
    unit: Segmenter(SegmentConfig(unit=unit, max_tokens=12, min_chars=15)) for unit in ("turn", "sentence", "window")
}

WORDS = [
    "rétablissement",
    "pair",
    "aidante",
    "ça",
    "été",
    "très",
    "naïve",
    "Noël",
    "œuvre",
    "I",
    "felt",
    "better",
    "😊",
    "🏠",
    "don't",
    "c'est",
    "fait",
    "que",
    "pis",
    "ben",
    "tsé",
    "WRAP",
    "—",
    "«",
    "»",
    "l'équipe",
    "…",
]
ENDS = [".", "!", "?", "...", "", " [laughs]."]


@st.composite
def transcripts(draw):
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    labels = ["Interviewer", "Locataire 1", "Tenant 2", "Pair aidante"]
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        label = draw(st.sampled_from(labels))
        sep = draw(st.sampled_from([": ", " : "]))
        paragraphs = []
        for _ in range(draw(st.integers(1, 3))):
            sentences = [
                " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=15))) + draw(st.sampled_from(ENDS))
                for _ in range(draw(st.integers(1, 4)))
            ]
            paragraphs.append(" ".join(sentences))
        blank = draw(st.sampled_from(["", newline]))
        lines.append(label + sep + (newline + blank).join(paragraphs))
    return newline.join(lines) + newline


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=transcripts(), unit=st.sampled_from(["turn", "sentence", "window"]))
def test_offsets_always_point_at_the_segment_text(text, unit):
    turns = find_turns(text, RoleResolver())
    transcript = Transcript("t.txt", text, turns, {"language": "fr"})
    rows = SEGMENTERS[unit].segment(transcript)
    assert rows, "a transcript with turns gives segments"
    previous_end = 0
    for row in rows:
        assert text[row["start"] : row["end"]] == row["text"]
        assert row["text"] == row["text"].strip() and row["text"]
        assert row["start"] >= previous_end  # segments never overlap and keep their order
        previous_end = row["end"]
        turn = turns[row["turn"]]
        assert turn.start <= row["start"] and row["end"] <= turn.end  # a segment stays inside its turn


def _segments(unit: str, **overrides) -> pd.DataFrame:
    transcript = load_transcript(TEST_DATA / "transcripts" / "qc-groupe-test.txt")
    return segment_table([transcript], SegmentConfig(unit=unit, **overrides))


def test_units_turn_sentence_window():
    by_turn, by_sentence, by_window = (_segments(u) for u in ("turn", "sentence", "window"))
    transcript = load_transcript(TEST_DATA / "transcripts" / "qc-groupe-test.txt")
    assert len(by_turn) == len(transcript.turns)  # no turn here is longer than max_tokens
    assert len(by_sentence) > len(by_window) >= len(by_turn)
    long_turn = by_sentence[by_sentence.turn == 6]
    # "Honnêtement, oui." is shorter than min_chars: merged into the next sentence
    assert list(long_turn.text) == [
        "Honnêtement, oui. Au début j'étais sceptique, je me disais que c'était encore un autre projet qui allait "
        "disparaître.",
        "Mais en la regardant faire, j'ai changé ma façon d'intervenir avec les locataires.",
    ]


def test_short_fragments_merge_within_their_turn_only():
    table = _segments("sentence", min_chars=25)
    assert "Ouais. [rires]" in set(table.text)  # a whole short turn stays: there is nothing to merge with
    merged = table[table.text.str.startswith("Honnêtement, oui.")]
    assert len(merged) == 1 and "sceptique" in merged.text.iloc[0]


def test_long_turns_split_at_sentence_boundaries():
    table = _segments("turn", max_tokens=25)
    assert (table.text.str.split().str.len() <= 25).all()
    turn = table[table.turn == 6]
    assert len(turn) == 2 and turn.text.iloc[0].endswith("disparaître.")
    cut = _segments("turn", max_tokens=12)  # a single sentence longer than max_tokens is cut between words
    assert (cut.text.str.split().str.len() <= 12).all() and len(cut[cut.turn == 6]) == 4


def test_questions_roles_and_stakeholders():
    table = _segments("sentence")
    answer = table[table.text.str.contains("devenir pair aidant")].iloc[0]
    assert answer.question == "Pis vous, personnellement, dans votre rôle?"
    assert answer.role == "participant" and answer.stakeholder_group == "tenants"
    assert (table[table.role == "interviewer"].question == "").all()


def test_sentence_level_language_inside_a_french_turn():
    table = _segments("sentence")
    english = table[table.text.str.startswith("I mean, we used to just apply the rules")]
    assert english.language.tolist() == ["en"]
    assert english.transcript_language.tolist() == ["fr"]
    short = table[table.text == "Ouais. [rires]"]
    assert short.language.tolist() == ["fr"]  # too short to detect: inherits the transcript's language


def test_language_accuracy_on_labelled_sentences():
    labels = pd.read_csv(TEST_DATA / "language_labels.csv")
    segmenter = Segmenter(SegmentConfig())
    assert (labels.text.str.split().str.len() >= 5).all()
    predicted = [segmenter.detector.detect(text) for text in labels.text]
    accuracy = (labels.language == predicted).mean()
    assert accuracy >= 0.95, f"language accuracy {accuracy:.2%}"
    # seeded: the same answers every time
    assert predicted == [segmenter.detector.detect(text) for text in labels.text]


def test_segment_table_of_both_test_transcripts(run_cli, tmp_path):
    out = tmp_path / "segments.parquet"
    result = run_cli("segment", TEST_DATA / "transcripts", "--out", out)
    assert result.code == 0, result.err
    table = pd.read_parquet(out)
    assert result.out.splitlines() == [
        "read 2 transcripts (text 2)",
        f"2 files, 26 turns, {len(table)} segments (en 16, fr 19) -> {out}",
    ]
    for source, frame in table.groupby("source"):
        text = (TEST_DATA / "transcripts" / source).read_bytes().decode("utf-8")  # CRLF kept
        assert all(text[s:e] == t for s, e, t in zip(frame.start, frame.end, frame.text, strict=True))
    assert set(table.language) == {"en", "fr"}
    assert table.segment_id.is_unique


@pytest.mark.parametrize("unit", ["turn", "window"])
def test_same_input_same_output(unit):
    assert _segments(unit).equals(_segments(unit))


def test_rule_based_by_default_and_a_trained_splitter_on_request():
    from pipeline.ingest import SentenceSplitter, load_sentence_pipeline

    text = "On a changé le formulaire. [rires] Pis ça, c'est M. Tremblay qui l'a écrit."
    rule = SentenceSplitter(SegmentConfig().spacy_models)
    assert rule.nlp("fr").pipe_names == ["sentencizer"]
    # the sentencizer ends a sentence after its punctuation, so the annotation opens the next one;
    # French tokenizer exceptions keep "M." (Monsieur) inside its sentence
    assert [text[s:e] for s, e in rule.split(text, "fr")] == [
        "On a changé le formulaire.",
        "[rires] Pis ça, c'est M. Tremblay qui l'a écrit.",
    ]
    trained = SentenceSplitter({"fr": "fr_core_news_sm"})
    assert trained.nlp("fr").pipe_names == ["tok2vec", "senter"]  # its sentence recogniser, not the parser
    spans = trained.split(text, "fr")
    assert text[spans[0][0] : spans[0][1]].startswith("On a changé le formulaire.") and len(spans) >= 2
    assert load_sentence_pipeline("fr", "no_such_pipeline").pipe_names == ["sentencizer"]  # not installed


@pytest.mark.parametrize("unit", ["turn", "sentence", "window"])
def test_no_segment_is_empty_or_blank_even_from_blank_turns(unit):
    from pipeline.ingest import Turn

    text = "Interviewer: How was it?\nPeer:\nTenant:  \u200b \u00a0\nTenant: I sleep better now. Really.\n"
    turns = [
        Turn(0, "Interviewer", "interviewer", 13, 24),
        Turn(1, "Peer", "participant", 30, 30),  # "Peer:" with nothing said
        Turn(2, "Tenant", "participant", 38, 43),  # spaces and a zero-width space only
        Turn(3, "Tenant", "participant", 53, 80),
    ]
    rows = Segmenter(SegmentConfig(unit=unit, min_chars=0)).segment(Transcript("t.txt", text, turns))
    assert [row["turn"] for row in rows] == [0, *[3] * (len(rows) - 1)]
    for row in rows:
        assert row["text"] == text[row["start"] : row["end"]] == row["text"].strip() != ""


def test_long_lines_and_long_runs_without_spaces_are_split_safely():
    """spaCy never sees more than SPACY_PIECE_CHARS at once, nor a token it would take minutes over."""
    import time

    from pipeline import limits

    sentence = "Je me sens mieux depuis que j'ai un logement à moi. "
    long_line = sentence * (3 * limits.SPACY_PIECE_CHARS // len(sentence))
    runs = " ".join(["😊" * 20_000, "l'" * 5_000 + ".", "http://example.org/" + "a/" * 3_000]) + " Fin de la phrase."
    text = f"Intervieweuse : Et puis?\nLocataire : {long_line.strip()}\nLocataire : {runs}\n"
    transcript = Transcript("t.txt", text, find_turns(text, RoleResolver()), {"language": "fr"})
    started = time.perf_counter()
    rows = Segmenter(SegmentConfig(unit="sentence", max_tokens=80)).segment(transcript)
    assert time.perf_counter() - started < 30  # 20,000 emoji alone took spaCy two minutes
    assert all(text[r["start"] : r["end"]] == r["text"] for r in rows)
    first = [r["text"] for r in rows if r["turn"] == 1]
    assert first == [sentence.strip()] * len(first)  # every sentence of the long line, none cut by a piece
    assert len(first) == long_line.count(". ")
    assert rows[-1]["text"].endswith("Fin de la phrase.")


# --- the transcript's language is the prior; segments switch only on confident evidence (issue 23) ---

BUNDLED = {"gold": ROOT / "data" / "gold" / "transcripts", "transfer": ROOT / "data" / "transfer" / "transcripts"}


def _bundled(code_switching: bool, language: str | None = None) -> list[Transcript]:
    """The bundled gold and transfer transcripts whose sidecars say (or deny) code switching."""
    found = []
    for folder in BUNDLED.values():
        for path in sorted(folder.glob("*.txt")):
            transcript = load_transcript(path)
            meta = transcript.meta
            if bool(meta.get("code_switching")) == code_switching and language in (None, meta["language"]):
                found.append(transcript)
    return found


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar-language", "detected-language"])
def test_code_switching_is_still_found_in_the_bundled_transcripts_that_switch(sidecar):
    segmenter = Segmenter(SegmentConfig())
    switched = {
        "nb2-04.txt": ("fr", "They were, honestly, the heart of the training.", 30),
        "qc-03.txt": ("fr", "Half my caseload is anglophone, and she's francophone.", 20),
        "t-nb1-01.txt": ("fr", "My wife, she's the one who pushed me to sign up.", 5),
        "t-nb2-02.txt": ("en", "Elle me laissait pas rentrer des fois.", 10),
    }
    transcripts = {t.source: t for t in _bundled(code_switching=True)}
    assert set(switched) <= set(transcripts)
    for source, (language, sentence, at_least) in switched.items():
        transcript = transcripts[source]
        if not sidecar:
            transcript = Transcript(transcript.source, transcript.text, transcript.turns, {})
        table = pd.DataFrame(segmenter.segment(transcript))
        other = "en" if language == "fr" else "fr"
        assert set(table.transcript_language) == {language}, source
        assert table.loc[table.text == sentence, "language"].tolist() == [other], source
        assert (table.language == other).sum() >= at_least, source


def test_no_segment_of_the_bundled_english_transcripts_is_called_french():
    segmenter = Segmenter(SegmentConfig())
    english = _bundled(code_switching=False, language="en")
    assert len(english) >= 25
    rows = [row for transcript in english for row in segmenter.segment(transcript)]
    assert len(rows) > 4000
    assert [row["segment_id"] for row in rows if row["language"] != "en"] == []


SHORT_FRENCH_LOOKING = """\
Interviewer: Thanks for joining me today. Can you tell me how the peer support project started at your site?
Participant: OK, merci. So it started in the fall, when our manager, Marie-Claude Lévesque, came back from a \
meeting in Trois-Rivières.
Participant: She had met the team from Centre Le Pavois, rue Saint-Denis, and she wanted the same thing for our tenants.
Interviewer: What changed for the tenants once the peer workers were there?
Participant: Merci beaucoup, Jean-François. Honestly, the biggest change was trust. People who never came to the \
office started dropping by to talk with Sylvie Gagnon.
Participant: Véronique Bélanger et Pierre-Luc Côté. They were the two peer workers at first, and later Geneviève \
joined them.
Interviewer: Where did the group meet?
Participant: At Café Olimpico, rue Saint-Viateur, in Montréal. Every Tuesday morning, rain or shine. [rires]
Interviewer: How did the staff react to the project?
Participant: At first they were worried about boundaries and confidentiality. After a few months they asked the \
peer workers for advice on their own cases.
Interviewer: Anything else you want to add?
Participant: Just that the CIUSSS de la Capitale-Nationale should fund it for another year. Merci, merci. OK, bye.
"""


@pytest.mark.parametrize("sidecar", ["language: en\n", None], ids=["sidecar-language", "detected-language"])
def test_names_ok_and_merci_keep_an_english_transcript_english(tmp_path, sidecar):
    path = tmp_path / "names.txt"
    path.write_text(SHORT_FRENCH_LOOKING, encoding="utf-8")
    if sidecar:
        (tmp_path / "names.meta.yaml").write_text(sidecar, encoding="utf-8")
    table = pd.DataFrame(Segmenter(SegmentConfig()).segment(load_transcript(path)))
    assert set(table.transcript_language) == {"en"}
    assert table.loc[table.language != "en", "text"].tolist() == []


def test_language_evidence_leaves_out_notes_and_names():
    from pipeline.ingest import language_evidence

    assert language_evidence("[laughs] Just me, I promise.") == "Just me, I promise."
    assert language_evidence("Véronique Bélanger et Pierre-Luc Côté.") == "Véronique et"
    assert language_evidence("We met in Montréal. Then I'm off to «Trois-Rivières».") == "We met in Then I'm off to"
