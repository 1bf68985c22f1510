"""Property-based fuzzing of the codebook loader and of the command line's option parsing.

Part of ``make fuzz`` (same Hypothesis profiles and hang alarm as ``tests/test_fuzz.py``):

- codebooks: random YAML documents, and the bundled codebook mutated (values of any type in any field,
  ids with separators and control characters, anchors and aliases, cut anywhere) load into a codebook
  whose ids and sizes keep the rules, or fail with one :class:`InputError` line, never another exception;
- the command line: random argument lists over every command, option and kind of value end in exit
  code 0, or 2 with one line on stderr starting with ``error:``, never a traceback. The real entry point
  runs in-process, in an empty folder, so the defaults name no existing file (nothing heavy is started).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
import tempfile
from pathlib import Path

import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import limits
from pipeline.codebook import DEFAULT_CODEBOOK, id_problem, load_codebook
from pipeline.errors import InputError
from tests.test_fuzz import PROFILE, _bounded

RAW = yaml.safe_load(DEFAULT_CODEBOOK.read_text(encoding="utf-8"))

# --- codebooks -------------------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    ["a;b", "", " ", " x", "x ", "a\tb", "a\nb", "\x1b[31m", "\u2028", "\ud800", "é/è", "x" * 300, "*a", "&a", "~"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    ODD_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
)
FIELDS = ["id", "category", "kind", "name_en", "name_fr", "definition", "include", "exclude"]
TOP_FIELDS = ["id", "version", "categories", "impacts", "general_rules"]
# pieces of YAML syntax for random documents and for splicing into a dumped codebook
YAML_PIECES = st.sampled_from(
    ["- ", ": ", "[", "]", "{", "}", ", ", "\n", "  ", "&a ", "*a", "&b [*a, *a]", "!!str ", "!!python/object ", "? ",
     "|\n  ", ">-\n  ", '"\\ud800"', '"\\x1b"', "'", "#", "---\n", "...\n", "<<: *a\n", "9" * 5000, "2001-13-45",
     "id", "impacts", "categories", "include", "a;b", "\t", "\x00", "\ufeff", "\u2028"]
)  # fmt: skip


@st.composite
def mutated_codebook(draw) -> str:
    """The bundled codebook with a few fields changed, entries dropped or repeated, then maybe cut or spliced."""
    data = {key: value for key, value in RAW.items()}
    data["impacts"] = [dict(impact) for impact in RAW["impacts"]]
    data["categories"] = [dict(category) for category in RAW["categories"]]
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["impacts", "categories", "top"]))
        if where == "top":
            key = draw(st.sampled_from(TOP_FIELDS))
            data[key] = draw(st.one_of(VALUES, ODD_TEXT))
            continue
        entries = data.get(where)
        if not isinstance(entries, list) or not entries:
            continue
        index = draw(st.integers(0, len(entries) - 1))
        action = draw(st.sampled_from(["set", "delete", "repeat", "replace"]))
        if action == "repeat":
            entries.append(entries[index])  # a shared object: PyYAML writes an anchor and an alias
        elif action == "replace":
            entries[index] = draw(VALUES)
        elif isinstance(entries[index], dict):
            key = draw(st.sampled_from(FIELDS))
            if action == "delete":
                entries[index].pop(key, None)
            else:
                entries[index][key] = draw(st.one_of(VALUES, ODD_TEXT))
    text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(YAML_PIECES) + text[at:]
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


RANDOM_YAML = st.one_of(
    st.lists(YAML_PIECES, max_size=30).map("".join),
    VALUES.map(lambda value: yaml.safe_dump(value, allow_unicode=True)),
    st.text(max_size=200),
)


def _check_codebook(text: str, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as folder, _bounded():
        path = Path(folder) / "codebook.yaml"
        path.write_bytes(text.encode(encoding, "surrogatepass"))
        try:
            book = load_codebook(path)
        except InputError as error:
            assert "\n" not in str(error) and str(error).startswith(f"{path}: ")
            return
    assert 0 < len(book.impacts) <= limits.MAX_CODEBOOK_CODES and 0 < len(book.categories) <= limits.MAX_CODEBOOK_CODES
    assert all(id_problem(i) is None for i in [*book.impact_ids, *book.category_ids])
    assert len(set(book.impact_ids)) == len(book.impacts) and len(set(book.category_ids)) == len(book.categories)
    assert {impact.category for impact in book.impacts} <= set(book.category_ids)
    assert all(isinstance(hint, str) for impact in book.impacts for hint in (*impact.include, *impact.exclude))
    assert ";".join(book.impact_ids).split(";") == book.impact_ids  # the codes column reads back


@settings(PROFILE)
@given(text=mutated_codebook(), encoding=st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
def test_fuzz_mutated_codebooks(text, encoding):
    try:
        text.encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        encoding = "utf-8"
    _check_codebook(text, encoding)


@settings(PROFILE)
@given(text=RANDOM_YAML)
def test_fuzz_random_yaml_as_a_codebook(text):
    _check_codebook(text, "utf-8")


# --- the command line ----------------------------------------------------------------------------------


def _tree() -> dict[str, list[str]]:
    """Every command path of the app (``review serve``) with its option names."""
    found: dict[str, list[str]] = {}

    def walk(command, path: str) -> None:
        found[path] = [opt for param in command.params for opt in param.opts if opt.startswith("-")]
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, f"{path} {name}".strip())

    from pipeline.cli import app

    walk(typer.main.get_command(app), "")
    return found


TREE = _tree()
# `models build` builds the encoders for real: the only command that does heavy work without an input file
COMMANDS = sorted(path for path in TREE if path != "models build")
ALL_OPTIONS = sorted({opt for opts in TREE.values() for opt in opts})
ARG_VALUES = st.sampled_from(
    ["abc", "1", "0", "-1", "1.5", "70000", "", " ", "-", "--", "=", "no-such.txt", "no-such/", "x.csv", "x.qdpx",
     "x.parquet", "é", "a;b", "--help", "-h", "--version", "-o", "--out=x.csv", "--level=abc", "data/gold", "nan"]
)  # fmt: skip


@st.composite
def argv(draw) -> list[str]:
    """A command path, then a mix of its options, other commands' options, values and stray words."""
    command = draw(st.sampled_from(COMMANDS))
    words = command.split()
    if draw(st.integers(0, 5)) == 0:  # a mistyped or partial command
        words = words[: draw(st.integers(0, len(words)))] + [draw(st.sampled_from(["nope", "Segment", "code-", ""]))]
    own = TREE.get(command) or ["--help"]
    tokens = st.one_of(st.sampled_from(own), st.sampled_from(ALL_OPTIONS), ARG_VALUES, st.text(max_size=6))
    words += draw(st.lists(tokens, max_size=8))
    if "--help" not in words and "-h" not in words and draw(st.booleans()):
        words = [w for w in words if w != "--help"]
    return words


