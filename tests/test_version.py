"""One version for both runtimes: the Python package (runtime/_version.py) and nextword-web
(web/package.json and its lock file) are released together, with one CHANGELOG.md. Version 0.2.0 was
set in all three files at once; a bump that misses one of them ships two runtimes under different
numbers. Between releases both carry the next one's development version (0.3.0.dev0, which npm
writes 0.3.0-dev.0): a tree that said 0.2.0 wrote files that 0.2.0 refuses."""

import json
import re
import runpy
from pathlib import Path

import pytest

from nextword.runtime.versions import version_tuple

ROOT = Path(__file__).resolve().parents[1]


def _as_npm(version: str) -> str:
    """A Python version as npm writes it: 0.3.0.dev0 is 0.3.0-dev.0."""
    return re.sub(r"\.dev(\d+)$", r"-dev.\1", version)


def test_the_python_package_and_nextword_web_have_one_version():
    version = _as_npm(runpy.run_path(str(ROOT / "runtime" / "_version.py"))["__version__"])
    package = json.loads((ROOT / "web" / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    assert package["version"] == version, "web/package.json and runtime/_version.py name other versions"
    assert lock["version"] == lock["packages"][""]["version"] == version, (
        "web/package-lock.json is behind web/package.json: run `npm install` in web/"
    )


def test_the_changelogs_newest_release_is_the_version_or_it_is_the_next_ones_development():
    version = runpy.run_path(str(ROOT / "runtime" / "_version.py"))["__version__"]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## (\d+\.\d+\.\d+\S*)", changelog, flags=re.MULTILINE)
    assert releases, "CHANGELOG.md names no release"
    development = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)\.dev\d+", version)
    if development is None:
        assert releases[0] == version, releases[:3]
        return
    newest = tuple(int(part) for part in re.findall(r"\d+", releases[0])[:3])  # 0.3.0rc1: (0, 3, 0)
    assert tuple(map(int, development.groups())) > newest, (version, releases[0])
    unreleased = re.search(r"^## Unreleased$", changelog, flags=re.MULTILINE)
    assert unreleased, "a development version goes with CHANGELOG.md's ## Unreleased"
    assert unreleased.start() < changelog.index(f"## {releases[0]}"), "## Unreleased above the releases"


@pytest.mark.parametrize(
    ("version", "numbers"),
    [
        ("1.24.1", (1, 24, 1)),
        ("1.25.0.dev20261201", (1, 25, 0)),
        ("0.3.0.dev0", (0, 3, 0)),
        ("0.2", (0, 2, 0)),
        ("0.3.0+local.7", (0, 3, 0)),
        ("2.0.0rc1", (2, 0, 0)),
        ("", (0, 0, 0)),
    ],
)
def test_version_tuple_reads_the_release_numbers_only(version, numbers):
    """The one reader of version strings (onnxruntime's known faults, a run's saving mark)."""
    assert version_tuple(version) == numbers
