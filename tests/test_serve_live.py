"""The server on a real socket: the OpenAI client, concurrent clients, disconnects, caps, SIGTERM, CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from browser import bound_port, start_server  # noqa: E402

from nextword.serve import ServeConfig, create_app  # noqa: E402

# onnxruntime without a CUDA provider (onnxruntime-gpu not installed): --device cuda is refused
NO_CUDA = "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers()


def test_the_openai_client_gets_plain_and_streamed_completions(live_server, model):
    openai = pytest.importorskip("openai", reason="install nextword[serve-test] (the openai client)")
    client = openai.OpenAI(base_url=live_server.url + "/v1", api_key="not-needed", max_retries=0)
    expected = model.generate("the network", max_words=20, seed=11, temperature=0.8)
    plain = client.completions.create(
        model="tiny", prompt="the network", max_tokens=20, seed=11, temperature=0.8
    )
    assert plain.choices[0].text == expected
    assert plain.usage.completion_tokens > 0
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="tiny", prompt="the network", max_tokens=20, seed=11, temperature=0.8, stream=True
        )
        if chunk.choices
    ]
    assert len(pieces) > 1 and "".join(pieces) == expected
    extra = client.completions.create(
        model="tiny", prompt="the system", max_tokens=10, seed=1, extra_body={"top_k": 3}
    )
    assert extra.choices[0].text == model.generate("the system", max_words=10, seed=1, top_k=3)
    with pytest.raises(openai.BadRequestError, match="temperature must be a finite number >= 0"):
        client.completions.create(model="tiny", prompt="x", temperature=-1)
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_concurrent_clients_each_get_model_generate_text(live_server, model):
    """32 clients at once, different options and lengths, joining while others run."""
    requests = [
        {
            "prompt": ["the network", "a neural network", "the processor", ""][i % 4] + " " * (i % 2),
            "max_tokens": 5 + 3 * i,
            "seed": i,
            "temperature": [1.0, 0.6, 0.0, 1.3][i % 4],
            "top_k": [None, 5, None, 20][i % 4],
            "stop": [".", None, None, " the"][i % 4],
            "n": 1 + i % 3,
            "stream": i % 2 == 0,
        }
        for i in range(32)
    ]

    def call(body):
        body = {k: v for k, v in body.items() if v is not None}
        with httpx.Client(base_url=live_server.url, timeout=60) as http:
            if not body["stream"]:
                return [c["text"] for c in http.post("/v1/completions", json=body).json()["choices"]]
            texts = [""] * body["n"]
            with http.stream("POST", "/v1/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:])["choices"]:
                            texts[choice["index"]] += choice["text"]
            return texts

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(call, requests))
    for body, texts in zip(requests, answers, strict=True):
        options = {
            "max_words": body["max_tokens"],
            "seed": body["seed"],
            "temperature": body["temperature"],
            "top_k": body["top_k"],
            "stop": body["stop"] or (),
            "num_return_sequences": body["n"],
        }
        expected = model.generate([body["prompt"]], **options)
        assert texts == expected, body


def _health(url: str) -> dict:
    return httpx.get(url + "/health", timeout=10).json()


def _wait_idle(url: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = _health(url)
        if health["generations_in_flight"] == 0 and health["sequences"] == 0:
            return health
        time.sleep(0.02)
    raise AssertionError(f"still generating after {timeout} s: {health}")


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_stops_its_generation(model, stream):
    config = ServeConfig(max_words=10_000)
    server = start_server(create_app(config, model))
    try:
        body = {"prompt": "the network", "max_tokens": 10_000, "stop_at_end": False, "stream": stream}
        ticks_before = _health(server.url)["ticks"]
        with httpx.Client(base_url=server.url, timeout=60) as http:
            if stream:
                with http.stream("POST", "/v1/completions", json=body) as response:
                    next(response.iter_lines())  # the first words arrived; now hang up
            else:
                with pytest.raises(httpx.ReadTimeout):
                    http.post("/v1/completions", json=body, timeout=0.3)
        health = _wait_idle(server.url, timeout=5)
        spent = health["ticks"] - ticks_before
        time.sleep(0.2)
        assert _health(server.url)["ticks"] == health["ticks"]  # nothing runs for nobody
        assert spent < 10_000  # stopped long before its 10,000 words
    finally:
        server.stop()


def test_the_stream_cap_answers_429_and_frees_its_slot(model):
    server = start_server(create_app(ServeConfig(max_streams=1, max_words=10_000), model))
    try:
        body = {"prompt": "the", "max_tokens": 10_000, "stop_at_end": False, "stream": True}
        with httpx.Client(base_url=server.url, timeout=60) as http:
            with http.stream("POST", "/v1/completions", json=body) as response:
                lines = response.iter_lines()  # kept: dropping the iterator closes the connection
                next(lines)
                assert _health(server.url)["generations_in_flight"] == 1
                refused = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
                assert refused.status_code == 429
                assert "--max-streams" in refused.json()["error"]["message"]
            _wait_idle(server.url)
            assert http.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
    finally:
        server.stop()


def _serve_command(model_path, *flags: str) -> tuple[subprocess.Popen, str, str]:
    """``nextword serve`` on any free port (``--port 0``: none picked here that another process could
    take first); returns the process, its URL (the port uvicorn says it bound) once /health answers,
    and what it wrote to stderr until then. Its stdout (the access lines) is not kept."""
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = ["serve", "--model", str(model_path), "--port", "0", *flags]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        port, said = bound_port(process.stderr)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return process, url, said
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not come up")
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_cancels_running_streams_cleanly_and_exits(model_path, workers):
    process, url, said = _serve_command(
        # no grace time: the tiny model could finish its 10,000 words within any grace time given
        model_path,
        "--max-words",
        "10000",
        "--shutdown-timeout",
        "0",
        "--workers",
        str(workers),
    )
    try:
        events: list[str] = []
        body = {"prompt": "the", "max_tokens": 10_000, "stop_at_end": False, "stream": True}
        started = threading.Event()

        def read_stream() -> None:
            with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                        started.set()

        reader = threading.Thread(target=read_stream)
        reader.start()
        assert started.wait(30)
        process.send_signal(signal.SIGTERM)
        reader.join(timeout=30)
        # uvicorn re-raises the signal once it has shut down: the exit status says "ended by SIGTERM"
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = said + process.stderr.read()
        assert "Traceback" not in log and "cancelling 1 generation(s)" in log, log
    finally:
        if process.poll() is None:
            process.kill()
    assert events[-1] == "[DONE]"
    # the choice ends "cancelled", no finish of OpenAI's, then an error event OpenAI's clients raise
    last = json.loads(events[-3])["choices"][0]
    assert last["end_reason"] == "cancelled" and last["finish_reason"] is None
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "cut this completion short" in error["message"]


def test_cli_serve_refuses_bad_settings_with_exit_2(model_path, tmp_path):
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()  # another server on that port
    taken = str(busy.getsockname()[1])
    with busy:
        for argv, message in (
            (["serve", "--model", str(model_path), "--port", "70000"], "port must be an integer in 0..65535"),
            (["serve", "--model", str(tmp_path / "missing.onnx")], "missing.onnx"),
            (["serve", "--model", str(model_path), "--port", taken], f"port {taken} is already in use"),
            (["serve", "--model", str(model_path), "--port", taken, "--workers", "2"], "choose another port"),
            (["serve", "--model", str(model_path), "--device", "gpu"], "--device must be 'cpu', 'cuda' or"),
            *(
                [
                    (["serve", "--model", str(model_path), "--device", "cuda"], "install onnxruntime-gpu"),
                    # several workers: refused before the port is bound, not by every worker in turn
                    (
                        ["serve", "--model", str(model_path), "--device", "cuda", "--workers", "2"],
                        "onnxruntime-gpu",
                    ),
                ]
                if NO_CUDA
                else []
            ),
        ):
            result = subprocess.run(
                [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 2, result.stderr
            assert message in result.stderr
            assert "Traceback" not in result.stderr and "uvicorn" not in result.stderr.lower()
    help_text = subprocess.run(
        [sys.executable, "-c", code, "serve", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--no-batching",
        "--max-streams",
        "--max-body-bytes",
        "--workers",
        "--device",
    ):
        assert flag in help_text
    assert "127.0.0.1" in help_text


def test_a_device_is_checked_in_a_child_process_for_several_workers(model_path, tmp_path):
    """``--workers`` above 1 with a GPU: the model is loaded on it once in a child process (so the
    supervisor holds no GPU memory), and what fails there is raised here, before the port is bound."""
    from nextword.runtime import ModelFileError
    from nextword.serve.server import check_device_in_child

    check_device_in_child(str(model_path), "cpu")  # loads, and returns
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + bytes(200))
    with pytest.raises(ModelFileError, match=r"junk\.onnx"):
        check_device_in_child(str(junk), "cpu")


def test_nextword_model_environment_variable_picks_the_model(model_path, monkeypatch):
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path))
    app = create_app(ServeConfig())
    assert app.state.nextword.model_id == "tiny"
    assert os.path.samefile(app.state.nextword.model.source, model_path)
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path.parent / "gone.onnx"))
    from nextword.runtime import ModelFileError

    with pytest.raises(
        ModelFileError, match=r"gone\.onnx does not exist .*\(the path comes from \$NEXTWORD_MODEL"
    ):
        create_app(ServeConfig())
    with pytest.raises(ValueError, match=r"model must be the path of a \.onnx file, got ''; leave it out"):
        ServeConfig(model="")  # served $NEXTWORD_MODEL or the bundled model, silently


def test_serve_without_the_serve_extra_says_what_to_install(model_path):
    block = (
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in {'fastapi', 'uvicorn', 'starlette'}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", block, "serve", "--model", str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert 'pip install "nextword[serve]"' in result.stderr and "fastapi" in result.stderr
    # The Python API says the same (it raised ModuleNotFoundError: No module named 'fastapi').
    api = block.replace(
        "from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))\n",
        "from nextword.serve import ServeConfig, create_app, serve\n"
        "from nextword.train import MissingExtraError\n"
        "for call in (create_app, serve):\n"
        "    try:\n"
        "        call(ServeConfig(model=sys.argv[1]))\n"
        "    except MissingExtraError as exc:\n"
        "        print(exc)\n",
    )
    result = subprocess.run(
        [sys.executable, "-c", api, str(model_path)], capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert len(lines) == 2 and all(
        line.startswith("serving needs fastapi") and "nextword[serve]" in line for line in lines
    )


def test_the_address_check_names_the_option_to_change():
    from nextword.serve.server import AddressUnavailableError, check_address

    check_address("127.0.0.1", 0)  # any free port: only the host is checked
    with pytest.raises(AddressUnavailableError, match=r"host '999\.1\.1\.1' cannot be resolved.*--host"):
        check_address("999.1.1.1", 0)
    with pytest.raises(
        AddressUnavailableError, match=r"'\[::1\]' is an IPv6 address in a URL's brackets: .*--host ::1$"
    ):
        check_address("[::1]", 0)
    with pytest.raises(AddressUnavailableError, match=r"192\.0\.2\.1 is not an address of this.*--host"):
        check_address("192.0.2.1", 0)
    with socket.socket() as busy:  # a port this test holds: no other process can take it meanwhile
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        check_address("127.0.0.1", port)  # held, not listening: a server may bind it (both SO_REUSEADDR)
        check_address("127.0.0.1", port)  # again: the check itself holds nothing
        busy.listen()
        with pytest.raises(AddressUnavailableError, match=f"port {port} is already in use.*--port"):
            check_address("127.0.0.1", port)
    with pytest.raises(AddressUnavailableError, match=r"192\.0\.2\.1 is not an address of this.*--host"):
        check_address("192.0.2.1", port)  # TEST-NET-1: never a local address


def test_workers_refuse_a_metrics_folder_they_cannot_write_before_they_start(
    model_path, monkeypatch, tmp_path
):
    """$PROMETHEUS_MULTIPROC_DIR naming no folder, or a bad $NEXTWORD_API_KEY, made every worker fail as
    it started, and uvicorn start it again, forever, a traceback each time: refused at once, before the
    port is bound."""
    import uvicorn

    from nextword.serve import serve

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: pytest.fail("uvicorn started"))
    a_file = tmp_path / "metrics"
    a_file.write_text("")
    a_file.chmod(0o755)  # writable and executable, still no folder
    for given, why in ((tmp_path / "missing", "is not a folder"), (a_file, "is not a folder")):
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
        with pytest.raises(ValueError, match=rf"^\$PROMETHEUS_MULTIPROC_DIR {given} {why}, and --workers"):
            serve(ServeConfig(model=str(model_path), workers=2, port=0))
    # a folder this user cannot write (root writes anywhere: os.access is asked, as for another user)
    import nextword.serve.server as server_module

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    real_access = os.access
    monkeypatch.setattr(server_module.os, "access", lambda path, mode: not mode & os.W_OK)
    with pytest.raises(ValueError, match=r"is a folder this user cannot write, and --workers"):
        serve(ServeConfig(model=str(model_path), workers=2, port=0))
    monkeypatch.setattr(server_module.os, "access", real_access)
    # a disk without room: each worker died of SIGBUS writing its mapped metrics, and uvicorn started it
    # again, forever, saying nothing but "Child process died"; the server's own folder is removed again
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(server_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(
        ValueError, match=r"^\$PROMETHEUS_MULTIPROC_DIR .* has 4,096 bytes free, and --workers 2"
    ):
        serve(ServeConfig(model=str(model_path), workers=2, port=0))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "own"))  # where the server makes its folder
    (tmp_path / "own").mkdir()
    with pytest.raises(
        ValueError, match=r"^the temporary folder .*own has 4,096 bytes free.*or point TMPDIR at"
    ):
        serve(ServeConfig(model=str(model_path), workers=3, port=0))
    assert list((tmp_path / "own").iterdir()) == [] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    monkeypatch.undo()
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: pytest.fail("uvicorn started"))
    # so is $NEXTWORD_API_KEY, which the supervising process read nowhere: each worker failed on it
    for key, said in (("", "is set but empty"), ("two words", "has a key that is not 1 to 1024")):
        monkeypatch.setenv("NEXTWORD_API_KEY", key)
        with pytest.raises(ValueError, match=rf"^\$NEXTWORD_API_KEY {said}"):
            serve(ServeConfig(model=str(model_path), workers=2, port=0))


def test_an_address_refused_is_said_without_advice_on_files():
    """ "binding 127.0.0.1:80 is not permitted (...): raise --port; check the permissions, or choose
    another place": the command line added its advice for a file that cannot be written."""
    import errno

    from nextword.cli.main import _os_error
    from nextword.serve.server import AddressUnavailableError

    why = "binding 127.0.0.1:80 is not permitted (ports below 1024 need privileges): raise --port"
    assert _os_error(AddressUnavailableError(errno.EACCES, why)) == why
    assert "permissions" in _os_error(PermissionError(errno.EACCES, "Permission denied", "out.onnx"))


