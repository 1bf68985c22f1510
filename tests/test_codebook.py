import contextlib
import copy
import os
import threading
import time

import pytest
import yaml

from pipeline.codebook import DEFAULT_CODEBOOK, as_id, id_problem, load_codebook, parse_codebook
from pipeline.errors import InputError
from tests.conftest import SHARED, TEST_DATA


def test_bundled_codebook_keeps_the_spec_ids():
    book = load_codebook()
    assert len(book.categories) == 4
    assert len(book.impacts) == 21
    assert sum(i.kind == "process" for i in book.impacts) == 3
    spec = SHARED / "spec" / "imri_codebook_v1.yaml"
    if spec.exists():
        spec_ids = [i["id"] for i in yaml.safe_load(spec.read_text(encoding="utf-8"))["impacts"]]
        assert book.impact_ids == spec_ids
    assert all(i.name["fr"] and i.name["en"] for i in book.impacts)
    assert len(book.sha256) == 64


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_CODEBOOK.read_text(encoding="utf-8"))


def test_every_problem_is_reported_with_its_id():
    raw = _raw()
    raw["impacts"].append(copy.deepcopy(raw["impacts"][0]))  # duplicate id
    raw["impacts"][1]["category"] = "ways_of_dreaming"
    raw["impacts"][2]["kind"] = "side_effect"
    del raw["impacts"][3]["name_fr"]
    with pytest.raises(InputError) as error:
        parse_codebook(raw, "bad.yaml")
    message = str(error.value)
    assert message.startswith("bad.yaml: invalid codebook")
    assert "duplicate impact id 'being_growth_service_users'" in message
    assert "'being_growth_service_providers': unknown category 'ways_of_dreaming'" in message
    assert "'being_hesitancy_resistance': kind must be" in message
    assert "'interacting_relationships': missing name_fr" in message


def test_any_codebook_in_the_same_format_works(tmp_path, run_cli):
    book = {
        "id": "housing",
        "version": "2",
        "categories": [{"id": "c1", "name_en": "Stability", "name_fr": "Stabilité"}],
        "impacts": [
            {"id": "kept_home", "category": "c1", "kind": "innovation", "name_en": "Kept home", "name_fr": "Logement"},
            {"id": "team_voice", "category": "c1", "kind": "process", "name_en": "Voice", "name_fr": "Voix"},
        ],
    }
    path = tmp_path / "housing.yaml"
    path.write_text(yaml.safe_dump(book, allow_unicode=True), encoding="utf-8")
    loaded = load_codebook(path)
    assert loaded.impact_ids == ["kept_home", "team_voice"]
    result = run_cli("codebook", "show", "--codebook", path, "--lang", "fr")
    assert result.code == 0
    assert result.out.splitlines() == [
        "housing v2 (2 impacts)",
        "└── Stabilité [c1]",
        "    ├── Logement [kept_home]",
        "    └── Voix (process) [team_voice]",
    ]


def test_codebook_show_tree(run_cli):
    result = run_cli("codebook", "show")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "imri v1 (21 impacts)"
    assert lines[1] == "├── Ways of being [ways_of_being]"
    assert sum("[process_" in line and "(process)" in line for line in lines) == 3


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_codebook_show_definitions_name_the_impacts_hints_point_to(run_cli, lang):
    """A hint "... -> impact_id" shows the impact's name beside its id, in the language asked for."""
    import re

    book = load_codebook()
    result = run_cli("codebook", "show", "--definitions", "--lang", lang)
    assert result.code == 0, result.err
    empowering = book.impact("process_empowering_shifting_power")
    pointing = [line for line in result.out.splitlines() if "-> " in line]
    assert pointing and all("exclude: " in line for line in pointing)
    assert any(f"-> {empowering.name[lang]} [{empowering.id}]" in line for line in pointing)
    names = {i.id: i.name[lang] for i in book.impacts}
    for line in result.out.splitlines()[1:]:  # every id in a definition or hint has its name before it
        assert not re.search(r"(?<![\w\[])[a-z]+(?:_[a-z]+)+(?![\w\]])", line), line
        bracketed = [i for i in re.findall(r"\[(\w+)\]", line) if i in names]
        assert all(re.search(re.escape(names[i]) + r"( \(process\))? \[" + i, line) for i in bracketed), line
    growth = book.impact("being_growth_service_users")
    definition = growth.definition_fr if lang == "fr" else growth.definition
    assert " ".join(definition.split()) in result.out


