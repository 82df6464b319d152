"""The runtime inside a long-running application: one model shared by many threads, streams and
generators abandoned midway, Ctrl-C in the middle of a step, and a model loaded before ``os.fork()``.
Whatever happened before, the next call must give the text it gives in a fresh process."""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nextword.runtime import BeamSearch, GenerationConfig, Generator
from nextword.runtime import session as session_module
from nextword.runtime.cache import CacheConfig
from nextword.runtime.model import IDLE_STEPPERS, NextWordModel

PROMPTS = ("the network", "a layer of", "", "each neuron")


@pytest.fixture(scope="module")
def cached(model):
    """The test model, its sessions shared, with cache settings as if its file stored them."""
    info = dataclasses.replace(model.info, cache=CacheConfig(theta=0.5, mix=0.3, window=256))
    return NextWordModel(model.session, info, model.source, plan=model._plan)


def _call(model, i: int):
    """One of the public calls, chosen and seeded by ``i`` (with and without the cache, beams, streams)."""
    prompt, kind = PROMPTS[i % len(PROMPTS)], i % 8
    if kind == 0:
        return model.generate(prompt, max_words=6, seed=i, top_k=20)
    if kind == 1:
        return "".join(model.stream(prompt, max_words=6, seed=i, top_p=0.9, stop="."))
    if kind == 2:
        return model.next_words(prompt, k=4)
    if kind == 3:
        score = model.score(prompt + " is trained on examples .")
        return score.total_logprob, [w.logprob for w in score.words]
    if kind == 4:
        return model.generate(prompt, max_words=5, num_beams=3, no_repeat_ngram_size=2)
    if kind == 5:
        return model.generate([prompt, "the layer"], max_words=5, seed=i, num_return_sequences=2, cache=True)
    if kind == 6:
        return model.generate(prompt, max_words=6, seed=i, cache=True, repetition_penalty=1.3)
    return model.generate(prompt, max_words=5, num_beams=2, cache=True)


def test_16_threads_of_mixed_calls_equal_the_same_calls_one_at_a_time(cached):
    serial = [_call(cached, i) for i in range(96)]
    order = list(range(96))[::-1]
    with ThreadPoolExecutor(max_workers=16) as pool:
        threaded = dict(zip(order, pool.map(lambda i: _call(cached, i), order), strict=True))
    assert [threaded[i] for i in range(96)] == serial
    assert session_module.runs_in_flight() == 0


def test_streams_and_generators_dropped_midway_leave_nothing_behind(model):
    reference = model.generate("the network", max_words=8, seed=3)
    for i in range(30):
        stream = model.stream("the network", max_words=40, stop_at_end=False, seed=i)
        next(stream)
        if i % 2:
            stream.close()
        del stream  # a generator dropped unfinished is closed at once: its stepper goes back
        gen = model.generator()
        gen.add(["the network", "a layer"], GenerationConfig(max_words=40, seed=i))
        gen.step()
        gen.step()
        del gen
    gc.collect()
    # half of a stream read by another thread, the rest by this one
    stream = model.stream("the network", max_words=8, seed=3)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(next(stream)))
    reader.start()
    reader.join()
    assert first[0] + "".join(stream) == reference
    assert len(model._idle) <= IDLE_STEPPERS
    assert session_module.runs_in_flight() == 0
    assert model.generate("the network", max_words=8, seed=3) == reference


class _InterruptedAfterAppend(list):
    """``_FLIGHT`` whose next append is followed by a KeyboardInterrupt, as when Ctrl-C arrives while a
    run is being counted and the interpreter raises it at its next check, right after the call."""

    armed = True

    def append(self, item) -> None:
        super().append(item)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def test_ctrl_c_as_a_run_is_counted_does_not_leave_it_counted(model, monkeypatch):
    """A run counted forever would make every later step of the process think another thread steps
    beside it: the two-thread session of steps that run alone would never be used again."""
    reference = model.generate("the network", max_words=5, seed=2)
    flight = _InterruptedAfterAppend()
    monkeypatch.setattr(session_module, "_FLIGHT", flight)
    with pytest.raises(KeyboardInterrupt):  # a plain session run (forward, prompts, scoring)
        model.forward(np.array([[2, 5]]), model.initial_state(1))
    assert session_module.runs_in_flight() == 0
    stepper = model.stepper()
    flight.armed = True
    with pytest.raises(KeyboardInterrupt):  # a run through I/O bindings (the decoding loops)
        stepper.step(np.array([2]), model.initial_state(1))
    assert session_module.runs_in_flight() == 0
    assert model.generate("the network", max_words=5, seed=2) == reference


