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
import threading
import time
from pathlib import Path

import pytest

from nextword.serve.worker_exit import end_worker, retry_later

# `python -c WORKER MODE FILE SUPERVISOR SECONDS`: a stand-in worker whose model file does not load. All it
# says stays in a buffer until it ends: its log line in a handler that buffers (logging.shutdown flushes it
# into FILE.log), a text without a newline in standard output's and standard error's. The interpreter's
# teardown, which os._exit skips, would print "torn down". Its wait is SECONDS ("default": retry_later's
# own, RETRY_SECONDS as the module was loaded); it writes FILE.waiting as it sleeps there (how long each
# sleep lasts), the file's signature taken first (a change before then would go unseen).
WORKER = """
import atexit, logging, logging.handlers, os, sys, time
from nextword.serve import worker_exit
from nextword.serve.worker_exit import end_worker, retry_later
mode, path, supervisor, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
worker_exit.RETRY_SECONDS = 600.0  # not retry_later's default (bound as it loaded): a wait reading it hangs
atexit.register(print, "torn down")
sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # buffered (CPython's own writes through)
log = logging.handlers.MemoryHandler(100, logging.CRITICAL + 1, logging.FileHandler(path + ".log"))
logging.getLogger("worker").addHandler(log)
logging.getLogger("worker").error("this worker cannot start")
print("no newline, held in the buffer", end="")
print("nor this one", end="", file=sys.stderr)
if mode == "retry":
    sleep = time.sleep
    def waiting(seconds):
        with open(path + ".sleep", "w") as marker:
            marker.write(str(seconds))
        os.replace(path + ".sleep", path + ".waiting")  # whole as the test reads it
        sleep(seconds)
    time.sleep = waiting
    if seconds == "default":
        retry_later(path, supervisor)
    else:
        retry_later(path, supervisor, float(seconds))
end_worker(3, supervisor)
"""
SAID = ("this worker cannot start\n", "no newline, held in the buffer", "nor this one")  # log, out, err


def _said(model: Path, out: str, err: str) -> tuple[str, str, str]:
    """What the worker said, in its log file, standard output and standard error."""
    log = Path(str(model) + ".log")
    return log.read_text(encoding="utf-8") if log.exists() else "", out, err