def test_bad_codebook_exits_2(tmp_path, run_cli):
    path = tmp_path / "broken.yaml"
    path.write_text("categories: [\n", encoding="utf-8")
    result = run_cli("codebook", "show", "--codebook", path)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "broken.yaml" in result.err


# --- bounds and safe loading (pipeline/limits.py: MAX_CODEBOOK_*) ------------------------------------------


def _book(impacts: list[dict] | None = None, **extra) -> dict:
    raw = _raw()
    if impacts is not None:
        raw["impacts"] = impacts
    raw.update(extra)
    return raw


def _impact(ident: str, **extra) -> dict:
    return {"id": ident, "category": "ways_of_being", "kind": "innovation", "name_en": "x", "name_fr": "y", **extra}


def _refused(path, problem: str, seconds: float = 10.0) -> str:
    started = time.perf_counter()
    with pytest.raises(InputError) as error:
        load_codebook(path)
    elapsed = time.perf_counter() - started
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert problem in message, message
    assert elapsed < seconds, f"{elapsed:.1f} s"
    return message


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    # nine levels of nine aliases: 9**7 "lol"s under one hint (small enough that an unbounded loader
    # survives it here; the real billion laughs took 35 s and 3 GB before MemoryError)
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 7)]
    raw = _book([_impact("bomb")])
    text = "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False).replace("include: []", "")
    text = text.replace("name_en: x\n", "name_en: x\n  include: *l6\n", 1)
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    _refused(path, "over the limit of 4,194,304 characters (MAX_CODEBOOK_EXPANDED in pipeline.limits)", 5)


def test_aliases_that_stay_small_still_load(tmp_path):
    hints = ["shared hint"]  # one list for two impacts: PyYAML writes it once, with an anchor and an alias
    text = yaml.safe_dump(_book([_impact("a", include=hints), _impact("b", include=hints)]), sort_keys=False)
    assert "&id001" in text and "*id001" in text
    path = tmp_path / "anchors.yaml"
    path.write_text(text, encoding="utf-8")
    book = load_codebook(path)
    assert [impact.include for impact in book.impacts] == [("shared hint",), ("shared hint",)]


@pytest.mark.parametrize(
    "text,problem",
    [
        ("impacts: " + "[" * 100_000 + "]" * 100_000, "over the limit of 20 (MAX_CODEBOOK_DEPTH"),
        ("impacts:\n- include: " + "{a: " * 50_000 + "1" + "}" * 50_000, "over the limit of 20 (MAX_CODEBOOK_DEPTH"),
        ("a: &a [*a]\n", "YAML alias *a at line 1 refers to a value that contains it"),
        ("version: " + "9" * 5_000 + "\n", "codebook holds a value YAML can't read"),
        ("version: 2001-13-45\n", "codebook holds a value YAML can't read"),
        ("categories: [\n", "codebook is not valid YAML at line 2"),
        ("impacts: {a: 1}\n", "invalid codebook: impacts must be a list"),
        ("\x00id: x\n", "codebook is not valid YAML (ReaderError)"),  # found by tests/test_fuzz_codebook_cli.py
    ],
)
def test_hostile_yaml_is_one_line(tmp_path, text, problem):
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    _refused(path, problem, 5)


@pytest.mark.parametrize("target,kind", [("/dev/null", "a character device"), ("/dev/zero", "a character device")])
def test_links_to_devices_are_not_read(tmp_path, target, kind):
    link = tmp_path / "codebook.yaml"
    link.symlink_to(target)
    _refused(link, f"not a regular file ({kind})", 5)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "codebook.yaml"
    os.mkfifo(fifo)

    def unblock() -> None:  # a blocking reader gets its EOF after 5 s instead of hanging the test
        time.sleep(5)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()
    _refused(fifo, "not a regular file (a FIFO)", 2)


