"""What a mutation review of the WrongTypeError split, the server's UnexpectedErrors middleware and the
default-model cache's reload of a replaced file found untested: a bool or the upper bound given to a
shared range check, a str given where a list of tokens belongs, a model with a tokenizer but no step
function, the config fields whose right-typed bad values must stay a plain ValueError (ssl files,
root_path, val_fraction 0), a wrong-typed field inside a tokenizer's JSON or a run's config.json; the
middleware's answer to an error raised after the answer began, or outside HTTP; and the stamp that
tells a replaced model file from the one loaded (its size, inode and modification time, each alone)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import out_of_range, refused
from nextword.corpus import CorpusConfig
from nextword.export import ExportConfig
from nextword.runtime import (
    BeamSearch,
    GenerationConfig,
    Generator,
    ModelFileError,
    NextWordModel,
    Tokenizer,
    load,
)
from nextword.runtime import default as default_module
from nextword.runtime.checks import check_real
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.provenance import SPLIT_BY_DOCUMENT, SplitRecord
from nextword.serve.config import ServeConfig
from nextword.serve.errors import UnexpectedErrors
from nextword.train import TrainConfig
from nextword.train.files import RunDir


@pytest.fixture(scope="module")
def model() -> NextWordModel:
    return load(BUNDLED_MODEL)


# --------------------------------------------------------------------------- the shared checks


def test_a_bool_is_no_number_for_a_range_check() -> None:
    """True is a numbers.Real and inside 0..1: only the bool test refuses it."""
    refused(lambda: check_real("top_p", True, low=0, low_open=True, high=1), r"^top_p must be .*, got True$")
    refused(lambda: GenerationConfig(top_p=True), r"^top_p must be a finite number > 0 and <= 1, got True$")


def test_the_upper_bound_of_a_range_check_is_allowed() -> None:
    check_real("top_p", 1, low=0, low_open=True, high=1)
    GenerationConfig(top_p=1.0)  # allowed: the whole distribution, no filtering
    assert ExportConfig(tolerance=1.0).tolerance == 1.0


def test_a_str_given_as_the_tokens_is_named_not_read_as_characters(model: NextWordModel) -> None:
    """Without the str test, Tokenizer("abc") took a, b, c as the vocabulary, and evaluate_ids read the
    characters as documents."""
    refused(lambda: Tokenizer("abc"), r"^tokens must be a list of token strings in id order, got 'abc'$")
    from nextword.runtime import evaluate_ids

    refused(
        lambda: evaluate_ids(model, "abc"),
        r"^documents must be a list \(or any iterable\) of token-id lists, got 'abc'$",
    )


@pytest.mark.parametrize("forward", [None, "not callable"])
def test_a_model_with_a_tokenizer_but_no_step_function_is_refused(model: NextWordModel, forward: Any) -> None:
    fake = SimpleNamespace(tokenizer=model.tokenizer, forward=forward)
    message = r"^model must be a loaded model \(nextword.runtime.load\(path\)\), got namespace"
    refused(lambda: Generator(fake), message)  # type: ignore[arg-type]
    refused(lambda: BeamSearch(fake, [[0]], GenerationConfig()), message)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- configs: type apart from value


def test_an_empty_ssl_file_stays_a_plain_value_error() -> None:
    out_of_range(
        lambda: ServeConfig(ssl_certfile="  "), r"^ssl_certfile must be the path of a PEM file, got '  '$"
    )
    out_of_range(
        lambda: ServeConfig(ssl_certfile="cert.pem", ssl_keyfile=""),
        r"^ssl_keyfile must be the path of a PEM file, got ''$",
    )
    refused(lambda: ServeConfig(ssl_certfile=5), r"^ssl_certfile must be the path of a PEM file, got 5$")


def test_a_root_path_string_that_is_no_prefix_stays_a_plain_value_error() -> None:
    out_of_range(lambda: ServeConfig(root_path="a b"), r"^root_path must be a path prefix .*, got 'a b'$")
    refused(lambda: ServeConfig(root_path=5), r"^root_path must be a path prefix .*, got 5$")


def test_a_val_fraction_of_zero_is_refused_by_the_split_record_and_the_corpus_config() -> None:
    out_of_range(
        lambda: SplitRecord(SPLIT_BY_DOCUMENT, 0.0, 0),
        r"^val_fraction must be between 0 and 1 \(exclusive\), got 0\.0$",
    )
    out_of_range(
        lambda: CorpusConfig(paths=("a.txt",), val_fraction=0.0),
        r"^val_fraction must be a number between 0 and 1 \(exclusive\), got 0\.0$",
    )


def test_a_wrong_typed_field_in_a_tokenizer_json_keeps_its_own_message(model: NextWordModel) -> None:
    data = json.loads(model.tokenizer.to_json())
    data["config"]["min_count"] = "2"
    refused(lambda: Tokenizer.from_json(json.dumps(data)), r"^min_count must be an integer >= 1, got '2'$")


def test_a_wrong_typed_field_in_a_run_config_names_the_file_not_a_damaged_one(tmp_path: Path) -> None:
    stored = TrainConfig(corpus=CorpusConfig(paths=("a.txt",))).to_dict()
    stored["overwrite"] = "yes"
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError) as caught:
        RunDir(tmp_path).read_config()
    assert str(caught.value) == f"{tmp_path / 'config.json'}: overwrite must be True or False, got 'yes'"


# --------------------------------------------------------------------------- the server's UnexpectedErrors


def _call(app: Callable[..., Any], sent: list[dict[str, Any]], scope_type: str = "http") -> None:
    """Run ``UnexpectedErrors(app)`` on one request of ``scope_type``, what it sends kept in ``sent``."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": scope_type, "method": "GET", "path": "/x", "raw_path": b"/x", "query_string": b""}
    asyncio.run(UnexpectedErrors(app)(scope, receive, send))


