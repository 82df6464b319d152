"""How a worker of ``nextword serve --workers N`` that cannot start ends (serve/worker_exit.py): it ended
through the interpreter's teardown, which left uvicorn's ping unanswered now and then, and its
supervisor deaf to signals for a minute; a worker whose model file did not load was then started again
once a minute, or, without the lost ping, in a loop. Each case runs in a process of its own, as a
worker would, with the test's process as its supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nextword.serve.worker_exit import end_worker, retry_later

# `python -c WORKER MODE FILE SUPERVISOR SECONDS`: a stand-in worker whose model file does not load.
WORKER = """
import logging, sys
from nextword.serve.worker_exit import end_worker, retry_later
mode, path, supervisor, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
logging.basicConfig(stream=sys.stdout, format="%(message)s")
logging.getLogger("worker").error("this worker cannot start")
print("no newline, held in the buffer", end="")
if mode == "retry":
    open(path + ".waiting", "w").close()
    retry_later(path, supervisor, seconds)
end_worker(3, supervisor)
"""


def _worker(tmp_path: Path, mode: str, seconds: float) -> tuple[subprocess.Popen, Path]:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    argv = [sys.executable, "-c", WORKER, mode, str(model), str(os.getpid()), str(seconds)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), model


def _waiting(process: subprocess.Popen, model: Path) -> None:
    """Once the worker waits in retry_later (bounded: a failure shows what the worker said)."""
    deadline = time.monotonic() + 60
    while not Path(str(model) + ".waiting").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def test_a_worker_ends_at_once_with_what_it_said_flushed(tmp_path):
    process, _ = _worker(tmp_path, "end", 0)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert out == "this worker cannot start\nno newline, held in the buffer", err


def test_a_worker_whose_file_does_not_load_waits_then_ends_with_1(tmp_path):
    process, _ = _worker(tmp_path, "retry", 0.5)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert out.endswith("no newline, held in the buffer"), err


@pytest.mark.parametrize("change", ["replaced", "removed"])
def test_the_wait_ends_as_the_model_file_changes(tmp_path, change):
    """The wait would last 10 minutes: the file put back (or taken away) ends it, so that uvicorn starts
    the worker again on the new file at once."""
    process, model = _worker(tmp_path, "retry", 600)
    try:
        _waiting(process, model)
        if change == "replaced":
            (tmp_path / "new.onnx").write_bytes(b"another file")
            os.replace(tmp_path / "new.onnx", model)
        else:
            model.unlink()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_the_wait_at_once(tmp_path, signum):
    """The supervisor's SIGTERM (a stop, a reload, its own end) or a terminal's Ctrl-C ends a waiting
    worker then, not after the wait, and with no traceback."""
    process, model = _worker(tmp_path, "retry", 600)
    try:
        _waiting(process, model)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and out.endswith("held in the buffer"), err


@pytest.mark.parametrize("supervisor", [None, "self"])
def test_outside_a_worker_the_caller_gets_system_exit(tmp_path, supervisor):
    """A program or a test that makes the app in its own process is not ended under it."""
    me = os.getpid() if supervisor == "self" else None
    with pytest.raises(SystemExit) as ended:
        end_worker(3, me)
    assert ended.value.code == 3
    with pytest.raises(SystemExit) as ended:
        retry_later(str(tmp_path / "m.onnx"), me, 600)  # at once: no wait
    assert ended.value.code == 1


def test_a_worker_whose_model_file_does_not_load_waits_for_another(tmp_path):
    """What serve()'s worker runs (app_from_environment) on a model file that does not load: its line,
    then the wait, which the file put back ends (status 1: uvicorn starts the worker again)."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    import dataclasses
    import json

    from nextword.serve import ServeConfig
    from nextword.serve.app import CONFIG_ENV

    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    settings = {**dataclasses.asdict(ServeConfig(model=str(model))), "_supervisor": os.getpid()}
    code = "from nextword.serve.app import app_from_environment; app_from_environment()"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, CONFIG_ENV: json.dumps(settings)},
    )
    try:
        said = process.stderr.readline()
        assert "this worker cannot start" in said and "m.onnx" in said, said
        time.sleep(1)  # a fifth of the wait (RETRY_SECONDS)
        assert process.poll() is None, "the worker ended without waiting for another file"
        (tmp_path / "new.onnx").write_bytes(b"another file")
        os.replace(tmp_path / "new.onnx", model)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.stderr.close()
    assert process.returncode == 1