def _worker(tmp_path: Path, mode: str, seconds: float | str) -> tuple[subprocess.Popen, Path]:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    argv = [sys.executable, "-c", WORKER, mode, str(model), str(os.getpid()), str(seconds)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    return process, model


def _env(**more: str) -> dict[str, str]:
    """This environment without PYTHONUNBUFFERED (a worker's streams hold what it writes until a flush),
    with ``more``."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | more


def _waiting(process: subprocess.Popen, model: Path) -> None:
    """Once the worker waits in retry_later (bounded: a failure shows what the worker said)."""
    deadline = time.monotonic() + 60
    while not Path(str(model) + ".waiting").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def test_a_worker_ends_at_once_with_what_it_said_flushed(tmp_path):
    process, model = _worker(tmp_path, "end", 0)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert _said(model, out, err) == SAID


@pytest.mark.parametrize("seconds", [0.5, "default"])
def test_a_worker_whose_file_does_not_load_waits_then_ends_with_1(tmp_path, seconds):
    """The wait given, or the default one (RETRY_SECONDS: 5 s), which lasts more than a moment: a worker
    that ended at once would be started again by uvicorn in a loop that fills the log."""
    started = time.monotonic()
    process, model = _worker(tmp_path, "retry", seconds)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert _said(model, out, err) == SAID
    if seconds == "default":
        assert time.monotonic() - started > 1  # a bound below: its wait alone lasts 5 s


@pytest.mark.parametrize(
    "change",
    [
        "replaced",
        "replaced, its size and time kept",  # only its inode tells (a copy made with cp -p, tar x)
        "removed",
        "rewritten",  # the same inode and size: only its time tells
        "rewritten, its time put back",  # only its size tells (a clock coarser than the two writes)
    ],
)
def test_the_wait_ends_as_the_model_file_changes(tmp_path, change):
    """The wait would last 10 minutes: the file put back (or taken away, or written over in place) ends
    it, so that uvicorn starts the worker again on the new file at once."""
    process, model = _worker(tmp_path, "retry", 600)
    try:
        _waiting(process, model)
        slept = float(Path(f"{model}.waiting").read_text(encoding="utf-8"))
        assert 0 < slept <= 1, slept  # it looks at the file every second at least, without spinning
        before = model.stat().st_mtime_ns
        if change.startswith("replaced"):
            new = tmp_path / "new.onnx"
            new.write_bytes(b"garbage" if "kept" in change else b"another file")
            if "kept" in change:
                os.utime(new, ns=(before, before))
            os.replace(new, model)
        elif change == "removed":
            model.unlink()
        else:
            model.write_bytes(b"rubbish" if change == "rewritten" else b"more rubbish")
            if "put back" in change:
                os.utime(model, ns=(before, before))
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1, err
    assert _said(model, out, err) == SAID


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
    assert _said(model, out, err) == SAID  # no traceback


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
    then the wait, which the file put back ends (status 1: uvicorn starts the worker again). The wait is
    made 10 minutes here, so that only the file it watches ends it."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    import dataclasses
    import json

    from nextword.serve import ServeConfig
    from nextword.serve.app import CONFIG_ENV

    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    settings = {**dataclasses.asdict(ServeConfig(model=str(model))), "_supervisor": os.getpid()}
    code = (
        "from nextword.serve import worker_exit; worker_exit.retry_later.__defaults__ = (600.0,)\n"
        "from nextword.serve.app import app_from_environment; app_from_environment()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, CONFIG_ENV: json.dumps(settings)},
    )
    silent = threading.Timer(60, process.kill)  # a worker that says nothing: its pipe closed, no hang
    silent.start()
    try:
        said = process.stderr.readline()
        assert "this worker cannot start" in said and "m.onnx" in said, said
        silent.cancel()
        time.sleep(1)  # a worker that did not wait would have ended by now
        assert process.poll() is None, "the worker ended without waiting for another file"
        (tmp_path / "new.onnx").write_bytes(b"another file")
        os.replace(tmp_path / "new.onnx", model)
        process.wait(timeout=60)
    finally:
        silent.cancel()
        process.kill()
        process.stderr.close()
    assert process.returncode == 1


# `python -c LIFESPAN`: a worker of `serve --workers` whose start-up fails in its app's lifespan (its
# scheduler cannot be made), with the test's process as its supervisor.
LIFESPAN = """
import asyncio, atexit
import nextword.serve.app
from nextword.serve.app import app_from_environment

def fails(*args, **kwargs):
    raise RuntimeError("no scheduler here")

nextword.serve.app.make_scheduler = fails
atexit.register(print, "torn down")
app = app_from_environment()

async def start_up():
    async with app.router.lifespan_context(app):
        print("started")

asyncio.run(start_up())
"""


def test_a_worker_whose_lifespan_fails_ends_with_uvicorns_startup_failure(tmp_path):
    """The worker's lifespan (serve/app.py) fails to start: the worker says why and ends at once with
    uvicorn's status for a start-up failure (3, which stops the supervisor, where 1 would have it started
    again), without the interpreter's teardown (no "torn down"), rather than raising to uvicorn."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    import dataclasses
    import json

    from nextword.serve import ServeConfig
    from nextword.serve.app import CONFIG_ENV
    from nextword.serve.main_guard import STARTUP_FAILURE

    settings = {**dataclasses.asdict(ServeConfig()), "_supervisor": os.getpid()}  # the bundled model
    ended = subprocess.run(
        [sys.executable, "-c", LIFESPAN],
        capture_output=True,
        text=True,
        env=_env(**{CONFIG_ENV: json.dumps(settings)}),
        timeout=120,
    )
    assert (ended.returncode, ended.stdout) == (STARTUP_FAILURE, ""), ended.stderr
    assert "this worker cannot start; uvicorn stops the server" in ended.stderr, ended.stderr
    assert ended.stderr.rstrip().endswith("RuntimeError: no scheduler here"), ended.stderr


# `python -c PINGED MODE FILE WAIT`: uvicorn's record of a worker (its Process, with the pipe its pings travel
# through), then a fork: the child is the worker, with uvicorn's thread that answers pings, and ends
# (MODE "end": end_worker at once; "retry": retry_later on FILE, ended, once it waits, by the parent's
# SIGTERM, or its SIGINT with "int" in MODE, or FILE replaced with "changed"); the parent is its
# supervisor, holding both ends of the pipe as uvicorn's does. It pings the worker half a second after the
# fork (when "ping" is in MODE; the worker's answer takes half a second with "slow") and again half a
# second after a SIGINT or the file's change, and prints the last ping's answer, the worker's exit status
# and the seconds from the fork to its end. A worker waits WAIT seconds for a ping (ANSWER_SECONDS;
# "default": the module's), never more than 10 for the file.
PINGED = """
import json, os, signal, sys, threading, time
from uvicorn import Config
from uvicorn.supervisors.multiprocess import Process
from nextword.serve import worker_exit
mode, path = sys.argv[1], sys.argv[2]
if sys.argv[3] != "default":
    worker_exit.ANSWER_SECONDS = float(sys.argv[3])
worker_exit.RETRY_SECONDS = 600.0  # a wait for a ping that read it in place of ANSWER_SECONDS would hang
process = Process(Config(app="nowhere:app"), [])
started = time.monotonic()
child = os.fork()
if child == 0:
    if "slow" in mode:  # an answer that takes its time (a loaded machine): sent before the worker ends
        class Slow:
            def __init__(self, conn):
                self.conn, self.recv = conn, conn.recv
            def send(self, answer):
                time.sleep(0.5)
                self.conn.send(answer)
        process.child_conn = Slow(process.child_conn)
    threading.Thread(target=process.always_pong, daemon=True).start()
    if mode.startswith("retry"):
        sleep = time.sleep
        def waiting(seconds):  # its signal handlers set, the file's signature taken
            open(path + ".waiting", "w").close()
            sleep(seconds)
        time.sleep = waiting
        worker_exit.retry_later(path, os.getppid(), 10)
    worker_exit.end_worker(3, os.getppid())
def ping():
    process.parent_conn.send(b"ping")
    return process.parent_conn.recv() if process.parent_conn.poll(20) else "no answer"
time.sleep(0.5)
answered = ping() if "ping" in mode else None
if mode.startswith("retry"):
    deadline = time.monotonic() + 60
    while not os.path.exists(path + ".waiting"):
        assert time.monotonic() < deadline, "the worker never waited"
        time.sleep(0.05)
    if "changed" in mode:
        os.replace(path + ".new", path)
    else:
        os.kill(child, signal.SIGINT if "int" in mode else signal.SIGTERM)
if "changed" in mode or "int" in mode:
    time.sleep(0.5)  # the worker has seen it (a ping earlier is answered too: it then waits for another)
    answered = ping()
_, status = os.waitpid(child, 0)
print(json.dumps([answered, os.waitstatus_to_exitcode(status), time.monotonic() - started]))
"""


