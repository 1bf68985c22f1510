"""REFI-QDA import/export: real exports of other tools, round trips, schema validity, hostile archives."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from pipeline.codebook import DEFAULT_CODEBOOK, load_codebook
from pipeline.errors import InputError
from pipeline.limits import ArchiveLimits
from pipeline.qdpx import (
    export_qdpx,
    import_qdc,
    import_qdpx,
    load_transcripts,
    read_qdpx,
    unique_file_names,
)
from tests.conftest import ROOT, SHARED

FIXTURES = SHARED / "fixtures" / "qdpx"
XSD = FIXTURES / "Project-mrt2019.xsd"
NS = {"q": "urn:QDA-XML:project:1.0"}
FIXTURE_FILES = sorted(FIXTURES.glob("*.qdpx")) if FIXTURES.is_dir() else []
needs_fixtures = pytest.mark.skipif(not FIXTURE_FILES, reason="shared REFI-QDA fixtures not available")
needs_xsd = pytest.mark.skipif(not XSD.is_file(), reason="shared REFI-QDA schema not available")


# --- helpers -----------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[tuple[str, int, int, str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return sorted(
            (r["source"], int(r["start"]), int(r["end"]), r["code"], r["coder"]) for r in csv.DictReader(handle)
        )


def qde_of(archive: Path) -> etree._Element:
    with zipfile.ZipFile(archive) as zf:
        return etree.fromstring(zf.read("project.qde"))


def assert_valid(archive: Path) -> None:
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = qde_of(archive)
    assert schema.validate(document), schema.error_log


def make_qdpx(path: Path, qde: str | bytes, files: dict[str, bytes | str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.qde", qde)
        for name, data in (files or {}).items():
            zf.writestr(name, data)
    return path


G = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1, 40)]  # readable distinct GUIDs for hand-built projects


def project(sources: str, codes: str | None = None, users: str | None = None) -> str:
    codes = (
        codes
        if codes is not None
        else (
            f'<Code guid="{G[1]}" name="growth" isCodable="true">'
            f'<Code guid="{G[2]}" name="hope" isCodable="true"/></Code>'
            f'<Code guid="{G[3]}" name="conflict" isCodable="true"/>'
        )
    )
    users = users if users is not None else f'<User guid="{G[0]}" name="ana"/><User guid="{G[4]}" name="bo"/>'
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<Project xmlns="urn:QDA-XML:project:1.0" name="hand made"><Users>{users}</Users>'
        f"<CodeBook><Codes>{codes}</Codes></CodeBook><Sources>{sources}</Sources></Project>"
    )


def selection(guid: str, start: int, end: int, *codings: tuple[str, str], description: str | None = None) -> str:
    inner = f"<Description>{description}</Description>" if description else ""
    for n, (code, user) in enumerate(codings):
        inner += f'<Coding guid="{G[20 + n]}" creatingUser="{user}"><CodeRef targetGUID="{code}"/></Coding>'
    return f'<PlainTextSelection guid="{guid}" startPosition="{start}" endPosition="{end}">{inner}</PlainTextSelection>'


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the shared fixtures: counts checked against the files themselves -----------------------------------


def expected_from_archive(archive: Path) -> dict:
    """Count and list what the project holds, read with lxml independently of pipeline.qdpx."""
    root = qde_of(archive)
    code_path: dict[str, str] = {}
    for code in root.iterfind(".//q:Code", NS):
        names = [code.get("name")] + [a.get("name") for a in code.iterancestors(f"{{{NS['q']}}}Code")]
        code_path[code.get("guid").strip("{}").lower()] = "/".join(reversed(names))
    users = {u.get("guid").lower(): u.get("name") for u in root.iterfind("q:Users/q:User", NS)}
    codings = []
    for source in root.iterfind("q:Sources/q:TextSource", NS):
        file_name = Path(source.get("plainTextPath").replace("internal://", "")).name
        for sel in source.iterfind("q:PlainTextSelection", NS):
            for coding in sel.iterfind("q:Coding", NS):
                target = coding.find("q:CodeRef", NS).get("targetGUID").strip("{}").lower()
                codings.append(
                    (
                        file_name,
                        int(sel.get("startPosition")),
                        int(sel.get("endPosition")),
                        code_path[target],
                        users[coding.get("creatingUser").lower()],
                    )
                )
    codable_paths = {
        code_path[c.get("guid").strip("{}").lower()]
        for c in root.iterfind(".//q:Code", NS)
        if c.get("isCodable") == "true"
    }
    return {
        "sources": len(root.findall("q:Sources/q:TextSource", NS)),
        "codes": len(root.findall(".//q:Code", NS)),
        "users": len(root.findall("q:Users/q:User", NS)),
        "codings": codings,
        "codable_paths": codable_paths,
    }


@needs_fixtures
@pytest.mark.parametrize("archive", FIXTURE_FILES, ids=lambda p: p.name)
def test_every_shared_fixture_imports_with_the_counts_of_the_file(archive: Path, tmp_path: Path):
    expected = expected_from_archive(archive)
    project = read_qdpx(archive)
    assert len(project.sources) == expected["sources"]
    assert len(project.codes) == expected["codes"]
    assert len(project.users) == expected["users"]
    assert len(project.codings) == len(expected["codings"])

    out = tmp_path / "out"
    result = import_qdpx(archive, out)
    assert (result.sources, result.codes, result.codings) == (
        expected["sources"],
        expected["codes"],
        len(expected["codings"]),
    )
    assert len(list((out / "transcripts").glob("*.txt"))) == expected["sources"]
    rows = read_csv(out / "codings.csv")
    assert len(rows) == len(expected["codings"])
    if expected["codable_paths"]:
        book = load_codebook(out / "codebook.yaml")
        assert set(book.impact_ids) == expected["codable_paths"]
        book.check_codes({row[3] for row in rows})
    else:
        assert not (out / "codebook.yaml").exists()


@needs_fixtures
def test_qc_demo_codings_and_texts_are_exactly_those_of_the_archive(tmp_path: Path):
    archive = FIXTURES / "qc-demo.qdpx"
    out = tmp_path / "qc"
    import_qdpx(archive, out)
    expected = expected_from_archive(archive)
    assert read_csv(out / "codings.csv") == sorted(expected["codings"])
    assert len(expected["codings"]) == 205
    with zipfile.ZipFile(archive) as zf:
        for name in ("board_2017.txt", "admin-1.txt"):
            assert (out / "transcripts" / name).read_bytes() == zf.read(f"sources/{name}")
    # a coded passage is the line the qc tool recorded
    text = (out / "transcripts" / "board_2017.txt").read_text(encoding="utf-8")
    assert text[320:400].startswith("This district goal is engage every student")


@needs_fixtures
def test_nvivo_mac_export_with_two_users_and_blank_plain_texts(tmp_path: Path):
    project = read_qdpx(FIXTURES / "nvivo-mac15-export.qdpx")
    assert sorted(project.users.values()) == ["chrisp", "cp"]
    # its .txt files hold a newline only and its .docx files are empty too: the text as stored is kept
    assert list(project.sources.values()) == ["\n", "\n"]
    assert any("no text" in w for w in project.warnings)
    # nested codes: a code three levels deep keeps its path
    assert "rq1_definition/competencies/programming" in {c.path for c in project.codes}


@needs_fixtures
def test_atlas_upper_case_guids_resolve(tmp_path: Path):
    project = read_qdpx(FIXTURES / "atlasti23-target.qdpx")
    assert [c.path for c in project.codes] == [
        "Commits",
        "Commits/2022-05-10T02:05:59Z 19e4dce",
        "Commits/2022-02-11T10:39:25Z cdbfd92",
    ]
    assert set(project.users) == {"088b08ac-d5cd-4adb-8b71-b4f3459c177f", "c32a2bd5-537f-4838-8b17-df9efbafdf4b"}
    import_qdpx(FIXTURES / "atlasti23-target.qdpx", tmp_path / "out")
    book = load_codebook(tmp_path / "out" / "codebook.yaml")
    assert book.impact("Commits/2022-05-10T02:05:59Z 19e4dce").name["en"] == "2022-05-10T02:05:59Z 19e4dce"


# --- export and round trips --------------------------------------------------------------------------------

TEXTS = {
    "ns-01.txt": "Interviewer: How was it?\r\nTenant 1: The group gave me hope. 😊\r\nIt changed a lot.\r\n",
    "ns-02.txt": "Intervieweuse : Et alors ?\nLocataire : J'ai appris à gérer mes crises, c'était dur.\n",
    "uncoded.txt": "Nothing coded here.\n",
}


def sample_codings() -> pd.DataFrame:
    t1, t2 = TEXTS["ns-01.txt"], TEXTS["ns-02.txt"]
    s1 = t1.index("The group")
    s2 = t2.index("J'ai")
    rows = [
        ("ns-01.txt", s1, t1.index("😊") + 1, "growth/hope", "model v1", "0.91"),
        ("ns-01.txt", s1, t1.index("😊") + 1, "conflict", "model v1", "0.12"),
        ("ns-01.txt", s1, len(t1) - 2, "growth", "ana", None),
        ("ns-02.txt", s2, len(t2) - 1, "growth/hope", "bo", None),
        ("ns-02.txt", s2, s2 + 4, "growth/hope", "ana", None),
    ]
    return pd.DataFrame(rows, columns=["source", "start", "end", "code", "coder", "description"])


@needs_xsd
def test_export_validates_and_round_trips(tmp_path: Path):
    codings = sample_codings()
    out = export_qdpx(TEXTS, codings, tmp_path / "coded.qdpx")
    assert_valid(out)

    project = read_qdpx(out)
    assert project.sources == {
        "ns-01": TEXTS["ns-01.txt"],
        "ns-02": TEXTS["ns-02.txt"],
        "uncoded": TEXTS["uncoded.txt"],
    }
    got = sorted((c.source + ".txt", c.start, c.end, c.code, c.coder, c.description) for c in project.codings)
    want = sorted(
        (r.source, r.start, r.end, r.code, r.coder, r.description if isinstance(r.description, str) else None)
        for r in codings.itertuples()
    )
    assert got == want
    assert sorted(project.users.values()) == ["ana", "bo", "model v1"]

    result = import_qdpx(out, tmp_path / "back")
    assert not result.warnings
    assert read_csv(tmp_path / "back" / "codings.csv") == sorted(
        (r.source, r.start, r.end, r.code, r.coder) for r in codings.itertuples()
    )
    for name, text in TEXTS.items():  # CRLF kept byte for byte, so the offsets still hold
        assert (tmp_path / "back" / "transcripts" / name).read_bytes() == text.encode("utf-8")
    book = load_codebook(tmp_path / "back" / "codebook.yaml")
    assert book.impact_ids == ["conflict", "growth", "growth/hope"]


@needs_xsd
@pytest.mark.parametrize("language", ["en", "fr"])
def test_export_names_codes_as_the_codebook_does_and_nests_them_under_categories(tmp_path: Path, language: str):
    book = load_codebook()
    impact = book.impact("being_growth_service_users")
    category = next(c for c in book.categories if c.id == impact.category)
    text = "Tenant: I feel more hopeful since the group started.\n"
    codings = pd.DataFrame(
        [("t.txt", 8, 51, "being_growth_service_users", "imri model imri-default 1.0", 0.87)],
        columns=["source", "start", "end", "code", "coder", "description"],
    )
    out = export_qdpx({"t.txt": text}, codings, tmp_path / "coded.qdpx", book, language=language)
    assert_valid(out)
    root = qde_of(out)
    top = root.findall("q:CodeBook/q:Codes/q:Code", NS)
    # one code per category at the top, named as the codebook names it, not codable; its impacts under it
    assert [c.get("name") for c in top] == [c.name[language] for c in book.categories]
    assert all(c.get("isCodable") == "false" for c in top)
    node = top[book.category_ids.index(category.id)]
    under = [c.get("name") for c in node.findall("q:Code", NS)]
    assert under == [i.name[language] for i in book.impacts if i.category == category.id]
    assert len(root.findall(".//q:Code", NS)) == len(book.impacts) + len(book.categories)
    assert not root.findall("q:Sets", NS)  # the tree already groups them
    code = next(c for c in node.findall("q:Code", NS) if c.get("name") == impact.name[language])
    description = code.find("q:Description", NS).text
    assert impact.definition in description and "imri-autocode id: being_growth_service_users" in description
    assert root.find("q:Sources//q:PlainTextSelection/q:Description", NS).text == "0.87"
    assert [u.get("name") for u in root.findall("q:Users/q:User", NS)] == ["imri model imri-default 1.0"]
    # the ids come back on import: codings and codebook speak the codebook's ids, not the names
    imported = read_qdpx(out)
    assert [(c.code, c.coder, c.description) for c in imported.codings] == [
        ("being_growth_service_users", "imri model imri-default 1.0", "0.87")
    ]
    import_qdpx(out, tmp_path / "back")
    back = load_codebook(tmp_path / "back" / "codebook.yaml")
    assert sorted(back.impact_ids) == sorted(book.impact_ids) and back.category_ids == book.category_ids
    assert all(back.category_of(i) == book.category_of(i) for i in book.impact_ids)
    assert back.impact("being_growth_service_users").name["en"] == impact.name[language]
    assert back.impact("being_growth_service_users").definition == impact.definition


@needs_xsd
@needs_fixtures
def test_an_imported_fixture_exports_back_to_the_same_codings(tmp_path: Path, run_cli):
    first = tmp_path / "first"
    assert run_cli("import-qdpx", FIXTURES / "qc-demo.qdpx", "--out", first).code == 0
    exported = tmp_path / "again.qdpx"
    result = run_cli(
        "export-qdpx",
        "--codings",
        first / "codings.csv",
        "--text-dir",
        first / "transcripts",
        "--codebook",
        first / "codebook.yaml",
        "--out",
        exported,
    )
    assert result.code == 0, result.err
    assert "205 codings" in result.out
    assert_valid(exported)
    assert run_cli("import-qdpx", exported, "--out", tmp_path / "second").code == 0
    assert read_csv(tmp_path / "second" / "codings.csv") == read_csv(first / "codings.csv")
    assert tree(tmp_path / "second" / "transcripts") == tree(first / "transcripts")
    assert (
        load_codebook(tmp_path / "second" / "codebook.yaml").impact_ids
        == load_codebook(first / "codebook.yaml").impact_ids
    )


text_strategy = st.text(alphabet=st.sampled_from(list("ab é\r\n\t😊ß«»\u0301")), min_size=1, max_size=60)


@needs_xsd
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_property(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("prop")
    texts = {name: data.draw(text_strategy) for name in ("a.txt", "b b.txt", "Ç.txt")}
    rows = set()
    for _ in range(data.draw(st.integers(0, 12))):
        name = data.draw(st.sampled_from(sorted(texts)))
        start = data.draw(st.integers(0, len(texts[name]) - 1))
        end = data.draw(st.integers(start + 1, len(texts[name])))
        code = data.draw(st.sampled_from(["x", "x/y", "x/y/z", "w"]))
        coder = data.draw(st.sampled_from(["A", "B", "model 2"]))
        rows.add((name, start, end, code, coder))
    frame = pd.DataFrame(sorted(rows), columns=["source", "start", "end", "code", "coder"])
    out = export_qdpx(texts, frame, tmp / "p.qdpx")
    assert_valid(out)
    import_qdpx(out, tmp / "back")
    assert read_csv(tmp / "back" / "codings.csv") == sorted(rows)
    for name, text in texts.items():
        assert (tmp / "back" / "transcripts" / name).read_bytes() == text.encode("utf-8")


def test_export_refuses_codings_that_do_not_fit(tmp_path: Path):
    frame = pd.DataFrame([("a.txt", 0, 99, "x", "A")], columns=["source", "start", "end", "code", "coder"])
    with pytest.raises(InputError, match="outside 'a.txt'"):
        export_qdpx({"a.txt": "short"}, frame, tmp_path / "p.qdpx", where="codings.csv")
    with pytest.raises(InputError, match="no transcript 'b.txt'"):
        export_qdpx({"a.txt": "short"}, frame.assign(source="b.txt"), tmp_path / "p.qdpx")
    with pytest.raises(InputError, match="not in codebook"):
        export_qdpx({"a.txt": "short"}, frame.assign(end=3), tmp_path / "p.qdpx", load_codebook())
    assert not list(tmp_path.iterdir())


# --- quirks of real exports, on hand-built projects ----------------------------------------------------------


def test_guids_in_upper_case_and_braces(tmp_path: Path):
    text = "one two three"
    sources = (
        f'<TextSource guid="{{{G[10].upper()}}}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11].upper(), 4, 7, (f"{{{G[2].upper()}}}", f"{{{G[4].upper()}}}"))
        + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources), {"sources/s.txt": text})
    coding = read_qdpx(archive).codings[0]
    assert (coding.start, coding.end, coding.code, coding.coder) == (4, 7, "growth/hope", "bo")


def test_inline_text_crlf_and_several_users(tmp_path: Path):
    text = "Q: well?\r\nA: it helped me\r\nA: we argued"
    start = text.index("it helped")
    sources = (
        f'<TextSource guid="{G[10]}" name="Interview 1"><PlainTextContent>{text.replace(chr(13), "&#13;")}'
        "</PlainTextContent>" + selection(G[11], start, start + 12, (G[2], G[0]), (G[3], G[4])) + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources))
    import_qdpx(archive, tmp_path / "out")
    written = (tmp_path / "out" / "transcripts" / "Interview 1.txt").read_bytes().decode("utf-8")
    assert written == text
    rows = read_csv(tmp_path / "out" / "codings.csv")
    assert rows == [
        ("Interview 1.txt", start, start + 12, "conflict", "bo"),
        ("Interview 1.txt", start, start + 12, "growth/hope", "ana"),
    ]
    assert written[start : start + 12] == "it helped me"


def test_text_only_in_docx_is_read_from_the_docx(tmp_path: Path):
    import docx

    document = docx.Document()
    document.add_paragraph("Interviewer: And then?")
    document.add_paragraph("Tenant: I learned to plan for a crisis.")
    buffer = io.BytesIO()
    document.save(buffer)
    text = "Interviewer: And then?\nTenant: I learned to plan for a crisis."
    start = text.index("I learned")
    sources = (
        f'<TextSource guid="{G[10]}" name="mac" plainTextPath="internal://{G[10]}.txt" '
        f'richTextPath="internal://{G[10]}.docx">'
        + selection(G[11], start, len(text) - 1, (G[1], G[0]))
        + "</TextSource>"
    )
    archive = make_qdpx(
        tmp_path / "p.qdpx",
        project(sources),
        {f"sources/{G[10]}.txt": "\n", f"sources/{G[10]}.docx": buffer.getvalue()},
    )
    project_ = read_qdpx(archive)
    assert project_.sources == {"mac": text}
    coding = project_.codings[0]
    assert project_.sources["mac"][coding.start : coding.end] == "I learned to plan for a crisis"
    assert any(".docx" in w for w in project_.warnings)


def test_selections_without_coding_are_warned_and_skipped(tmp_path: Path, run_cli):
    text = "first passage, second passage"
    sources = (
        f'<TextSource guid="{G[10]}" name="maxqda" plainTextPath="internal://m.txt">'
        + selection(G[11], 0, 13, description="a comment, no code")
        + selection(G[12], 15, 29, (G[3], G[0]))
        + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources), {"sources/m.txt": text})
    result = run_cli("import-qdpx", archive, "--out", tmp_path / "out")
    assert result.code == 0
    assert "1 selection(s) without a coding skipped" in result.err
    assert read_csv(tmp_path / "out" / "codings.csv") == [("maxqda.txt", 15, 29, "conflict", "ana")]


def test_code_map_turns_a_project_into_training_data(tmp_path: Path):
    text = "I feel hopeful. We fought. Other."
    sources = (
        f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11], 0, 15, (G[2], G[0]))
        + selection(G[12], 16, 26, (G[3], G[0]))
        + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources), {"sources/s.txt": text})
    code_map = tmp_path / "map.yaml"
    code_map.write_text(yaml.safe_dump({"growth/hope": "being_growth_service_users", "growth": None}))
    result = import_qdpx(archive, tmp_path / "out", code_map=code_map)
    assert read_csv(tmp_path / "out" / "codings.csv") == [("s.txt", 0, 15, "being_growth_service_users", "ana")]
    assert any("not in the code map" in w and "conflict" in w for w in result.warnings)
    assert (tmp_path / "out" / "codebook.yaml").read_bytes() == DEFAULT_CODEBOOK.read_bytes()

    code_map.write_text(yaml.safe_dump({"hope": "no_such_impact"}))
    with pytest.raises(InputError, match="no_such_impact"):
        import_qdpx(archive, tmp_path / "out2", code_map=code_map)
    assert not (tmp_path / "out2").exists()


def test_import_qdc(tmp_path: Path, run_cli):
    qdc = tmp_path / "book.qdc"
    qdc.write_text(
        '<?xml version="1.0" encoding="utf-8"?><CodeBook xmlns="urn:QDA-XML:codebook:1.0" origin="MAXQDA 2022">'
        f'<Codes><Code guid="{{{G[1].upper()}}}" name="Ways of being" isCodable="false">'
        "<Description>People change.</Description>"
        f'<Code guid="{G[2]}" name="Growth" isCodable="true"><Description>Feeling better.</Description></Code>'
        f'</Code><Code guid="{G[3]}" name="Other" isCodable="true"/></Codes></CodeBook>',
        encoding="utf-8",
    )
    result = run_cli("import-qdc", qdc, "--out", tmp_path / "out")
    assert result.code == 0, result.err
    book = load_codebook(tmp_path / "out" / "codebook.yaml")
    assert book.impact_ids == ["Ways of being/Growth", "Other"]
    assert book.impact("Ways of being/Growth").definition == "Feeling better."
    assert book.categories[0].definition == "People change."
    assert import_qdc(qdc, tmp_path / "again").codes == 3


def test_unique_safe_file_names():
    names = unique_file_names(["a/b", "A:B", "con", "ok.txt", "OK", "", ".."])
    assert names == {
        "a/b": "a_b.txt",
        "A:B": "A_B-2.txt",
        "con": "_con.txt",
        "ok.txt": "ok.txt",
        "OK": "OK-2.txt",
        "": "source.txt",
        "..": "source-2.txt",
    }


# --- hostile archives ---------------------------------------------------------------------------------------

GOOD_SOURCE = f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt"></TextSource>'


def symlink_archive(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("project.qde", project(GOOD_SOURCE))
        zf.writestr("sources/s.txt", "text")
        link = zipfile.ZipInfo("sources/link.txt")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return path


XXE = (
    '<?xml version="1.0"?><!DOCTYPE Project [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<Project xmlns="urn:QDA-XML:project:1.0" name="&x;"/>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE Project [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    '<Project xmlns="urn:QDA-XML:project:1.0" name="&d;"/>'
)

HOSTILE = {
    "zip-slip": (lambda p: make_qdpx(p, project(GOOD_SOURCE), {"sources/s.txt": "t", "../evil.txt": "x"}), "zip-slip"),
    "nested zip-slip": (
        lambda p: make_qdpx(p, project(GOOD_SOURCE), {"sources/s.txt": "t", "sources/../../evil.txt": "x"}),
        "zip-slip",
    ),
    "absolute path": (
        lambda p: make_qdpx(p, project(GOOD_SOURCE), {"sources/s.txt": "t", "/tmp/evil.txt": "x"}),
        "absolute path",
    ),
    "windows drive": (
        lambda p: make_qdpx(p, project(GOOD_SOURCE), {"sources/s.txt": "t", "C:/evil.txt": "x"}),
        "absolute path",
    ),
    "symlink": (symlink_archive, "symbolic link"),
    "zip bomb ratio": (
        lambda p: make_qdpx(p, project(GOOD_SOURCE), {"sources/s.txt": b"\0" * (8 * 1024**2)}),
        "zip bomb",
    ),
    "external entity": (lambda p: make_qdpx(p, XXE), "DTD"),
    "entity expansion": (lambda p: make_qdpx(p, LAUGHS), "DTD"),
    "missing source": (lambda p: make_qdpx(p, project(GOOD_SOURCE)), "missing from the archive"),
    "source path escapes": (
        lambda p: make_qdpx(
            p, project(GOOD_SOURCE.replace("internal://s.txt", "internal://../../etc/passwd")), {"sources/s.txt": "t"}
        ),
        "points outside the archive",
    ),
    "not a zip": (lambda p: p.write_bytes(b"<Project/>"), "not a REFI-QDA project"),
    "no project.qde": (lambda p: _archive_without_project(p), "no project.qde"),
    "broken xml": (lambda p: make_qdpx(p, "<Project><Users>"), "not well-formed"),
}


def _archive_without_project(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "no project here")
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(case: str, tmp_path: Path):
    build, expected = HOSTILE[case]
    archive = tmp_path / "evil.qdpx"
    build(archive)
    before = tree(tmp_path)
    with pytest.raises(InputError) as error:
        import_qdpx(archive, tmp_path / "out")
    assert expected in str(error.value)
    assert str(error.value).startswith(f"{archive}: ")
    assert tree(tmp_path) == before  # no output, no staging folder, nothing beside it
    assert not (tmp_path / "out").exists()


def test_size_and_count_limits(tmp_path: Path):
    archive = make_qdpx(tmp_path / "p.qdpx", project(GOOD_SOURCE), {"sources/s.txt": "x" * 5000})
    with pytest.raises(InputError, match="would unpack to more than 1000 bytes"):
        read_qdpx(archive, ArchiveLimits(max_total_bytes=1000))
    with pytest.raises(InputError, match="larger than 2000 bytes"):
        read_qdpx(archive, ArchiveLimits(max_entry_bytes=2000))
    with pytest.raises(InputError, match="entries"):
        read_qdpx(archive, ArchiveLimits(max_entries=1))
    assert read_qdpx(archive).sources == {"s": "x" * 5000}


def test_a_failed_import_leaves_an_earlier_one_untouched(tmp_path: Path):
    text = "hello world"
    good = (
        f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11], 0, 5, (G[3], G[0]))
        + "</TextSource>"
    )
    out = tmp_path / "out"
    import_qdpx(make_qdpx(tmp_path / "good.qdpx", project(good), {"sources/s.txt": text}), out)
    before = tree(out)
    with pytest.raises(InputError):
        import_qdpx(make_qdpx(tmp_path / "bad.qdpx", project(GOOD_SOURCE)), out)
    assert tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["codebook.yaml", "codings.csv", "transcripts"]


def test_cli_refuses_a_hostile_archive_with_one_line_and_exit_code_2(tmp_path: Path, run_cli):
    archive = symlink_archive(tmp_path / "evil.qdpx")
    result = run_cli("import-qdpx", archive, "--out", tmp_path / "out")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {archive}: refused")
    assert not (tmp_path / "out").exists()

    missing = run_cli(
        "export-qdpx", "--codings", tmp_path / "none.csv", "--text-dir", tmp_path, "--out", tmp_path / "x.qdpx"
    )
    assert missing.code == 2
    assert missing.err.strip() == f"error: {tmp_path / 'none.csv'}: no such file"


# --- bounds: each hostile input stops at its named bound, fast --------------------------------------------


def run_bounded(*args: str, seconds: int = 60, memory: int = 2 * 1024**3) -> subprocess.CompletedProcess:
    """Run ``imri ARGS`` in a child process with a time limit and an address-space limit (a hang or a memory
    blow-up fails the test instead of taking the machine down)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=limit,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def deep_code_tree(path: Path, levels: int) -> Path:
    opening = "".join(f'<Code guid="{n:08x}-0000-4000-8000-{n:012x}" name="level {n}">' for n in range(levels))
    codes = opening + "</Code>" * levels
    return make_qdpx(path, project(GOOD_SOURCE, codes=codes), {"sources/s.txt": "text"})


