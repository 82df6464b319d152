"""How ``nextword serve`` ends when a signal comes at an awkward moment, and what it leaves behind: a
Ctrl-C while uvicorn starts (it exited 0, silently), a worker of ``--workers`` that fails to start (0,
as if stopped on purpose), a SIGTERM before uvicorn's supervisor took the signal (the metrics folder
stayed), ``serve()`` from Python with ``--workers`` (uvicorn's handlers stayed installed), Ctrl-C twice
while a score runs on a thread (the process waited for it), and a standard error whose reader has gone
(a BrokenPipeError, status 1). Each runs the command through its entry point in a process of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_ports

pytest.importorskip("uvicorn", reason="install nextword[serve] to test the server")

# `python wrapper.py STAGE MARKER ARGS...`: runs `nextword ARGS...` (or, for "api-workers", serve() from
# Python), with STAGE's pause or fault in place. A pause writes the marker file, then waits there, so
# that the test's signal reaches the process at that stage. uvicorn's workers are spawned: they import
# this file again (as __mp_main__), which puts a worker's fault in place.
WRAPPER = """
import os, signal, sys, threading, time
stage, marker = (sys.argv[1], sys.argv[2]) if __name__ == "__main__" else (os.environ["STAGE"], "")

def pause(seconds=120):
    open(marker, "w").close()
    time.sleep(seconds)

if stage == "uvicorn-config":  # uvicorn has taken the signals, the app's handler is not yet chained
    import uvicorn.config
    real_load = uvicorn.config.Config.load
    def slow_load(self):
        pause(3)  # uvicorn's handler notes the signal; start-up goes on after the pause
        return real_load(self)
    uvicorn.config.Config.load = slow_load
elif stage == "bind" and __name__ == "__main__":  # the metrics folder is made, the supervisor not yet
    import uvicorn.config
    real_bind = uvicorn.config.Config.bind_socket
    def slow_bind(self):
        pause()
        return real_bind(self)
    uvicorn.config.Config.bind_socket = slow_bind
elif stage == "worker-fails" and __name__ != "__main__":
    import nextword.serve.app
    def fails(*args, **kwargs):
        raise RuntimeError("a worker's start-up fails here")
    nextword.serve.app.make_scheduler = fails
elif stage.startswith("score-blocks"):
    from nextword.runtime.model import NextWordModel
    def blocks(self, *args, **kwargs):
        open(marker, "w").close()
        threading.Event().wait()  # a score that never ends, on one of the server's threads
    NextWordModel.score = blocks

if __name__ == "__main__":
    os.environ["STAGE"] = stage
    if stage == "api-workers":
        from nextword.serve import ServeConfig, serve
        names = sorted(signal.valid_signals())
        before = [signal.getsignal(s) for s in names]
        open(marker, "w").close()
        serve(ServeConfig(port=int(sys.argv[3]), workers=2))
        print("handlers put back" if [signal.getsignal(s) for s in names] == before else "handlers left")
        sys.exit(0)
    if stage == "score-blocks-in-process":  # a program that calls the command line's main() itself
        from nextword.cli.main import main as command
        code = command(sys.argv[3:])
        print(f"main() returned {code}", flush=True)
        os._exit(0)  # its own choice: the score thread never ends
    from nextword.cli.entry import main
    sys.argv = ["nextword", *sys.argv[3:]]
    sys.exit(main())
"""


def _start(tmp_path: Path, stage: str, *args: str, stderr=None, unbuffered: bool = True) -> subprocess.Popen:
    """The wrapper in a session of its own (a failed test kills its workers too: :func:`_kill`)."""
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env |= {"TMPDIR": str(tmp_path / "tmp"), **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(script), stage, str(tmp_path / "reached"), *args],
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _kill(process: subprocess.Popen) -> str:
    """Kill the wrapper's whole process group (uvicorn's workers too); its standard error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _, err = process.communicate()
    return err or ""


