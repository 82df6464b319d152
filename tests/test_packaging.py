"""The wheel: runtime-only dependencies, all four packages inside, and a clean venv that generates."""

import email
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from test_isolation import RUNTIME_ONLY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (path,) = out.glob("nextword-*.whl")
    return path


def test_wheel_requires_only_numpy_and_onnxruntime(wheel):
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.message_from_bytes(z.read(metadata))
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    requires = message.get_all("Requires-Dist")
    base = sorted({r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r})
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
    ):
        assert module in names
    assert "nextword = nextword.cli.entry:main" in entry_points
    assert "nextword/runtime/data/nextword-patents.onnx" in names  # the bundled model is package data


def test_clean_venv_with_the_runtime_alone_generates(wheel, model_path, corpus_files, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-2000:]
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