def test_a_code_tree_100000_levels_deep_is_refused_at_once(tmp_path: Path):
    """Today's reader kept every code's whole path: 100,000 levels took 24 GB before the kernel killed it."""
    archive = deep_code_tree(tmp_path / "deep.qdpx", 100_000)
    assert 400_000 < archive.stat().st_size < 1_000_000  # about the size of the report's 535 KB file
    started = time.perf_counter()
    result = run_bounded("import-qdpx", archive, "--out", tmp_path / "out", seconds=60, memory=1536 * 1024**2)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "refused" in result.stderr and "limit max_xml_depth" in result.stderr
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "out").exists()


def test_code_tree_depth_and_size_bounds(tmp_path: Path):
    with pytest.raises(InputError, match=r"more than 50 levels deep \(limit max_code_depth = 50\)"):
        read_qdpx(deep_code_tree(tmp_path / "d60.qdpx", 60))
    assert len(read_qdpx(deep_code_tree(tmp_path / "d50.qdpx", 50)).codes) == 50  # at the bound: read
    flat = "".join(f'<Code guid="{n:08x}-0000-4000-8000-{n:012x}" name="c{n}"/>' for n in range(20_001))
    archive = make_qdpx(tmp_path / "wide.qdpx", project(GOOD_SOURCE, codes=flat), {"sources/s.txt": "t"})
    with pytest.raises(InputError, match=r"more than 20000 codes \(limit max_codes = 20000\)"):
        read_qdpx(archive)
    with pytest.raises(InputError, match="limit max_xml_elements = 1000"):
        read_qdpx(archive, ArchiveLimits(max_xml_elements=1000))
    with pytest.raises(InputError, match="limit max_xml_bytes = 10000"):
        read_qdpx(archive, ArchiveLimits(max_xml_bytes=10_000))


