"""Request and response bodies of the HTTP API (pydantic models: validation and the OpenAPI page).

Types are checked here; value ranges are checked by :class:`nextword.runtime.GenerationConfig`, so the
API and ``generate()`` accept the same values and refuse the rest with the same messages. The schema
states those ranges all the same (:func:`~nextword.serve.schema_limits.bounds`: stated, not checked by
pydantic), and each server adds its own caps to it (``schema_limits.document_caps``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from nextword.runtime.generation import (
    MAX_LENGTH_PENALTY,
    MAX_NGRAM,
    MAX_PENALTY,
    MAX_STOP_CHARS,
    MAX_STOP_STRINGS,
    MAX_TEMPERATURE,
    MAX_TOP_K,
    MIN_TEMPERATURE,
)

from .schema_limits import bounds

__all__ = [
    "API_TO_RUNTIME",
    "MAX_LOGPROBS",
    "Choice",
    "CompletionRequest",
    "CompletionResponse",
    "ErrorBody",
    "Health",
    "Logprobs",
    "ModelEntry",
    "ModelLimits",
    "ModelList",
    "ScoreRequest",
    "ScoreResponse",
    "SuggestRequest",
    "SuggestResponse",
    "Usage",
]

# Request fields whose GenerationConfig field has another name (OpenAI's names on the left).
API_TO_RUNTIME = {"max_tokens": "max_words", "min_tokens": "min_words", "n": "num_return_sequences"}


MAX_LOGPROBS = 20  # alternatives per word in a logprobs answer (serve/options.py checks it)
# temperature is 0 or a range: two branches, so that the schema refuses what the server does (0.001)
_TEMPERATURE = {"anyOf": [{"const": 0}, {"minimum": MIN_TEMPERATURE, "maximum": MAX_TEMPERATURE}]}
_STOP = {"type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS}  # a stop string, alone or listed
MODEL_FIELD = (
    "the served model's id (GET /v1/models; nextword serve --served-model-name sets it), or left out; "
    "another id gets 404"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_key(keys: Any) -> str | None:
    """Why one of ``keys`` (a JSON object's) is not text, or None: a lone surrogate, shown escaped."""
    for key in keys:
        found = _SURROGATE.search(key) if isinstance(key, str) else None
        if found:
            shown = repr(key[:40]) + ("..." if len(key) > 40 else "")
            return (
                f"key {shown} is not valid Unicode text: it holds a lone UTF-16 surrogate "
                f"(U+{ord(found.group()):04X} at character {found.start()}); send keys as valid Unicode text"
            )
    return None


class _Request(BaseModel):
    # A misspelt option is refused rather than silently ignored, and a value of the wrong JSON type
    # rather than converted ("10" is not a number of words, true is not 1).
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _keys_are_text(cls, data: Any) -> Any:
        """Refuse an object whose key holds a lone surrogate (``{"\\ud800": 1}``), saying so, before
        pydantic reads its keys (it would answer "input should be a valid string" about the body)."""
        problem = _surrogate_key(data) if isinstance(data, dict) else None
        if problem:
            raise ValueError(problem)
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _dict_keys_are_text(cls, value: Any) -> Any:
        """The same for a parameter that is an object of free keys (``logit_bias``): pydantic would
        name the key with its bytes garbled."""
        problem = _surrogate_key(value) if isinstance(value, dict) else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("*")
    @classmethod
    def _no_lone_surrogates(cls, value: Any) -> Any:
        """Refuse a string holding half of a UTF-16 surrogate pair: JSON can escape one (``"\\ud800"``),
        but it is not a character, and no answer that repeats it could be encoded."""
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for i, text in enumerate(texts):
            found = _SURROGATE.search(text) if isinstance(text, str) else None
            if found:
                where = f"item {i}, " if isinstance(value, list) else ""
                raise ValueError(
                    f"holds a lone UTF-16 surrogate ({where}character {found.start()}: "
                    f"U+{ord(found.group()):04X}), which is not a character; send valid Unicode text"
                )
        return value


class StreamOptions(_Request):
    # None, not a default value: a generated client then leaves them out (openapi-typescript made a field
    # with a default a required one), and a JSON null means "not sent", as for every option
    include_usage: bool | None = Field(
        None, description="send a last chunk with the token counts (null: false)"
    )
    include_obfuscation: bool | None = Field(
        None,
        description="OpenAI's padding of each chunk against length side channels; accepted (its client "
        "sends it) and without effect: the chunks carry no padding",
    )


class CompletionRequest(_Request):
    """``POST /v1/completions``: OpenAI's completion request, the subset that fits, plus nextword's own
    decoding options. Options left out take the model file's decoding defaults, as in
    ``model.generate``."""

    prompt: str | list[str] = Field(
        ...,
        description="text to continue, or a non-empty list of texts (one result per text and n); each "
        "text at most nextword serve --max-prompt-chars characters, and prompts x n at most --max-rows",
        json_schema_extra=bounds(array={"minItems": 1}),
    )
    model: str | None = Field(None, description=MODEL_FIELD)

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_not_token_ids(cls, value: Any) -> Any:
        """OpenAI's API also takes token ids here; this server's ids are its model's own words, so it
        takes text only, and says so rather than "input should be a valid string"."""
        if (
            isinstance(value, list)
            and value
            and all(isinstance(item, int | list) and not isinstance(item, bool) for item in value)
        ):
            raise PydanticCustomError(  # its type becomes error.code: OpenAI's API takes token ids
                "unsupported_value",
                "token ids are not accepted; send the prompt as text (a string or a list of strings): "
                "the server splits it into its model's words",
            )
        return value

    max_tokens: int | None = Field(
        None,
        description="new words at most (a word is one token): 0 to this server's cap (nextword serve "
        "--max-words)",
        json_schema_extra=bounds(integer={"minimum": 0}),
    )
    temperature: float | None = Field(
        None,
        description=f"softmax temperature: 0 (greedy) or {MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g}",
        json_schema_extra=bounds(number=_TEMPERATURE),
    )
    top_p: float | None = Field(
        None,
        description="nucleus sampling: 0 < top_p <= 1",
        json_schema_extra=bounds(number={"exclusiveMinimum": 0, "maximum": 1}),
    )
    n: int | None = Field(
        None,
        description="completions per prompt: prompts x n at most this server's cap (nextword serve "
        "--max-rows); with beam search, at most num_beams",
        json_schema_extra=bounds(integer={"minimum": 1}),
    )
    stop: str | list[str] | None = Field(
        None,
        description=f"strings that end the text (cut before them): at most {MAX_STOP_STRINGS}, each of 1 "
        f"to {MAX_STOP_CHARS} characters; [] for none (not even the model file's)",
        json_schema_extra=bounds(string=_STOP, array={"maxItems": MAX_STOP_STRINGS, "items": _STOP}),
    )
    seed: int | None = Field(
        None,
        description="the same seed and options give the same text",
        json_schema_extra=bounds(integer={"minimum": 0}),
    )
    stream: bool | None = Field(
        None, description="send the text as server-sent events while it is generated (null: false)"
    )
    stream_options: StreamOptions | None = Field(None, description="only with stream=true")
    logprobs: int | None = Field(
        None,
        description="log-probability of each chosen word and of this many alternatives "
        f"(0..{MAX_LOGPROBS}); not with beam search",
        json_schema_extra=bounds(integer={"minimum": 0, "maximum": MAX_LOGPROBS}),
    )
    echo: bool | None = Field(None, description="put the prompt in front of the completion (null: false)")
    # nextword's own options
    top_k: int | None = Field(
        None,
        description="sample among the k most likely words (0: every word)",
        json_schema_extra=bounds(integer={"minimum": 0, "maximum": MAX_TOP_K}),
    )
    min_tokens: int | None = Field(
        None,
        description="words at least before the model may end the text; at most max_tokens (left out: "
        "the model file's min_words, lowered to --max-words)",
        json_schema_extra=bounds(integer={"minimum": 0}),
    )
    repetition_penalty: float | None = Field(
        None,
        description=f"> 1 makes repeated words less likely ({1 / MAX_PENALTY:g}..{MAX_PENALTY:g}; 1 is off)",
        json_schema_extra=bounds(number={"minimum": 1 / MAX_PENALTY, "maximum": MAX_PENALTY}),
    )
    no_repeat_ngram_size: int | None = Field(
        None,
        description=f"never repeat a word sequence this long (0 = off; at most {MAX_NGRAM})",
        json_schema_extra=bounds(integer={"minimum": 0, "maximum": MAX_NGRAM}),
    )
    stop_at_end: bool | None = Field(None, description="end where the model ends the document")
    allow_unknown: bool | None = Field(None, description="allow the unknown-word token <unk>")
    cache: bool | None = Field(
        None,
        description="mix in the model file's continuous cache (default: the file's decoding default, off)",
    )
    num_beams: int | None = Field(
        None,
        description="> 1: deterministic beam search with this many beams (whole answers only: not with "
        "stream or logprobs, nor with top_k, top_p or a temperature other than 0 or 1); prompts x "
        "num_beams at most this server's cap (nextword serve --max-rows)",
        json_schema_extra=bounds(integer={"minimum": 1}),
    )
    length_penalty: float | None = Field(
        None,
        description="beam search: a text's log-probability is divided by its length ** length_penalty "
        f"({-MAX_LENGTH_PENALTY:g}..{MAX_LENGTH_PENALTY:g})",
        json_schema_extra=bounds(number={"minimum": -MAX_LENGTH_PENALTY, "maximum": MAX_LENGTH_PENALTY}),
    )
    # OpenAI options nextword does not implement: accepted at their neutral value only
    best_of: int | None = Field(
        None, description="only 1 (or equal to n)", json_schema_extra=bounds(integer={"minimum": 1})
    )
    presence_penalty: float | None = Field(
        None, description="only 0; use repetition_penalty", json_schema_extra=bounds(number={"const": 0})
    )
    frequency_penalty: float | None = Field(
        None, description="only 0; use repetition_penalty", json_schema_extra=bounds(number={"const": 0})
    )
    logit_bias: dict[str, float] | None = Field(
        None, description="only empty", json_schema_extra=bounds(object={"maxProperties": 0})
    )
    suffix: str | None = Field(
        None,
        description="not supported (a left-to-right model): only empty",
        json_schema_extra=bounds(string={"maxLength": 0}),
    )
    user: str | None = Field(None, description="accepted and ignored")


class Logprobs(BaseModel):
    """OpenAI's legacy completion logprobs: one entry per generated word."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class Choice(BaseModel):
    # every answer carries each field (null where it has no value): required in the schema, so that
    # generated clients need not handle a field that is never left out
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    index: int
    text: str
    logprobs: Logprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None
    # nextword's own reason: "end" (the model ended the document), "stop" (a stop string), "length",
    # or "cancelled" (the server shut down before the text was finished)
    end_reason: Literal["end", "stop", "length", "cancelled"] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class SuggestRequest(_Request):
    """``POST /v1/suggest``: the most likely next words after a text."""

    prompt: str = Field(
        ...,
        description="text so far (may be empty: the start of a document); at most nextword serve "
        "--max-prompt-chars characters",
    )
    k: int | None = Field(
        None,
        description="how many words: 1 to this server's cap (nextword serve --max-suggestions, 100 by "
        "default) and the model's vocabulary size; left out or null: 5, or the cap where it is lower",
        json_schema_extra=bounds(integer={"minimum": 1}),
    )
    model: str | None = Field(None, description=MODEL_FIELD)
    cache: bool | None = Field(
        None, description="mix in the model file's continuous cache (default: on when the file has one)"
    )


class Suggestion(BaseModel):
    word: str = Field(..., description="the word as the model knows it")
    text: str = Field(..., description="what to append to the prompt: spacing and capitals applied")
    probability: float


class SuggestResponse(BaseModel):
    model: str
    suggestions: list[Suggestion]


class ScoreRequest(_Request):
    """``POST /v1/score``: how likely the model finds a text, word by word."""

    text: str = Field(
        ...,
        description="at least one word (a text of only spaces, or of marks the tokenizer drops, gets 400); "
        "at most nextword serve --max-prompt-chars characters",
        json_schema_extra=bounds(string={"minLength": 1}),
    )
    model: str | None = Field(None, description=MODEL_FIELD)
    cache: bool | None = Field(
        None, description="mix in the model file's continuous cache (default: on when the file has one)"
    )


class ScoredWord(BaseModel):
    word: str = Field(..., description="the word as the model reads it (lowercased for a lowercasing model)")
    text: str = Field(..., description="the word with its spacing, to render the text word by word")
    logprob: float = Field(..., description="natural log of its probability given the words before it")
    probability: float
    unknown: bool = Field(..., description="outside the vocabulary: scored as <unk>")


class ScoreResponse(BaseModel):
    model: str
    total_logprob: float
    perplexity: float
    words: list[ScoredWord]


class ModelLimits(BaseModel):
    """This server's caps, so that a client asks for no more than it takes."""

    # model_download is a field of ours, not pydantic's "model_" namespace (older pydantic 2 releases warn)
    model_config = ConfigDict(protected_namespaces=())

    max_words: int = Field(..., description="the most words a completion may ask for (max_tokens)")
    max_prompt_chars: int = Field(..., description="the longest prompt or text, in characters")
    max_suggestions: int = Field(..., description="the largest k of /v1/suggest")
    max_rows: int = Field(
        ..., description="the most sequences one completion request may ask for: prompts x n (x num_beams)"
    )
    size_limits: bool = Field(..., description="whether model files are held to load()'s size caps")
    model_download: bool = Field(
        ..., description="whether GET /model.onnx offers the model file (false: --no-model-download)"
    )


class ModelEntry(BaseModel):
    """OpenAI's model object, with nextword's record of the model file."""

    id: str = Field(..., description="the served id (or, from /v1/models/{model_id}, the name asked for)")
    object: Literal["model"]
    created: int = Field(..., description="when this server started, in Unix seconds")
    owned_by: str = Field(..., description="nextword")
    nextword: dict[str, Any] = Field(
        ...,
        description="what `nextword info --json` shows of the model file: vocabulary size, layers, "
        "provenance (corpus, split, commands), metrics, parity, cache settings",
    )
    limits: ModelLimits


class ModelList(BaseModel):
    """OpenAI's model list: the one served model."""

    object: Literal["list"]
    data: list[ModelEntry]


class Health(BaseModel):
    """``GET /health`` while the server serves (a 503 with the error body once it shuts down)."""

    status: Literal["ok"]
    model: str = Field(..., description="the served model's id")
    batching: bool = Field(..., description="whether generations share batched steps (--batching)")
    generations_in_flight: int = Field(..., description="completion requests being answered now")
    generations_served: int = Field(..., description="completion requests answered since the start")
    uptime_s: float = Field(..., description="seconds since the server started")
    sequences: int | None = Field(None, description="texts being generated now")
    waiting: int | None = Field(None, description="with batching: texts waiting for a row of the batch")
    ticks: int | None = Field(None, description="with batching: batched steps run since the start")
    failed_steps: int | None = Field(None, description="with batching: batched steps that failed")


class ErrorDetail(BaseModel):
    message: str = Field(..., description="what is wrong and what to send instead")
    type: str = Field(
        ..., description="invalid_request_error (4xx), rate_limit_error (429) or server_error (5xx)"
    )
    param: str | None = Field(None, description="the parameter at fault (prompt.1: the list's second item)")
    code: str | None = Field(
        None,
        description="the kind of mistake, for a program to tell them apart (each answer's description "
        "lists its codes: invalid_type, model_not_found, ...); null where the status says it all",
    )


class ErrorBody(BaseModel):
    """Every error answer: OpenAI's shape, so its clients show the message (and OpenAI's Python client
    sets its exception's ``code``, ``param`` and ``type`` from it)."""

    error: ErrorDetail


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON of an error answer: OpenAI's ``{"error": {"message", "type", "param", "code"}}``;
    ``code`` is one of ``nextword.serve.errors.CODES`` or None."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
