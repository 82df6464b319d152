"""What the supervising process of ``--workers`` hands its workers about the model file: the digest the
reload's workers find is never an old one while a SIGHUP's new digest is being read, and nothing is
written into the caller's environment once the server has ended."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")

from nextword.serve import ServeConfig, worker_settings
from nextword.serve.worker_settings import WorkerSettings

NAME = "NEXTWORD_TEST_WORKER_SETTINGS"


def digest_now() -> object:
    return json.loads(os.environ[NAME])["_model_digest"]


def test_a_sighup_turns_the_workers_check_off_while_the_file_is_read(tmp_path, monkeypatch):
    """A large model file takes seconds to read, and uvicorn starts the reload's workers within half a
    second of the SIGHUP: they were handed the old digest and each warned that the file had changed
    since the server started, as a worker started again after one died does."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"old")
    monkeypatch.delenv(NAME, raising=False)
    workers = WorkerSettings(NAME, {"model": str(model)}, str(model))
    workers.start()
    old = digest_now()
    assert isinstance(old, str)
    model.write_bytes(b"new!")
    seen_while_reading = []
    real = worker_settings._digest

    def slow(path):
        seen_while_reading.append(digest_now() if NAME in os.environ else "none")  # a worker's, spawned now
        return real(path)

    monkeypatch.setattr(worker_settings, "_digest", slow)
    workers.approve_the_file()
    assert seen_while_reading == [None]
    assert digest_now() not in (None, old)
    workers.end()
    assert NAME not in os.environ
    workers.approve_the_file()  # a SIGHUP read after the server ended writes nothing
    assert NAME not in os.environ and seen_while_reading == [None, "none"]


def test_the_callers_own_value_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv(NAME, "the caller's")
    workers = WorkerSettings(NAME, {}, str(tmp_path / "absent.onnx"))
    workers.start()
    assert digest_now() is None  # no file there: nothing to compare
    workers.end()
    assert os.environ[NAME] == "the caller's"


CHANGED = "holds other bytes than the file the other workers loaded"


@pytest.mark.parametrize("digest, warned", [(None, False), ("0" * 64, True)])
def test_a_worker_warns_only_when_handed_a_digest_that_differs(
    model_path, monkeypatch, caplog, digest, warned
):
    """A worker started while a SIGHUP's new digest is read is handed none (serve/worker_settings.py):
    it must not say the file changed, as the reload's workers were told; a digest that differs is said."""
    from nextword.serve.app import CONFIG_ENV, app_from_environment

    settings = {**dataclasses.asdict(ServeConfig(model=str(model_path))), "_model_digest": digest}
    monkeypatch.setenv(CONFIG_ENV, json.dumps(settings))
    with caplog.at_level("WARNING", "nextword.serve.app"):
        app_from_environment()
    assert any(CHANGED in r.getMessage() for r in caplog.records) is warned, caplog.text


PDEATHSIG_CHILD = """
import ctypes, os, signal, sys, time
from nextword.serve.app import _end_with
_end_with(int(sys.argv[1]) if sys.argv[1] != "parent" else os.getppid())
got = ctypes.c_int(-1)
ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(got))  # PR_GET_PDEATHSIG
print(got.value, flush=True)
time.sleep(1)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a worker asks Linux's prctl for its signal")
def test_a_worker_asks_for_sigterm_and_takes_it_if_its_supervisor_already_ended():
    """The parent-death signal is SIGTERM, a drain (SIGKILL would cut every request in flight); and a
    supervisor gone before the request was made (the worker then has another parent) is taken as gone."""
    ran = subprocess.run(
        [sys.executable, "-c", PDEATHSIG_CHILD, "parent"], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0 and ran.stdout.split() == [str(int(signal.SIGTERM))], ran
    gone = subprocess.run(
        [sys.executable, "-c", PDEATHSIG_CHILD, str(os.getpid() + 10_000_000)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == -signal.SIGTERM, gone


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on Windows")
def test_the_model_file_is_approved_at_a_sighup_only_and_a_failure_stops_nothing():
    """uvicorn's supervisor takes SIGTTIN (one more worker) and a terminal's SIGWINCH too: neither may
    approve the file on disk (a worker added by SIGTTIN must still say the file changed), and a failing
    approval must not end the reader that notes the stop signals after it."""
    import time

    from nextword.serve.stop_signals import SignalWatch, _note_stops

    calls: list[int] = []

    def fails() -> None:
        calls.append(1)
        raise OSError("the model file cannot be read")

    read, write = socket.socketpair()
    watch = SignalWatch(fails)
    reader = threading.Thread(target=_note_stops, args=(read, watch))
    reader.start()
    try:
        others = (getattr(signal, "SIGWINCH", 28), getattr(signal, "SIGTTIN", 21), signal.SIGUSR1)
        write.sendall(bytes(others))
        time.sleep(0.5)
        assert calls == []
        write.sendall(bytes([signal.SIGHUP]))
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        write.sendall(bytes([signal.SIGTERM]))  # after the failed approval: still noted
    finally:
        write.close()
        reader.join(10)
        read.close()
    assert calls == [1] and watch.seen == [signal.SIGTERM]
