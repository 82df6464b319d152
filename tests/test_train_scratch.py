"""The scratch folder of a multi-worker run's other workers (train/scratch.py), in this process: which
folder a run's worker takes, the wait for one that its last user is still letting go, and what a worker
finds there as it starts. (Workers in processes of their own: tests/test_distribute_faults.py.)"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nextword.train.files import RunBusyError
from nextword.train.scratch import MARKER, worker_scratch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the folders are guarded with flock, POSIX's")

WORKER = SimpleNamespace(index=1)  # worker 1 (all that worker_scratch reads of the workers)


def _root_of(out):
    """The scratch folder of worker 1 of the run in ``out`` (taken and let go: removed again)."""
    with worker_scratch(WORKER, out) as root:
        pass
    assert not root.exists()
    return root


def test_the_same_run_folder_named_relatively_is_the_same_run(temporary, tmp_path, monkeypatch):
    """``--out run`` and ``--out /abs/run`` are one run: a second worker 1 is refused either way."""
    monkeypatch.chdir(tmp_path)
    with worker_scratch(WORKER, str(tmp_path / "run")) as root:
        busy = f"another worker of this run uses {root} on this machine"
        with pytest.raises(RunBusyError, match=busy), worker_scratch(WORKER, "run"):
            pass
        with pytest.raises(RunBusyError, match=busy), worker_scratch(WORKER, "./elsewhere/../run"):
            pass


def test_a_folder_its_last_user_is_letting_go_is_waited_for(temporary, tmp_path, monkeypatch):
    """The previous worker 1 still holds the folder a moment as it ends: the new one takes it then,
    rather than failing as a second worker of the run."""
    from nextword.train import scratch

    monkeypatch.setattr(scratch, "_TRIES", 300)  # the wait's bound (0.9 s) is not what is tested: a loaded
    # machine's timer thread, late by that much, made the holder look like a second worker
    out = str(tmp_path / "run")
    taken, release = threading.Event(), threading.Event()

    def ending_worker():
        with worker_scratch(WORKER, out) as root:
            (root / "train.ids").write_bytes(b"the ending worker's")
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=ending_worker)
    holder.start()
    try:
        assert taken.wait(30)
        threading.Timer(0.2, release.set).start()
        began = time.monotonic()
        with worker_scratch(WORKER, out) as root:
            waited = time.monotonic() - began
            assert sorted(p.name for p in root.iterdir()) == [MARKER]  # nothing of the one before
    finally:
        release.set()
        holder.join(30)
    assert 0.1 <= waited < 5
    assert not root.exists()


def test_a_folder_removed_just_as_the_worker_finds_it_is_made_again(temporary, tmp_path, monkeypatch):
    """Its last user, ending, removes the folder between this worker's mkdir (which found it there) and
    its look at whose it is: the folder is made again and taken, not refused as "not a folder this run
    can clear" (a narrow race, met once by the test above: a worker failed where it had to wait)."""
    from nextword.train import scratch

    out = str(tmp_path / "run")
    root = _root_of(out)
    root.mkdir(mode=0o700)
    (root / "train.ids").write_bytes(b"the ending worker's")
    removed: list[Path] = []

    class Ending(type(Path())):
        def mkdir(self, *args, **kwargs):
            try:
                super().mkdir(*args, **kwargs)
            except FileExistsError:
                if self.name.startswith(scratch.PREFIX) and not removed:
                    shutil.rmtree(self)  # the last user's removal ends just now
                    removed.append(self)
                raise

    monkeypatch.setattr(scratch, "Path", Ending)
    with worker_scratch(WORKER, out) as again:
        assert removed == [root] and again == root
        assert sorted(p.name for p in root.iterdir()) == [MARKER]
    assert not root.exists()


def test_a_leftover_folder_without_the_marker_is_emptied_as_a_worker_takes_it(temporary, tmp_path):
    """A worker of an earlier nextword (before markers), killed: its folder is this worker's own, and
    what it left there is removed before this worker writes its copy of the corpus."""
    out = str(tmp_path / "run")
    root = _root_of(out)
    root.mkdir(mode=0o700)
    (root / "train.ids").write_bytes(b"a killed worker's")
    (root / "part").mkdir()
    (root / "part" / "val.ids").write_bytes(b"a killed worker's")
    with worker_scratch(WORKER, out) as again:
        assert again == root
        assert sorted(p.name for p in root.iterdir()) == [MARKER]
    assert not root.exists()


def test_a_folder_of_another_user_in_its_place_is_refused_and_left(temporary, tmp_path, monkeypatch):
    """On a shared /tmp, another user's folder of that name is neither cleared nor used."""
    out = str(tmp_path / "run")
    root = _root_of(out)
    root.mkdir(mode=0o700)
    (root / "theirs").write_text("another user's", encoding="utf-8")
    someone_else = os.getuid() + 1
    with monkeypatch.context() as patched, pytest.raises(FileExistsError) as refused:
        patched.setattr(os, "getuid", lambda: someone_else)
        with worker_scratch(WORKER, out):
            pass
    assert refused.value.filename == str(root)
    assert (
        refused.value.strerror
        == "there already, and not a folder this run can clear: remove it or set TMPDIR"
    )
    assert (root / "theirs").read_text(encoding="utf-8") == "another user's"
