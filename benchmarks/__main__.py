"""``python -m benchmarks``: list the benchmarks, each with the first line of what it measures."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, str]:
    """Every module of this package that runs as a program (it has ``main``), with its summary line."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        runs = any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
        if runs and not path.name.startswith("_"):
            paragraph = " ".join((ast.get_docstring(tree) or "").split("\n\n")[0].split())
            found[path.stem] = textwrap.shorten(paragraph, 100, placeholder=" ...")
    return found


def main() -> int:
    print("Run from the repository root: python -m benchmarks.NAME [--help]\n")
    listed = benchmarks()
    width = max(map(len, listed))
    for name, summary in listed.items():
        print(f"  {name:<{width}}  {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
