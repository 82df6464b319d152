"""The wheel: runtime-only dependencies, all four packages inside, and a clean venv that generates.

The wheel is built from a copy of the source tree (the files git lists, in a temporary folder): a build
in the repository itself wrote build/ there and took back its build/lib on the next build, so a module
deleted or renamed since still went into the wheel checked here.

Building needs the package index: pip's build isolation installs setuptools and wheel, the clean venv
numpy and onnxruntime. Where the index cannot be reached these tests fail and say so; they do not skip,
so that a run that checked no wheel never passes as one that did. Offline, leave them out:
``--deselect tests/test_packaging.py``.
"""

import email
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from helpers import RUNTIME_ONLY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# The folders of the packages the wheel holds (pyproject.toml's package-dir): each .py file in them is a
# module of the wheel.
PACKAGE_DIRS = ("runtime", "corpus", "train", "export", "cli", "serve")
# Not sources, outside a git checkout: build outputs, environments, caches.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", ".venv", "venv", "node_modules", "runs", "__pycache__", "*.pyc",
    ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis",
)  # fmt: skip
# What pip prints when it cannot reach the index (its retries' warnings, then the failure).
UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Could not fetch URL",
)


def copy_sources(root: Path, dest: Path) -> Path:
    """The source tree of ``root`` copied into ``dest``: in a git checkout, the files git lists (tracked,
    and new ones not ignored) that are still there; elsewhere, every file but ``NOT_SOURCES``."""
    listed = None
    if (root / ".git").exists() and shutil.which("git"):
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            timeout=60,
        )
        if done.returncode == 0:
            listed = [name for name in done.stdout.decode().split("\0") if name]
    if listed is None:
        shutil.copytree(root, dest, ignore=NOT_SOURCES, symlinks=True)
        return dest
    for name in listed:
        source = root / name
        if source.is_file():  # not deleted since the last commit, not a submodule
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def pip(python: Path | str, *args: str, what: str) -> None:
    """Run ``python -m pip *args``; a failure names ``what`` failed, and says so where the index could not
    be reached."""
    try:
        done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: pip did not finish in 600 s (is the package index reachable?)")
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr)[-3000:]
    if any(sign in output for sign in UNREACHABLE):
        pytest.fail(
            f"{what} failed: the package index cannot be reached, and this test needs it (build "
            "isolation installs setuptools and wheel; the clean venv installs numpy and onnxruntime). "
            f"Offline, deselect it: --deselect tests/test_packaging.py\n{output}"
        )
    pytest.fail(f"{what} failed:\n{output}")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A clean copy of the source tree: nothing left from an earlier build, nothing written into ROOT."""
    return copy_sources(ROOT, tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip(sys.executable, "wheel", str(source), "--no-deps", "-q", "-w", str(out), what="pip wheel")
    (path,) = out.glob("nextword-*.whl")
    return path


def test_wheel_requires_only_numpy_and_onnxruntime(wheel):
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.message_from_bytes(z.read(metadata))
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    requires = message.get_all("Requires-Dist")
    # the name before its first version specifier (">=", or "!=" for Python 3.10's excluded releases)
    base = sorted({re.split(r"[<>=!~;\s]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r})
    assert base == ["numpy", "onnxruntime"]  # onnxruntime twice: a newer floor from Python 3.11
    extras = {r.split("extra == ")[1].strip("'\" ") for r in requires if "extra ==" in r}
    assert {"train", "train-gpu", "dev", "serve"} <= extras
    for module in (
        "nextword/runtime/model.py",
        "nextword/corpus/split.py",
        "nextword/corpus/patentsview/passes.py",
        "nextword/train/trainer.py",
        "nextword/export/exporter.py",
        "nextword/cli/main.py",
        "nextword/serve/app.py",
        "nextword/serve/static/index.html",  # the page is package data
        "nextword/serve/static/app.js",
        "nextword/serve/static/web/client.js",  # run in the browser: nextword-web...
        "nextword/serve/static/ort/ort-wasm-simd-threaded.wasm.gz",  # ...and onnxruntime-web
        "nextword/serve/static/docs/swagger-ui-bundle.js.gz",  # the API reference at /docs, offline
        "nextword/runtime/_pyinstaller/hook-nextword.runtime.py",  # PyInstaller's hooks (a frozen app)
        "nextword/runtime/_pyinstaller/hook-nextword.serve.py",
    ):
        assert module in names
    assert "nextword = nextword.cli.entry:main" in entry_points
    assert "[pyinstaller40]\nhook-dirs = nextword.runtime._pyinstaller:get_hook_dirs" in entry_points
    assert "nextword/runtime/data/nextword-patents.onnx" in names  # the bundled model is package data
    # the licences of what the wheel carries: nextword's, and the browser code's the page serves
    assert message["License-Expression"] == "MIT AND Apache-2.0 AND BSD-3-Clause AND MPL-2.0"
    licences = {name.split(".dist-info/licenses/")[1] for name in names if ".dist-info/licenses/" in name}
    assert licences == {
        "LICENSE",
        "runtime/data/NOTICE",
        "serve/static/ort/LICENSE",
        "serve/static/ort/ThirdPartyNotices.txt",
        "serve/static/docs/LICENSE",
        "serve/static/docs/NOTICE",
        "serve/static/docs/swagger-ui-bundle.js.LICENSE.txt",
    }
    # the Python versions the index shows: from requires-python's floor, each one the runtime was run on
    python = "Programming Language :: Python :: "
    pythons = [c.removeprefix(python) for c in message.get_all("Classifier") if c.startswith(python + "3.")]
    assert message["Requires-Python"] == f">={pythons[0]}"
    compatibility = (ROOT / "docs" / "compatibility.md").read_text()
    assert all(f"| {version}." in compatibility for version in pythons), pythons


def test_the_wheel_holds_the_modules_of_the_tree_it_was_built_from(wheel, source):
    """Every module of the sources, and no other: none left over from an earlier build."""
    with zipfile.ZipFile(wheel) as z:
        modules = {name for name in z.namelist() if name.endswith(".py")}
    sources = {
        f"nextword/{path.relative_to(source).as_posix()}"
        for folder in PACKAGE_DIRS
        for path in (source / folder).rglob("*.py")
    }
    assert modules == sources


def test_clean_venv_with_the_runtime_alone_generates(wheel, model_path, corpus_files, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip(python, "install", "-q", str(wheel), what="pip install of the wheel into a clean venv")
    assert subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode != 0
    result = subprocess.run(
        [python, "-c", RUNTIME_ONLY, str(model_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    cli = subprocess.run(
        [env_dir / "bin" / "nextword", "generate", "the system", "--model", str(model_path), "--seed", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and cli.stdout.startswith("the system"), cli.stderr
    bundled = subprocess.run(
        [env_dir / "bin" / "nextword", "generate", "the present invention", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert bundled.returncode == 0 and len(bundled.stdout.split()) >= 30, bundled.stderr
    info = subprocess.run([env_dir / "bin" / "nextword", "info"], capture_output=True, text=True, timeout=120)
    assert "neural_network_patent_query.csv: 3522 documents" in info.stdout and "trained with" in info.stdout
    evaluate = subprocess.run(  # nextword.corpus rebuilds the split with numpy alone
        [
            env_dir / "bin" / "nextword",
            "evaluate",
            str(model_path),
            str(corpus_files["csv"]),
            "--split",
            "val",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluate.returncode == 0 and "perplexity" in evaluate.stdout, evaluate.stderr
    train = subprocess.run(
        [env_dir / "bin" / "nextword", "train", "x.csv", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 2 and 'pip install "nextword[train]"' in train.stderr
    # the server's settings (an API key among them) are read without the web framework, which is missing
    serve = subprocess.run(
        [env_dir / "bin" / "nextword", "serve", "--api-key", "k-1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 2 and 'pip install "nextword[serve]"' in serve.stderr, serve.stderr
    assert "Traceback" not in serve.stderr
    # installed as a tool (pipx and uv leave their mark in the environment, which has no pip): the fix
    # named is that tool's, not a pip that would install into another environment
    for mark, command in (
        ("pipx_metadata.json", 'pipx install --force "nextword[serve]"'),
        ("uv-receipt.toml", 'uv tool install "nextword[serve]"'),
    ):
        (env_dir / mark).write_text("{}\n" if mark.endswith(".json") else "[tool]\n")
        try:
            tool = subprocess.run(
                [env_dir / "bin" / "nextword", "serve", "--port", "0"],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            (env_dir / mark).unlink()
        assert tool.returncode == 2 and command in tool.stderr, tool.stderr