def test_serve_with_workers_hands_them_its_settings_and_gives_the_environment_back(model_path, monkeypatch):
    """The workers read their settings from an environment variable, set while uvicorn runs them: a
    value the calling program had is there again afterwards, and none is left where it had none."""
    import uvicorn

    from nextword.serve import serve
    from nextword.serve.app import CONFIG_ENV

    seen, options = [], []

    def supervisor(app, **kwargs):  # stands for uvicorn's supervisor, stopped by a Ctrl-C
        seen.append(json.loads(os.environ[CONFIG_ENV]))
        options.append(kwargs)
        signal.signal(signal.SIGINT, lambda signum, frame: None)  # it takes the signal...
        signal.raise_signal(signal.SIGINT)  # ... and stops on it (serve() puts the handler back)

    monkeypatch.setattr(uvicorn, "run", supervisor)
    config = ServeConfig(model=str(model_path), workers=2, port=0, served_model_name="alias")
    for earlier in (None, "the caller's own"):
        if earlier is None:
            monkeypatch.delenv(CONFIG_ENV, raising=False)
        else:
            monkeypatch.setenv(CONFIG_ENV, earlier)
        handler = signal.getsignal(signal.SIGINT)
        serve(config)
        assert seen[-1]["served_model_name"] == ["alias"] and seen[-1]["workers"] == 2
        assert os.environ.get(CONFIG_ENV) == earlier
        assert signal.getsignal(signal.SIGINT) is handler
    # a worker's start (the model loaded and probed) may take longer than uvicorn's 5 s: a SIGHUP reload
    # kept the old model then; uvicorn before 0.37 has no such timeout, and is given none
    import inspect

    from nextword.serve.server import WORKER_READY_SECONDS

    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        assert options[-1]["timeout_worker_healthcheck"] == WORKER_READY_SECONDS
    else:
        assert "timeout_worker_healthcheck" not in options[-1]


