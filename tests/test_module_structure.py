"""The package's structure: every module imports, no import cycles, stages share code through shared modules
only, and ``r1_trl`` reads ``reward_funcs`` through its public API.

The import graph is read from the source (``ast``), every import counted wherever it is written (a function's
lazy import included): a cycle that only a lazy import keeps from failing is still a cycle.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from r1_trl.stages import AUXILIARY_STAGES, STAGES

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "r1_trl"


@dataclass(frozen=True)
class Import:
    importer: str
    module: str  # the imported module, or the module a name is imported from
    names: tuple[str, ...]  # names imported from it (empty for ``import module``)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((REPO / PACKAGE).rglob("*.py"))}


def imports_of(name: str, path: Path) -> list[Import]:
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append(Import(name, base, tuple(alias.name for alias in node.names), node.lineno))
    return found


def internal_targets(item: Import, modules: dict[str, Path]) -> set[str]:
    """The package modules an import loads: ``from pkg import sub`` names the submodule, else the module."""
    targets = {f"{item.module}.{name}" for name in item.names if f"{item.module}.{name}" in modules}
    if item.module in modules:
        targets.add(item.module)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for item in imports_of(name, path):
            graph[name] |= internal_targets(item, modules) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the list of modules around it), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_cycle_finder_finds_a_lazy_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "r1_trl.recipe_checks" in graph["r1_trl.cli"] and "r1_trl.recipes" in graph["r1_trl.pipeline"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_r1_trl_uses_only_the_public_api_of_reward_funcs() -> None:
    private = [
        f"{item.importer}:{item.line} {item.module} {item.names}"
        for name, path in package_modules().items()
        for item in imports_of(name, path)
        if (item.module.startswith("reward_funcs.") and any(part.startswith("_") for part in item.module.split(".")[1:]))
        or (item.module == "reward_funcs" and any(imported.startswith("_") for imported in item.names))
    ]
    assert private == []


def test_stages_use_other_stages_only_as_stages() -> None:
    """A stage may run another stage (rl-all trains its reward models), but shared code lives in shared modules:
    from another stage's module only its ``run``, ``CONFIG_CLASS`` or config class may be imported."""
    stage_modules = {stage.module for stage in (*STAGES.values(), *AUXILIARY_STAGES.values())}
    modules = package_modules()
    misuses = []
    for name in sorted(stage_modules):
        for item in imports_of(name, modules[name]):
            for target in internal_targets(item, modules) & (stage_modules - {name}):
                config_class = importlib.import_module(target).CONFIG_CLASS.__name__
                allowed = {"run", "CONFIG_CLASS", config_class}
                if target != item.module or not set(item.names) <= allowed:
                    misuses.append(f"{name}:{item.line} imports {item.names or target} from {target}")
    assert misuses == []
