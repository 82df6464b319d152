"""The other endpoints: next-word suggestions, scoring, the model's description, health (the page is
web_assets')."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from nextword.runtime.checks import shown
from nextword.runtime.text import PromptEnd

from .bodies import JSONRoute
from .completions import DEFAULT_ERROR, ERRORS, MODEL_NOT_FOUND
from .errors import APIError, model_not_found, refusal
from .metrics import CONTENT_TYPE
from .options import check_cache, check_prompt
from .schemas import (
    Health,
    ModelEntry,
    ModelList,
    ScoreRequest,
    ScoreResponse,
    SuggestRequest,
    SuggestResponse,
)
from .state import ServerState

__all__ = ["STATIC", "router"]

router = APIRouter(route_class=JSONRoute)  # bodies read as UTF-8 JSON only
# what a GET route answers besides its own: a 400 host_not_allowed, a 408, a 431, a 500 (a 401 where the
# key is needed is auth.py's to list)
_GET_ERRORS: dict[int | str, dict[str, Any]] = {"default": DEFAULT_ERROR}
STATIC = resources.files("nextword.serve") / "static"


@router.post(
    "/v1/suggest",
    operation_id="suggestWords",
    response_model=SuggestResponse,
    responses={**ERRORS, **MODEL_NOT_FOUND},
    summary="Next-word suggestions",
)
async def suggest(body: SuggestRequest, request: Request) -> dict[str, Any]:
    """The ``k`` most likely next words after ``prompt``, with their probabilities and the text that
    appends each one to the prompt (spacing and sentence capitals applied). ``k`` is at most this
    server's cap (``nextword serve --max-suggestions``, 100 by default) and the model's vocabulary."""
    state: ServerState = request.app.state.nextword
    state.check_model(body.model)
    check_prompt(body.prompt, "prompt", state.config)
    # left out (or null): 5, or fewer where this server's cap or the vocabulary is lower
    model = state.model
    cap = state.config.max_suggestions
    k = min(5, cap, model.vocab_size) if body.k is None else body.k
    if k < 1:
        raise APIError(
            400,
            f"k must be in 1..{cap} (this server's cap: nextword serve --max-suggestions), got {shown(k)}",
            "k",
        )
    if k > cap:
        raise APIError(
            400,
            f"k={shown(k)} is over this server's cap of {cap} words (nextword serve --max-suggestions)",
            "k",
        )
    if k > model.vocab_size:  # the runtime's refusal, with its parameter (not the prompt's)
        raise APIError(400, f"k must be an integer in 1..{model.vocab_size}, got {k}", "k")
    check_cache(body.cache, model)
    words = await _counted(state, request.scope, "prompt", model.next_words, body.prompt, k, body.cache)
    end = PromptEnd.of_text(model.tokenizer, body.prompt)  # "La niña come. ¿" -> "Por"
    suggestions = []
    for word, probability in words:
        text = model.tokenizer.piece(word, end.previous, end.starts)
        suggestions.append(
            {"word": word, "text": text.lstrip(" ") if end.lstrip else text, "probability": probability}
        )
    return {"model": state.model_id, "suggestions": suggestions}


@router.post(
    "/v1/score",
    operation_id="scoreText",
    response_model=ScoreResponse,
    responses={**ERRORS, **MODEL_NOT_FOUND},
    summary="Score a text word by word",
)
async def score(body: ScoreRequest, request: Request) -> dict[str, Any]:
    """The text's total log-probability (natural log), its per-word perplexity, and every word's
    log-probability given the words before it, as the model reads the text from a document start."""
    state: ServerState = request.app.state.nextword
    state.check_model(body.model)
    check_prompt(body.text, "text", state.config)
    check_cache(body.cache, state.model)
    model = state.model
    result = await _counted(state, request.scope, "text", model.score, body.text, body.cache)
    tokens = model.tokenizer.tokenize(body.text)  # the words as read, one per scored word
    pieces = list(model.tokenizer.pieces(tokens))
    words = [
        {
            "word": token,
            "text": piece,
            "logprob": w.logprob,
            "probability": math.exp(w.logprob),
            "unknown": w.unknown,
        }
        for token, piece, w in zip(tokens, pieces, result.words, strict=True)
    ]
    return {
        "model": state.model_id,
        "total_logprob": result.total_logprob,
        "perplexity": result.perplexity,
        "words": words,
    }


@router.get(
    "/v1/models",
    operation_id="listModels",
    response_model=ModelList,
    responses=_GET_ERRORS,
    summary="The served model: provenance and metrics",
)
async def models(request: Request) -> dict[str, Any]:
    """OpenAI's model list (one model), with what ``nextword info --json`` shows about it."""
    return {"object": "list", "data": [_model_entry(request.app.state.nextword)]}


