"""From a completion request to what the runtime takes: prompts, a GenerationConfig and logprobs.

Ranges are the runtime's: :class:`GenerationConfig` checks every value and its ``ValueError`` message
(parameter, value, allowed range) becomes the 400 answer, with the API's name for the parameter. The
server's own caps (:class:`ServeConfig`) are checked first, each naming the flag that sets it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from nextword.runtime import GenerationConfig, NextWordModel
from nextword.runtime.checks import shown
from nextword.runtime.generation import FILE_DEFAULTS, OptionConflict

from .config import ServeConfig
from .errors import APIError
from .schemas import API_TO_RUNTIME, MAX_LOGPROBS, CompletionRequest

__all__ = [
    "MAX_LOGPROBS",
    "Completion",
    "check_cache",
    "check_prompt",
    "completion_from_request",
    "defaults_over_caps",
]

RUNTIME_TO_API = {runtime: api for api, runtime in API_TO_RUNTIME.items()}
# The request fields that set a GenerationConfig field, by the API's names, in GenerationConfig's order:
# derived, so that an option added to the runtime and to CompletionRequest reaches generate() with no
# third list to update. ``stop`` is read apart (a string or a list; "" refused). A GenerationConfig field
# with no request field is skipped here; tests/test_option_surfaces.py fails unless it is listed there
# as left out of the API on purpose.
REQUEST_OPTIONS = tuple(
    api
    for f in fields(GenerationConfig)
    if f.name != "stop" and (api := RUNTIME_TO_API.get(f.name, f.name)) in CompletionRequest.model_fields
)
_LEADING_NAME = re.compile(r"^(\w+)")


@dataclass(frozen=True)
class Completion:
    """A validated completion request."""

    prompts: list[str]
    config: GenerationConfig  # num_return_sequences is n
    logprobs: int | None
    echo: bool
    stream: bool
    include_usage: bool


def check_prompt(text: str, name: str, limits: ServeConfig) -> None:
    """Refuse a prompt (or a text to score) over the ``--max-prompt-chars`` cap."""
    if len(text) > limits.max_prompt_chars:
        raise APIError(
            400,
            f"{name} has {len(text)} characters; this server takes at most {limits.max_prompt_chars} "
            "(nextword serve --max-prompt-chars)",
            name,
        )


def check_cache(asked: bool | None, model: NextWordModel) -> None:
    """Refuse ``cache: true`` for a model file without continuous-cache settings: one message for
    completions, suggestions and scores."""
    if asked and model.cache_settings is None:
        raise APIError(
            400,
            "cache=true but this server's model file has no continuous-cache settings; leave cache out",
            "cache",
        )


def defaults_over_caps(defaults: GenerationConfig, limits: ServeConfig) -> list[str]:
    """What the server does with a model file's decoding defaults over its caps, one warning each for
    its start-up log: a ``max_words`` over ``--max-words`` is lowered to it for requests that leave
    ``max_tokens`` out; a ``num_return_sequences`` or ``num_beams`` over ``--max-rows`` refuses every
    request that leaves ``n`` (``num_beams``) out."""
    warnings = []
    if defaults.max_words > limits.max_words:
        warnings.append(
            f"this model file's decoding default max_words={defaults.max_words} is over this server's cap "
            f"of {limits.max_words} words (nextword serve --max-words): a completion that leaves max_tokens "
            f"out gets at most {limits.max_words}; raise --max-words to {defaults.max_words} to serve the "
            "file's default"
        )
    for name, api in (("num_return_sequences", "n"), ("num_beams", "num_beams")):
        value = getattr(defaults, name)
        if value > limits.max_rows:
            warnings.append(
                f"this model file's decoding default {name}={value} is over this server's cap of "
                f"{limits.max_rows} sequences a request (nextword serve --max-rows): every completion that "
                f"leaves {api} out is refused; raise --max-rows to {value}, or have clients send {api}"
            )
    return warnings


def completion_from_request(
    request: CompletionRequest, model: NextWordModel, limits: ServeConfig
) -> Completion:
    """Check ``request`` against the server's caps and the runtime's ranges; raises :class:`APIError`."""
    _refuse_unsupported(request)
    prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
    if not prompts:
        raise APIError(400, "prompt is an empty list; give a string or a list of strings", "prompt")
    for i, prompt in enumerate(prompts):
        check_prompt(prompt, "prompt" if isinstance(request.prompt, str) else f"prompt.{i}", limits)
    if request.max_tokens is not None and request.max_tokens < 0:
        raise APIError(
            400,
            f"max_tokens must be in 0..{limits.max_words} (this server's cap: nextword serve --max-words), "
            f"got {shown(request.max_tokens)}",
            "max_tokens",
        )
    if request.max_tokens is not None and request.max_tokens > limits.max_words:
        raise APIError(
            400,
            f"max_tokens={shown(request.max_tokens)} is over this server's cap of {limits.max_words} words "
            "(nextword serve --max-words)",
            "max_tokens",
        )
    for name in ("n", "num_beams"):  # the runtime's own bound (256) is not this server's
        value = getattr(request, name)
        if value is not None and value < 1:
            cap = f"1..{limits.max_rows} (this server's cap: nextword serve --max-rows)"
            raise APIError(400, f"{name} must be in {cap}, got {shown(value)}", name)
    # n left out is the file's num_return_sequences (up to 256): it counts against the cap too
    n = model.info.generation.num_return_sequences if request.n is None else request.n
    if len(prompts) * n > limits.max_rows and n >= 1:
        origin = " (this model file's decoding default: send n)" if request.n is None and n > 1 else ""
        # one sequence a prompt: the prompts are too many (a client's batch: LangChain's batch_size)
        fewer = "; send fewer prompts per request" if n == 1 or len(prompts) > 1 else ""
        if len(prompts) > 1 and n > 1:
            fewer += f" (at most {limits.max_rows // n} with n={shown(n)}), or a smaller n"
        raise APIError(
            400,
            f"{len(prompts)} prompt(s) x n={shown(n)}{origin} = {shown(len(prompts) * n)} sequences; "
            "this server takes at most "
            f"{limits.max_rows} per request (nextword serve --max-rows){fewer}",
            "prompt" if n == 1 else "n",
        )
    beams = request.num_beams  # over the cap: this server's refusal, never the runtime's 1..256
    if beams is not None and beams > 1 and len(prompts) * beams > limits.max_rows:
        raise _too_many_beams(len(prompts), beams, limits)
    if request.logprobs is not None and not 0 <= request.logprobs <= MAX_LOGPROBS:
        message = f"logprobs must be in 0..{MAX_LOGPROBS}, got {shown(request.logprobs)}"
        raise APIError(400, message, "logprobs")
    options = {
        API_TO_RUNTIME.get(name, name): value
        for name in REQUEST_OPTIONS
        if (value := getattr(request, name)) is not None
    }
    if request.stop is not None:
        options["stop"] = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop)
        if "" in options["stop"]:  # meant as "no stop strings", perhaps: say how to ask for that
            raise APIError(
                400,
                f'stop holds an empty string ({shown(request.stop)}); send "stop": [] for no stop strings '
                "(not even the model file's), or leave stop out for the file's",
                "stop",
            )
    base = model.info.generation
    if "max_words" not in options and base.max_words > limits.max_words:
        base = replace(base, max_words=limits.max_words, min_words=min(base.min_words, limits.max_words))
    from_file = request.num_beams is None  # beam search, if any, is the file's default: messages say so
    try:
        # a value the request left out is the file's, and a refusal says so ("n=4 must be <= num_beams=3
        # (...; num_beams=3 is this model file's decoding default)")
        config = GenerationConfig.from_options(base, origin=FILE_DEFAULTS, **options)
    except OptionConflict as exc:
        if from_file and exc.message.startswith(f"num_beams={base.num_beams} "):  # with the way out
            way_out = f"num_beams={base.num_beams} is this model file's decoding default: "
            exc = OptionConflict(exc.message, exc.names, way_out + 'send "num_beams": 1 to sample')
        raise _api_name(exc) from None
    except ValueError as exc:
        raise _api_name(exc) from None
    check_cache(config.cache, model)
    if config.num_beams > 1:
        _check_beam_search(request, config.num_beams, len(prompts), limits, from_file)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    if request.stream_options is not None and not request.stream:
        raise APIError(400, "stream_options is only allowed with stream=true", "stream_options")
    stream, echo = bool(request.stream), bool(request.echo)  # null, as OpenAI's API allows: false
    return Completion(prompts, config, request.logprobs, echo, stream, include_usage)


def _check_beam_search(
    request: CompletionRequest, beams: int, prompts: int, limits: ServeConfig, from_file: bool
) -> None:
    """Refuse what beam search cannot do: stream, logprobs, more rows than the server's cap."""
    origin = ", this model file's decoding default" if from_file else ""
    what = f"beam search (num_beams={beams}{origin})"
    if request.stream:
        raise APIError(
            400,
            f'{what} returns whole texts and cannot stream; send "num_beams": 1 to stream, or stream=false',
            "stream",
        )
    if request.logprobs is not None:
        raise APIError(
            400, f'{what} gives no logprobs; leave logprobs out, or send "num_beams": 1', "logprobs"
        )
    if prompts * beams > limits.max_rows:
        raise _too_many_beams(prompts, beams, limits)


