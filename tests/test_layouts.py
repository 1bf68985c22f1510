"""Every layout of the README's table, hand-written in English and French (tests/data/layouts): each speaker's
words land in their own turns, with the right role, and nothing else counts as anyone's words."""

from pathlib import Path

import docx
import pytest
import yaml

from pipeline.ingest import load_transcript, segment_table
from tests.conftest import TEST_DATA

LAYOUTS = TEST_DATA / "layouts"
EXPECTED = yaml.safe_load((LAYOUTS / "expected.yaml").read_text(encoding="utf-8"))
#: the text layouts that Word exports too (`Name: text`, Otter.ai, Microsoft Teams with its title block)
AS_DOCX = ["name_en.txt", "otter_en.txt", "teams_fr.txt"]


def _as_docx(source: Path, folder: Path) -> Path:
    """The fixture as Word writes it: one paragraph a line."""
    document = docx.Document()
    for line in source.read_text(encoding="utf-8").splitlines():
        document.add_paragraph(line)
    path = folder / (source.stem + ".docx")
    document.save(path)
    return path


@pytest.mark.parametrize(
    "name,word", [(name, False) for name in EXPECTED] + [(name, True) for name in AS_DOCX], ids=lambda v: str(v)
)
def test_no_participant_text_falls_into_an_interviewer_turn(tmp_path, name, word):
    path = _as_docx(LAYOUTS / name, tmp_path) if word else LAYOUTS / name
    transcript = load_transcript(path)
    text = transcript.text
    table = segment_table([transcript])
    assert (table.text == [text[s:e] for s, e in zip(table.start, table.end, strict=True)]).all()
    for role in ("participant", "interviewer"):
        for phrase in EXPECTED[name][role]:
            at = text.find(phrase)
            assert at >= 0, phrase
            turns = [t for t in transcript.turns if t.start <= at and at + len(phrase) <= t.end]
            assert [t.role for t in turns] == [role], f"{name}: {phrase!r} is not in one {role} turn"
            rows = table[(table.start <= at) & (table.end > at)]
            assert list(rows.role) == [role], f"{name}: {phrase!r} is not in a {role} segment"
    for phrase in EXPECTED[name].get("metadata", []):
        at = text.find(phrase)
        assert at >= 0, phrase
        assert not any(t.start <= at < t.end for t in transcript.turns), f"{name}: {phrase!r} read as speech"
        assert not table.text.str.contains(phrase, regex=False).any()
    assert {"interviewer", "participant"} <= set(table.role)
