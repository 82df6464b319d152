"""``POST /v1/completions``: whole answers, or server-sent events while the words are generated.

A client that goes away cancels its job at once: the stream's body is raced against the connection's
``http.disconnect`` message, and a whole answer's wait is raced against it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .access import REQUEST_ID, STREAM_END
from .beams import BeamJob
from .bodies import JSONRoute
from .errors import CODES, APIError, refusal
from .logs import FORCED_QUIT
from .options import Completion, completion_from_request
from .scheduler import Job, RowUpdate
from .schemas import CompletionRequest, CompletionResponse, ErrorBody, error_body
from .state import ServerState

__all__ = ["router"]

router = APIRouter(route_class=JSONRoute)  # bodies read as UTF-8 JSON only
# nextword's end reasons -> OpenAI's finish_reason; "cancelled" (by the shutdown's drain) is no finish: a
# whole answer is a 503 instead, and a stream ends with an error event
FINISH = {"length": "length", "stop": "stop", "end": "stop", "cancelled": None}
# what a client whose completion the shutdown cut short is told (OpenAI's clients raise it, and retry a 503)
CUT_SHORT = (
    "the server is shutting down and cut this completion short (--shutdown-timeout): send it again, to "
    "another replica"
)
# The error answers of the routes that take a JSON body, as /docs lists them (error.code: errors.CODES).
# the codes a 400 of these routes carries: not another status's (401, 404, 429, 413, 408, 431, 409),
# nor those answered before a request is read as one (bytes that are not HTTP, a refused CORS
# preflight: an OPTIONS request, which is no operation of the schema); host_not_allowed is a 400 of any
# route, so it is listed (OpenAPI's `default` covers only the statuses an operation does not list)
_OTHER_CODES = (
    "invalid_api_key",
    "model_not_found",
    "rate_limit_exceeded",
    "body_too_large",
    "request_timeout",
    "headers_too_large",
    "invalid_http",
    "cors_refused",
    "model_file_changed",
    "model_download_off",
)
# Every route's other errors: the protocol's 408 and 431, an unexpected failure's 500, a 405 (with
# Allow) for a method the path does not take, and what a route that lists no 400 answers with one.
DEFAULT_ERROR: dict[str, Any] = {
    "model": ErrorBody,
    "description": "Another error, in the same shape: a 400 host_not_allowed where the operation lists no "
    "400 (the Host header is not a name this server answers for: nextword serve --allowed-host), 408 "
    "request_timeout, 431 headers_too_large, 405 (a method the path does not take; Allow lists those it "
    "does), 500 server_error",
    "headers": {
        "Allow": {
            "description": "with a 405: the methods the path takes (HEAD wherever GET is)",
            "schema": {"type": "string"},
        }
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "A parameter's value, type or name is wrong, the body is not a JSON object "
        "sent as application/json, or the Host header is not a name this server answers for; `param` "
        "names the parameter and `code` the kind of mistake: "
        + "; ".join(
            f"{code}: {meaning.removeprefix('400: ')}"
            for code, meaning in CODES.items()
            if code not in _OTHER_CODES
        ),
    },
    413: {"model": ErrorBody, "description": "The body is over the server's cap (--max-body-bytes)"},
    429: {
        "model": ErrorBody,
        "description": "Every --max-streams slot is taken (code rate_limit_exceeded); retry after "
        "Retry-After seconds",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "required": True,
                "schema": {"type": "integer"},
            }
        },
    },
    503: {"model": ErrorBody, "description": "The server is shutting down; retry on another replica"},
    "default": DEFAULT_ERROR,
}
MODEL_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "The model asked for is not the one this server serves (code model_not_found, "
        "param model); GET /v1/models lists the one it does",
    }
}


@router.post(
    "/v1/completions",
    operation_id="createCompletion",  # OpenAI's name for it
    response_model=CompletionResponse,
    responses={
        **ERRORS,
        **MODEL_NOT_FOUND,
        200: {
            "description": "The completion; with `stream`, server-sent events instead: each `data:` "
            "line a CompletionResponse chunk (or, for a failure after the stream began, an ErrorBody), "
            "then `data: [DONE]`",
            # a string to generated clients: the events are read as text, each data line parsed apart
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
    summary="Continue one or more prompts (OpenAI-compatible)",
)
async def completions(body: CompletionRequest, request: Request) -> Any:
    """Continue ``prompt``. With ``stream``, the text arrives as server-sent events: ``data: {chunk}``
    lines, each carrying new text for one choice, then ``data: [DONE]``. Options left out take the model
    file's decoding defaults; with a ``seed`` the text equals ``model.generate`` with the same options.
    ``model`` may be left out; given, it must be the served model's id (``GET /v1/models``) or another
    of its ``--served-model-name`` names, else 404."""
    state: ServerState = request.app.state.nextword
    state.check_model(body.model)  # "" counts as left out, as in vLLM
    completion = completion_from_request(body, state.model, state.config)
    meta = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.model_id}
    said = request.scope.setdefault("state", {})  # what the access line says of the answer (access.py)
    said[REQUEST_ID] = meta["id"]
    if completion.config.num_beams > 1:
        return await _beam_answer(state, completion, meta, request)
    # a whole answer is read once, at the end: its words wait in the scheduler until then
    interval = state.config.stream_interval if completion.stream else math.inf
    job = Job(completion.prompts, completion.config, completion.logprobs, interval)
    state.start_job(job, request.scope)
    if completion.stream:
        return _EventStream(
            _events(state, job, completion, meta, said), media_type="text/event-stream", headers=EVENT_HEADERS
        )
    try:
        texts = await _until_done_or_gone(_collect(state, job, completion), request)
    finally:
        state.end_job(job)
    if texts is None:  # the client went away; nobody reads this
        return JSONResponse(error_body("client disconnected", "client_error"), status_code=499)
    return _unless_cut_short({**meta, "object": "text_completion", **texts})


def _unless_cut_short(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer``, or a 503 where the shutdown's drain cut one of its choices short: a client would take
    its text for a finished one (OpenAI's clients read finish_reason, not nextword's end_reason), and
    retries a 503."""
    if any(choice["end_reason"] == "cancelled" for choice in answer["choices"]):
        raise APIError(503, CUT_SHORT, kind="server_error")
    return answer


