"""An app that uses nextword, frozen with PyInstaller, runs: its bundled model and the server's page go
into the app through nextword's own PyInstaller hooks (runtime/_pyinstaller, found through the
``pyinstaller40`` entry point), and ``nextword serve --workers 2`` starts its workers from the frozen
executable (``multiprocessing.freeze_support()`` in the command's entry point).

PyInstaller does not see an editable install (pyinstaller/pyinstaller#7524: setuptools' import finder
is not on ``sys.path``), so the app is built from a ``nextword`` folder of links to the checkout's
packages, as a wheel installs them; the hooks come from the installed distribution's entry point, as in
an app developer's environment. The training stack is left out of the build: onnxruntime's optional
modules import TensorFlow where it is installed, which made the app ten times larger and slower to build.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PyInstaller", reason='PyInstaller missing: pip install -e ".[dev]" to freeze an app')
pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from browser import bound_port  # noqa: E402

from nextword.runtime import BUNDLED_MODEL, load  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# The folders of the packages (pyproject.toml's package-dir): nextword.runtime is runtime/, ...
PACKAGE_DIRS = ("runtime", "corpus", "train", "export", "cli", "serve")
# Modules the frozen app must not carry: the training stack, which nextword's runtime and server never
# import, but which onnxruntime's optional modules reach where it is installed; and the test
# environment's own tools (an app's environment has none of them), which other packages' optional
# modules reach too: left out, the build takes 15% less time (43 s, not 51 s, on 2 cores).
LEFT_OUT = ("tensorflow", "keras", "tf2onnx", "onnx", "torch", "matplotlib")
LEFT_OUT += ("mypy", "hypothesis", "PIL", "pytest", "_pytest", "IPython")
PROMPT = "a neural network"
# The app: `app api` generates as the finding's one-liner does; any other arguments are the command's.
APP = f"""\
import sys

from nextword.cli.entry import main
from nextword.runtime import BUNDLED_MODEL, load

if __name__ == "__main__":
    if sys.argv[1:] == ["api"]:
        print(load(BUNDLED_MODEL).generate({PROMPT!r}, seed=1))
    else:
        sys.exit(main())
"""


@pytest.fixture(scope="module")
def frozen_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The executable of the app above, frozen with ``pyinstaller --onedir``."""
    base = tmp_path_factory.mktemp("frozen")
    package = base / "src" / "nextword"
    package.mkdir(parents=True)
    for folder in PACKAGE_DIRS:
        (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    script = base / "app.py"
    script.write_text(APP, encoding="utf-8")
    command = [sys.executable, "-m", "PyInstaller", "--onedir", "--noconfirm", "--log-level", "WARN"]
    command += ["--workpath", str(base / "build"), "--distpath", str(base / "dist")]
    command += ["--specpath", str(base), "--paths", str(base / "src")]
    command += [flag for module in LEFT_OUT for flag in ("--exclude-module", module)]
    try:
        done = subprocess.run([*command, str(script)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("PyInstaller did not freeze the app in 300 s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return base / "dist" / "app" / "app"


def test_a_frozen_app_generates_with_the_bundled_model(frozen_app):
    done = subprocess.run([frozen_app, "api"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == load(BUNDLED_MODEL).generate(PROMPT, seed=1) + "\n"


def test_a_frozen_serve_with_two_workers_shows_the_page_and_completes(frozen_app):
    """Each worker is the frozen executable started again with multiprocessing's arguments, which
    the command refused before it called freeze_support; the page is the serve hook's data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTWORD_")}  # the bundled model
    server = subprocess.Popen(
        [frozen_app, "serve", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its workers are stopped with it, whatever happens here
    )
    log, page, answer = "", None, None
    try:
        port, log = bound_port(server.stdout, timeout=60)
        url = f"http://127.0.0.1:{port}"
        if _answers_health(url, server, timeout=60):
            page = httpx.get(url + "/", timeout=30)
            body = {"prompt": PROMPT, "max_tokens": 5, "seed": 1}
            answer = httpx.post(url + "/v1/completions", json=body, timeout=30)
    finally:
        log += _stop(server)
    assert page is not None and answer is not None, f"no worker answered in 60 s: {log}"
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:500]
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == load(BUNDLED_MODEL).generate(PROMPT, max_words=5, seed=1)
    assert "unrecognized arguments" not in log and "Traceback" not in log, log


def _answers_health(url: str, server: subprocess.Popen[str], timeout: float) -> bool:
    """Whether the server at ``url`` answers ``/health`` within ``timeout`` seconds, while it runs:
    uvicorn's parent process binds the port, and a worker answers once it has loaded the model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def _stop(server: subprocess.Popen[str]) -> str:
    """Stop a server started in a session of its own (SIGTERM, then SIGKILL to its whole group past
    30 s); the rest of its log."""
    server.terminate()
    try:
        rest, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        rest, _ = server.communicate(timeout=30)
    return rest