def _run(args: list[str]) -> tuple[int, str, str]:
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, out.getvalue(), err.getvalue()


@settings(PROFILE)
@given(args=argv())
def test_fuzz_command_line_options(args):
    import pipeline.locations

    here, repository, data = os.getcwd(), pipeline.locations.REPOSITORY, os.environ.get("IMRI_DATA")
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as user, _bounded():
        os.chdir(folder)  # the defaults (data/gold, models/imri-default, reports/) name nothing here...
        pipeline.locations.REPOSITORY = Path(user)  # ...nor in a repository (a wheel install), nor the user's folder
        os.environ["IMRI_DATA"] = user
        try:
            code, out, err = _run(args)
        finally:
            os.chdir(here)
            pipeline.locations.REPOSITORY = repository
            if data is None:
                os.environ.pop("IMRI_DATA", None)
            else:
                os.environ["IMRI_DATA"] = data
        assert sorted(os.listdir(folder)) == [], "a misuse wrote something"
    assert code in (0, 2), (args, code, err[-2000:])
    assert "Traceback" not in err and "╭" not in err, (args, err[-2000:])
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), (args, err[-2000:])


def test_the_argv_strategy_reaches_every_command():
    rng = random.Random(0)
    assert {"segment", "code", "review serve", "agreement", "import-qdpx", "train"} <= set(COMMANDS)
    assert "models build" not in COMMANDS and rng.choice(ALL_OPTIONS).startswith("-")
    assert sys.executable  # the console-script form is covered by tests/test_cli_usage.py
