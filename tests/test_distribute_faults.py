"""Faults of a multi-worker run that a reviewer met with real processes: a stop (Ctrl-C, SIGTERM) while
the cluster forms, a second cluster on the same run folder, a killed worker's scratch folder, start-up
mistakes in TF_CONFIG, and the messages they give.

The watchdog and the scratch folders are tested on stand-in processes (no TensorFlow: seconds); the
stop while a real cluster forms, and the collectives, with TensorFlow (marked slow). Every process a
test starts is waited for with a bound, and killed if it outlives it.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import free_ports, synthetic_documents, write_corpus
from nextword.train.distribute import Cluster, DistributeError, wait_for_peers

POSIX = pytest.mark.skipif(os.name != "posix", reason="process groups and flock are POSIX's")
WAIT = 60  # seconds a stand-in process may take
RUN_CLI = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _end(process, timeout=WAIT):
    """``process``'s (returncode, stderr), killing its group if it outlives ``timeout``."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"process {process.args[:3]} still ran after {timeout} s (a hang): {err[-2000:]}")
    return process.returncode, err


def _gone(pid, within=10.0):
    """Whether process ``pid`` has ended (and been reaped) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text(encoding="ascii").split()[2] == "Z":
                return True  # ended; its reaper has not called wait yet
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------- start-up checks of TF_CONFIG


@pytest.mark.parametrize(
    ("task", "port", "message"),
    [
        ({"type": "worker", "index": True}, 2002, r"task index True must be an integer"),  # JSON's true
        ({"type": "worker", "index": 1}, 65536, r"cluster.worker\[1\] = '127.0.0.1:65536' is not HOST:PORT"),
        ({"type": "worker", "index": 1}, 0, r"cluster.worker\[1\] = '127.0.0.1:0' is not HOST:PORT"),
    ],
)
def test_a_tf_config_index_of_true_or_a_port_out_of_range_is_refused(task, port, message):
    """``"index": true`` (a bool, which Python counts as 1) and ports 0 and 65536 are written mistakes,
    refused before any worker waits, not a worker 1 or a port no socket takes."""
    from nextword.train.distribute import parse_tf_config

    text = json.dumps({"cluster": {"worker": ["127.0.0.1:2001", f"127.0.0.1:{port}"]}, "task": task})
    with pytest.raises(DistributeError, match=message):
        parse_tf_config(text)
    assert parse_tf_config(text.replace(f":{port}", ":65535").replace("true", "1")).index == 1


def test_a_host_that_does_not_resolve_fails_at_once():
    """It waited the whole --peer-timeout, then said the worker "did not answer"."""
    port = free_ports(1)[0]
    cluster = Cluster((f"127.0.0.1:{port}", f"nosuchhost.invalid:{port + 1}"), 0)
    started = time.monotonic()
    with pytest.raises(
        DistributeError,
        match=r"worker 1 at nosuchhost.invalid:\d+: its host nosuchhost.invalid does not resolve",
    ):
        wait_for_peers(cluster, timeout=30)
    assert time.monotonic() - started < 10


def test_one_worker_listed_under_two_names_is_refused():
    """127.0.0.1:P and localhost:P passed the check for an address listed twice."""
    port = free_ports(1)[0]
    cluster = Cluster((f"127.0.0.1:{port}", f"localhost:{port}"), 0)
    with pytest.raises(
        DistributeError, match=rf"lists one worker twice: 127.0.0.1:{port} and localhost:{port}"
    ):
        wait_for_peers(cluster, timeout=30)


def test_a_port_taken_says_that_two_workers_may_share_an_index():
    with socket.create_server(("", 0)) as taken:
        port = taken.getsockname()[1]
        cluster = Cluster((f"127.0.0.1:{port}", "127.0.0.1:1"), 0)
        with pytest.raises(
            DistributeError, match=r"is another process using it\? Two workers given the same"
        ):
            wait_for_peers(cluster, timeout=1)


def test_workers_that_disagree_on_a_model_setting_are_told_which():
    """The message said "the workers disagree on model", not which of its fields."""
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig
    from nextword.train.fit import settings_fingerprint

    def config(units):
        return TrainConfig(
            out="run", corpus=CorpusConfig(paths=("c.txt",)), model=ModelConfig(lstm_units=units)
        )

    mine, theirs = settings_fingerprint(config(16)), settings_fingerprint(config(32))
    assert sorted(n for n in mine if mine[n] != theirs.get(n)) == ["model.lstm_units"]


# --------------------------------------------------------------------- the watchdog, on stand-in workers

# A stand-in for a worker waiting in TensorFlow for a cluster that cannot form: it starts the watchdog,
# then ignores SIGTERM (TensorFlow's handler swallows it) and waits. Prints the watchdog's pid.
STUCK_WORKER = """
import signal, sys, time
from nextword.train.watchdog import Watchdog
watchdog = Watchdog("worker 0", ["127.0.0.1:1"], float(sys.argv[1]))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(watchdog._child.pid, flush=True)
time.sleep(120)
"""


def _stuck_worker(timeout, script=STUCK_WORKER):
    """A stand-in worker in a process group of its own, and its watchdog's pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    watchdog = int(process.stdout.readline())
    _wait_for_handlers(watchdog)  # a signal before them kills the watchdog (a traceback, or a worker left)
    return process, watchdog


