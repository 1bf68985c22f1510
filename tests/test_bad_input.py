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


# --- bounds (pipeline/limits.py) and files that are not regular files ---------------------------


def _segment_fails(run_cli, tmp_path, bad, problem):
    """``imri segment`` on a good and a bad transcript: one line naming the bad one, nothing written."""
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    out = tmp_path / "segments.csv"
    result = run_cli("segment", good, bad, "--out", out)
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1 and result.err.startswith(f"error: {bad}: "), result.err
    assert problem in result.err, result.err
    assert not out.exists()
    return result


@pytest.mark.parametrize(
    "text,problem",
    [
        # a 2 MB line without a line break (spaCy's E088 traceback before)
        ("Tenant: " + "word " * 420_000, "text length is 2,100,008 characters, over the limit of 2,000,000"),
        ("Interviewer: Hi?\nTenant: " + "mot " * 60_000 + "\n", "line 2 is 240,008 characters, over the limit"),
        ("\u00a0\u3000 \u2003\n\u2028" * 50, "empty file (only spaces; no visible text)"),  # IndexError in code
    ],
)
def test_transcripts_past_the_bounds(tmp_path, run_cli, text, problem):
    bad = tmp_path / "bad.txt"
    bad.write_text(text, encoding="utf-8")
    _segment_fails(run_cli, tmp_path, bad, problem)


def test_a_transcript_file_past_the_size_bound(tmp_path, run_cli, monkeypatch):
    from pipeline import limits

    monkeypatch.setattr(limits, "MAX_TRANSCRIPT_BYTES", 1000)
    bad = tmp_path / "big.vtt"
    bad.write_text("WEBVTT\n\n" + "00:00.000 --> 00:01.000\nTenant: hello there\n\n" * 40, encoding="utf-8")
    problem = f"file size is {bad.stat().st_size:,} bytes, over the limit of 1,000 bytes (MAX_TRANSCRIPT_BYTES"
    _segment_fails(run_cli, tmp_path, bad, problem)


def test_a_whisper_json_nested_too_deeply(tmp_path, run_cli):
    bad = tmp_path / "deep.json"
    bad.write_text('{"segments": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    _segment_fails(run_cli, tmp_path, bad, "nested too deeply")


def test_fifos_devices_and_links_out_of_the_folder_are_not_read(tmp_path, run_cli):
    import os

    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    _segment_fails(run_cli, tmp_path, fifo, "not a regular file (a FIFO)")
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    _segment_fails(run_cli, tmp_path, zero, "not a regular file (a character device)")
    folder = tmp_path / "interviews"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD, encoding="utf-8")
    (folder / "secret.txt").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text(GOOD, encoding="utf-8")
    result = run_cli("segment", folder, "--out", tmp_path / "s.csv")
    assert result.code == 2 and f"error: {folder / 'secret.txt'}: a link to " in result.err
    assert "outside" in result.err and not (tmp_path / "s.csv").exists()
    (folder / "secret.txt").unlink()
    (folder / "inside.txt").symlink_to(folder / "a.txt")  # a link within the folder is read
    result = run_cli("segment", folder / "a.txt", "--out", tmp_path / "s.csv")
    assert result.code == 0, result.err


def test_segment_out_under_a_file_or_onto_a_folder(tmp_path, run_cli):
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    result = run_cli("segment", good, "--out", good / "s.csv")
    assert result.code == 2
    assert result.err == f"error: {good / 's.csv'}: cannot write here: {good} is a file, not a folder\n"
    (tmp_path / "x.csv").mkdir()
    result = run_cli("segment", good, "--out", tmp_path / "x.csv")
    assert result.code == 2 and result.err == f"error: {tmp_path / 'x.csv'}: is a folder; give a file name\n"


# --- .docx: zip bombs and XML entities are refused before python-docx parses anything -------------


def _docx(path, document_xml: bytes | None = None, extra: dict[str, bytes] | None = None):
    """A real .docx from python-docx, with its ``word/document.xml`` replaced and parts added."""
    import zipfile

    import docx

    plain = path.with_name("plain.docx")
    document = docx.Document()
    for line in GOOD.strip().split("\n"):
        document.add_paragraph(line)
    document.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml" and document_xml is not None:
                data = document_xml
            out.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    plain.unlink()
    return path


