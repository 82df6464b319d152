"""The shape of the house, enforced: no import loop between modules, no private name used across
packages."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_dirs() -> dict[str, Path]:
    """``{"nextword.runtime": ROOT / "runtime", ...}`` from pyproject's package-dir, plus benchmarks."""
    line = re.search(r"^package-dir = \{(.*)\}$", (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert line, "pyproject.toml has no one-line package-dir table"
    mapping = {name: ROOT / folder for name, folder in re.findall(r'"([\w.]+)" = "([\w/]+)"', line.group(1))}
    if (ROOT / "benchmarks" / "__init__.py").is_file():
        mapping["benchmarks"] = ROOT / "benchmarks"
    return mapping


def modules() -> dict[str, Path]:
    """Every module of the distribution (and the benchmarks package), by dotted name."""
    found = {}
    for package, folder in package_dirs().items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each import outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - (node.level - 1)]
                target = ".".join([*prefix, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names], node.lineno


def top(name: str) -> str:
    """The package a module belongs to: ``nextword.runtime`` for ``nextword.runtime.model``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "nextword" else parts[0]


def test_no_import_loop():
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, names, _ in imports(name, path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in known and candidate != name and not name.startswith(candidate + "."):
                    graph[name].add(candidate)
                    break
    # Depth-first search for a cycle; report the first one found.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import loop: " + " -> ".join(cycle))


def test_no_private_name_is_imported_across_packages():
    known = modules()
    offences = []
    for name, path in known.items():
        aliases: dict[str, str] = {}
        for target, names, line in imports(name, path):
            if top(target) == top(name) or not (target.startswith("nextword") or target == "benchmarks"):
                continue
            offences += [
                f"{path.relative_to(ROOT)}:{line} imports {target}.{n}" for n in names if _private(n)
            ]
            offences += [
                f"{path.relative_to(ROOT)}:{line} imports {target}" for p in target.split(".") if _private(p)
            ]
            for n in names:
                aliases[n] = f"{target}.{n}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                offences.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
                )
    assert not offences, "\n".join(offences)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