def _wait_for_handlers(pid, signals=(signal.SIGINT, signal.SIGTERM), within=WAIT):
    """Until process ``pid`` catches ``signals`` (its handlers are set: SigCgt in /proc), at most
    ``within`` seconds; where there is no /proc to read, half a second."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        time.sleep(0.5)
        return
    wanted = sum(1 << (s - 1) for s in signals)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lines = status.read_text(encoding="utf-8").splitlines()
        caught = next(int(line.split()[1], 16) for line in lines if line.startswith("SigCgt:"))
        if caught & wanted == wanted:
            return
        time.sleep(0.01)
    pytest.fail(f"the watchdog {pid} set no handlers within {within} s")


@POSIX
@pytest.mark.parametrize(("sent", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_a_stop_sent_to_the_group_ends_a_waiting_worker_in_one_line(sent, said):
    """Ctrl-C (SIGINT to the group) killed the watchdog, with a KeyboardInterrupt traceback, and left the
    worker waiting for ever; so did SIGTERM to the group (`timeout`). Now the worker ends as an
    interrupted command does (SIGINT: status 130 in a shell) and the watchdog says why, once."""
    process, watchdog = _stuck_worker(timeout=60)
    os.killpg(process.pid, sent)
    code, err = _end(process, timeout=20)
    assert code == -signal.SIGINT, err
    assert err.splitlines() == [f"nextword train: {said} while the cluster formed"]
    assert _gone(watchdog)


@POSIX
def test_a_signal_the_worker_ignores_is_left_ignored():
    """A worker started with nohup ignores SIGHUP: its watchdog must not end it when the terminal closes."""
    script = STUCK_WORKER.replace(
        "import signal, sys, time\n",
        "import signal, sys, time\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n",
    )
    process, watchdog = _stuck_worker(timeout=60, script=script)
    try:
        os.killpg(process.pid, signal.SIGHUP)
        time.sleep(1)
        assert process.poll() is None and not _gone(watchdog, within=0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        _end(process)


@POSIX
def test_the_watchdog_ends_a_worker_that_waits_too_long_and_says_what_to_do():
    process, watchdog = _stuck_worker(timeout=1)
    code, err = _end(process)
    assert code == -signal.SIGKILL
    (line,) = err.splitlines()
    assert line.startswith("nextword train: error: worker 0 could not form the cluster within 1 s")
    assert "or another worker stopped while the cluster formed; restart every worker" in line
    assert _gone(watchdog)


@POSIX
def test_a_watchdog_whose_worker_was_killed_leaves_quietly():
    process, watchdog = _stuck_worker(timeout=60)
    process.kill()  # the worker alone: its watchdog sees it gone
    _, err = _end(process)
    assert _gone(watchdog, within=5) and err == ""


@POSIX
def test_the_watchdog_gives_sigint_back_and_leaves_an_ignored_one_ignored():
    """While the cluster forms, SIGINT is at its default action (Ctrl-C ends the worker at once), and
    the program's handler is back once it has formed; a SIGINT ignored (a background job's) stays
    ignored throughout. In this process: a watchdog and its child, cancelled at once."""
    from nextword.train.watchdog import Watchdog

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under a harness that ignores it
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        watchdog = Watchdog("worker 0", ["127.0.0.1:1"], 60)
        try:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        finally:
            watchdog.cancel()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        watchdog = Watchdog("worker 0", ["127.0.0.1:1"], 60)
        try:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        finally:
            watchdog.cancel()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)


# The stand-in worker where the signal module has no SIGKILL (as on Windows), ending by SIGTERM.
NO_SIGKILL_WORKER = """
import signal, sys, time
from nextword.train import watchdog
watchdog._SCRIPT = "import signal\\ndel signal.SIGKILL\\n" + watchdog._SCRIPT
print(watchdog.Watchdog("worker 0", ["127.0.0.1:1"], float(sys.argv[1]))._child.pid, flush=True)
time.sleep(120)
"""


@POSIX
def test_without_sigkill_the_watchdog_ends_the_worker_with_sigterm():
    """Windows has no SIGKILL: ``os.kill(parent, signal.SIGKILL)`` raised AttributeError there, and the
    worker waited on. A watchdog without it ends the worker with SIGTERM (what ends a process there)."""
    process, _ = _stuck_worker(timeout=1, script=NO_SIGKILL_WORKER)
    code, err = _end(process)
    assert code == -signal.SIGTERM and "AttributeError" not in err, err
    assert "could not form the cluster within 1 s" in err


# ------------------------------------------------------------------------------ the scratch folders


def _workers(index):
    from nextword.train.distribute import Workers

    return Workers(strategy=None, mode="multi-worker", index=index, count=index + 1)


@POSIX
def test_a_second_worker_of_the_same_run_is_refused_and_the_first_keeps_its_data(temporary, tmp_path):
    """A second cluster started with the same --out: its worker 1 cleared and made again the folder where
    the running worker 1 kept its copy of the corpus, and the running cluster crashed."""
    from nextword.train import RunBusyError
    from nextword.train.distribute import worker_scratch

    out = str(tmp_path / "run")
    with worker_scratch(_workers(1), out) as root:
        (root / "train.ids").write_bytes(b"ids")
        with (
            pytest.raises(RunBusyError, match=rf"another worker of this run uses {root} on this machine"),
            worker_scratch(_workers(1), out),
        ):
            pass
        assert (root / "train.ids").read_bytes() == b"ids"
        with worker_scratch(_workers(2), out) as other:  # another index: its own folder
            assert other != root
    assert not root.exists() and not other.exists()


HOLD_SCRATCH = """
import sys, time
from nextword.train.distribute import Workers, worker_scratch
with worker_scratch(Workers(None, "multi-worker", index=int(sys.argv[1]), count=9), sys.argv[2]) as root:
    (root / "train.ids").write_bytes(b"ids")
    print(root, flush=True)
    time.sleep(120)
