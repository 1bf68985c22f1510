import copy

import pytest
import yaml

from pipeline.codebook import DEFAULT_CODEBOOK, load_codebook, parse_codebook
from pipeline.errors import InputError
from tests.conftest import SHARED


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


def test_bad_codebook_exits_2(tmp_path, run_cli):
    path = tmp_path / "broken.yaml"
    path.write_text("categories: [\n", encoding="utf-8")
    result = run_cli("codebook", "show", "--codebook", path)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "broken.yaml" in result.err
