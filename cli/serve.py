"""``nextword serve``: the HTTP API and the web page; its options are the fields of
:class:`nextword.serve.ServeConfig`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
from dataclasses import replace
from typing import Any

from nextword.serve import ServeConfig, require_framework, serve
from nextword.serve.config import LOG_LEVELS
from nextword.serve.logs import FORCED_QUIT, use_server_format

from .args import add_config_arguments, config_from_args, flag_names

__all__ = ["add_serve_parser", "end_now_if_forced"]


def add_serve_parser(commands: Any) -> None:
    """Register ``nextword serve`` on ``commands`` (the object ``add_subparsers`` returned)."""
    parser = commands.add_parser(
        "serve",
        help="serve the model over HTTP: OpenAI-compatible API and a web page (needs nextword[serve])",
        description="Serve a model over HTTP: POST /v1/completions (OpenAI-compatible, streaming), "
        "/v1/suggest, /v1/score, GET /v1/models, /health, /metrics (Prometheus), the API reference at /docs "
        "and a page to try the model at /. Listens on 127.0.0.1 unless --host says otherwise. See "
        "docs/serving.md.",
    )
    parser.add_argument(
        "model_file",
        nargs="?",
        metavar="MODEL.onnx",
        help="the .onnx model file to serve, as --model names it",
    )
    add_config_arguments(parser, ServeConfig)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    require_framework()  # before the model is loaded: a missing extra is the first thing to say
    if args.model_file is not None:  # `nextword serve MODEL.onnx`, as evaluate and info take it
        if getattr(args, "model", None) is not None:  # --model, where given (unset otherwise)
            raise ValueError(f"{args.model_file} and --model {args.model}: give the model once")
        args.model = args.model_file
    config = config_from_args(ServeConfig(), vars(args))
    if args.quiet:  # warnings and errors only: uvicorn's start-up and shutdown lines too
        config = replace(config, log_level=max(config.log_level, "warning", key=LOG_LEVELS.index))
    # a long-running process: its lines carry a time stamp, nextword's own as uvicorn's do (the other
    # commands' lines, read as they are written, do not)
    use_server_format()
    FORCED_QUIT.clear()  # set by this server's forced quit only (end_now_if_forced reads it)
    try:
        serve(config)
    except ValueError as exc:  # a setting refused once the files it names are read (ssl_certfile=...)
        raise ValueError(flag_names(str(exc), ServeConfig)) from None
    return 0


def end_now_if_forced(code: int) -> None:
    """After ``nextword serve`` ended by a forced quit (Ctrl-C twice, or uvicorn's backstop), end the
    process now with ``code``: the interpreter would wait at exit for the threads still making an
    answer nobody reads (a ``/v1/score`` of a long text runs on one for seconds), and a third Ctrl-C
    there printed a traceback. For the console script alone (nextword.cli.entry), which has no caller
    to return to; only on the main thread, and only while such a thread is alive."""
    if not FORCED_QUIT.is_set() or threading.current_thread() is not threading.main_thread():
        return
    me = threading.current_thread()
    if not any(t is not me and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(code)