async def _beam_answer(
    state: ServerState, completion: Completion, meta: dict[str, Any], request: Request
) -> Any:
    """A beam search's whole answer (it cannot stream: the best texts are known only at the end). It
    runs on the beam searches' own threads (beams.py), waiting for one with its slot taken; a client
    that leaves while it waits takes it out of the queue."""
    job = BeamJob(state.model, completion)
    state.start_job(job, request.scope)
    try:
        running = anyio.to_thread.run_sync(job.run, limiter=state.beam_threads)
        results = await _until_done_or_gone(running, request)
    except ValueError as exc:
        raise refusal(exc) from None
    finally:
        state.end_job(job)
    if results is None:
        return JSONResponse(error_body("client disconnected", "client_error"), status_code=499)
    per_prompt = completion.config.num_return_sequences
    choices = [
        {
            "index": i,
            "text": (completion.prompts[i // per_prompt] if completion.echo else "") + h.text,
            "logprobs": None,
            "finish_reason": FINISH[h.finish_reason],
            "end_reason": h.finish_reason,
        }
        for i, h in enumerate(results)
    ]
    usage = _usage(state, completion, sum(h.words for h in results))
    return _unless_cut_short({**meta, "object": "text_completion", "choices": choices, "usage": usage})


async def _collect(state: ServerState, job: Job, completion: Completion) -> dict[str, Any]:
    rows, per_prompt = job.rows, completion.config.num_return_sequences
    texts = [""] * rows
    reasons: list[str | None] = [None] * rows
    # with echo a choice's text starts with its prompt: text_offset counts it
    prefixes = [completion.prompts[i // per_prompt] if completion.echo else "" for i in range(rows)]
    logprobs: list[dict[str, list[Any]] | None] = [
        _empty_logprobs() if job.logprobs is not None else None for _ in range(rows)
    ]
    try:
        async for batch in job.updates():
            for u in batch:
                entry = logprobs[u.index]
                if entry is not None and u.token is not None:
                    _add_logprob(entry, u, len(prefixes[u.index]))
                texts[u.index] += u.text
                if u.finished:
                    reasons[u.index] = u.finish_reason
    except ValueError as exc:
        raise refusal(exc) from None
    except RuntimeError as exc:  # the scheduler's failure(): logged there
        raise APIError(500, str(exc)) from None
    choices = []
    for i, text in enumerate(texts):
        choices.append(
            {
                "index": i,
                "text": prefixes[i] + text,
                "logprobs": logprobs[i],
                "finish_reason": FINISH.get(reasons[i] or ""),
                "end_reason": reasons[i],
            }
        )
    return {"choices": choices, "usage": _usage(state, completion, job.words)}


async def _events(
    state: ServerState, job: Job, completion: Completion, meta: dict[str, Any], said: dict[str, Any]
) -> AsyncIterator[str]:
    """The stream of one request; cancels the job if the stream stops early (client gone). How a stream
    that did not run to its end stopped goes in ``said`` (the request's state), for its access line,
    whose status is the 200 sent when the stream began, and in the metrics' count of stream ends."""
    per_prompt = completion.config.num_return_sequences
    # text_offset counts an echoed prompt
    prefixes = [len(completion.prompts[i // per_prompt]) if completion.echo else 0 for i in range(job.rows)]
    # every chunk but the usage's carries "usage": null where usage was asked for, as OpenAI's API does
    no_usage_yet = {"usage": None} if completion.include_usage else {}
    head = _sse({**meta, "object": "text_completion", **no_usage_yet, "choices": []})[
        : -len("]}\n\n")
    ]  # "choices":[
    ended = "client_left"  # unless it gets further: its task cancelled, as a client that left cancels it
    drained = False  # the shutdown's drain cancelled its generation
    try:
        if completion.echo:
            yield "".join(choice_event(head, i, completion.prompts[i // per_prompt]) for i in range(job.rows))
        async for batch in job.updates():
            events = []
            for u in batch:
                lp = None
                if job.logprobs is not None and u.token is not None:
                    lp = _empty_logprobs()
                    _add_logprob(lp, u, prefixes[u.index])
                if not (u.text or u.finished or lp):
                    continue
                if u.finished and u.finish_reason == "cancelled":  # by the drain: a client that left is gone
                    said[STREAM_END] = "stream cancelled: the server is shutting down"
                    drained = True
                reason = FINISH.get(u.finish_reason or "") if u.finished else None
                end = u.finish_reason if u.finished else None
                events.append(choice_event(head, u.index, u.text, reason, end, lp))
            if events:
                yield "".join(events)  # one write for every event that is ready
        if drained:  # an error event: OpenAI's clients raise it, where a last chunk would pass for an end
            yield _sse(error_body(CUT_SHORT, "server_error"))
        elif completion.include_usage:
            usage = _usage(state, completion, job.words)
            yield _sse({**meta, "object": "text_completion", "choices": [], "usage": usage})
        ended = "cancelled" if drained else "done"
    except ValueError as exc:  # refused by the runtime after the stream began, or a model that failed
        ended = "error"
        error = refusal(exc)
        said[STREAM_END] = f"stream ended by an error event ({error.kind})"
        yield _sse(error_body(error.message, error.kind, code=error.code))
    except RuntimeError as exc:
        ended = "error"
        said[STREAM_END] = "stream ended by an error event (server_error)"
        yield _sse(error_body(str(exc), "server_error"))
    finally:
        state.end_job(job)
        said.setdefault(STREAM_END, "stream cut before its end")  # the client left, or a forced quit
        if ended == "client_left" and FORCED_QUIT.is_set():
            ended = "server_quit"
        if state.metrics is not None:
            state.metrics.stream_ended(ended)
    yield "data: [DONE]\n\n"
    if said[STREAM_END].startswith("stream cut"):
        del said[STREAM_END]  # it ran to its end


# Every event as soon as it is written: no cache keeps it, and a reverse proxy that buffers responses
# (nginx does by default) is asked not to hold the stream back (X-Accel-Buffering).
EVENT_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_json = json.JSONEncoder(ensure_ascii=False).encode  # a string as JSON, as json.dumps writes it in a dict
_PLAIN_TAIL = '"logprobs":null,"finish_reason":null,"end_reason":null}]}\n\n'


def choice_event(
    head: str, index: int, text: str, reason: str | None = None, end: str | None = None, lp: Any = None
) -> str:
    """One server-sent event carrying new text for choice ``index``; ``head`` is the chunk's JSON up to
    its ``"choices":[``. The common event (a word, nothing else) is formatted by hand: it is written
    once per word per stream, and this is a few times cheaper than ``json.dumps`` of the dict."""
    if reason is None and end is None and lp is None:
        return f'{head}{{"index":{index},"text":{_json(text)},{_PLAIN_TAIL}'
    choice = {"index": index, "text": text, "logprobs": lp, "finish_reason": reason, "end_reason": end}
    return head + json.dumps(choice, ensure_ascii=False, separators=(",", ":")) + "]}\n\n"


def _usage(state: ServerState, completion: Completion, words: int) -> dict[str, int]:
    """The usage entry of an answer: the prompts' words (tokens), the generated ones, and both."""
    prompt_tokens = sum(len(state.model.tokenizer.encode(p)) for p in completion.prompts)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": words, "total_tokens": prompt_tokens + words}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _empty_logprobs() -> dict[str, list[Any]]:
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def _add_logprob(lp: dict[str, list[Any]], u: RowUpdate, prefix: int) -> None:
    """Append the word of ``u`` to ``lp``; ``prefix``: characters ahead of the generated text in the
    choice's text (an echoed prompt). The word's offset comes from the runtime, not from the text sent
    so far, which lags behind it while characters that could begin a stop string are held back. Its
    alternatives hold the word itself too, as OpenAI's do (up to ``logprobs`` + 1 entries): code that
    looks up ``top_logprobs[i][tokens[i]]`` finds it."""
    assert u.offset is not None  # every update with a word has one
    top = dict(u.top_logprobs or {})
    if u.token is not None and u.logprob is not None:
        top.setdefault(u.token, u.logprob)
    lp["tokens"].append(u.token)
    lp["token_logprobs"].append(u.logprob)
    lp["top_logprobs"].append(top)
    lp["text_offset"].append(prefix + u.offset)


async def _until_done_or_gone(work: Any, request: Request) -> Any:
    """``await work``, unless the client disconnects first (then None; the work is cancelled)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    return task.result() if task.done() and not task.cancelled() else None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _EventStream(StreamingResponse):
    """A streaming response that stops its body as soon as the client disconnects, whatever the ASGI
    server's spec version (Starlette only listens for the disconnect below spec 2.4)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with contextlib.suppress(OSError):  # the connection broke while sending
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
