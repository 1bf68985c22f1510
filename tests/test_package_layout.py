"""The package's layout holds: no import cycles, lower layers never import upper ones, other subpackages are
reached through their public names only, and no module or subpackage outgrows its room.

Every import counts, the ones inside functions too (they are how the pipeline defers heavy libraries, and a
cycle through one still ties two modules together); only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

#: lowest first; a module may import its own layer and the layers below, never one above
LAYERS = [
    "ground",  # pipeline/*.py: errors, limits, safe_yaml, io, params, codebook, locations
    "ingest",
    "qdpx",
    "agreement",
    "embed",
    "model",
    "coding",
    "evaluate",
    "review",
    "report",
    "cli",
]
MAX_MODULE_LINES = 800
MAX_SUBPACKAGE_LINES = 3000


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    module: str  # as written: pipeline.x.y
    names: tuple[str, ...]  # empty for `import pipeline.x`
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def subpackages() -> list[str]:
    """The stages' subpackages (the command line, ``pipeline/cli`` if it is a package, sits above them all)."""
    return sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name != "cli")


def type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def imports_of(name: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "pipeline":
            found.append(Import(name, node.module, tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pipeline":
                    found.append(Import(name, alias.name, (), node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{name}:{node.lineno}: relative import; write the absolute pipeline.* path")
    return found


def public_names(package: str) -> dict[str, str]:
    """A subpackage's public names (its lazy_loader ``submod_attrs``) -> the module each comes from."""
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "submod_attrs":
            mapping = ast.literal_eval(node.value)
            return {n: f"pipeline.{package}.{mod}" for mod, names in mapping.items() for n in names}
    return {}


def targets(imp: Import, known: dict[str, Path]) -> list[str]:
    """The modules an import loads (a package's public name resolves to the module that defines it)."""
    if not imp.names:
        return [imp.module] if imp.module in known else []
    out = []
    parts = imp.module.split(".")
    for n in imp.names:
        if f"{imp.module}.{n}" in known:
            out.append(f"{imp.module}.{n}")  # a submodule
        elif len(parts) == 2 and parts[1] in subpackages():
            out.append(public_names(parts[1]).get(n, imp.module))
        else:
            out.append(imp.module)
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    head = parts[1]
    if head == "cli":
        return LAYERS.index("cli")
    return LAYERS.index(head) if head in subpackages() else 0


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for imp in imports_of(name, path):
            edges[name].update(t for t in targets(imp, known) if t != name)
    return edges


def test_every_subpackage_is_a_known_layer():
    unknown = [p for p in subpackages() if p not in LAYERS]
    assert not unknown, f"add {unknown} to LAYERS (and docs/architecture.md)"


def test_no_import_cycle():
    edges = graph()
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_lower_layers_never_import_upper_ones():
    edges = graph()
    upward = [
        f"{m} ({LAYERS[layer(m)]}) imports {t} ({LAYERS[layer(t)]})"
        for m, ts in edges.items()
        for t in ts
        if layer(t) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_other_subpackages_are_reached_through_their_public_names():
    problems = []
    for name, path in modules().items():
        own = name.split(".")[1] if name.count(".") >= 1 else None
        for imp in imports_of(name, path):
            parts = imp.module.split(".")
            private = [n for n in imp.names if n.startswith("_")]
            if private:
                problems.append(f"{name}:{imp.line} imports private {private} from {imp.module}")
            if len(parts) < 2 or parts[1] not in subpackages() or parts[1] == own:
                continue
            if len(parts) > 2 or not imp.names:
                problems.append(f"{name}:{imp.line} imports {imp.module}: write `from pipeline.{parts[1]} import ...`")
                continue
            public = public_names(parts[1])
            submodules = {f"pipeline.{parts[1]}.{n}" for n in imp.names} & set(modules())
            missing = [n for n in imp.names if n not in public and f"pipeline.{parts[1]}.{n}" not in submodules]
            if missing:
                problems.append(f"{name}:{imp.line} uses {missing}, not public in pipeline.{parts[1]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package", subpackages())
def test_public_names_are_defined_where_the_init_says(package):
    """Each public name is defined (def, class or assignment) at the top of the module its __init__ names, and
    importing the subpackage loads none of its modules (lazy: the CLI starts fast)."""
    wrong = []
    for name, module in public_names(package).items():
        tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
        defined = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        if name not in defined:
            wrong.append(f"{name} is not defined in {module}")
    assert not wrong, "\n".join(wrong)
    code = (
        f"import sys, pipeline.{package} as p; "
        f"loaded = [m for m in sys.modules if m.startswith('pipeline.{package}.')]; "
        "assert not loaded, loaded; assert p.__doc__; "
        "[getattr(p, n) for n in p.__all__]"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert run.returncode == 0, run.stderr[-2000:]


def test_no_module_or_subpackage_outgrows_its_room():
    big = []
    for name, path in modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            big.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES})")
    for package in subpackages():
        lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / package).rglob("*.py"))
        if lines > MAX_SUBPACKAGE_LINES:
            big.append(f"pipeline.{package}: {lines} lines (at most {MAX_SUBPACKAGE_LINES})")
    assert not big, "\n".join(big)


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The walker is not blind: a planted cycle and a planted upward import are both reported."""
    fake = tmp_path / "pipeline"
    (fake / "ingest").mkdir(parents=True)
    (fake / "review").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "ingest" / "__init__.py").write_text("")
    (fake / "review" / "__init__.py").write_text("")
    (fake / "ingest" / "a.py").write_text("def f():\n    from pipeline.review.b import g\n")
    (fake / "review" / "b.py").write_text("from pipeline.ingest.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycle()
    with pytest.raises(AssertionError, match="ingest.a \\(ingest\\) imports pipeline.review.b \\(review\\)"):
        test_lower_layers_never_import_upper_ones()
    with pytest.raises(AssertionError, match="write `from pipeline.ingest import"):
        test_other_subpackages_are_reached_through_their_public_names()


def doc_references() -> list[tuple[str, int, str]]:
    """Every ``pipeline.x.y`` name and ``pipeline/x/y.py`` path that README.md and docs/*.md mention."""
    root = PACKAGE.parent
    found = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for match in re.finditer(r"(?<![\w/.-])pipeline(?:[./][A-Za-z_][\w]*)+(?:\.py|\.txt)?", line):
                found.append((doc.name, number, match.group(0)))
    return found


def test_the_docs_name_modules_and_paths_that_exist():
    """README.md and docs/ name modules, functions and files by the paths of this layout (a move updates them)."""
    import importlib

    root = PACKAGE.parent
    references = doc_references()
    assert len(references) > 20  # the scan finds the docs' references at all
    stale = []
    for doc, number, ref in references:
        if "/" in ref:
            path = root / ref
            if not (path.exists() or path.with_suffix(".py").exists() or (path / "__init__.py").exists()):
                stale.append(f"{doc}:{number}: {ref}")
            continue
        parts = ref.rstrip(".").split(".")
        obj, i = None, len(parts)
        while i > 0:
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ModuleNotFoundError:
                i -= 1
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            stale.append(f"{doc}:{number}: {ref}")
    assert not stale, "stale references:\n" + "\n".join(stale)