def test_source_coding_and_text_bounds(tmp_path: Path):
    text = "one two three four five"
    sources = "".join(
        f'<TextSource guid="{G[10 + n]}" name="s{n}"><PlainTextContent>{text}</PlainTextContent>'
        + selection(G[15 + n], 0, 3, (G[3], G[0]))
        + "</TextSource>"
        for n in range(3)
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources))
    assert len(read_qdpx(archive).codings) == 3
    for limits, bound in (
        (ArchiveLimits(max_sources=2), "max_sources = 2"),
        (ArchiveLimits(max_codings=2), "max_codings = 2"),
        (ArchiveLimits(max_text_bytes=2 * len(text)), f"max_text_bytes = {2 * len(text)}"),
        (ArchiveLimits(max_source_bytes=10), "max_source_bytes = 10"),
    ):
        with pytest.raises(InputError, match=re.escape(bound)):
            read_qdpx(archive, limits)


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (instead of running on) when the block takes longer than ``seconds``."""

    def stop(signum, frame):
        raise _TooSlow(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_40000_sources_and_users_sharing_one_name_are_read_in_linear_time(tmp_path: Path):
    """Today's reader renamed each copy by trying "name (2)", "name (3)"... from 2: 137 s for 40,000 sources."""
    n = 40_000
    sources = "".join(
        f'<TextSource guid="{i:08x}-0000-4000-8000-000000000001" name="same">'
        "<PlainTextContent>x</PlainTextContent></TextSource>"
        for i in range(n)
    )
    users = "".join(f'<User guid="{i:08x}-0000-4000-8000-000000000002" name="same"/>' for i in range(n))
    archive = make_qdpx(tmp_path / "same.qdpx", project(sources, codes="", users=users))
    with time_limit(30):  # linear: about 2 s here
        read = read_qdpx(archive)
        names = unique_file_names(
            ["".join(c.upper() if (i >> k) & 1 else c for k, c in enumerate("abcdefghijklmnop")) for i in range(n)]
        )  # 40,000 names equal but for case: one file name each on a case-insensitive disk
    assert len(read.sources) == n and list(read.sources)[:3] == ["same", "same (2)", "same (3)"]
    assert len(set(read.users.values())) == n
    assert len({name.casefold() for name in names.values()}) == n


