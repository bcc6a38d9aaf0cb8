"""Imports only point down (ARCHITECTURE.md, Layout), checked statically: every module of the
packages pyproject.toml installs is parsed with `ast` and each of its imports read, those
inside functions too (an import hidden in a function is how a cycle hides). Nothing is
imported, so a wrong-way import fails here even where it would not fail at run time.

The rules, each failing with the import that breaks it (module:line imports target):
- the probe never imports the operator; neither does the policy library (the probe image
  carries both and no operator code);
- nothing outside `hopscope_operator.install` imports the generators (running code takes its
  names from `hopscope_operator.names`);
- the result schema (`hopscope_probe.models`) and the shared names (`hopscope_operator.names`)
  import nothing of the project;
- the probe's measurement (`hopscope_probe.path`) never imports its judgement (`diagnose`);
- the static analysis (`hopscope_operator.analysis`) never imports the controller that runs it
  (the types both read live in `hopscope_operator.resolved`);
- no import cycle between modules (the cycle is named).
"""

from __future__ import annotations

import ast
import shutil
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FIND = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
OURS = tuple(pattern.rstrip("*") for pattern in FIND["include"])

PROBE, POLICY, OPERATOR = "hopscope_probe", "hopscope_policy", "hopscope_operator"
GENERATORS = "hopscope_operator.install"
BOTTOM = ("hopscope_probe.models", "hopscope_operator.names")
MEASUREMENT, JUDGEMENT = "hopscope_probe.path", "hopscope_probe.diagnose"
ANALYSIS, CONTROLLER = "hopscope_operator.analysis", "hopscope_operator.controller"


@dataclass(frozen=True)
class Import:
    target: str  # a module of the project
    line: int


Graph = Mapping[str, list[Import]]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def ours(module: str) -> bool:
    return any(within(module, top) for top in OURS)


def sources(roots: Iterable[Path]) -> dict[str, Path]:
    """Module name -> file, for every module of our packages under `roots`."""
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if not parts or parts[0] not in OURS:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_in(module: str, path: Path, known: Iterable[str]) -> list[Import]:
    """The project modules `module` imports anywhere in its file. `from a import b` counts as
    importing `a.b` where that is a module, else `a`; relative imports are resolved."""
    known = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(Import(submodule if submodule in known else base, node.lineno))
    return [i for i in dict.fromkeys(found) if ours(i.target) and i.target != module]


def graph_of(roots: Iterable[Path]) -> dict[str, list[Import]]:
    modules = sources(roots)
    return {name: imports_in(name, path, modules) for name, path in modules.items()}


def tree_roots(base: Path = REPO) -> list[Path]:
    return [base / where for where in FIND["where"]]


