"""Type-check every package of nextword with mypy, under the names it is installed by, and the
repository's benchmarks (make lint).

The packages live in top-level folders (runtime/, corpus/, ...) that pyproject.toml's package-dir maps
to ``nextword.runtime``, ``nextword.corpus``, ...; their modules import each other by those names, which
mypy cannot find through an editable install. This script makes the tree mypy needs,
``build/typecheck/nextword/<package>``, each a link to its folder (a copy where links cannot be made,
as on Windows without the right to), then runs mypy with pyproject.toml's ``[tool.mypy]`` settings,
whose ``mypy_path`` is that tree and whose ``packages`` are the packages to check. mypy's messages name
the files in the checkout (``serve/app.py``), not in the tree; its exit status is the script's.

The packages of ``REPO_ONLY`` are checked too: folders of the checkout that the wheel does not hold
(``benchmarks``, run as ``python -m benchmarks.NAME``), imported by their own name from the repository
root. They need no link: mypy runs in the root, which it searches, so each of their files is checked
under one name (``benchmarks.timing``), the one it is imported by.

    python scripts/typecheck.py [MYPY OPTIONS...]    # from the environment that has mypy (.venv)

Exit status 2 without running mypy where ``[tool.mypy] packages`` is not each package of
``package-dir`` and of ``REPO_ONLY``: a package left out of it would go unchecked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, a dependency of mypy's there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
# Packages of the repository, not of the wheel, that mypy checks as well: each a folder of the root by
# that name, imported by it from there (so not linked into TREE).
REPO_ONLY = ("benchmarks",)


def packages(pyproject: dict[str, Any]) -> dict[str, str]:
    """``{"nextword.runtime": "runtime", ...}``: the packages of package-dir, which mypy checks with
    those of ``REPO_ONLY`` (exit status 2 where ``[tool.mypy] packages`` is not that list)."""
    mapping: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    checked = pyproject["tool"]["mypy"].get("packages", [])
    expected = sorted([*mapping, *REPO_ONLY])
    if sorted(checked) != expected:
        print(
            f"pyproject.toml: [tool.mypy] packages {sorted(checked)} should list each package of "
            f"[tool.setuptools] package-dir, {sorted(mapping)}, and the repository's own "
            f"{sorted(REPO_ONLY)} (scripts/typecheck.py's REPO_ONLY)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return mapping


def make_tree(mapping: dict[str, str]) -> None:
    """``TREE/nextword/runtime`` -> ``runtime/`` and so on: a link, else a fresh copy. Entries of the
    tree that are no package of ``mapping`` (one since removed or renamed) are deleted."""
    top = TREE / "nextword"  # the tree's own folder: never one of the links into the checkout
    kept = {name.split(".")[1] for name in mapping}
    for place in top.iterdir() if top.is_dir() and not top.is_symlink() else ():
        if place.name in kept:
            continue
        if place.is_symlink() or place.is_file():
            place.unlink()
        else:  # an earlier copy
            shutil.rmtree(place)
    for name, folder in mapping.items():
        place = TREE.joinpath(*name.split("."))
        target = ROOT / folder
        place.parent.mkdir(parents=True, exist_ok=True)
        if place.is_symlink() and place.resolve() == target.resolve():
            continue
        if place.is_symlink() or place.is_file():
            place.unlink()
        elif place.exists():  # an earlier copy
            shutil.rmtree(place)
        try:
            place.symlink_to(os.path.relpath(target, place.parent), target_is_directory=True)
        except OSError:  # no symbolic links here: a copy, made again each run
            shutil.copytree(target, place, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))


def to_checkout(mapping: dict[str, str]) -> Callable[[str], str]:
    """A line of mypy's output with each file of the tree (``build/typecheck/nextword/serve/app.py``,
    either separator, relative or absolute) named as it is in the checkout (``serve/app.py``)."""
    sep = r"[\\/]"
    folders = {tuple(name.split(".")): folder for name, folder in mapping.items()}
    names = "|".join(sep.join(map(re.escape, parts)) for parts in folders)
    tree = re.compile(rf"(?:{re.escape(str(TREE))}|build{sep}typecheck){sep}({names})(?={sep})")
    return lambda line: tree.sub(lambda m: folders[tuple(re.split(sep, m[1]))], line)


def main(argv: list[str]) -> int:
    with (ROOT / "pyproject.toml").open("rb") as f:
        mapping = packages(tomllib.load(f))
    make_tree(mapping)
    rename = to_checkout(mapping)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *argv]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # read as UTF-8 below, whatever the locale's
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, encoding="utf-8"
    ) as run:
        assert run.stdout is not None
        for line in run.stdout:
            sys.stdout.write(rename(line))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