def _level(uvicorn_settings: dict) -> str:
    """The level uvicorn's messages are written at: its messages handler's (uvicorn is given no
    log_level of its own, which would drop an info line a filter raises to a warning)."""
    assert uvicorn_settings["log_level"] is None
    return uvicorn_settings["log_config"]["handlers"]["default"]["level"].lower()


def test_log_level_quiets_nextwords_own_serving_messages(model, monkeypatch):
    """--log-level reached uvicorn alone: 'serving ...' and 'shutting down ...' stayed at info, and
    debug did not lower them."""
    import logging

    import uvicorn

    from nextword.serve import serve

    ours = logging.getLogger("nextword")
    ran = []  # uvicorn's level, and ours while it serves
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.append((_level(kwargs), ours.level)))
    before = ours.level
    try:
        for start, asked, serving in (
            (logging.INFO, "warning", logging.WARNING),
            (logging.INFO, "info", logging.INFO),
            (logging.INFO, "debug", logging.DEBUG),  # nextword's debug lines too
            (logging.WARNING, "debug", logging.WARNING),  # never louder than -q asked
        ):
            ours.setLevel(start)
            serve(ServeConfig(port=0, log_level=asked), model)
            assert ran[-1] == (asked, serving)
            assert ours.level == start  # as the caller had it, once serve() returns
    finally:
        ours.setLevel(before)