def cycles(graph: Graph) -> list[list[str]]:
    """Each strongly connected group of modules (Tarjan), as one cycle through it."""
    edges = {
        m: sorted({i.target for i in imports if i.target in graph}) for m, imports in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return [cycle_through(min(group), set(group), edges) for group in groups]


def cycle_through(start: str, group: set[str], edges: Mapping[str, list[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside the group (breadth first)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        for target in edges[module]:
            if target == start:
                return [*paths[module], start]
            if target in group and target not in paths:
                paths[target] = [*paths[module], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")


def violations(graph: Graph) -> list[str]:
    """Every import that points the wrong way, and every cycle, one line each."""
    found: list[str] = []
    for module, imports in sorted(graph.items()):
        for imported in imports:
            target = imported.target
            why = None
            if within(module, PROBE) and within(target, OPERATOR):
                why = "the probe imports the operator"
            elif within(module, POLICY) and within(target, OPERATOR):
                why = "the policy library imports the operator"
            elif within(target, GENERATORS) and not within(module, GENERATORS):
                why = "running code imports a generator (take names from hopscope_operator.names)"
            elif module in BOTTOM:
                why = f"{module} is a bottom module: it imports nothing of the project"
            elif within(module, MEASUREMENT) and within(target, JUDGEMENT):
                why = "measurement imports diagnosis"
            elif within(module, ANALYSIS) and within(target, CONTROLLER):
                why = (
                    "the analysis imports the controller (shared types: hopscope_operator.resolved)"
                )
            if why:
                found.append(f"{module}:{imported.line} imports {target}: {why}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


# ---- the tree -------------------------------------------------------------------------------


def test_the_tree_imports_only_downwards():
    graph = graph_of(tree_roots())
    assert {PROBE, POLICY, OPERATOR, "hopscope_probe.models", "hopscope_operator.names"} <= set(
        graph
    ), "the checker no longer finds the packages it guards"
    wrong = violations(graph)
    assert not wrong, "\n".join(wrong)


def test_function_level_imports_are_read():
    # The generators' chart imports the sidecar patch; a function-level import would count too.
    graph = graph_of(tree_roots())
    chart = {i.target for i in graph["hopscope_operator.install.chart"]}
    assert "hopscope_operator.install.sidecar" in chart
    handlers = {i.target for i in graph["hopscope_operator.controller.handlers"]}
    assert "hopscope_operator.kube" in handlers  # imported inside a function


# ---- the checker, fed wrong-way imports ----------------------------------------------------


def synthetic(edges: Mapping[str, Iterable[str]]) -> dict[str, list[Import]]:
    graph: dict[str, list[Import]] = {
        m: [Import(t, 7) for t in targets] for m, targets in edges.items()
    }
    for targets in list(edges.values()):
        for target in targets:
            graph.setdefault(target, [])
    return graph


@pytest.mark.parametrize(
    ("module", "target", "why"),
    [
        ("hopscope_probe.cli", "hopscope_operator.api", "the probe imports the operator"),
        ("hopscope_policy.cli", "hopscope_operator.names", "the policy library imports"),
        ("hopscope_operator.controller.agents", "hopscope_operator.install.chart", "generator"),
        ("hopscope_operator.kubectl.plugin", "hopscope_operator.install", "generator"),
        ("hopscope_probe.models", "hopscope_probe.target", "bottom module"),
        ("hopscope_operator.names", "hopscope_probe.agent", "bottom module"),
        ("hopscope_probe.path.graph", "hopscope_probe.diagnose", "measurement"),
        ("hopscope_operator.analysis", "hopscope_operator.controller.resolve", "the analysis"),
        ("hopscope_operator.analysis.merge", "hopscope_operator.controller", "the analysis"),
    ],
)
def test_a_wrong_way_import_is_named(module: str, target: str, why: str):
    [wrong] = violations(synthetic({module: [target]}))
    assert wrong.startswith(f"{module}:7 imports {target}: ") and why in wrong


def test_downward_imports_pass():
    assert not violations(
        synthetic(
            {
                "hopscope_operator.install.chart": ["hopscope_operator.controller.plan"],
                "hopscope_operator.controller.plan": ["hopscope_operator.names"],
                "hopscope_probe.cli": ["hopscope_policy.cli", "hopscope_probe.models"],
                "hopscope_probe.path.graph": ["hopscope_probe.models"],
                "hopscope_operator.controller.status": ["hopscope_operator.analysis"],
                "hopscope_operator.analysis": ["hopscope_operator.resolved"],
            }
        )
    )


def test_a_cycle_is_named():
    wrong = violations(synthetic({"hopscope_operator.a": ["hopscope_operator.b"],
                                  "hopscope_operator.b": ["hopscope_operator.c"],
                                  "hopscope_operator.c": ["hopscope_operator.a"]}))  # fmt: skip
    assert wrong == ["import cycle: hopscope_operator.a -> hopscope_operator.b -> "
                     "hopscope_operator.c -> hopscope_operator.a"]  # fmt: skip


def planted_tree(tmp_path: Path) -> Path:
    for where in FIND["where"]:
        shutil.copytree(
            REPO / where, tmp_path / where, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def test_a_planted_function_level_import_of_a_generator_fails(tmp_path: Path):
    base = planted_tree(tmp_path)
    agents = base / "operator" / "hopscope_operator" / "controller" / "agents.py"
    agents.write_text(
        agents.read_text() + "\n\ndef planted():\n    from ..install.chart import NOTES\n\n"
        "    return NOTES\n"
    )
    wrong = violations(graph_of(tree_roots(base)))
    assert len(wrong) == 1
    assert (
        wrong[0].startswith("hopscope_operator.controller.agents:")
        and "imports hopscope_operator.install.chart: running code" in wrong[0]
    )


def test_a_planted_cycle_through_the_models_fails(tmp_path: Path):
    base = planted_tree(tmp_path)
    models = base / "probe-image" / "hopscope_probe" / "models.py"
    models.write_text(models.read_text() + "\nfrom hopscope_probe import engine  # noqa\n")
    wrong = violations(graph_of(tree_roots(base)))
    assert any(
        w.startswith("hopscope_probe.models:") and "imports hopscope_probe.engine" in w
        for w in wrong
    )
    [cycle] = [w for w in wrong if w.startswith("import cycle:")]
    assert "hopscope_probe.models -> hopscope_probe.engine" in cycle
