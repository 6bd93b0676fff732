"""The import graph of `src/pixclass`, read from the source with `ast` (nothing is imported).

Two rules (DESIGN.md "Layers"):
- no cycle among module-level imports (imports inside functions are lazy and run later; imports
  under `if TYPE_CHECKING:` never run);
- imports flow down the layers, lazy and type-checking ones included:
  base < data < models < train < (interpret, collect) < export < apps (cli, server, cleaner).
  A module imports its own layer or lower; the deliberate upward conveniences are listed in
  `UPWARD_ALLOWED`, each with its reason. And export depends on models and data only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "pixclass"

BASE, DATA, MODELS, TRAIN, WORKFLOW, EXPORT, APPS = range(7)
# Module prefix -> layer; a module's layer is that of its longest matching prefix.
LAYERS = {
    # base: what every layer may use. The root package holds `__version__` and re-exports the public
    # API by *name* (importlib on first use, no import statement), so it depends on nothing here.
    "pixclass": BASE,
    "pixclass.errors": BASE,
    "pixclass.files": BASE,
    "pixclass.interrupt": BASE,
    "pixclass.malloc": BASE,
    "pixclass.data": DATA,
    # The embedded demo dataset: elpv's files and split as an ImageData (errors + data.loaders); the
    # recipe reads it for `data="elpv:..."` and the CLI's `demo` verb drives it.
    "pixclass.demo": DATA,
    "pixclass.models": MODELS,
    "pixclass.train": TRAIN,
    "pixclass.interpret": WORKFLOW,
    "pixclass.collect": WORKFLOW,
    "pixclass.export": EXPORT,
    "pixclass.cli": APPS,
    "pixclass.__main__": APPS,
    "pixclass.server": APPS,
    "pixclass.cleaner": APPS,
}
LAYER_NAMES = ["base", "data", "models", "train", "interpret/collect", "export", "apps"]

# (importer, imported) -> why this upward import is deliberate. Each is lazy (inside the method that
# needs it), so importing the lower module never imports the higher one.
UPWARD_ALLOWED = {
    ("pixclass.train.learner", "pixclass.export.bundle"):
        "Learner.export(path): fastai's learn.export(), a convenience over export.bundle.export_learner",
    ("pixclass.train.learner", "pixclass.interpret"):
        "Learner.interpret(): fastai's Interpretation.from_learner(learn), as a method",
    ("pixclass.interpret.report", "pixclass.export.predictor"):
        "the report times the run's exported model.pixclass (its speed section); export depends on "
        "models and data only, so this can never close a cycle",
}
# DESIGN.md: export depends on models/ + data/ only (a bundle loads without train, interpret or apps).
EXPORT_MAY_IMPORT = {BASE, DATA, MODELS, EXPORT}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    kind: str  # "module" (runs on import), "lazy" (inside a function) or "type-checking"

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.kind}, line {self.line})"


def module_files() -> dict[str, Path]:
    """Every module under src/pixclass by dotted name (a package by its __init__)."""
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The pixclass modules `name` imports, each with where and how."""
    found: list[Import] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def add(target: str, node: ast.stmt, kind: str) -> None:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            found.append(Import(name, target, node.lineno, kind))

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_statement(stmt, "type-checking")
                for stmt in child.orelse:
                    visit_statement(stmt, kind)
            else:
                visit_statement(child, kind)

    def visit_statement(child: ast.AST, kind: str) -> None:
        if isinstance(child, ast.Import):
            for alias in child.names:
                add(alias.name, child, kind)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in child.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in modules else base, child, kind)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(child, "type-checking" if kind == "type-checking" else "lazy")
        else:
            visit(child, kind)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "module")
    return [i for i in found if i.imported != name]


def all_imports() -> list[Import]:
    modules = module_files()
    return [i for name, path in modules.items() for i in imports_of(name, path, modules)]


def layer_of(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [_cycle_in(component, edges) for component in components]


def _cycle_in(component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first, inside the component)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(edges.get(v, set()) & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle in component {sorted(component)}")


def graph(imports: list[Import], kinds: set[str]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        if i.kind in kinds:
            edges[i.importer].add(i.imported)
    return edges


def describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


# ----- the rules -------------------------------------------------------------------------------
def test_every_module_belongs_to_a_layer():
    def placed(m: str) -> bool:  # by a prefix of its own: the root package's covers only itself
        return m == PACKAGE or any(m == p or m.startswith(p + ".") for p in LAYERS if p != PACKAGE)

    unplaced = [m for m in module_files() if not placed(m)]
    assert unplaced == [], f"place these modules in LAYERS: {unplaced}"


def test_no_cycle_among_module_level_imports():
    cycles = find_cycles(graph(all_imports(), {"module"}))
    assert cycles == [], "import cycles among module-level imports:\n" + describe(cycles)


def test_imports_flow_down_the_layers_lazy_ones_included():
    upward = [i for i in all_imports() if layer_of(i.imported) > layer_of(i.importer)
              and (i.importer, i.imported) not in UPWARD_ALLOWED]
    assert upward == [], "imports from a lower layer into a higher one:\n" + "\n".join(
        f"{i}: {LAYER_NAMES[layer_of(i.importer)]} imports {LAYER_NAMES[layer_of(i.imported)]}" for i in upward)


def test_every_allowed_upward_import_exists_and_is_lazy():
    seen = {(i.importer, i.imported): i for i in all_imports()}
    stale = [pair for pair in UPWARD_ALLOWED if pair not in seen]
    eager = [str(seen[pair]) for pair in UPWARD_ALLOWED if pair in seen and seen[pair].kind != "lazy"]
    assert stale == [] and eager == [], f"stale allow-list entries: {stale}; not lazy: {eager}"


def test_export_imports_only_models_data_and_base():
    wrong = [str(i) for i in all_imports()
             if layer_of(i.importer) == EXPORT and layer_of(i.imported) not in EXPORT_MAY_IMPORT]
    assert wrong == [], "export must depend on models and data only:\n" + "\n".join(wrong)


def test_the_train_layer_is_one_way_counting_lazy_and_type_checking_imports():
    train = {i.importer for i in all_imports() if layer_of(i.importer) == TRAIN}
    edges = {m: targets & train for m, targets in graph(all_imports(), {"module", "lazy", "type-checking"}).items()
             if m in train}
    cycles = find_cycles(edges)
    assert cycles == [], "cycles inside train/ (any kind of import):\n" + describe(cycles)


# ----- the checker itself ----------------------------------------------------------------------
def test_a_planted_cycle_is_found_and_printed_as_a_path():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}

    assert describe(find_cycles(edges)) == "a -> b -> c -> a\ne -> e"


def test_lazy_and_type_checking_imports_are_told_apart(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from pixclass.train import loop\n"
        "if TYPE_CHECKING:\n"
        "    from pixclass.train.learner import Learner\n"
        "def f():\n"
        "    from pixclass.export import bundle\n")
    modules = {"pixclass.train.loop": source, "pixclass.export.bundle": source}

    found = [(i.imported, i.kind) for i in imports_of("pixclass.train.mod", source, modules)]

    assert found == [("pixclass.train.loop", "module"), ("pixclass.train.learner", "type-checking"),
                     ("pixclass.export.bundle", "lazy")]
