"""A full disk, a file-size limit, a long name, a read-only file: one line naming the file and the fix,
and nothing lost (see also test_robustness.py for kills during writes)."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.cli import main as cli
from nextword.corpus import CorpusError, minhash
from nextword.corpus.dedup import find_duplicates
from nextword.corpus.files import atomic_path
from nextword.runtime.provenance import DedupSettings

NO_ROOM = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write to a full disk raises it: no file


def test_a_full_disk_names_the_file_being_written(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous model")
    with pytest.raises(OSError) as raised, atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise NO_ROOM
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert target.read_bytes() == b"previous model" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_name_that_fits_the_file_system_is_written(tmp_path):
    try:
        name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        pytest.skip("the file system does not say how long a name may be")
    target = tmp_path / ("a" * (name_max - len(".onnx")) + ".onnx")  # as long as a name may be
    with atomic_path(target) as tmp:  # the temporary name, longer than the target's, must fit too
        tmp.write_bytes(b"model")
    assert target.read_bytes() == b"model" and len(list(tmp_path.iterdir())) == 1


def test_a_read_only_file_is_replaced_and_stays_read_only(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_bytes(b"{}")
    target.chmod(0o444)
    with atomic_path(target) as tmp:
        assert tmp.stat().st_mode & 0o200, "the temporary file must stay writable while it is written"
        tmp.write_bytes(b'{"epochs": []}')
    assert target.read_bytes() == b'{"epochs": []}' and target.stat().st_mode & 0o777 == 0o444


def _another_group() -> int | None:
    """A group this process may give a file other than its own: any for root, else one it is in."""
    if not hasattr(os, "chown"):
        return None
    if os.geteuid() == 0:
        return 4242
    return next((g for g in os.getgroups() if g != os.getegid()), None)


def test_a_replaced_file_keeps_its_group(tmp_path, monkeypatch):
    """A model file published to a service's group (0640): replacing it gave the new file the writer's
    group, and the service could no longer read it at its next start. The group is given while the new
    file is still 0600: a mode given first would open it, for a moment, to the writer's own group."""
    group = _another_group()
    if group is None:
        pytest.skip("this process is in no group other than its own, and is not root")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    os.chown(target, -1, group)
    target.chmod(0o640)
    real, seen = os.chmod, []

    def chmod(path, mode, *args, **kwargs):
        seen.append((os.stat(path).st_gid, mode & 0o777))
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    monkeypatch.undo()
    assert seen and all(gid == group for gid, mode in seen if mode & 0o070), seen
    assert target.read_bytes() == b"new"
    assert (target.stat().st_gid, target.stat().st_mode & 0o777) == (group, 0o640)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the umask from Linux's /proc")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=["022", "077", "002"])
def test_a_new_file_takes_the_umask_without_setting_it(tmp_path, monkeypatch, umask):
    """Reading the umask by setting it to 0 and back leaves a moment in which files other threads create
    are world-writable; on Linux it is read from /proc instead, and the mode is the one open() gives."""
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_bytes(b"")

        def no_umask(mask):
            raise AssertionError(f"os.umask({mask:o}) called while another thread may create files")

        monkeypatch.setattr(os, "umask", no_umask)
        with atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"model")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~umask


class _FullFile:
    """A temporary file on a full disk."""

    def write(self, data: bytes) -> int:
        raise NO_ROOM

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_full_temporary_folder_during_deduplication_names_it(monkeypatch):
    monkeypatch.setattr(minhash.tempfile, "TemporaryFile", lambda **kwargs: _FullFile())
    with pytest.raises(CorpusError) as raised:
        find_duplicates(synthetic_documents(20), DedupSettings())
    message = str(raised.value)
    assert tempfile.gettempdir() in message and "No space left on device" in message
    assert "TMPDIR" in message


def _failing_run(exc: OSError, command: str, **options: object) -> argparse.Namespace:
    def handler(args: argparse.Namespace) -> int:
        raise exc

    return argparse.Namespace(command=command, handler=handler, **options)


