"""Generation from asyncio code (a FastAPI or aiohttp app, a chat bot): the model's work runs in the
event loop's default executor, so the loop keeps serving while words are made.

    >>> async for piece in astream("a neural network", max_words=20, seed=1):
    ...     await websocket.send_text(piece)

A model step cannot be interrupted, so a cancelled call stops at the end of the step under way:
:func:`astream` makes one word at a time and is left between two words; :func:`agenerate` runs the
whole call in one thread and that thread finishes it (``max_words`` bounds how long) while the
awaiting task is already gone.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .default import default_model
from .generation import GenerationConfig
from .model import NextWordModel

__all__ = ["agenerate", "astream"]

ModelArg = str | os.PathLike[str] | bytes | NextWordModel | None

_END = object()  # next()'s default: the stream has ended


async def agenerate(prompt: str | list[str], model: ModelArg = None, **options: Any) -> str | list[str]:
    """:func:`~.default.generate` in a worker thread: the same arguments and the same result.

    ``model`` is a loaded model, a path or a file's bytes (see :func:`~.default.default_model`);
    without it, ``$NEXTWORD_MODEL`` or the bundled model, loaded once per process (in the worker
    thread too: the first call does not hold up the event loop while the file loads). Errors are
    those of :meth:`~.model.NextWordModel.generate`, raised where the call is awaited.
    """
    return await asyncio.to_thread(lambda: default_model(model).generate(prompt, **options))


async def astream(
    prompt: str,
    model: ModelArg = None,
    config: GenerationConfig | None = None,
    **options: Any,
) -> AsyncIterator[str]:
    """:meth:`~.model.NextWordModel.stream` for ``async for``: the same pieces, each made in a worker
    thread while the event loop goes on.

    ``model`` as in :func:`agenerate`; ``config``: a :class:`~.generation.GenerationConfig` used in place of
    the model file's decoding defaults, ``options`` by name over it (as :meth:`~.model.NextWordModel.stream`
    takes them). Invalid options raise at the first ``__anext__``. Leaving the loop early (``break``, an
    exception, ``aclose()``) or cancelling the task that iterates ends the stream: the step under way, if any,
    finishes in its thread and the model's stream is closed then, so nothing is left running and the model is
    ready for its next call.
    """
    loop = asyncio.get_running_loop()
    stream: Iterator[str] | None = None
    # The stream is made (the prompt fed) and stepped in worker threads, each shielded: cancelling the
    # awaiting task must not cancel a step whose thread runs on; the stream is closed once that thread
    # is done (below), never while it is inside it.
    making = _in_thread(loop, lambda: default_model(model).stream(prompt, config, **options))
    step: asyncio.Future[Any] | None = making
    try:
        stream = await asyncio.shield(making)
        while True:
            step = _in_thread(loop, next, stream, _END)
            piece = await asyncio.shield(step)
            step = None
            if piece is _END:
                return
            yield piece
    finally:
        if step is None or step.done():
            _close(stream, step)
        else:
            step.add_done_callback(functools.partial(_close, stream))


def _in_thread(loop: asyncio.AbstractEventLoop, call: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``call(*args)`` in the loop's default executor with the caller's context variables, as
    ``asyncio.to_thread`` runs it, as a future that may be shielded."""
    return loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, call, *args))


def _close(stream: Iterator[str] | None, step: asyncio.Future[Any] | None) -> None:
    """Close the stream (its model's stepper goes back for the next call) once no thread runs it:
    ``stream``, or the one ``step`` made where the task was cancelled while it was being made. An error
    of a step nobody awaits any more is dropped with the stream (marked retrieved: no "exception was
    never retrieved" at collection)."""
    if step is not None and not step.cancelled() and step.exception() is None and stream is None:
        stream = step.result()
    if stream is not None:
        stream.close()  # type: ignore[attr-defined]
