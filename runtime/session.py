"""Running the onnxruntime session: the one place its failures become a nextword exception."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from . import onnxruntime_build  # noqa: F401  (its import checks the install, before RunOptions below)
from .errors import ModelRunError

__all__ = ["alone", "run_bound", "run_session", "runs_in_flight", "wrong_shapes"]

# onnxruntime also logs a failing node to stderr; the exception below already says it all, once.
_QUIET = ort.RunOptions()
_QUIET.log_severity_level = 4  # fatal only; read-only during a run, so threads can share it

# One entry per session run in progress in this process, whatever the model: list appends and pops are
# atomic, so no lock is taken. Models with a second, multi-threaded session read it (through alone()).
_FLIGHT: list[None] = []
_LAST: tuple[int, float] = (0, 0.0)  # the thread that ended a run last, and when (perf_counter)
_OTHER = 0.0  # when a thread other than _LAST's last ended a run: the latest end that thread did not see
# Another thread's run that ended this recently means it is stepping too: a Python thread may hold the
# GIL for 5 ms (sys.getswitchinterval()) before the others get theirs, so a gap of a few ms is normal.
QUIET_SECONDS = 0.02


def _forget_runs_in_child() -> None:
    """After a fork: no run in flight and none ended on another thread. Runs in flight on the parent's
    other threads do not exist in the child, which has one thread, and would never leave the count:
    the child would never step alone, and never on the faster two-thread session."""
    global _LAST, _OTHER
    _FLIGHT.clear()
    _LAST, _OTHER = (0, 0.0), 0.0


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_runs_in_child)


def runs_in_flight() -> int:
    """How many nextword session runs are in progress in this process right now."""
    return len(_FLIGHT)


def alone() -> bool:
    """Whether a run starting now has the process to itself: none in progress, and none ended on
    another thread within :data:`QUIET_SECONDS`. (Threads stepping in turn spend most of their time in
    Python, waiting for the GIL, not in a run: the recent end is what shows them. A thread that steps
    back to back usually ended the last run itself, so the latest end by another thread is kept too.)"""
    if _FLIGHT:
        return False
    thread, ended = _LAST
    if thread == threading.get_ident():  # this thread ended the last run: when did another end one?
        ended = _OTHER
    return time.perf_counter() - ended > QUIET_SECONDS


def _leave() -> None:
    """Take a run out of the count (first thing in a run's ``finally``)."""
    try:  # noqa: SIM105 (contextlib.suppress costs a context manager on every step)
        _FLIGHT.pop()
    except IndexError:  # interrupted before it was counted
        pass


def _landed() -> None:
    """A run of this thread ended (the caller has taken it out of the count): the last to end."""
    global _LAST, _OTHER
    me, now = threading.get_ident(), time.perf_counter()
    if _LAST[0] != me:  # the run that ended before was another thread's: the latest end by another
        _OTHER = _LAST[1]
    _LAST = (me, now)


def run_session(
    session: Any, outputs: Sequence[str], feed: Mapping[str, np.ndarray], source: str
) -> list[np.ndarray]:
    """``session.run(outputs, feed)``, with any onnxruntime failure raised as :class:`ModelRunError`
    naming ``source`` (the model file) and the shapes fed.

    onnxruntime raises its own exception types (``Fail``, ``InvalidArgument``, ``RuntimeException``...,
    none of them ``ValueError``); after ``load()`` has probed the graph such a failure means the file's
    graph breaks on inputs the probe did not try. The ``try`` costs nothing when nothing fails.
    """
    # The count goes up inside the try and down first thing in the finally: Python raises a pending
    # KeyboardInterrupt (Ctrl-C) after a call returns, so an interrupt cannot fall between the append
    # and the try (a run interrupted there stayed counted for the life of the process, and every later
    # step thought it ran beside another). Where an interpreter raises it before the append instead, the
    # finally finds nothing of this run's to take out: _leave() never fails on that.
    try:
        _FLIGHT.append(None)
        return session.run(outputs, feed, _QUIET)
    except Exception as exc:  # onnxruntime's exception classes share no base but Exception
        shapes = ", ".join(f"{name} {getattr(value, 'shape', '?')}" for name, value in feed.items())
        reason = " ".join(str(exc).split())  # one line, whatever onnxruntime wrote
        raise ModelRunError(
            f"{source}: onnxruntime failed running the model on {shapes}: {reason[:500]}; "
            f"{_likely_cause(session)}"
        ) from exc
    finally:
        _leave()
        _landed()


def wrong_shapes(
    source: str, ids_shape: tuple[int, ...], logits: np.ndarray, state: Sequence[np.ndarray], wanted: tuple
) -> ModelRunError:
    """The error for a step whose outputs have shapes the nextword signature does not allow."""
    shapes = ", ".join(str(getattr(s, "shape", "?")) for s in state)
    return ModelRunError(
        f"{source}: on input_ids of shape {ids_shape} the graph returned logits of shape "
        f"{getattr(logits, 'shape', '?')} (expected {wanted}) and state of shapes {shapes}; the graph only "
        "works for some batch sizes or lengths: the file is damaged or crafted, re-download or re-export it"
    )


def run_bound(session: Any, binding: Any, source: str, rows: int) -> None:
    """``session.run_with_iobinding(binding)`` for a single-token step of ``rows`` rows, with any
    onnxruntime failure (a graph whose outputs do not fit the bound shapes, among others) raised as
    :class:`ModelRunError` naming ``source``."""
    # No RunOptions here: passing any (even the defaults) to run_with_iobinding costs ~30 us a call in
    # onnxruntime 1.2x, a third of the bundled model's step. load() makes sessions that log nothing.
    try:
        _FLIGHT.append(None)  # inside the try, as in run_session
        session.run_with_iobinding(binding)
    except Exception as exc:  # onnxruntime's exception classes share no base but Exception
        reason = " ".join(str(exc).split())
        raise ModelRunError(
            f"{source}: onnxruntime failed running the model on input_ids ({rows}, 1) and its state: "
            f"{reason[:500]}; {_likely_cause(session)}"
        ) from exc
    finally:
        _leave()
        _landed()


def _likely_cause(session: Any) -> str:
    """What a step that onnxruntime refused most likely means: on the CPU, after load()'s probe, a
    damaged or crafted file; on another provider also the device (out of memory, a failed kernel)."""
    damaged = "the file is damaged or crafted: re-download or re-export it"
    try:
        provider = session.get_providers()[0]
    except Exception:  # a stand-in session without providers (tests): the file, as on the CPU
        return damaged
    if provider == "CPUExecutionProvider":
        return damaged
    return (
        f"on {provider} that may be the device (out of memory, a failed kernel: see onnxruntime's reason); "
        f"if the same call fails on the CPU (device='cpu') too, {damaged}"
    )
