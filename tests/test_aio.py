"""nextword.runtime's asyncio calls: the same texts as the plain calls, an event loop that keeps running,
and streams that end cleanly when left early or cancelled (also while a step runs in its thread)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import itertools
import threading
import warnings
from collections.abc import Iterator

import pytest

from nextword.runtime import agenerate, aio, astream, load
from nextword.runtime.default import BUNDLED_MODEL

OPTIONS = {"max_words": 12, "seed": 3}


@pytest.fixture(scope="module")
def bundled():
    return load(BUNDLED_MODEL)


async def _collect(pieces) -> list[str]:
    return [piece async for piece in pieces]


def test_astream_and_agenerate_give_the_plain_calls_texts(bundled):
    """Joined pieces equal generate()'s text; agenerate equals generate, for one prompt and a batch."""
    expected = bundled.generate("a neural network", **OPTIONS)
    pieces = asyncio.run(_collect(astream("a neural network", bundled, **OPTIONS)))
    assert len(pieces) > 1 and "".join(pieces) == expected
    assert asyncio.run(agenerate("a neural network", bundled, **OPTIONS)) == expected
    batch = asyncio.run(agenerate(["a neural network", "the method"], bundled, **OPTIONS))
    assert batch == bundled.generate(["a neural network", "the method"], **OPTIONS)


def test_the_default_model_and_a_path_are_accepted(monkeypatch):
    """Without a model the bundled one (or $NEXTWORD_MODEL) is used; a path is loaded."""
    monkeypatch.delenv("NEXTWORD_MODEL", raising=False)
    by_default = asyncio.run(agenerate("a neural network", **OPTIONS))
    by_path = "".join(asyncio.run(_collect(astream("a neural network", str(BUNDLED_MODEL), **OPTIONS))))
    assert by_default == by_path == load(BUNDLED_MODEL).generate("a neural network", **OPTIONS)


def test_the_event_loop_runs_other_tasks_between_pieces(bundled):
    """Another task gets the loop while a stream is under way (each word is made in a thread)."""

    async def main() -> list[str]:
        seen: list[str] = []

        async def other() -> None:
            while True:
                seen.append("tick")
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other())
        async for piece in astream("a neural network", bundled, max_words=30, seed=1):
            seen.append(piece)
        ticker.cancel()
        return seen

    seen = asyncio.run(main())
    words = [i for i, item in enumerate(seen) if item != "tick"]
    between = [seen[a + 1 : b] for a, b in itertools.pairwise(words)]
    assert sum("tick" in gap for gap in between) >= len(between) // 2  # not one burst at the end


def test_invalid_options_raise_the_plain_calls_error(bundled):
    """A bad option is the same ValueError as generate()'s, raised where the call is awaited."""
    with pytest.raises(ValueError) as plain:
        bundled.generate("a", temperature=-1)
    with pytest.raises(ValueError) as in_stream:
        asyncio.run(_collect(astream("a", bundled, temperature=-1)))
    with pytest.raises(ValueError) as in_generate:
        asyncio.run(agenerate("a", bundled, temperature=-1))
    assert str(in_stream.value) == str(in_generate.value) == str(plain.value)


def test_a_stream_left_early_gives_its_stepper_back(bundled):
    """break, aclose() and a cancelled task each end the model's stream: the next call reuses the
    stepper the stream had, and gives the same text as before."""
    expected = bundled.generate("the method", **OPTIONS)

    async def leave_by_break() -> None:
        async for _piece in astream("a neural network", bundled, max_words=40, seed=1):
            break

    async def leave_by_cancel() -> None:
        started = asyncio.Event()

        async def consume() -> None:
            async for _piece in astream("a neural network", bundled, max_words=40, seed=1):
                started.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for leave in (leave_by_break, leave_by_cancel):
        bundled._idle.clear()
        asyncio.run(leave())
        gc.collect()
        assert len(bundled._idle) == 1, leave.__name__  # the stream's stepper, given back
        assert bundled.generate("the method", **OPTIONS) == expected


async def _cancel_inside_then_release(
    model, inside: threading.Event, release: threading.Event, events: list[str], at_cancel: list[str]
) -> None:
    """Iterate astream() in a task, cancel it once a worker thread is ``inside`` the stream (the task
    ends at once: ``events`` are still ``at_cancel``), then ``release`` that thread and wait (at most
    10 s) for the stream's close, which the loop does once the thread is done."""

    async def consume() -> None:
        async for _piece in astream("a", model):
            pass

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(inside.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == at_cancel
    release.set()
    for _ in range(100):
        if "closed" in events:
            break
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("step_outcome", ["a piece", "an error"])
def test_cancelling_during_a_step_closes_the_stream_after_the_step(bundled, monkeypatch, step_outcome):
    """A task cancelled while its step runs in a worker thread: the stream is not closed under that
    thread (which would raise 'generator already executing') but once the step returns, and an error
    of that step, awaited by nobody, is not reported as never retrieved."""
    inside, release = threading.Event(), threading.Event()
    events: list[str] = []

    def slow_stream(prompt, config=None, **options) -> Iterator[str]:
        try:
            yield "first"
            events.append("step begins")
            inside.set()
            assert release.wait(60)
            events.append("step ends")
            if step_outcome == "an error":
                raise RuntimeError("the step failed after its task was cancelled")
            yield "second"
            events.append("resumed after close")  # never: close() ends it at the yield above
        finally:
            events.append("closed")

    monkeypatch.setattr(bundled, "stream", slow_stream)

    async def main() -> None:
        await _cancel_inside_then_release(bundled, inside, release, events, ["step begins"])
        assert events == ["step begins", "step ends", "closed"]  # closed while the loop runs

    loop_errors: list[dict] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        try:
            loop.run_until_complete(main())
            gc.collect()
        finally:
            loop.close()
    assert loop_errors == [] and not [w for w in caught if "never retrieved" in str(w.message)]


def test_cancelling_while_the_stream_is_made_closes_it_once_made(bundled, monkeypatch):
    """The prompt is fed when the stream is made, in a worker thread too: a task cancelled then still
    has the stream it was making closed (its stepper given back), once that thread is done."""
    inside, release = threading.Event(), threading.Event()
    events: list[str] = []
    made: list[Iterator[str]] = []

    def slow_start(prompt, config=None, **options) -> Iterator[str]:
        events.append("feeding the prompt")
        inside.set()
        assert release.wait(60)

        def pieces() -> Iterator[str]:
            try:
                yield "first"
            finally:
                events.append("closed")

        stream = pieces()
        next(stream)  # started, as the model's stream is once it holds a stepper
        made.append(stream)  # held here: only a close() ends it, not the garbage collector
        return stream

    monkeypatch.setattr(bundled, "stream", slow_start)

    async def main() -> None:
        await _cancel_inside_then_release(bundled, inside, release, events, ["feeding the prompt"])
        assert events == ["feeding the prompt", "closed"]  # closed by the loop, not left to the collector

    asyncio.run(main())


def test_astream_steps_see_the_callers_context_variables(monkeypatch):
    """Each step runs with the caller's context variables (a request id a log filter reads), as
    asyncio.to_thread runs a call; a bare executor call saw their defaults."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    class Fake:
        def stream(self, prompt, config=None, **options) -> Iterator[str]:
            yield var.get()
            yield var.get()

    monkeypatch.setattr(aio, "default_model", lambda model: Fake())

    async def main() -> list[str]:
        var.set("the caller's")
        return [piece async for piece in astream("a")]

    assert asyncio.run(main()) == ["the caller's", "the caller's"]
