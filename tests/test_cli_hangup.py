"""SIGHUP (a terminal closed, an ssh session dropped) ends train, export and the other commands but serve
as SIGTERM does: one line that says how to go on, the command's clean-up, exit status 129. It killed
them without a word, mid-write; `nohup` still keeps a command running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")

# `nextword train --resume RUN` whose training gets a SIGHUP (and, with "ignored", runs under nohup)
HUNG_UP = """
import os, signal, sys, time
import nextword.train
if sys.argv[1] == "ignored":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

def hung_up(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(2)  # the handler runs first
    raise ValueError("the training went on")

nextword.train.resume = hung_up
from nextword.cli.entry import main
sys.argv = ["nextword", "train", "--resume", sys.argv[2]]
status = main()
handler = signal.getsignal(signal.SIGHUP)
print({signal.SIG_DFL: "default", signal.SIG_IGN: "ignored"}.get(handler, "handled"), flush=True)
sys.exit(status)
"""


@pytest.fixture
def resumable(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))  # epochs left to train
    metrics |= {"epochs_planned": len(metrics["epochs"]) + 5, "stopped_early": False}
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return run


def _train(handler: str, run) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HUNG_UP, handler, str(run)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_sighup_during_train_ends_it_as_sigterm_does_with_status_129(resumable):
    done = _train("default", resumable)
    assert done.returncode == 129 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.endswith(
        "nextword train: hung up (SIGHUP: its terminal or session closed; nohup, tmux or screen keep a "
        "command running past that); the run keeps its last checkpoint: continue it with "
        f"`nextword train --resume {resumable}`\n"
    )
    assert done.stdout == "default\n"  # the command's handler is gone with it


@pytest.mark.slow
def test_a_sighup_that_nohup_ignores_stays_ignored(resumable):
    done = _train("ignored", resumable)
    assert done.returncode == 2 and "the training went on" in done.stderr, done.stderr
    assert done.stdout == "ignored\n"


def test_how_a_command_ended_says_the_signal_and_its_status():
    from nextword.cli.signals import HungUp, Terminated, how_ended

    assert how_ended(KeyboardInterrupt()) == ("interrupted", 130)
    assert how_ended(Terminated()) == ("terminated", 143)
    said, status = how_ended(HungUp())
    assert status == 129 and said.startswith("hung up (SIGHUP: ")


@pytest.fixture
def hangup_handler():
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


def test_hangup_handled_raises_hung_up_and_gives_the_handler_back(hangup_handler):
    from nextword.cli.signals import HungUp, hangup_handled

    def mine(signum, frame):
        pass

    signal.signal(signal.SIGHUP, mine)
    with pytest.raises(HungUp), hangup_handled():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(2)  # the handler runs first
    assert signal.getsignal(signal.SIGHUP) is mine


def test_hangup_handled_changes_nothing_without_sighup(hangup_handler, monkeypatch):
    """Windows has no SIGHUP: nothing to handle, and nothing fails."""
    from nextword.cli import signals

    monkeypatch.setattr(signals, "_HANGUP", None)
    before = signal.getsignal(signal.SIGHUP)
    with signals.hangup_handled():
        assert signal.getsignal(signal.SIGHUP) is before
    with pytest.raises(signals.Terminated) as ended:
        signals.terminate(signal.SIGTERM, None)
    assert not isinstance(ended.value, signals.HungUp)


def test_signals_held_holds_sighup_while_files_move(hangup_handler):
    """An overwrite moves the replaced run's files aside with Ctrl-C and SIGTERM held: a SIGHUP then cut
    the move half way, leaving the run split between two folders."""
    from nextword.train.replacing import signals_held

    got = []
    signal.signal(signal.SIGHUP, lambda signum, frame: got.append(signum))
    with signals_held():
        os.kill(os.getpid(), signal.SIGHUP)
        assert got == []  # held
    assert got == [signal.SIGHUP]


@pytest.mark.parametrize(
    "stop, status, said", [("HungUp", 129, "hung up (SIGHUP: "), ("Terminated", 143, "terminated")]
)
def test_a_stop_before_the_command_took_over_ends_with_its_own_status(
    monkeypatch, capsys, stop, status, said
):
    """A signal while the modules load or the arguments are read (a container's process 1 takes SIGTERM
    from its start) is raised past the command's own handler: the entry point still says which signal
    and ends 128 + it, not 130 as for a Ctrl-C."""
    from nextword.cli import entry, main, signals

    def stopped():
        raise getattr(signals, stop)()

    monkeypatch.setattr(main, "main", stopped)
    monkeypatch.setattr(entry, "telemetry_off", lambda: None)  # no variable left set for other tests
    assert entry.main() == status
    assert capsys.readouterr().err.startswith(f"nextword: {said}")


def test_terminate_notes_the_signal_it_raises_for():
    """serve as a container's process 1 ends 143 after a SIGTERM's drain because terminate() noted it
    (cli/main.py reads SIGNALLED): a signal raised but not noted ended the container 0."""
    import signal

    from nextword.cli.signals import SIGNALLED, HungUp, Terminated, terminate

    SIGNALLED.clear()
    with pytest.raises(Terminated):
        terminate(signal.SIGTERM, None)
    with pytest.raises(HungUp):
        terminate(signal.SIGHUP, None)
    assert SIGNALLED == [signal.SIGTERM, signal.SIGHUP]
    SIGNALLED.clear()