# --- imports never silently replace a folder -------------------------------------------------------------


def small_project(path: Path, text: str = "hello world", code: str = G[3]) -> Path:
    good = (
        f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11], 0, 5, (code, G[0]))
        + "</TextSource>"
    )
    return make_qdpx(path, project(good), {"sources/s.txt": text})


def test_import_into_a_folder_that_is_not_empty_needs_force(tmp_path: Path, run_cli):
    out = tmp_path / "mygold"
    assert run_cli("import-qdpx", small_project(tmp_path / "one.qdpx"), "--out", out).code == 0
    (out / "notes.md").write_text("my notes", encoding="utf-8")
    before = tree(out)
    second = small_project(tmp_path / "two.qdpx", "other text!", G[2])
    refused = run_cli("import-qdpx", second, "--out", out)
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert "not empty" in refused.err and "--force" in refused.err
    assert "transcripts/ (1 file)" in refused.err and "codings.csv" in refused.err and "notes.md" in refused.err
    assert tree(out) == before  # untouched

    forced = run_cli("import-qdpx", second, "--out", out, "--force")
    assert forced.code == 0, forced.err
    assert f"replaced {out}" in forced.err and "notes.md" in forced.err  # says what it replaced
    assert (out / "transcripts" / "s.txt").read_text(encoding="utf-8") == "other text!"
    assert read_csv(out / "codings.csv") == [("s.txt", 0, 5, "growth/hope", "ana")]
    assert sorted(p.name for p in out.iterdir()) == ["codebook.yaml", "codings.csv", "transcripts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mygold", "one.qdpx", "two.qdpx"]  # nothing left aside


