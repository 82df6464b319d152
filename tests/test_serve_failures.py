"""A model step that fails on the server: the clients of that step get a 500 that names no path of the
server's machine, and the server goes on serving (a failed batched step used to close the scheduler for
good, every later request answered 503 while /health said ok)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted file")

import crafted
from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app


@pytest.fixture(scope="module")
def one_row_breaks(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Works for a batch of two (load()'s probe), fails in onnxruntime for one row; the folder's name
    stands for a path of the server's machine that clients must not see."""
    path = tmp_path_factory.mktemp("private-folder") / "batch2.onnx"
    path.write_bytes(crafted.fails_below_batch_two(crafted.proto(model_path)).SerializeToString())
    return path


def _no_path(response, path: Path) -> None:
    assert str(path.parent) not in response.text and "private-folder" not in response.text, response.text


@pytest.mark.parametrize("batching", [True, False])
def test_a_failed_step_is_a_500_naming_no_path_and_the_server_goes_on(one_row_breaks, batching, caplog):
    config = ServeConfig(model=str(one_row_breaks), batching=batching)
    caplog.set_level("INFO", "nextword.serve.access")
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        one_row = {"prompt": "the network", "max_tokens": 4, "seed": 0}
        failed = client.post("/v1/completions", json=one_row)
        assert failed.status_code == 500, failed.text
        assert failed.json()["error"]["type"] == "server_error"
        assert "ModelRunError" in failed.json()["error"]["message"], failed.text
        _no_path(failed, one_row_breaks)
        with client.stream("POST", "/v1/completions", json={**one_row, "stream": True}) as streamed:
            events = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
        errors = [json.loads(e)["error"] for e in events if e != "[DONE]" and "error" in json.loads(e)]
        assert errors and errors[0]["type"] == "server_error", events
        assert "ModelRunError" in errors[0]["message"] and "private-folder" not in "".join(events)
        # its access line: the 200 sent when the stream began, and how it ended
        (line,) = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"][-1:]
        assert '"POST /v1/completions HTTP/1.1" 200 ' in line, line
        assert line.endswith("(stream ended by an error event (server_error))"), line
        for route, body in (
            ("/v1/score", {"text": "the network receives"}),
            ("/v1/suggest", {"prompt": "the"}),
        ):
            answer = client.post(route, json=body)
            assert answer.status_code == 500 and answer.json()["error"]["type"] == "server_error", answer.text
            _no_path(answer, one_row_breaks)
        # two prompts step together (in the batch, or on the job's own thread): that works, so the
        # server is still serving; with batching, the health check counts the failed steps
        two_rows = client.post("/v1/completions", json={**one_row, "prompt": ["the network", "a model"]})
        assert two_rows.status_code == 200, two_rows.text
        assert len(two_rows.json()["choices"]) == 2
        with client.stream(
            "POST", "/v1/completions", json={**one_row, "stream": True, "prompt": ["a", "b"]}
        ) as ok:
            assert [line for line in ok.iter_lines() if line][-1] == "data: [DONE]"
        (line,) = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"][-1:]
        assert re.search(r'" 200 [\d.]+ ms cmpl-[0-9a-f]{32}$', line), line  # ran to its end: nothing added
        health = client.get("/health").json()
        assert health["status"] == "ok", health
        if batching:
            assert health["failed_steps"] >= 2, health
        beams = client.post("/v1/completions", json={**one_row, "num_beams": 2})
        assert beams.status_code == 500 and "ModelRunError" in beams.text, beams.text  # its prompt: one row
        _no_path(beams, one_row_breaks)