def test_the_command_line_says_what_to_do_about_a_full_disk(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.keras").write_bytes(b"")
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "model.keras"))
    args = _failing_run(exc, "train", resume=None, out=str(run))
    assert cli._run(args) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"{run / 'model.keras'}: No space left on device" in message
    assert "free some space" in message and f"nextword train --resume {run}" in message


def test_a_full_standard_output_is_named(capsys):
    args = _failing_run(NO_ROOM, "info")
    assert cli._run(args) == 2
    message = capsys.readouterr().err
    assert message == (
        "nextword info: error: cannot write the result to standard output: No space left on device; "
        "redirect it where there is room\n"
    )


FULL = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full, a device that is always full")


def _into_full_device(argv: list[str], unbuffered: bool) -> subprocess.CompletedProcess[str]:
    """``nextword ARGV > /dev/full`` in a child process, with standard output unbuffered or not."""
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w", encoding="utf-8") as full:
        return subprocess.run(
            [sys.executable, "-c", code, *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**env, "PYTHONUNBUFFERED": "1"} if unbuffered else env,
        )


@FULL
@pytest.mark.parametrize(
    ("argv", "unbuffered"),
    [
        (["info"], False),
        (["suggest", "the network", "-k", "300"], False),
        (["generate", "x", "--max-words", "300", "--seed", "1"], False),
        (["--version"], False),  # argparse prints these before the command runs: status 120, then 0
        (["generate", "--help"], False),
        # argparse ignores an error writing help: with PYTHONUNBUFFERED (set in many containers) it said
        # nothing and exited 0
        (["--version"], True),
        (["--help"], True),
        (["generate", "--help"], True),
    ],
)
def test_a_command_printing_into_a_full_device_fails_in_one_line(argv, unbuffered):
    """Buffered output (no PYTHONUNBUFFERED) is written at exit, after the command's own checks: a short
    result was lost with status 0, a longer one said "Exception ignored" with status 120."""
    result = _into_full_device(argv, unbuffered)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Exception" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "cannot write the result to standard output: No space left on device" in result.stderr


def test_messages_never_reach_the_output_when_standard_error_is_closed(tmp_path):
    """Started with `2>&-`, print(file=sys.stderr) wrote the error to standard output, which a --json
    reader takes for the result."""
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    script = f"exec 2>&-; exec {sys.executable} -c '{code}' generate x --temperature -1 --json"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""


# ----------------------------------------------------------------------------- a real full file system


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs, mounted for the test (root on Linux only: skipped elsewhere)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if not sys.platform.startswith("linux") or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs Linux and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> None:
    free = shutil.disk_usage(folder).free
    with (folder / "fill").open("wb") as f:
        f.truncate(0)
        os.posix_fallocate(f.fileno(), 0, max(free - leave, 1))


@pytest.mark.slow
def test_training_on_a_full_disk_stops_in_one_line_and_leaves_no_temporary(small_filesystem, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    corpus = write_corpus(tmp_path / "corpus", synthetic_documents(80))["csv"]
    run = small_filesystem / "run"
    _fill(small_filesystem, 48 * 1024)  # room for the corpus files, not for the model
    argv = [
        "train", str(corpus), "--out", str(run), "--epochs", "1", "--min-count", "1", "--verbose", "0",
        "--lstm-units", "16", "--embedding-dim", "8", "--seq-len", "8", "--batch-size", "8",
    ]  # fmt: skip
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"nextword train: error: {run}{os.sep}"), line
    assert "No space left on device; free some space" in line, line
    # what to do once there is room: before its first checkpoint the run's files are gone, and the
    # same command starts it again; after it, --resume continues it
    assert line.endswith("nothing was kept: start the run again") or f"--resume {run}" in line, line
    assert run.is_dir() == (f"--resume {run}" in line)
    assert "Traceback" not in result.stderr
    assert not list(run.glob(".*.tmp*"))  # no half-written file left behind


def test_without_proc_the_umask_is_read_and_put_back(tmp_path, monkeypatch):
    """Where /proc cannot be read (macOS, a sandbox), the umask is read by setting it: it must be set back,
    or every file the process makes afterwards is world-writable."""
    real = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self) == "/proc/self/status":
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"model")
        now = os.umask(0o027)
    finally:
        os.umask(old)
    assert now == 0o027
    assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == 0o640
