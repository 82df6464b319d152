"""Server settings, shared by :func:`nextword.serve.serve` and ``nextword serve``."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from nextword.runtime import MAX_BATCH, MAX_WORDS, ModelFileError
from nextword.runtime.checks import check_bool, check_int, check_real, plain_numbers, shown, wrong_type
from nextword.runtime.default import BUNDLED_MODEL, ENV_VAR
from nextword.runtime.errors import WrongTypeError, noted
from nextword.runtime.field_help import with_field_help
from nextword.runtime.limits import SIZE_LIMITS_HELP, LoadLimits, advise_the_flag
from nextword.runtime.model import NextWordModel
from nextword.runtime.sessions import default_session_options, gpu_number, usable_cores
from nextword.runtime.tokenizer import MAX_VOCAB_SIZE

from .allowed import hosts_checked, origins_checked, proxies_checked
from .keys import ENV_KEY, check_keys

__all__ = ["LOG_LEVELS", "ServeConfig", "served"]

# A path prefix: segments of URL-safe characters (it is written into /docs' HTML and JavaScript as is).
_ROOT_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)*", re.ASCII)
# A served model's name: one segment of GET /v1/models/{id}, as OpenAI's names are (gpt-3.5-turbo-instruct,
# ft:davinci-002:org::id); no slash (it would end the path segment), no space, nothing to escape in a log.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # what --log-level takes, lowercase


# Where create_app's lifespan puts the settings of the HTTP protocol's guards (serve/http_guard.py), in
# the state uvicorn hands to every connection.
GUARD_STATE_KEY = "nextword.http_guard"
# Where it puts the callable that says whether the server still takes connections in (False once a drain
# closed its listener), and the key of a request's scope that marks one come on a connection taken in
# before: a draining server answers that request rather than refuse it (ServerState.refuse_if_draining).
ACCEPTING_STATE_KEY = "nextword.accepting"
TAKEN_IN = "nextword.taken_in"


@dataclass(frozen=True)
class GuardSettings:
    """What the HTTP protocol allows a client (:class:`ServeConfig`'s fields of these names)."""

    max_header_bytes: int = 65_536
    request_timeout: float = 30.0
    send_timeout: float = 60.0


@with_field_help  # help(ServeConfig) lists the fields with their --help
@dataclass(frozen=True)
class ServeConfig:
    """What to serve, where, and the caps that keep one client from taking the server down.

    Every field is also a ``nextword serve`` flag (``max_streams`` is ``--max-streams``). Invalid values
    raise ``ValueError`` naming the field, the value and the allowed range.
    """

    model: str | None = field(
        default=None,
        metadata={
            "help": "the .onnx model file (default: $NEXTWORD_MODEL, else the bundled model)",
            "metavar": "MODEL.onnx",
        },
    )
    served_model_name: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "the model id the server reports (GET /v1/models, each answer's model) and accepts in "
            "a request's model, in place of the model file's name without .onnx: the name an OpenAI app "
            "already sends (gpt-3.5-turbo-instruct); given more than once, each is accepted and the first "
            "is reported",
            "metavar": "NAME",
        },
    )
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "address to listen on; 0.0.0.0 exposes the server to the network"},
    )
    port: int = field(default=8000, metadata={"help": "TCP port to listen on (0: any free port)"})
    workers: int = field(
        default=1,
        metadata={"help": "server processes sharing the port, each with its own copy of the model (1..64)"},
    )
    batching: bool = field(
        default=True,
        metadata={
            "help": "continuous batching: one batched model step per tick for every active sequence "
            "(off: each request generates alone on its own thread, the unbatched baseline)"
        },
    )
    max_batch: int = field(
        default=MAX_BATCH,
        metadata={"help": f"sequences stepped together in one tick at most (1..{MAX_BATCH}); more wait"},
    )
    stream_interval: float = field(
        default=0.02,
        metadata={
            "help": "seconds between two writes to one stream, at least: words that come sooner are sent "
            "together, one event each, in one write (0: a write per model step); a stream's first words "
            "and its last go at once; 0..1",
            "metavar": "SECONDS",
        },
    )
    device: str = field(
        default="cpu",
        metadata={
            "help": "where model steps run: cpu, cuda (the first GPU) or cuda:N (GPU N); a GPU needs "
            "onnxruntime-gpu and pays off with a float32 model file (the bundled int8 one is slower "
            "there; docs/gpu.md)",
        },
    )
    size_limits: bool = field(
        default=True,
        metadata={"help": SIZE_LIMITS_HELP},
    )
    model_download: bool = field(
        default=True,
        metadata={
            "help": 'offer the model file at /model.onnx, for the page\'s "Run in this browser" (off: '
            "--no-model-download keeps the weights and the vocabulary on the server, whose API answers "
            "as before)",
        },
    )
    threads: int = field(
        default=0,
        metadata={
            "help": "onnxruntime threads per model step (0: 2 when the server may use 2 cores per worker "
            "or more, its CPU affinity and a container's CPU quota counted, else 1, which do not spin "
            "between steps; with batching off, load()'s own choice "
            "per step, so that texts are model.generate's)",
        },
    )
    max_streams: int = field(
        default=256,
        metadata={
            "help": "requests that run the model (completions, streamed or not, suggestions, scores) in "
            "flight at once (1..100,000); more get 429"
        },
    )
    max_body_bytes: int = field(
        default=1_000_000,
        metadata={"help": "largest request body accepted, in bytes (at most 1 GiB); larger get 413"},
    )
    max_header_bytes: int = field(
        default=GuardSettings.max_header_bytes,
        metadata={
            "help": "largest request line and headers together, in bytes (1024..16 MiB); larger get 431 and "
            "are not read"
        },
    )
    request_timeout: float = field(
        default=GuardSettings.request_timeout,
        metadata={
            "help": "seconds a client has to send a request's line and headers, and then its body; slower "
            "get 408 (a connection that sends nothing is closed after them); 0.1..86,400"
        },
    )
    send_timeout: float = field(
        default=GuardSettings.send_timeout,
        metadata={
            "help": "seconds an answer may wait on a client that reads nothing; then the connection is "
            "closed and its generation cancelled; 0.1..86,400"
        },
    )
    max_prompt_chars: int = field(
        default=100_000,
        metadata={"help": "longest prompt (or text to score) in characters (at most 100,000,000)"},
    )
    max_words: int = field(
        default=1000,
        metadata={"help": f"most words one completion may ask for with max_tokens (1..{MAX_WORDS})"},
    )
    max_rows: int = field(
        default=32,  # over LangChain's batch of 20 prompts a request
        metadata={
            "help": "most sequences one request may ask for: prompts x n (prompts x num_beams for beam "
            "search)"
        },
    )
    max_suggestions: int = field(
        default=100,
        metadata={
            "help": "most next words one /v1/suggest request may ask for with k (never more than the "
            "model's vocabulary); larger get 400"
        },
    )
    shutdown_timeout: float = field(
        default=10.0,
        metadata={
            "help": "seconds that in-flight generations may take to finish after Ctrl-C or SIGTERM; "
            "then they are cancelled; 0..3,600"
        },
    )
    cors_origins: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "a web origin (scheme://host[:port], or * for any; several: repeat the flag or separate "
            "them with commas) whose pages may call the API from the browser (CORS); none by default: only "
            "pages this server serves can",
            "metavar": "ORIGIN",
            "flag": "--cors-origin",
        },
    )
    allowed_hosts: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "a host name requests may give in their Host header (the name a reverse proxy passes "
            "on, example.com; *.example.com for its subdomains; several: repeat the flag or separate them "
            "with commas; * for any): others get 400, against DNS rebinding; by default a request "
            "that came in on a loopback address is answered for localhost, this machine's name and "
            "addresses only, one from another machine for any name",
            "metavar": "NAME",
            "flag": "--allowed-host",
        },
    )
    root_path: str = field(
        default="",
        metadata={
            "help": "the path prefix a reverse proxy serves the server under and strips before passing "
            "requests on (/nextword): /docs, its schema and redirects then keep the prefix",
            "metavar": "PREFIX",
        },
    )
    api_keys: tuple[str, ...] = field(
        default=(),
        repr=False,  # secrets: never in a log line or a traceback
        metadata={
            "help": "a key that requests to /v1/... and /model.onnx must carry (Authorization: Bearer "
            "KEY, as OpenAI's clients send api_key); others get 401; by default $NEXTWORD_API_KEY, else "
            "none: no key asked for",
            "metavar": "KEY",
            "flag": "--api-key",
        },
    )
    ssl_certfile: str | None = field(
        default=None,
        metadata={
            "help": "a PEM certificate (its chain after it) to serve HTTPS with; its private key in "
            "--ssl-keyfile, else in the same file; plain HTTP without",
            "metavar": "CERT.pem",
        },
    )
    ssl_keyfile: str | None = field(
        default=None,
        metadata={"help": "the unencrypted PEM private key of --ssl-certfile", "metavar": "KEY.pem"},
    )
    forwarded_allow_ips: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "a reverse proxy's IP address or network (10.0.0.0/8), several separated by commas, "
            "or * for any, whose X-Forwarded-For and X-Forwarded-Proto the server believes: the client "
            "address in the access log, and the scheme of redirects and schema URLs (https); by default "
            "$FORWARDED_ALLOW_IPS, else 127.0.0.1,::1",
            "metavar": "ADDRESSES",
        },
    )
    log_level: str = field(
        default="info",
        metadata={
            "help": "log level of the server: uvicorn's messages and nextword's own (-q: warning or above)",
            "choices": LOG_LEVELS,
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        if not isinstance(self.host, str):
            raise wrong_type("host", "a host name or an IP address", self.host)
        if not self.host:
            raise ValueError(f"host must be a host name or an IP address, got {self.host!r}")
        if isinstance(self.model, os.PathLike):  # a pathlib.Path, stored as the str it names
            object.__setattr__(self, "model", os.fspath(self.model))
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise (ValueError if isinstance(self.model, str) else WrongTypeError)(
                f"model must be the path of a .onnx file, got {self.model!r}; leave it out to serve "
                f"${ENV_VAR}, else the bundled model"
            )
        for name in ("batching", "size_limits", "model_download"):
            check_bool(name, getattr(self, name))
        for name, low, high in (
            ("port", 0, 65535),
            ("workers", 1, 64),
            ("max_batch", 1, MAX_BATCH),
            ("max_streams", 1, 100_000),
            ("max_body_bytes", 1, 1 << 30),
            ("max_header_bytes", 1024, 1 << 24),
            ("max_prompt_chars", 1, 100_000_000),
            ("max_words", 1, MAX_WORDS),
            ("max_rows", 1, MAX_BATCH),
            ("max_suggestions", 1, MAX_VOCAB_SIZE),
            ("threads", 0, 256),
        ):
            check_int(name, getattr(self, name), low, high, wanted=f"an integer in {low}..{high}")
        gpu_number(self.device)
        if not isinstance(self.log_level, str):
            raise wrong_type("log_level", f"one of {', '.join(LOG_LEVELS)}", self.log_level)
        if self.log_level not in LOG_LEVELS:
            raise ValueError(
                f"log_level must be one of {', '.join(LOG_LEVELS)} (lowercase, as --log-level takes them), "
                f"got {self.log_level!r}"
            )
        for name, least, most, wanted in (
            ("stream_interval", 0.0, 1.0, "a number of seconds in 0..1"),
            ("shutdown_timeout", 0.0, 3600.0, "in 0..3600 seconds"),
            ("request_timeout", 0.1, 86_400.0, "a number of seconds in 0.1..86400"),
            ("send_timeout", 0.1, 86_400.0, "a number of seconds in 0.1..86400"),
        ):
            check_real(name, getattr(self, name), low=least, low_open=False, high=most, wanted=wanted)
        object.__setattr__(self, "served_model_name", _model_names(self.served_model_name))
        object.__setattr__(self, "cors_origins", origins_checked(self.cors_origins))
        object.__setattr__(self, "allowed_hosts", hosts_checked(self.allowed_hosts))
        object.__setattr__(self, "root_path", _root_path(self.root_path))
        object.__setattr__(self, "forwarded_allow_ips", proxies_checked(self.forwarded_allow_ips))
        object.__setattr__(self, "api_keys", check_keys(self.api_keys))
        for name in ("ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise wrong_type(name, "the path of a PEM file", value)
            if value is not None and not value.strip():
                raise ValueError(f"{name} must be the path of a PEM file, got {value!r}")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError(
                f"ssl_keyfile {self.ssl_keyfile} is given without `ssl_certfile`: give the certificate too"
            )

    @property
    def model_path(self) -> str:
        """The file to serve: ``model``, else ``$NEXTWORD_MODEL``, else the bundled model."""
        return str(self.model or os.environ.get(ENV_VAR) or BUNDLED_MODEL)

    def explained(self, exc: ModelFileError) -> ModelFileError:
        """``exc``, a refusal of :attr:`model_path`, saying where the path came from when the user typed
        none (``$NEXTWORD_MODEL``), as the other commands do."""
        exc = advise_the_flag(
            exc,
            " (ServeConfig(size_limits=False))",
            lifted=not self.size_limits,
            then=" and serve that model: serve(config, model) or create_app(config, model)",
        )
        if self.model is None and os.environ.get(ENV_VAR):
            return noted(exc, f"(the path comes from ${ENV_VAR}; fix or unset it)")
        return exc

    @property
    def guard(self) -> GuardSettings:
        """The HTTP protocol's guards against slow or greedy clients (serve/http_guard.py)."""
        return GuardSettings(self.max_header_bytes, self.request_timeout, self.send_timeout)

    @property
    def load_limits(self) -> LoadLimits | None:
        """What :func:`~nextword.runtime.load` is given: ``None`` (its defaults), or with ``size_limits``
        off, ``LoadLimits().without_size_caps()``."""
        return None if self.size_limits else LoadLimits().without_size_caps()

    @property
    def keys(self) -> tuple[str, ...]:
        """The API keys requests must carry: ``api_keys``, else ``$NEXTWORD_API_KEY``, else none."""
        if self.api_keys:
            return self.api_keys
        if ENV_KEY in os.environ and not os.environ[ENV_KEY].strip():
            # a secret that did not arrive (an empty Kubernetes secret, a typo in an env file) must not
            # open the server to everyone
            raise ValueError(
                f"${ENV_KEY} is set but empty: set it to the key requests must carry, or unset it to "
                "serve without a key"
            )
        return check_keys([os.environ[ENV_KEY]] if os.environ.get(ENV_KEY) else [], f"${ENV_KEY}")

    @property
    def session_settings(self) -> dict[str, Any]:
        """What :func:`~nextword.runtime.load` is given: for ``threads`` 0 with ``batching`` off on the CPU,
        nothing (its own sessions: texts are ``model.generate``'s to the byte, an int8 file's too); else
        session options of :attr:`session_threads` threads for every step."""
        if not self.threads and not self.batching and self.device == "cpu":
            return {}
        return {"session_options": default_session_options(self.session_threads)}

    @property
    def session_threads(self) -> int:
        """onnxruntime threads per step: ``threads``, or for 0 what suits this machine."""
        if self.threads:
            return self.threads
        return 2 if usable_cores() >= 2 * self.workers else 1

    @property
    def loopback(self) -> bool:
        """Whether the server listens on this machine only: ``localhost``, a loopback address, or a name
        every address of which is one (``--host vm`` where the hosts file maps vm to 127.0.0.1)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            pass
        try:
            found = {info[4][0] for info in socket.getaddrinfo(self.host, None, proto=socket.IPPROTO_TCP)}
        except (OSError, UnicodeError):  # a name that does not resolve: the bind says so
            return False
        return bool(found) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in found)


def served(config: object, model: object) -> ServeConfig:
    """The settings :func:`~nextword.serve.create_app` and :func:`~nextword.serve.serve` run with:
    ``config``, or ``ServeConfig()`` for None. A ``config`` that is not a :class:`ServeConfig` (a dict)
    or a ``model`` that is not a loaded model (a path) is a :class:`WrongTypeError` saying what to pass."""
    if config is None:
        config = ServeConfig()
    if not isinstance(config, ServeConfig):
        raise wrong_type("config", "a ServeConfig (ServeConfig(model=..., port=...)), or None", config)
    if isinstance(model, str | os.PathLike):
        raise WrongTypeError(
            f"model must be a loaded NextWordModel, got the path {shown(os.fspath(model))}: to serve a file, "
            "pass ServeConfig(model=path) and leave model out"
        )
    if model is not None and not isinstance(model, NextWordModel):
        raise wrong_type("model", "a loaded NextWordModel (nextword.runtime.load(path)), or None", model)
    return config


def _model_names(value: object) -> tuple[str, ...]:
    """``served_model_name`` checked: a name, or a list or tuple of names (the first is reported), each
    once; ``()`` for the model file's own name."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)):
        raise wrong_type("served_model_name", "a model name or a list of them", value)
    for name in names:
        if not (isinstance(name, str) and _MODEL_NAME.fullmatch(name)):
            raise (ValueError if isinstance(name, str) else WrongTypeError)(
                f"served_model_name {name!r} is not a model name: give 1 to 128 letters, digits and "
                ". _ - : starting with a letter or digit (gpt-3.5-turbo-instruct), no slash or space"
            )
    return tuple(dict.fromkeys(names))  # a name given twice is accepted once


def _root_path(value: object) -> str:
    """``root_path`` checked, without its trailing slash: ``""`` or ``/a/b``."""
    if isinstance(value, str) and _ROOT_PATH.fullmatch(value.rstrip("/")):
        return value.rstrip("/")
    raise (ValueError if isinstance(value, str) else WrongTypeError)(
        f"root_path must be a path prefix such as /nextword (letters, digits, . _ ~ - between slashes), "
        f"or empty, got {value!r}"
    )
