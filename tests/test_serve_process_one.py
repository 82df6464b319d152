"""``nextword serve`` as a container's process 1 (``docker run`` without ``--init``): the kernel drops a
signal that process 1 does not handle, so a SIGTERM while the modules or the model loaded was lost (the
server started anyway, and ``docker stop`` waited for its SIGKILL), and a drained stop exited 0.

Each test runs the command as process 1 of a new PID namespace (``unshare --pid --fork``), where this
machine allows one; elsewhere they skip saying so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="install nextword[serve] to test the server")


# --kill-child: process 1 of the namespace goes with unshare, so a failed test leaves no server behind
UNSHARE = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]


def _namespaces() -> str | None:
    """Why this machine cannot run a process as process 1 of a new PID namespace; None when it can."""
    if sys.platform != "linux" or not shutil.which("unshare") or not shutil.which("pgrep"):
        return "needs Linux with unshare and pgrep"
    probe = subprocess.run(
        [*UNSHARE, sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode or probe.stdout.strip() != "1":
        return (
            f"unshare --pid cannot make a process 1 here (it needs privileges): {probe.stderr.strip()[:200]}"
        )
    return None


WHY_NOT = _namespaces()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

# Runs `nextword serve ...` through the command's own entry point, as process 1; where argv[1] names a
# stage ("import": the command line's modules; "load": the model), the stage writes the marker file
# argv[2] and waits there, so that the test's SIGTERM reaches it mid-start-up.
WRAPPER = """
import importlib.abc, os, sys, time
stage, marker = sys.argv[1], sys.argv[2]
assert os.getpid() == 1

def wait_here():
    open(marker, "w").close()
    time.sleep(120)

if stage == "import":
    class Slow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "nextword.cli.main":
                wait_here()
            return None
    sys.meta_path.insert(0, Slow())
elif stage == "load":
    import nextword.serve.server as server
    real = server.create_app
    def slow(*args, **kwargs):
        wait_here()
        return real(*args, **kwargs)
    server.create_app = slow
from nextword.cli.entry import main
sys.argv = ["nextword", "serve", *sys.argv[3:]]
sys.exit(main())
"""


def _start(tmp_path: Path, stage: str, *serve_args: str) -> tuple[subprocess.Popen, Path, int]:
    """The wrapper as process 1: (the ``unshare`` process, the marker file, process 1's PID here)."""
    marker = tmp_path / "reached"
    command = [*UNSHARE, sys.executable, "-c", WRAPPER]
    with open(tmp_path / "stderr", "w", encoding="utf-8") as err:  # the child holds its own copy
        process = subprocess.Popen(
            [*command, stage, str(marker), *serve_args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
        if found.stdout.strip():
            return process, marker, int(found.stdout.split()[0])
        time.sleep(0.05)
    process.kill()
    pytest.fail("process 1 did not start within 60 s")


def _wait_for(condition, what: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not happen (exit status {process.poll()})")
        time.sleep(0.05)


def _ends(process: subprocess.Popen, tmp_path: Path) -> tuple[int, str]:
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("SIGTERM did not stop it within 30 s: " + (tmp_path / "stderr").read_text()[-2000:])
    return code, (tmp_path / "stderr").read_text()


@pytest.mark.parametrize(
    ("stage", "said"), [("import", "nextword: terminated"), ("load", "nextword serve: terminated")]
)
def test_a_sigterm_during_start_up_stops_it_with_143(model_path, tmp_path, stage, said):
    process, marker, pid = _start(tmp_path, stage, str(model_path), "--port", "0")
    _wait_for(marker.exists, f"reaching the {stage} stage", process)
    os.kill(pid, signal.SIGTERM)
    code, err = _ends(process, tmp_path)
    assert code == 143, err
    assert err.strip().splitlines()[-1] == said
    assert "Uvicorn running" not in err


def test_a_drained_stop_ends_with_143_not_0(model_path, tmp_path):
    process, _, pid = _start(tmp_path, "serve", str(model_path), "--port", "0")
    _wait_for(lambda: "Uvicorn running" in (tmp_path / "stderr").read_text(), "serving", process)
    os.kill(pid, signal.SIGTERM)
    code, err = _ends(process, tmp_path)
    assert code == 143, err
    assert "shutting down" in err and "Finished server process [1]" in err
