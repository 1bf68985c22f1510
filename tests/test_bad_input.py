"""Every bad input: one line naming the file and the problem, exit code 2, nothing written or lost."""

import pytest

from tests.conftest import TEST_DATA

GOOD = "Interviewer: What changed?\nTenant: I sleep better now, honestly.\n"


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("empty.txt", b"", "empty file"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary file"),
        ("slides.pdf", b"%PDF-1.4 whatever", "unknown extension '.pdf'"),
        ("mixed.txt", "Intervieweuse : ça va?\n".encode() + b"\x81\x8d\x8f\x90\x9d" * 40, "undecodable bytes"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "not a readable .docx"),
    ],
)
def test_bad_transcripts(tmp_path, run_cli, name, content, problem):
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "segments.csv"
    out.write_text("earlier results\n", encoding="utf-8")
    result = run_cli("segment", good, bad, "--out", out)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"error: {bad}: ") and problem in result.err
    assert out.read_text(encoding="utf-8") == "earlier results\n"  # nothing already written is lost
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "good.txt", "segments.csv"])


def test_cp1252_french_is_decoded_with_a_warning(tmp_path, run_cli):
    path = tmp_path / "entrevue.txt"
    path.write_bytes("Intervieweuse : Ça a changé quoi?\r\nLocataire : Je me sens très écouté.\r\n".encode("cp1252"))
    result = run_cli("segment", path, "--out", tmp_path / "s.csv")
    assert result.code == 0
    assert "warning: entrevue.txt: decoded as cp1252" in result.err


def test_folder_without_transcripts(tmp_path, run_cli):
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    result = run_cli("segment", tmp_path, "--out", tmp_path / "s.csv")
    assert result.code == 2 and f"{tmp_path}: folder holds no transcripts" in result.err


def test_sidecar_with_unknown_keys(tmp_path, run_cli):
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "a.meta.yaml").write_text("language: en\nsite: ontario\nmood: sunny\n", encoding="utf-8")
    result = run_cli("segment", tmp_path / "a.txt", "--out", tmp_path / "s.csv")
    assert result.code == 2
    assert f"{tmp_path / 'a.meta.yaml'}: unknown sidecar key(s): mood" in result.err
    assert not (tmp_path / "s.csv").exists()


def test_missing_input_and_bad_output_suffix(tmp_path, run_cli):
    assert run_cli("segment", tmp_path / "nope.txt", "--out", tmp_path / "s.csv").code == 2
    result = run_cli("segment", TEST_DATA / "transcripts", "--out", tmp_path / "s.xlsx")
    assert result.code == 2 and "s.xlsx: output must end in .csv or .parquet" in result.err