def test_an_error_before_the_answer_is_a_500_from_the_middleware() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    sent: list[dict[str, Any]] = []
    _call(app, sent)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500 and b"RuntimeError" in sent[1]["body"] and b"boom" not in sent[1]["body"]


@pytest.mark.parametrize("chunks", [0, 1, 2])
def test_an_error_after_the_answer_began_is_raised_on_not_answered_twice(chunks: int) -> None:
    """A stream's error after its 200 began (and some of its body was sent): a second start would be a
    protocol error; the error is raised on, and the ASGI server closes the connection."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": b"data", "more_body": True})
        raise RuntimeError("boom")

    sent: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="boom"):
        _call(app, sent)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    assert len(sent) == 1 + chunks


def test_an_error_outside_http_is_raised_on_unanswered() -> None:
    """A lifespan's failure (a model that does not load at startup) is no request to answer with a 500."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("startup failed")

    sent: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="startup failed"):
        _call(app, sent, "lifespan")
    assert not sent


# --------------------------------------------------------------------------- the default model's stamp


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundled model, loaded once into an emptied default-model cache."""
    monkeypatch.setattr(default_module, "_models", {})
    path = tmp_path / "live.onnx"
    shutil.copyfile(BUNDLED_MODEL, path)
    first = default_module.default_model(path)
    assert default_module.default_model(path) is first  # unchanged: not loaded again
    return path


def _same_times(path: Path, times: os.stat_result) -> None:
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))


def test_a_file_rewritten_in_place_with_the_same_size_is_loaded_again(live: Path) -> None:
    """Same inode, same size (retrained weights of the same shape): its modification time tells it."""
    before = live.stat()
    with open(live, "r+b") as file:  # in place: the inode stays
        file.write(b"\0" * before.st_size)
    os.utime(live, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert live.stat().st_ino == before.st_ino and live.stat().st_size == before.st_size
    with pytest.raises(ModelFileError):
        default_module.default_model(live)


def test_a_file_rewritten_in_place_at_the_same_time_is_told_by_its_size(live: Path) -> None:
    before = live.stat()
    with open(live, "r+b") as file:
        file.truncate(before.st_size // 2)
    _same_times(live, before)
    assert live.stat().st_mtime_ns == before.st_mtime_ns and live.stat().st_ino == before.st_ino
    with pytest.raises(ModelFileError):
        default_module.default_model(live)


def test_a_file_renamed_over_with_the_same_size_and_time_is_told_by_its_inode(live: Path) -> None:
    """As rsync -a leaves one: a new file of the same size and modification time renamed over it."""
    before = live.stat()
    fresh = live.with_name("fresh.onnx")
    fresh.write_bytes(b"\0" * before.st_size)
    _same_times(fresh, before)
    os.replace(fresh, live)
    assert live.stat().st_ino != before.st_ino and live.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(ModelFileError):
        default_module.default_model(live)