def _wait_for(what: str, condition, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            err = _kill(process)
            pytest.fail(f"{what} did not happen (exit status {process.returncode}): {err[-2000:]}")
        time.sleep(0.05)


def _serving(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ends(process: subprocess.Popen, seconds: float = 60) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        err = _kill(process)
        pytest.fail(f"the server had not ended {seconds} s after the signal: {err[-2000:]}")
    return process.returncode, out, err


def test_ctrl_c_while_uvicorn_starts_is_an_interrupt(tmp_path):
    """uvicorn took the Ctrl-C before the app chained its handler, stopped, and the command exited 0."""
    process = _start(tmp_path, "uvicorn-config", "serve", "--port", str(free_ports(1)[0]))
    _wait_for("uvicorn's start-up", (tmp_path / "reached").exists, process)
    process.send_signal(signal.SIGINT)
    code, _, err = _ends(process)
    assert code == 130, err
    assert err.rstrip().endswith("nextword serve: interrupted"), err


def _uvicorn_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("uvicorn").split(".")[:2] if part.isdigit())


@pytest.mark.skipif(
    _uvicorn_version() < (0, 50),
    reason="uvicorn before 0.50 starts a worker that failed to start again (0.29: waits): its supervisor "
    "never stops by itself",
)
def test_a_worker_that_fails_to_start_fails_the_command(tmp_path):
    """uvicorn's supervisor stopped itself, and `nextword serve` exited 0, as after Ctrl-C."""
    process = _start(tmp_path, "worker-fails", "serve", "--port", str(free_ports(1)[0]), "--workers", "2")
    code, _, err = _ends(process, 120)
    assert code == 1, err
    assert "a worker's start-up fails here" in err
    assert err.rstrip().endswith(
        "a worker failed to start, and uvicorn stopped the server: the log above says why"
    )


def test_sigterm_before_the_supervisor_takes_it_removes_the_metrics_folder(tmp_path):
    """The default SIGTERM killed the process between making the workers' metrics folder and uvicorn's
    supervisor installing its handlers: the folder stayed in the temporary directory."""
    process = _start(tmp_path, "bind", "serve", "--port", str(free_ports(1)[0]), "--workers", "2")
    _wait_for("the supervisor's start-up", (tmp_path / "reached").exists, process)
    folders = lambda: [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("nextword-metrics-")]  # noqa: E731
    assert len(folders()) == 1
    process.send_signal(signal.SIGTERM)
    code, _, err = _ends(process)
    assert code == 143, err
    assert folders() == []


def test_serve_from_python_with_workers_puts_back_the_signal_handlers(tmp_path):
    """uvicorn's supervisor left its handlers installed: the calling program no longer stopped on a
    SIGTERM or a Ctrl-C once serve() had returned."""
    port = free_ports(1)[0]
    process = _start(tmp_path, "api-workers", str(port))
    _wait_for("the workers to listen", lambda: _serving(port), process)
    time.sleep(0.5)  # both workers serving: none starts while the supervisor stops
    process.send_signal(signal.SIGINT)
    code, out, err = _ends(process)
    assert (code, out.strip()) == (0, "handlers put back"), err


@pytest.mark.parametrize("caller", ["the command", "a program calling main()"])
def test_ctrl_c_twice_ends_the_process_while_a_score_still_runs(tmp_path, caller):
    """The interpreter waited at exit for the thread still scoring (seconds for a long text; here it
    never ends), and a third Ctrl-C printed a traceback from threading's shutdown. The command's process
    now ends at once; a program that calls ``nextword.cli.main.main`` itself gets the status back."""
    port = free_ports(1)[0]
    stage = "score-blocks" if caller == "the command" else "score-blocks-in-process"
    process = _start(
        tmp_path, stage, "serve", "--port", str(port), "--shutdown-timeout", "1", "--allowed-host", "x"
    )
    _wait_for("the server to listen", lambda: _serving(port), process)
    client = socket.create_connection(("127.0.0.1", port))
    body = b'{"text": "the network learns"}'
    client.sendall(
        b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        _wait_for("the score to start", (tmp_path / "reached").exists, process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        code, out, err = _ends(process, 30)
    finally:
        client.close()
    assert "Traceback" not in err
    assert err.rstrip().endswith("nextword serve: interrupted"), err
    if caller == "the command":
        assert code == 130, err
    else:
        assert (code, out.strip().splitlines()[-1]) == (0, "main() returned 130"), out + err


@pytest.mark.parametrize("buffered", [False, True])
def test_ctrl_c_with_standard_error_gone_still_exits_130(tmp_path, buffered):
    """`nextword serve 2>&1 | head -1`: the "interrupted" line met a closed pipe, and the BrokenPipeError
    made the status 1; once caught, the line left in a buffered standard error failed the interpreter's
    final flush (status 120)."""
    port = free_ports(1)[0]
    read, write = os.pipe()
    process = _start(tmp_path, "none", "serve", "--port", str(port), stderr=write, unbuffered=not buffered)
    os.close(write)
    try:
        _wait_for("the server to listen", lambda: _serving(port), process)
    finally:
        os.close(read)  # its reader gone: every later line on standard error fails
    process.send_signal(signal.SIGINT)
    code, _, _ = _ends(process)
    assert code == 130


def test_many_other_signals_do_not_hide_the_ctrl_c_that_stops_the_workers():
    """Every signal with a handler writes a byte to the supervisor's wakeup descriptor (uvicorn takes a
    terminal's resizes, SIGWINCH): a Ctrl-C past the first 4,096 bytes was not seen, and the stop was
    said to be a worker that failed to start. The descriptor is read to its end as bytes come."""
    import threading

    from nextword.serve.stop_signals import SignalWatch, _note_stops

    read, write = socket.socketpair()
    watch = SignalWatch()
    reader = threading.Thread(target=_note_stops, args=(read, watch))
    reader.start()
    write.sendall(bytes([getattr(signal, "SIGWINCH", 28)]) * 10_000 + bytes([signal.SIGINT]))
    write.close()
    reader.join(10)
    read.close()
    assert watch.seen == [signal.SIGINT]


def test_the_lifespan_puts_back_only_the_handlers_it_installed():
    """After a forced quit uvicorn put back the handlers it had found, and then the lifespan's clean-up
    wrote uvicorn's own back over them: a Python caller of serve() could no longer be stopped."""
    import asyncio

    from nextword.serve.app import _drain_on_signals

    original, loop = signal.getsignal(signal.SIGINT), asyncio.new_event_loop()

    def uvicorns(signum, frame):  # stands for uvicorn's handler, in place while it serves
        pass

    try:
        signal.signal(signal.SIGINT, uvicorns)
        restore = _drain_on_signals(object(), loop)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is not uvicorns  # the drain step chained before it
        restore()
        assert signal.getsignal(signal.SIGINT) is uvicorns  # a normal stop: uvicorn's again
        restore = _drain_on_signals(object(), loop)  # type: ignore[arg-type]
        signal.signal(signal.SIGINT, original)  # a forced quit: uvicorn has put back what it found
        restore()
        assert signal.getsignal(signal.SIGINT) is original
    finally:
        signal.signal(signal.SIGINT, original)
        loop.close()


class _Draining:
    """What the drain step reads and calls of the server's state (nextword.serve.state.ServerState)."""

    draining, accepting, stopped_by, jobs = False, True, None, ()

    def begin_shutdown(self, loop):
        self.draining = True

    def stop_listening(self, listeners):
        from nextword.serve.state import ServerState

        ServerState.stop_listening(self, listeners)  # type: ignore[arg-type]


def test_a_sigterm_stops_the_listener_at_once_and_leaves_other_handlers_alone():
    """uvicorn stops accepting at its next tick, up to 0.1 s after the signal; with --workers a worker it
    retires (a SIGHUP's restart) accepted connections meanwhile and answered them 503, where the other
    workers, on the same socket, would have served them. The drain step closes the listener at once."""
    import asyncio

    import uvicorn

    from nextword.serve.app import _drain_on_signals

    original = signal.getsignal(signal.SIGTERM)
    loop = asyncio.new_event_loop()
    server = uvicorn.Server(uvicorn.Config(app=None))
    listener = loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0))
    other = loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0))
    server.servers = [listener]
    try:
        signal.signal(signal.SIGTERM, server.handle_exit)  # as uvicorn's capture_signals puts it
        state = _Draining()
        restore = _drain_on_signals(state, loop)  # type: ignore[arg-type]
        assert listener.is_serving()
        signal.raise_signal(signal.SIGTERM)
        assert state.draining and state.accepting  # connections accepted until the listener closes
        loop.run_until_complete(asyncio.sleep(0))  # one turn of the loop, not uvicorn's tick
        assert server.should_exit and not listener.is_serving() and not state.accepting
        assert other.is_serving()  # a listener that is not the signalled server's stays
        restore()
        # a handler that is not a uvicorn server's: called, nothing closed
        seen = []
        signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
        state = _Draining()
        restore = _drain_on_signals(state, loop)  # type: ignore[arg-type]
        signal.raise_signal(signal.SIGTERM)
        loop.run_until_complete(asyncio.sleep(0))
        assert seen == [signal.SIGTERM] and other.is_serving() and not state.accepting
        restore()
    finally:
        signal.signal(signal.SIGTERM, original)
        for each in (listener, other):
            each.close()
        loop.close()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_sighup_stops_every_listener_of_the_server_and_none_of_another_objects():
    """A SIGHUP that nothing handles drains as a SIGTERM does: its drain step closes the listeners at
    once too, every one of the server's; a handler bound to an object that is not a uvicorn server
    closes none of that object's ``servers``, though it has some."""
    import asyncio

    import uvicorn

    from nextword.serve.app import _drain_on_signals

    class Foreign:  # another program's server, stopped by a method of its own
        def __init__(self, servers):
            self.servers, self.seen = servers, []

        def stop(self, signum, frame):
            self.seen.append(signum)

    originals = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    loop = asyncio.new_event_loop()
    server = uvicorn.Server(uvicorn.Config(app=None))
    first, second, other = (
        loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0)) for _ in range(3)
    )
    server.servers = [first, second]
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # nobody handles it: the drain step takes it
        signal.signal(signal.SIGTERM, server.handle_exit)
        state = _Draining()
        restore = _drain_on_signals(state, loop)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL  # or the signal would end pytest
        signal.raise_signal(signal.SIGHUP)
        loop.run_until_complete(asyncio.sleep(0))
        assert server.should_exit and state.draining and not state.accepting
        assert not first.is_serving() and not second.is_serving() and other.is_serving()
        restore()
        foreign = Foreign([other])
        signal.signal(signal.SIGTERM, foreign.stop)
        state = _Draining()
        restore = _drain_on_signals(state, loop)  # type: ignore[arg-type]
        signal.raise_signal(signal.SIGTERM)
        loop.run_until_complete(asyncio.sleep(0))
        assert foreign.seen == [signal.SIGTERM] and other.is_serving() and not state.accepting
        restore()
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)
        for each in (first, second, other):
            each.close()
        loop.close()