def _too_many_beams(prompts: int, beams: int, limits: ServeConfig) -> APIError:
    return APIError(
        400,
        f"{prompts} prompt(s) x num_beams={shown(beams)} = {shown(prompts * beams)} beams; this server runs "
        f"at most {limits.max_rows} per request (nextword serve --max-rows)",
        "num_beams",
    )


def _refuse_unsupported(request: CompletionRequest) -> None:
    """Refuse OpenAI's parameters that this server does not implement, unless at their neutral value:
    400 with code ``unsupported_value`` (valid in OpenAI's API, not supported here)."""
    n = 1 if request.n is None else request.n
    if request.best_of not in (None, 1, n):
        raise _unsupported(f"best_of={shown(request.best_of)} is not supported; leave it out", "best_of")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(request, name)
        if value not in (None, 0):
            raise _unsupported(
                f"{name}={value} is not supported; use repetition_penalty (> 1 makes repeated words less "
                "likely)",
                name,
            )
    if request.logit_bias:
        raise _unsupported("logit_bias is not supported; leave it out", "logit_bias")
    if request.suffix:
        raise _unsupported("suffix is not supported: the model writes left to right only", "suffix")


def _unsupported(message: str, param: str) -> APIError:
    return APIError(400, message, param, code="unsupported_value")


def _api_name(exc: ValueError) -> APIError:
    """The runtime's message with the API's name of the parameter ("max_words" -> "max_tokens")."""
    message = str(exc)
    match = _LEADING_NAME.match(message)
    name = match.group(1) if match else None
    if name in RUNTIME_TO_API:
        message = RUNTIME_TO_API[name] + message[len(name) :]
        name = RUNTIME_TO_API[name]
    for runtime, api in RUNTIME_TO_API.items():  # "at most `max_words` (5)", "num_return_sequences=2 is"
        message = message.replace(f"`{runtime}`", f"`{api}`").replace(f"{runtime}=", f"{api}=")
    return APIError(400, message, name if name and message.startswith(name) else None)