def test_size_codes_and_hints_are_bounded(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(_raw()) + "#" * (2 * 1024 * 1024), encoding="utf-8")
    _refused(big, "over the limit of 2,097,152 bytes (MAX_CODEBOOK_BYTES in pipeline.limits)")
    many = tmp_path / "many.yaml"
    many.write_text(yaml.safe_dump(_book([_impact(f"c{i}") for i in range(1_001)])), encoding="utf-8")
    _refused(many, "the number of impacts is 1,001, over the limit of 1,000 (MAX_CODEBOOK_CODES")
    hints = tmp_path / "hints.yaml"
    hints.write_text(yaml.safe_dump(_book([_impact("c", include=["h"] * 10_001)])), encoding="utf-8")
    _refused(hints, "include and exclude hints is 10,001, over the limit of 10,000 (MAX_CODEBOOK_HINTS")
    edge = tmp_path / "edge.yaml"  # the bounds themselves are allowed
    edge.write_text(yaml.safe_dump(_book([_impact(f"c{i}", include=["h"] * 10) for i in range(1_000)])))
    assert len(load_codebook(edge).impacts) == 1_000


@pytest.mark.parametrize(
    "ident,problem",
    [
        ("growth;hope", "impact id 'growth;hope' contains ';' (the codes column separates ids with ';')"),
        ("a\tb", "impact id 'a\\tb' contains a control or invisible character"),
        ("line\u2028break", "impact id 'line\\u2028break' contains a control or invisible character"),
        ("esc\x1b[31m", "contains a control or invisible character"),
        (" padded", "impact id ' padded' starts or ends with a space"),
        ("   ", "impact id '   ' is empty"),
        ("x" * 201, "is 201 characters, over the limit of 200 (MAX_CODE_ID_CHARS)"),
    ],
)
def test_ids_are_checked_at_load(tmp_path, ident, problem):
    raw = _raw()
    raw["impacts"][3]["id"] = ident
    path = tmp_path / "ids.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    message = _refused(path, problem)
    assert message.count("\n") == 0 and "\x1b" not in message


def test_ids_of_other_tools_are_ids():
    raw = _raw()
    raw["impacts"][0]["id"] = "Ways of being/Growth (2)"
    raw["impacts"][1]["id"] = "Façons d'être/Croissance"
    assert parse_codebook(raw).impact_ids[:2] == ["Ways of being/Growth (2)", "Façons d'être/Croissance"]
    assert as_id("Hope; fear") != as_id("Hope, fear") and id_problem(as_id("Hope; fear")) is None
    assert as_id("Feelings/Hope") == "Feelings/Hope"
    for hostile in ("\x00", "a" * 5_000, "  ", "\ud800", "x;" * 300):
        assert id_problem(as_id(hostile)) is None


def test_code_refuses_a_bad_codebook_before_loading_anything(tmp_path, run_cli):
    transcript = TEST_DATA / "transcripts" / "on-group-test.txt"
    for name, impacts, problem in (
        ("semicolon.yaml", [_impact("a;b"), _impact("c")], "impact id 'a;b' contains ';'"),
        ("many.yaml", [_impact(f"c{i}") for i in range(10_000)], "the number of impacts is 10,000"),
    ):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(_book(impacts)), encoding="utf-8")
        started = time.perf_counter()
        result = run_cli("code", transcript, "--out", tmp_path / "run", "--zero-shot", "--codebook", path)
        # refused before the encoder loads (before the bounds: 97 s of embedding, then a 4.4 GiB allocation);
        # parsing 10,000 codes takes about 5 s on a quiet 2-core machine (benchmarks/bench_codebook_bounds.py)
        assert time.perf_counter() - started < 60
        assert result.code == 2 and result.err.count("\n") == 1, result.err
        assert result.err.startswith(f"error: {path}: ") and problem in result.err
        assert not (tmp_path / "run").exists()