def test_docx_bombs_and_entities(tmp_path, run_cli):
    import re
    import zipfile

    bomb = _docx(tmp_path / "bomb.docx", extra={"word/media/padding.bin": bytes(80 * 1024 * 1024)})
    assert bomb.stat().st_size < 200_000  # 80 MB of zeros inflate from a small file
    _segment_fails(run_cli, tmp_path, bomb, "over the limit of 67,108,864 bytes (MAX_DOCX_UNCOMPRESSED_BYTES")

    with zipfile.ZipFile(_docx(tmp_path / "ok.docx")) as z:
        body = z.read("word/document.xml")
    padded = body.replace(b"<w:body>", b"<w:body>" + b"<w:p/>" * 3_000_000)  # 18 MB of empty paragraphs
    xml = _docx(tmp_path / "xml.docx", padded)
    _segment_fails(run_cli, tmp_path, xml, "uncompressed size of its XML is")

    many = _docx(tmp_path / "many.docx", body.replace(b"<w:body>", b"<w:body>" + b"<w:p/>" * 1_100_000))
    _segment_fails(run_cli, tmp_path, many, "over the limit of 1,000,000 (MAX_DOCX_XML_ELEMENTS")

    laughs = b'<!DOCTYPE w:document [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    entities = _docx(tmp_path / "laughs.docx", re.sub(rb"(<\?xml[^>]*\?>)", rb"\1" + laughs, body, count=1))
    _segment_fails(run_cli, tmp_path, entities, "word/document.xml declares a DTD or XML entities")


def test_a_docx_whose_zip_directory_understates_a_part_is_not_inflated_past_it(tmp_path, run_cli):
    """The zip reader stops at the declared size; the part then fails its checksum."""
    import struct
    import zipfile

    with zipfile.ZipFile(_docx(tmp_path / "ok.docx")) as z:
        body = z.read("word/document.xml")
    huge = body.replace(b"<w:body>", b"<w:body>" + b" " * (200 * 1024 * 1024))  # 200 MB declared as 1,000 bytes
    docx_path = _docx(tmp_path / "liar.docx", huge)
    raw = bytearray(docx_path.read_bytes())
    name = b"word/document.xml"
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            if raw[start + name_at : start + name_at + len(name)] == name:
                raw[start + size_at : start + size_at + 4] = struct.pack("<I", 1000)
            start += 4
    docx_path.write_bytes(bytes(raw))
    _segment_fails(run_cli, tmp_path, docx_path, "not a readable .docx (BadZipFile)")


@pytest.mark.parametrize("end", [2**63, 10**30])
def test_codings_with_offsets_past_any_transcript(tmp_path, end):
    """Offsets that no transcript can reach are refused on their row (an OverflowError before)."""
    from pipeline.codebook import load_codebook
    from pipeline.errors import InputError
    from pipeline.model import read_codings

    path = tmp_path / "codings.csv"
    path.write_text(
        f"source,start,end,code,coder\na.txt,0,10,operating_changing_practice,A\na.txt,0,{end},being_growth_service_users,A\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"row 3: end offset is [\d,]+, over the limit of 2,000,000"):
        read_codings(path, load_codebook())


# --- numbers, surrogates and controls in Whisper JSON and sidecars ------------------------------------

HUGE = "9" * 5000


@pytest.mark.parametrize(
    "start,problem",
    [
        (HUGE, "segment 2: start and end must be seconds"),  # a ValueError traceback from json before
        ("NaN", "segment 2: start and end must be seconds"),
        ("Infinity", "segment 2: start and end must be seconds"),
        ("-Infinity", "segment 2: start and end must be seconds"),
        ("1e999", "segment 2: start and end must be seconds"),
        ("-3.5", "segment 2: start and end must be seconds"),
        (f'"{HUGE}"', "segment 2: start and end must be seconds"),
    ],
)
def test_whisper_times_that_are_no_times(tmp_path, run_cli, start, problem):
    bad = tmp_path / "whisper.json"
    first = '{"start": 0, "end": 1, "text": "What changed?", "speaker": "A"}'
    bad.write_text(f'{{"segments": [{first}, {{"start": {start}, "end": 5, "text": "Hi."}}]}}', encoding="utf-8")
    _segment_fails(run_cli, tmp_path, bad, problem)


def test_a_sidecar_with_a_5000_digit_number(tmp_path, run_cli):
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "a.meta.yaml").write_text(f"language: en\nparticipants: {{Tenant: {HUGE}}}\n", encoding="utf-8")
    result = run_cli("segment", tmp_path / "a.txt", "--out", tmp_path / "s.csv")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {tmp_path / 'a.meta.yaml'}: sidecar is not valid UTF-8 YAML")