def _pinged(tmp_path: Path, mode: str, wait: float | str = 30) -> tuple[object, int, float]:
    """What PINGED says: the answer to its ping (None where it sent none), the worker's status, its end."""
    import json

    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    (tmp_path / "m.onnx.new").write_bytes(b"another file")
    ran = subprocess.run(
        [sys.executable, "-c", PINGED, mode, str(model), str(wait)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr  # from neither, nor from the worker's thread
    return tuple(json.loads(ran.stdout))


@pytest.fixture
def pinging_uvicorn():
    """uvicorn's worker record with the thread that answers its supervisor's pings (0.30 on), and fork."""
    from uvicorn.supervisors import multiprocess

    if not hasattr(getattr(multiprocess, "Process", None), "always_pong"):
        pytest.skip("this uvicorn's supervisor does not ping its workers (0.30 on does)")
    if not hasattr(os, "fork"):
        pytest.skip("the stand-in supervisor forks its worker")


@pytest.mark.usefixtures("pinging_uvicorn")
@pytest.mark.parametrize("mode", ["end ping", "end ping slow"])
def test_a_ping_on_its_way_as_the_worker_ends_is_answered_first(tmp_path, mode):
    """The worker has decided to end when its supervisor pings it (the supervisor saw it alive just
    before): it ended unanswering, and the supervisor, which keeps the pipe open, waited a minute on it
    (deaf to signals, starting no worker; once in CI). It now ends just after its answer, long before
    its 30 s wait for one is up, and only once its answer is sent, however long that takes."""
    answered, status, seconds = _pinged(tmp_path, mode)
    assert (answered, status) == (False, 3)  # False: its server has not started
    assert seconds < 15, seconds


@pytest.mark.usefixtures("pinging_uvicorn")
def test_a_worker_that_no_ping_reaches_ends_after_its_wait(tmp_path):
    """No ping comes (its supervisor is busy with another worker): it ends after ANSWER_SECONDS (2 s),
    more than the half second between two of the supervisor's pings, so that a ping due is answered."""
    answered, status, seconds = _pinged(tmp_path, "end", wait="default")
    assert (answered, status) == (None, 3)
    assert 1 < seconds < 30, seconds


@pytest.mark.usefixtures("pinging_uvicorn")
@pytest.mark.parametrize(("mode", "status"), [("retry changed", 1), ("retry int", 128 + signal.SIGINT)])
def test_a_waiting_worker_ends_after_answering_a_ping(tmp_path, mode, status):
    """A worker whose file does not load ends its wait as the file changes (status 1, started again) or
    at a Ctrl-C, which reaches its supervisor too, still pinging: either way a ping may be on its way,
    and the worker answers it before it ends (ANSWER_SECONDS: 30 s here). Ending unanswering, it would
    leave the supervisor waiting on that ping."""
    assert _pinged(tmp_path, mode)[:2] == (False, status)


@pytest.mark.usefixtures("pinging_uvicorn")
@pytest.mark.parametrize("mode", ["retry", "retry ping"])
def test_the_supervisors_sigterm_ends_a_waiting_worker_without_waiting_for_a_ping(tmp_path, mode):
    """The supervisor's SIGTERM (a stop, a reload) comes with its end of the pipe closed: no ping will
    come, and the worker ends at once, not after ANSWER_SECONDS (30 s here), pings answered until then."""
    answered, status, seconds = _pinged(tmp_path, mode)
    assert (answered, status) == (False if "ping" in mode else None, 128 + signal.SIGTERM)
    assert seconds < 15, seconds