def test_a_failure_while_the_folder_is_swapped_leaves_the_old_folder_whole(tmp_path: Path, monkeypatch):
    """Today's import moved transcripts/, codings.csv and codebook.yaml in one by one: a failure between two
    moves left a mix of two imports. Now the new folder takes the old one's place in one step."""
    import pipeline.io

    out = tmp_path / "mygold"
    import_qdpx(small_project(tmp_path / "one.qdpx"), out)
    before = tree(out)

    def failing_exchange(a, b):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pipeline.io, "_exchange", failing_exchange)
    with pytest.raises(InputError, match="cannot put the new folder in place"):
        import_qdpx(small_project(tmp_path / "two.qdpx", "other text!", G[2]), out, force=True)
    monkeypatch.undo()
    assert tree(out) == before  # the old import, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mygold", "one.qdpx", "two.qdpx"]  # nothing left aside
    import_qdpx(small_project(tmp_path / "two.qdpx", "other text!", G[2]), out, force=True)
    assert (out / "transcripts" / "s.txt").read_text(encoding="utf-8") == "other text!"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mygold", "one.qdpx", "two.qdpx"]


def test_import_qdc_replaces_only_its_codebook_and_only_with_force(tmp_path: Path, run_cli):
    qdc = tmp_path / "book.qdc"
    qdc.write_text(
        '<?xml version="1.0" encoding="utf-8"?><CodeBook xmlns="urn:QDA-XML:codebook:1.0">'
        f'<Codes><Code guid="{G[3]}" name="Other" isCodable="true"/></Codes></CodeBook>',
        encoding="utf-8",
    )
    out = tmp_path / "gold"
    out.mkdir()
    (out / "codings.csv").write_text("source,start,end,code,coder\n", encoding="utf-8")
    (out / "codebook.yaml").write_text("mine: true\n", encoding="utf-8")
    refused = run_cli("import-qdc", qdc, "--out", out)
    assert refused.code == 2 and "already exists; --force replaces it" in refused.err
    assert (out / "codebook.yaml").read_text(encoding="utf-8") == "mine: true\n"
    assert run_cli("import-qdc", qdc, "--out", out, "--force").code == 0
    assert load_codebook(out / "codebook.yaml").impact_ids == ["Other"]
    assert (out / "codings.csv").read_text(encoding="utf-8") == "source,start,end,code,coder\n"


