"""The fork cases of tests/test_fork_safety.py, which runs each in a fresh interpreter (``python -m
pytest tests/fork_cases.py::<case>``): a fork copies whatever the process's other threads hold, and a
test worker that ran other files before keeps their threads (a server's, a session run's inside
onnxruntime), so a child forked there could wait on a lock that no test of this file took.

A fork (``os.fork``, multiprocessing's "fork" start method) while another thread holds one of the
runtime's locks or is inside a session run gives the child fresh locks and no run in flight
(``os.register_at_fork``): the child neither waits forever on a lock copied locked nor steps as if
another thread ran beside it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from nextword.runtime import default, generate, load
from nextword.runtime import model as model_module
from nextword.runtime import session as session_module
from nextword.runtime.default import BUNDLED_MODEL

forks = pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(os, "register_at_fork"),
    reason="no os.fork on this platform (Windows): a child process starts fresh and loads its own model",
)
# Python 3.12 warns at every fork of a process with threads: forking beside a busy thread is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")

CHILD_SECONDS = 10  # a child runs for well under a second; one that waits on a lock copied locked never ends
PROMPTS = ["the network", "a method for", "the processor", "a neural network", "the present invention"]


def _in_child(work: Callable[[], Any]) -> str:
    """Fork, run ``work`` in the child and return the ``repr`` of its result (or its exception, named);
    fails the test when the child has not ended within :data:`CHILD_SECONDS` (it is killed then)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it must never return into pytest
        try:
            os.close(read)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler, the parent's
            signal.alarm(CHILD_SECONDS + 5)  # should the parent die before it kills a hung child
            try:
                said = repr(work())
            except BaseException as exc:
                said = f"{type(exc).__name__}: {exc}"
            os.write(write, said.encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + CHILD_SECONDS
    while os.waitpid(pid, os.WNOHANG)[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            pytest.fail(f"the forked child had not ended after {CHILD_SECONDS} s: it waits on a lock")
        time.sleep(0.01)
    with os.fdopen(read, "rb") as pipe:
        return pipe.read().decode()


@contextmanager
def _held_by_another_thread(lock: Any) -> Iterator[None]:
    """``lock`` held by another thread for the length of the block (as while it loads a model)."""
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            done.wait()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(5)
    try:
        yield
    finally:
        done.set()
        thread.join()


@forks
def test_a_fork_while_the_default_model_loads_leaves_the_child_a_usable_default():
    """The default model's lock, copied locked, made the child's first generate() wait forever."""
    expected = generate("the network", model=BUNDLED_MODEL, max_words=4, temperature=0)  # loaded now
    with _held_by_another_thread(default._lock):
        said = _in_child(lambda: generate("the network", model=BUNDLED_MODEL, max_words=4, temperature=0))
    assert said == repr(expected)


class _Waiting:
    """A session whose run waits until released: a run in flight on another thread."""

    def __init__(self) -> None:
        self.running, self.release = threading.Event(), threading.Event()

    def run(self, outputs: Any, feed: Any, options: Any = None) -> list:
        self.running.set()
        self.release.wait(5)
        return []


@forks
def test_a_fork_while_a_run_is_in_flight_leaves_the_child_none():
    """A run in flight on another thread stayed counted in the child for good: its steps never ran
    alone, so never on the faster two-thread session."""
    before = session_module.runs_in_flight()
    session = _Waiting()
    thread = threading.Thread(target=session_module.run_session, args=(session, [], {}, "test"))
    thread.start()
    try:
        assert session.running.wait(5)
        assert session_module.runs_in_flight() == before + 1
        said = _in_child(lambda: (session_module.runs_in_flight(), session_module.alone()))
    finally:
        session.release.set()
        thread.join()
    assert said == repr((0, True))
    assert session_module.runs_in_flight() == before  # the parent's count is its own


@forks
def test_a_fork_while_a_model_makes_a_session_or_checks_leaves_the_child_able_to_step(monkeypatch):
    """A model's plan locks while it makes the two-thread session for large batches, its check while it
    compares the sessions: copied locked, the child's first step of such a batch waited forever."""
    monkeypatch.setattr(model_module, "usable_cores", lambda: 2)  # the wide session and its check
    expected = [load(BUNDLED_MODEL).generate(PROMPTS[:rows], max_words=3, temperature=0) for rows in (2, 5)]
    model = load(BUNDLED_MODEL)  # no step yet: the checks of 2 rows on, and the pair, are still to make
    plan = model._plan
    assert plan._check is not None and plan.sessions[2] is None

    def steps() -> tuple[list[list[str]], bool, bool]:
        texts = [model.generate(PROMPTS[:rows], max_words=3, temperature=0) for rows in (2, 5)]
        return texts, plan._lock.acquire(blocking=False), plan._check._lock.acquire(blocking=False)

    with _held_by_another_thread(plan._lock), _held_by_another_thread(plan._check._lock):
        said = _in_child(steps)
    assert said == repr((expected, True, True))


@forks
def test_every_check_of_a_plan_gets_a_fresh_lock_in_the_child():
    """The check of the pair against the wide session too, not only the first one."""
    from nextword.runtime import session_plan

    plan = load(BUNDLED_MODEL)._plan
    held = threading.Lock()
    held.acquire()

    class Check:  # stands for a WideCheck caught mid-comparison by the fork
        _lock = held

    plan._check, plan._pair_wide = Check(), Check()
    try:
        session_plan._unlock_plans()  # what the hook runs in a child
        assert plan._check._lock is not held and plan._pair_wide._lock is not held
        assert plan._pair_wide._lock.acquire(blocking=False)
    finally:
        plan._check = plan._pair_wide = None