def test_a_caller_quiet_through_the_root_logger_is_not_made_louder(model, monkeypatch):
    """A program whose logging.basicConfig(level=WARNING) left the nextword logger unset asked for
    warnings only: log_level="debug" must not open nextword's debug lines to it."""
    import logging

    import uvicorn

    from nextword.serve import serve

    ours, root = logging.getLogger("nextword"), logging.getLogger()
    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.append(ours.getEffectiveLevel()))
    before = ours.level, root.level
    try:
        ours.setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)
        serve(ServeConfig(port=0, log_level="debug"), model)
    finally:
        ours.setLevel(before[0])
        root.setLevel(before[1])
    assert seen == [logging.WARNING]


@pytest.mark.parametrize(
    ("quiet", "level", "uvicorn_level"),
    [
        ([], [], "info"),
        (["-q"], [], "warning"),
        (["-q"], ["--log-level", "debug"], "warning"),
        (["-q"], ["--log-level", "error"], "error"),
    ],
)
def test_quiet_quiets_uvicorn_too(model_path, monkeypatch, quiet, level, uvicorn_level):
    """`nextword -q serve` printed uvicorn's 'Started server process' and 'Uvicorn running on' lines."""
    import uvicorn

    from nextword.cli.main import main

    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.append(_level(kwargs)))
    assert main([*quiet, "serve", str(model_path), "--port", "0", *level]) == 0
    assert ran == [uvicorn_level]