# --- --level -----------------------------------------------------------------------------------------------


def test_level_rolls_codes_up_the_tree(tmp_path: Path, run_cli):
    text = "alpha beta gamma delta"
    codes = (
        f'<Code guid="{G[1]}" name="Feelings" isCodable="false">'
        f'<Code guid="{G[2]}" name="Hope" isCodable="true">'
        f'<Code guid="{G[3]}" name="Small hopes" isCodable="true"/></Code>'
        f'<Code guid="{G[5]}" name="Fear" isCodable="true"/></Code>'
    )
    sources = (
        f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11], 0, 5, (G[3], G[0]), (G[2], G[0]))  # a code and its parent on one passage
        + selection(G[12], 6, 10, (G[5], G[0]))
        + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources, codes=codes), {"sources/s.txt": text})
    result = run_cli("import-qdpx", archive, "--out", tmp_path / "two", "--level", "2")
    assert result.code == 0, result.err
    assert read_csv(tmp_path / "two" / "codings.csv") == [
        ("s.txt", 0, 5, "Feelings/Hope", "ana"),  # Small hopes rolled into Hope; the two codings merged
        ("s.txt", 6, 10, "Feelings/Fear", "ana"),
    ]
    assert load_codebook(tmp_path / "two" / "codebook.yaml").impact_ids == ["Feelings/Hope", "Feelings/Fear"]
    assert run_cli("import-qdpx", archive, "--out", tmp_path / "one", "--level", "1").code == 0
    assert read_csv(tmp_path / "one" / "codings.csv") == [
        ("s.txt", 0, 5, "Feelings", "ana"),
        ("s.txt", 6, 10, "Feelings", "ana"),
    ]
    assert load_codebook(tmp_path / "one" / "codebook.yaml").impact_ids == ["Feelings"]  # codable once rolled up
    full = run_cli("import-qdpx", archive, "--out", tmp_path / "all")
    assert len(read_csv(tmp_path / "all" / "codings.csv")) == 3
    bad = run_cli("import-qdpx", archive, "--out", tmp_path / "zero", "--level", "0")
    assert bad.code == 2 and "--level must be 1 or more" in bad.err and full.code == 0


