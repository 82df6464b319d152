"""The previous release reads the files this tree exports, or refuses them with the message that says
to upgrade: a reader refuses a file whose ``nextword.format_version`` it does not know, and
runtime/model_file.py bumps that version when an older reader could misread a file. The previous
release's runtime comes from this repository's history, at its tag, and runs in a process of its own
on the session's freshly exported test model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "v0.2.0"  # the last release; move it on when the next one is tagged

READ = """
import json, sys
import nextword.runtime as rt
from nextword.runtime import model_file
about = {"runtime": rt.__file__, "version": rt.__version__,
         "reads": sorted(model_file.SUPPORTED_FORMAT_VERSIONS)}
try:
    model = rt.load(sys.argv[1])
except rt.ModelFileError as exc:
    print(json.dumps({**about, "refused": str(exc)}))
    raise SystemExit(0)
print(json.dumps({
    **about,
    "format": model.info.format_version,
    "sampled": model.generate("the system", max_words=12, seed=3),
    "greedy": model.generate("a network", max_words=12, temperature=0),
    "perplexity": model.score("the system and the network").perplexity,
}))
"""


def _previous_runtime(into: Path) -> Path:
    """A folder holding the previous release's runtime as ``nextword/runtime``; skips outside a git
    checkout that has the tag (an unpacked sdist, a clone without tags)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs the repository's git history: the previous release is read from its tag")
    found = subprocess.run([git, "rev-parse", "--verify", "--quiet", PREVIOUS + "^{commit}"], cwd=ROOT)
    if found.returncode != 0:
        pytest.skip(f"tag {PREVIOUS} is not in this clone: git fetch --tags")
    archive = subprocess.run([git, "archive", PREVIOUS, "runtime"], cwd=ROOT, capture_output=True, check=True)
    package = into / "nextword"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive.stdout, check=True)
    return into


def _read(model_path: Path, runtime: Path | None) -> dict:
    """What the runtime in ``runtime`` (None: this tree's) makes of the file, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(runtime)} if runtime else dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", READ, str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=runtime or ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_previous_release_reads_what_this_tree_exports_or_says_to_upgrade(model_path, tmp_path):
    old = _read(model_path, _previous_runtime(tmp_path / "previous"))
    assert old["runtime"].startswith(str(tmp_path)) and old["version"] == PREVIOUS[1:], old
    new = _read(model_path, None)
    if new["format"] not in old["reads"]:  # a format the previous release does not know: it says so
        assert "Upgrade nextword" in old.get("refused", ""), old
        return
    assert "refused" not in old, old  # a format it knows: it must read the file
    assert not new["runtime"].startswith(str(tmp_path))
    assert (old["greedy"], old["sampled"]) == (new["greedy"], new["sampled"])
    assert old["perplexity"] == pytest.approx(new["perplexity"], rel=1e-6)
