"""One version for both runtimes: the Python package (runtime/_version.py) and nextword-web
(web/package.json and its lock file) are released together, with one CHANGELOG.md. Version 0.2.0 was
set in all three files at once; a bump that misses one of them ships two runtimes under different
numbers."""

import json
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_package_and_nextword_web_have_one_version():
    version = runpy.run_path(str(ROOT / "runtime" / "_version.py"))["__version__"]
    package = json.loads((ROOT / "web" / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    assert package["version"] == version, "web/package.json and runtime/_version.py name other versions"
    assert lock["version"] == lock["packages"][""]["version"] == version, (
        "web/package-lock.json is behind web/package.json: run `npm install` in web/"
    )


def test_the_changelogs_newest_release_is_the_version():
    version = runpy.run_path(str(ROOT / "runtime" / "_version.py"))["__version__"]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## (\d+\.\d+\.\d+\S*)", changelog, flags=re.MULTILINE)
    assert releases and releases[0] == version, releases[:3]