"""


@POSIX
def test_a_killed_workers_scratch_folder_is_cleared_by_the_next_worker_to_start(temporary, tmp_path):
    """After a SIGKILL, worker 3's copy of the corpus stayed in $TMPDIR until worker 3 of the same run
    started again. A folder that a running worker holds, or one nextword did not mark, stays."""
    from nextword.train.distribute import worker_scratch

    def hold(index, out):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_SCRATCH, str(index), str(tmp_path / out)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        return process, Path(process.stdout.readline().strip())

    killed, stale = hold(3, "old-run")
    running, held = hold(4, "other-run")
    try:
        killed.kill()
        killed.wait(timeout=WAIT)
        assert (stale / "train.ids").is_file()
        unmarked = temporary / "nextword-worker5-0123456789ab"  # an earlier nextword's: no marker
        unmarked.mkdir()
        with worker_scratch(_workers(1), str(tmp_path / "run")) as root:
            assert root.is_dir() and not stale.exists()
            assert (held / "train.ids").is_file() and unmarked.is_dir()
    finally:
        running.kill()
        running.wait(timeout=WAIT)


def test_without_flock_a_worker_still_gets_a_clean_folder_of_its_own(temporary, tmp_path, monkeypatch):
    """Where there is no fcntl (Windows) the folder is cleared and made as before, unguarded, and the
    other folders are left alone (nothing tells a killed worker's from a running one's)."""
    from nextword.train import scratch
    from nextword.train.distribute import worker_scratch

    monkeypatch.setattr(scratch, "_fcntl", lambda: None)
    out = str(tmp_path / "run")
    other = temporary / "nextword-worker7-0123456789ab"
    other.mkdir()
    (other / scratch.MARKER).write_text("")
    with worker_scratch(_workers(1), out) as root:
        (root / "left").write_text("a killed worker's")
    root.mkdir()
    (root / "left").write_text("a killed worker's")
    with worker_scratch(_workers(1), out) as again:
        assert again == root and list(root.iterdir()) == []
    assert not root.exists() and other.is_dir()


# --------------------------------------------------------------------------------- with TensorFlow


def test_data_files_gone_from_under_a_worker_is_one_line():
    """The data copy removed under a running worker crashed it with an 84-line traceback (an
    UnknownError from the input pipeline); now it is the one line that a lost peer gives."""
    tf = pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    from nextword.train.distribute import WorkerLostError, lost_workers

    gone = "/tmp/nextword-worker1-20d5ab7db7e0/train.ids"
    message = (
        "Graph execution error:\n\nDetected at node PyFuncStateless defined at (most recent call last):\n"
        "Error in user-defined function passed to ParallelMapDatasetV2:4 transformation with iterator: "
        "Iterator::Root::Prefetch::ParallelMapV2: FileNotFoundError: [Errno 2] No such file or directory: "
        f"'{gone}'\nTraceback (most recent call last):\n\n  File \"data.py\", line 243, in read\n"
    )
    with pytest.raises(WorkerLostError) as caught, lost_workers(_workers(1)):
        raise tf.errors.UnknownError(None, None, message)
    assert str(caught.value).startswith(
        "worker 1 could not read its data (FileNotFoundError: [Errno 2] No such file or directory: "
        f"'{gone}'): another process removed or replaced the files it trains on; restart every worker"
    )
    with pytest.raises(tf.errors.UnknownError), lost_workers(_workers(1)):  # not about a file: as it was
        raise tf.errors.UnknownError(None, None, "TypeError: a fault of nextword's own")


def test_the_collectives_trace_once_per_kind_and_dtype(caplog):
    """Every multi-worker run logged TensorFlow's warning "5 out of the last 9 calls to
    _all_reduce.<locals>.summed triggered tf.function retracing": vectors of each length and dtype."""
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    import tensorflow as tf

    from nextword.train.distribute import Workers, _all_reduce

    workers = Workers(tf.distribute.get_strategy(), "none")
    rng = np.random.default_rng(0)
    values = [
        np.asarray([7], np.int64),
        np.arange(57, dtype=np.int64),
        rng.normal(size=300).astype(np.float32),
        np.asarray([3], np.int64),
        rng.normal(size=(3, 4)).astype(np.float32),
        np.arange(4, dtype=np.int64),
    ]
    with caplog.at_level("WARNING", logger="tensorflow"):
        for chief_only in (True, False, True):
            for value in values:
                np.testing.assert_array_equal(_all_reduce(workers, value, chief_only=chief_only), value)
    counts = {key: f.experimental_get_tracing_count() for key, f in workers.reducers.items()}
    assert len(counts) == 4 and set(counts.values()) == {1}, counts
    assert "retracing" not in caplog.text