@router.get(
    "/v1/models/{model_id}",
    operation_id="retrieveModel",
    response_model=ModelEntry,
    responses={**MODEL_NOT_FOUND, **_GET_ERRORS},
    summary="The served model, by its id",
)
async def model(model_id: str, request: Request) -> dict[str, Any]:
    """OpenAI's model retrieval: the entry of ``/v1/models`` for the served model's id (or another of
    its ``--served-model-name`` names: the entry then carries that id), else 404."""
    state: ServerState = request.app.state.nextword
    if not state.serves(model_id):
        raise model_not_found(model_id, state.names)
    return {**_model_entry(state), "id": model_id}


def _model_entry(state: ServerState) -> dict[str, Any]:
    return {
        "id": state.model_id,
        "object": "model",
        "created": int(state.started),
        "owned_by": "nextword",
        "nextword": state.summary,
        # this server's caps, so that a client (the page's Words slider) asks for no more than it takes;
        # size_limits: whether model files are held to load()'s size caps (the page's browser mode holds
        # model.onnx to the same); model_download: whether GET /model.onnx offers the file (the browser mode)
        "limits": {
            "max_words": state.config.max_words,
            "max_prompt_chars": state.config.max_prompt_chars,
            "max_suggestions": state.config.max_suggestions,
            "max_rows": state.config.max_rows,
            "size_limits": state.config.size_limits,
            "model_download": state.config.model_download,
        },
    }


@router.post("/v1/chat/completions", include_in_schema=False)
async def chat() -> None:
    """OpenAI clients' chat endpoint: refused with the way to what this server does."""
    raise APIError(
        404,
        "chat completions are not served: the model continues text word by word and knows no chat "
        "roles; use POST /v1/completions with a prompt",
    )


@router.get(
    "/health",
    operation_id="getHealth",
    response_model=Health,
    response_model_exclude_none=True,  # the scheduler's figures it has, no nulls for the others
    responses={503: ERRORS[503], **_GET_ERRORS},
    summary="Liveness and load",
)
async def health(request: Request) -> dict[str, Any]:
    """``status`` is ``ok``; once the server is shutting down it answers 503, with the error body
    (``type`` server_error), as the routes that run the model (completions, suggestions, scores) do
    then, so that a load balancer sends it no more (``nextword serve`` stops listening then, and answers
    what comes on a connection it accepted before). ``/v1/models`` and ``/metrics`` go on answering
    while it drains: a client, or Prometheus, may still ask."""
    state: ServerState = request.app.state.nextword
    state.refuse_if_draining(request.scope, "the server is shutting down")
    return {
        "status": "ok",
        "model": state.model_id,
        "batching": state.config.batching,
        "generations_in_flight": len(state.jobs),
        "generations_served": state.served,
        "uptime_s": round(time.monotonic() - state.started_monotonic, 1),
        **(state.scheduler.stats() if state.scheduler else {}),
    }


@router.get(
    "/metrics",
    operation_id="getMetrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus' text format",
        },
        **_GET_ERRORS,
    },
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, their durations, the time to a completion's first word, how streams
    ended, words generated, and the load ``/health`` shows, in Prometheus' text format (with
    ``--workers``: every worker's, added up, whichever worker answers; made at most once a second)."""
    state: ServerState = request.app.state.nextword
    return Response(state.metrics.scrape(), media_type=CONTENT_TYPE)


# HEAD answers as GET does, without the body (a client checking that the server is up, or a file's size)
_HEADS: dict[str, Callable[..., Any]] = {
    "/v1/models": models,
    "/v1/models/{model_id}": model,
    "/health": health,
    "/metrics": metrics,
}
for _path, _endpoint in _HEADS.items():
    router.add_api_route(_path, _endpoint, methods=["HEAD"], include_in_schema=False)


async def _counted(
    state: ServerState, scope: Mapping[str, Any], param: str, function: Any, *args: Any
) -> Any:
    """Run a model call on a worker thread, holding one of the ``--max-streams`` slots until the call
    ends (a long text with the cache takes seconds, and goes on if its client leaves; the slot is held
    as long); its ValueError (a bad ``param``) becomes a 400 naming the problem."""
    state.refuse_if_draining(scope)
    state.slots.acquire()
    started = False

    def call() -> Any:
        nonlocal started
        started = True
        try:
            return function(*args)
        except ValueError as exc:
            raise refusal(exc, param) from None
        finally:
            state.slots.release()

    try:
        return await run_in_threadpool(call)
    finally:
        if not started:  # cancelled before a thread took the call
            state.slots.release()