@pytest.mark.parametrize("field", ["text", "speaker"])
def test_lone_surrogates_and_controls_in_whisper_json_are_replaced_with_a_warning(tmp_path, run_cli, field):
    import json

    from pipeline.ingest import decode_bytes, load_transcript

    path = tmp_path / "whisper.json"
    odd = "I sleep \\ud800 better\\u0000 now\\u0007." if field == "text" else "SPEAKER\\udfff_01\\u0000"
    segments = [
        '{"start": 0, "end": 1, "text": "What changed for you?", "speaker": "SPEAKER_00"}',
        '{"start": 1, "end": 2, "text": "I sleep better now.", "speaker": "SPEAKER_01"}'.replace(
            "I sleep better now." if field == "text" else "SPEAKER_01", odd
        ),
    ]
    path.write_text('{"segments": [' + ", ".join(segments) + "]}", encoding="utf-8")
    json.loads(path.read_text(encoding="utf-8"))  # valid JSON
    result = run_cli("segment", path, "--out", tmp_path / "s.csv")
    assert result.code == 0, result.err  # a UnicodeEncodeError traceback from spaCy before
    assert "warning: whisper.json: " in result.err and "first in segment 2" in result.err
    text = load_transcript(path).text
    assert not any(ch in text for ch in "\x00\x07") and not any("\ud800" <= ch <= "\udfff" for ch in text)
    assert "\ufffd" in text
    # the text the run keeps (transcripts/<source>.txt, coded.qdpx) reads back as a transcript
    decode_bytes(text.encode("utf-8"), path)


def test_a_symlink_loop_in_the_input_folder_is_one_line(tmp_path, run_cli):
    folder = tmp_path / "interviews"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD, encoding="utf-8")
    (folder / "x.txt").symlink_to(folder / "y.txt")
    (folder / "y.txt").symlink_to(folder / "x.txt")
    result = run_cli("segment", folder, "--out", tmp_path / "s.csv")  # a RuntimeError traceback before
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {folder / 'x.txt'}: a link that loops")
    codings = tmp_path / "codings.csv"
    codings.write_text("source,start,end,code,coder\na.txt,13,25,being_growth_service_users,A\n", encoding="utf-8")
    out = tmp_path / "p.qdpx"
    result = run_cli("export-qdpx", "--codings", codings, "--text-dir", folder, "--out", out)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {folder / 'x.txt'}: cannot read (a link that loops")
    assert not out.exists()


def test_file_names_with_escape_sequences_or_line_breaks_are_escaped_in_errors_and_warnings(tmp_path, run_cli):
    folder = tmp_path / "interviews"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD, encoding="utf-8")
    (folder / "notes\x1b[2J\nerror: all fine.pdf").write_bytes(b"%PDF")  # skipped with a warning
    bad = folder / "b\x1b]0;owned\x07\rerror: forged\u202e.txt"
    bad.write_bytes(b"")
    result = run_cli("segment", folder, "--out", tmp_path / "s.csv")
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: ") and lines[1].startswith("error: "), lines
    assert not any(ch in result.err for ch in "\x1b\x07\r\u202e")
    assert (
        lines[0]
        == f"warning: {folder}/notes\\x1b[2J\\nerror: all fine.pdf: skipped (not a transcript: "
        + (lines[0].split("(not a transcript: ")[1])
    )
    assert lines[1] == f"error: {folder}/b\\x1b]0;owned\\x07\\rerror: forged\\u202e.txt: empty file"