def _children(pid):
    """The pids of ``pid``'s child processes (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text(encoding="ascii").split() if path.is_file() else []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("sent", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_a_stop_while_a_real_cluster_forms_ends_both_workers(sent, said, tmp_path):
    """The reviewer's case: two workers given the cluster list in opposite orders (the cluster cannot
    form), stopped once they wait in TensorFlow by a signal to their process group, as Ctrl-C or
    `timeout` sends it. They waited for ever (only SIGKILL ended them)."""
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    corpus = write_corpus(tmp_path, synthetic_documents(20, seed=1))["text"]
    ports = free_ports(2)
    workers = []
    try:
        for i, order in enumerate((ports, ports[::-1])):
            tf_config = {
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in order]},
                "task": {"type": "worker", "index": 0},
            }
            argv = ["train", str(corpus), "--out", str(tmp_path / f"run{i}"), "--distribute", "multi-worker"]
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", RUN_CLI, *argv, "--peer-timeout", "120", "--min-count", "1"],
                    env={**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"},
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 120
        while not all(_children(w.pid) for w in workers):  # their watchdogs: the strategy is on its way
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
            time.sleep(0.1)
        time.sleep(2)  # inside TensorFlow's wait
        watchdogs = [int(pid) for w in workers for pid in _children(w.pid)]
        for worker in workers:  # each with its watchdog, in a process group of its own
            os.killpg(worker.pid, sent)
        for worker in workers:
            code, err = _end(worker, timeout=30)
            lines = [line for line in err.splitlines() if line.startswith("nextword")]
            assert code == -signal.SIGINT and lines == [f"nextword train: {said} while the cluster formed"], (
                err
            )
            assert "Traceback" not in err
        assert all(_gone(pid) for pid in watchdogs)
    finally:
        for worker in workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)  # its watchdog too
                worker.wait(timeout=WAIT)
    assert not (tmp_path / "run0").exists() and not (tmp_path / "run1").exists()


def test_a_restart_that_starts_again_names_the_run_an_overwrite_set_aside(tmp_path):
    """The chief of an --overwrite was killed before its first checkpoint, leaving the old run in
    .run.replaced; the same command on every worker then failed on the chief alone, after the other
    worker had made its data: that one said it lost contact and to restart with the same command,
    which failed again. The chief now says why before the others wait on it, as for other refusals."""
    from nextword.train import CorpusConfig, RunExistsError, TrainConfig
    from nextword.train.files import RunDir
    from nextword.train.restart import chief_refusal

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.mark()  # the restarted run, stopped before its first checkpoint: it starts again
    config = TrainConfig(out=str(run.root), corpus=CorpusConfig(paths=(str(tmp_path / "corpus.txt"),)))
    assert chief_refusal(run, config, check_folder=False) is None
    run.aside.mkdir()
    (run.aside / "checkpoint.keras").write_bytes(b"the run the overwrite replaces")
    refused = chief_refusal(run, config, check_folder=False)
    assert isinstance(refused, RunExistsError)
    assert f"{run.aside} holds the run that an interrupted overwrite" in str(refused)
    run.checkpoint.write_bytes(b"the restarted run's")  # it goes on from there: nothing is set aside
    assert chief_refusal(run, config, check_folder=False) is None