# --- export-qdpx reads regular files inside --text-dir only -----------------------------------------------


def export_args(tmp_path: Path, text_dir: Path, rows: list[tuple] | None = None) -> list:
    codings = tmp_path / "codings.csv"
    frame = pd.DataFrame(rows or [("a.txt", 0, 5, "x", "A")], columns=["source", "start", "end", "code", "coder"])
    frame.to_csv(codings, index=False)
    return ["export-qdpx", "--codings", codings, "--text-dir", text_dir, "--out", tmp_path / "p.qdpx"]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_export_neither_hangs_on_a_fifo_nor_reads_a_device(tmp_path: Path, kind: str):
    """Today's export read every *.txt whole: a FIFO blocked it forever, a link to /dev/zero grew without bound."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello world", encoding="utf-8")
    if kind == "fifo":
        os.mkfifo(texts / "b.txt")
    else:
        (texts / "b.txt").symlink_to("/dev/zero")
    result = run_bounded(*export_args(tmp_path, texts), seconds=30, memory=1536 * 1024**2)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and f"{texts / 'b.txt'}: refused" in result.stderr
    assert not (tmp_path / "p.qdpx").exists()


def test_export_reads_links_inside_the_folder_only_and_bounds_sizes(tmp_path: Path, run_cli):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello world", encoding="utf-8")
    (texts / "same.txt").symlink_to(texts / "a.txt")  # inside the folder: fine
    assert run_cli(*export_args(tmp_path, texts)).code == 0
    assert set(read_qdpx(tmp_path / "p.qdpx").sources) == {"a", "same"}
    outside = tmp_path / "private.txt"
    outside.write_text("not for export", encoding="utf-8")
    (texts / "leak.txt").symlink_to(outside)
    result = run_cli(*export_args(tmp_path, texts))
    assert result.code == 2 and f"{texts / 'leak.txt'}: refused: a link to outside" in result.err
    (texts / "leak.txt").unlink()
    with pytest.raises(InputError, match=re.escape("larger than 5 bytes (limit max_source_bytes = 5)")):
        load_transcripts(texts, ArchiveLimits(max_source_bytes=5))
    with pytest.raises(InputError, match="limit max_text_bytes = 15"):
        load_transcripts(texts, ArchiveLimits(max_text_bytes=15))


@pytest.mark.parametrize(
    "source,problem",
    [
        ("/etc/passwd", "is an absolute path"),
        ("../private.txt", "points outside the folder (../)"),
        ("x/a.txt", "is a path"),
    ],
)
def test_export_refuses_sources_that_are_paths(tmp_path: Path, run_cli, source: str, problem: str):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello world", encoding="utf-8")
    (tmp_path / "private.txt").write_text("not for export", encoding="utf-8")
    result = run_cli(*export_args(tmp_path, texts, [(source, 0, 5, "x", "A")]))
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"row 2: refused: source {source!r} {problem}" in result.err


def test_export_code_paths_deeper_than_the_bound_are_refused(tmp_path: Path):
    frame = pd.DataFrame(
        [("a.txt", 0, 5, "/".join(["x"] * 2000), "A")], columns=["source", "start", "end", "code", "coder"]
    )
    with pytest.raises(InputError, match="limit max_code_depth = 50"):
        export_qdpx({"a.txt": "hello world"}, frame, tmp_path / "p.qdpx")
    assert not (tmp_path / "p.qdpx").exists()


@needs_xsd
def test_export_names_codes_in_the_language_the_sidecars_declare(tmp_path: Path, run_cli):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Locataire : je me sens mieux.", encoding="utf-8")
    (texts / "a.meta.yaml").write_text("language: fr\n", encoding="utf-8")
    args = export_args(tmp_path, texts, [("a.txt", 12, 28, "being_growth_service_users", "A")])
    assert run_cli(*args, "--codebook", DEFAULT_CODEBOOK).code == 0
    assert_valid(tmp_path / "p.qdpx")
    names = {c.get("name") for c in qde_of(tmp_path / "p.qdpx").iterfind(".//q:Code", NS)}
    book = load_codebook()
    assert book.impact("being_growth_service_users").name["fr"] in names
    assert run_cli(*args, "--codebook", DEFAULT_CODEBOOK, "--lang", "en").code == 0
    names = {c.get("name") for c in qde_of(tmp_path / "p.qdpx").iterfind(".//q:Code", NS)}
    assert book.impact("being_growth_service_users").name["en"] in names


# --- codebook ids of imported codes (pipeline.codebook.id_problem) ------------------------------------------


def test_imported_code_names_become_valid_ids_in_codebook_and_codings(tmp_path: Path, run_cli):
    long_name = "A very long code name " * 12
    codes = (
        f'<Code guid="{G[1]}" name="Hope; fear" isCodable="true"/>'
        f'<Code guid="{G[2]}" name="Hope, fear" isCodable="true"/>'
        f'<Code guid="{G[3]}" name="Tab&#9;bed" isCodable="true">'
        "<Description>imri-autocode id: growth;hope</Description></Code>"
        f'<Code guid="{G[5]}" name="{long_name}" isCodable="true"/>'
    )
    sources = (
        f'<TextSource guid="{G[10]}" name="s" plainTextPath="internal://s.txt">'
        + selection(G[11], 0, 5, (G[1], G[0]))
        + selection(G[12], 6, 10, (G[3], G[0]))
        + selection(G[13], 11, 16, (G[5], G[0]))
        + "</TextSource>"
    )
    archive = make_qdpx(tmp_path / "p.qdpx", project(sources, codes=codes), {"sources/s.txt": "alpha beta gamma delta"})
    result = run_cli("import-qdpx", archive, "--out", tmp_path / "out")
    assert result.code == 0, result.err
    book = load_codebook(tmp_path / "out" / "codebook.yaml")  # loads: every id passes the rule
    ids = book.impact_ids
    assert len(set(ids)) == 4 and not any(";" in i or "\t" in i or len(i) > 200 for i in ids)
    assert ids[1] == "Hope, fear" and ids[0].startswith("Hope, fear ~") and ids[2].startswith("growth,hope ~")
    assert [row[3] for row in read_csv(tmp_path / "out" / "codings.csv")] == [ids[0], ids[2], ids[3]]


def test_a_code_tree_past_the_codebook_bound_asks_for_level(tmp_path: Path, run_cli):
    codes = "".join(f'<Code guid="{uuid.UUID(int=i)}" name="c{i}" isCodable="true"/>' for i in range(1, 1_002))
    qdc = tmp_path / "big.qdc"
    qdc.write_text(
        '<?xml version="1.0" encoding="utf-8"?><CodeBook xmlns="urn:QDA-XML:codebook:1.0">'
        f"<Codes>{codes}</Codes></CodeBook>",
        encoding="utf-8",
    )
    result = run_cli("import-qdc", qdc, "--out", tmp_path / "out")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "1,001 codes to import, over the limit of 1,000" in result.err and "--level" in result.err
    assert not (tmp_path / "out" / "codebook.yaml").exists()
