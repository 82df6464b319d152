"""What the supervising process of ``--workers`` hands its workers about the model file: the digest the
reload's workers find is never an old one while a SIGHUP's new digest is being read, and nothing is
written into the caller's environment once the server has ended."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")

from nextword.serve import worker_settings
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