def test_ctrl_c_as_a_run_ends_does_not_leave_it_counted(model, monkeypatch):
    reference = model.generate("the network", max_words=5, seed=2)
    landed = session_module._landed
    calls = []

    def interrupted() -> None:  # Ctrl-C raised at the entry of the bookkeeping after the run
        calls.append(None)
        if len(calls) == 1:
            raise KeyboardInterrupt
        landed()

    monkeypatch.setattr(session_module, "_landed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.forward(np.array([[2, 5]]), model.initial_state(1))
    assert session_module.runs_in_flight() == 0
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        model.stepper().step(np.array([2]), model.initial_state(1))
    assert session_module.runs_in_flight() == 0
    assert model.generate("the network", max_words=5, seed=2) == reference


class _Gated:
    """The model, whose steppers' first step waits for ``release`` once it has set ``entered``: a thread
    held inside a step, for as long as a test needs."""

    def __init__(self, model) -> None:
        self._model, self.entered, self.release = model, threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def stepper(self):
        inner, gate = self._model.stepper(), self

        class Stepper:
            def step(self, tokens, state):
                if not gate.entered.is_set():
                    gate.entered.set()
                    gate.release.wait(30)
                return inner.step(tokens, state)

        return Stepper()


def _inside_a_step(gated: _Gated, work) -> threading.Thread:
    """Start ``work`` on a thread and return once that thread is inside a step."""
    thread = threading.Thread(target=work)
    thread.start()
    assert gated.entered.wait(30)
    return thread


def test_a_generator_stepped_through_pieces_refuses_a_second_thread(model):
    """``pieces()`` (what ``stream()`` iterates) steps the batch like ``step()``: it holds the same lock,
    so another thread's step meanwhile is refused instead of corrupting the batch."""
    gated = _Gated(model)
    gen = Generator(gated, model.info.generation)
    (row,) = gen.add("the network", GenerationConfig(max_words=6, seed=1))
    texts: list[str] = []
    thread = _inside_a_step(gated, lambda: texts.append("".join(gen.pieces(row))))
    try:
        with pytest.raises(RuntimeError, match=r"step\(\) was called while another thread.*one thread"):
            gen.step()
    finally:
        gated.release.set()
        thread.join()
    assert texts == [model.generate("the network", max_words=6, seed=1)]


def test_a_beam_search_refuses_a_second_thread(model):
    gated = _Gated(model)
    search = BeamSearch(gated, [model.prompt_ids("the network")], GenerationConfig(num_beams=3, max_words=5))

    def run() -> None:
        while search.step():
            pass

    thread = _inside_a_step(gated, run)
    try:
        with pytest.raises(RuntimeError, match=r"BeamSearch\.step\(\) was called while another thread"):
            search.step()
    finally:
        gated.release.set()
        thread.join()
    assert search.texts() == [model.generate("the network", num_beams=3, max_words=5)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_model_loaded_and_used_before_fork_works_in_the_child(model):
    """gunicorn's --preload and multiprocessing's fork start method: the child inherits the sessions
    (their thread pools' threads are not copied into the child, yet its runs complete)."""
    prompts = ["the network", "a layer", "each neuron", "the layer", "a network", "the"]

    def texts() -> list:
        single = model.generate("the network", max_words=6, seed=4)
        return [single, *model.generate(prompts, max_words=4, seed=4)]

    expected = texts()
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report and leave without running anything of pytest's
        status = 1
        try:
            signal.alarm(60)
            got = texts()
            os.write(write, b"same" if got == expected else repr(got).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    deadline = time.monotonic() + 90
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung generating with the model loaded before fork")
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    assert os.waitstatus_to_exitcode(done[1]) == 0 and report == b"same", report
