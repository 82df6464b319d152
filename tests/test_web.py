"""nextword-web (web/) against the Python runtime: the same tokens, checks, messages and texts.

Each test writes the Python runtime's outputs for a set of inputs to a JSON file and runs one Node test
file of web/test/ (``node --test``) against it; the Node side asserts. They need Node 20+ and the npm
packages of web/ (``make web-setup``); without them they are skipped with that reason, unless
``NEXTWORD_REQUIRE_WEB=1`` (set by .ci/run), where a missing Node is a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from web_files_reference import model_file_reference
from web_reference import (
    WEB,
    generation_reference,
    need_node,
    rng_reference,
    run_node,
    sampler_reference,
    tokenizer_reference,
)

from helpers import REFERENCE_CORPUS

BUNDLED = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"


@pytest.fixture(scope="module")
def bundled():
    from nextword.runtime import load

    # onnxruntime-web steps on one thread; the default would run int8 batches of 5 rows or more on two,
    # whose numbers differ (docs/web.md)
    return load(BUNDLED, threads=1)


def test_tokenizer_matches_python(bundled, tmp_path):
    need_node()
    reference = {"tokenizer": tokenizer_reference(bundled.tokenizer.to_json())}
    run_node("parity-tokenizer.test.js", reference, tmp_path)


def test_sampler_and_random_streams_match_numpy(bundled, tmp_path):
    need_node()
    reference = {"sampler": sampler_reference(bundled), "rng": rng_reference()}
    output = run_node("parity-sampling.test.js", reference, tmp_path)
    assert "batched draws identical to Python's" in output


def test_bundled_model_generates_what_python_generates(bundled, tmp_path):
    need_node()
    reference = {"model": str(BUNDLED), **generation_reference(bundled, seeds=40, replays=3)}
    print(run_node("parity-generation.test.js", reference, tmp_path))


@pytest.mark.slow
def test_tiny_model_generates_what_python_generates(model, model_path, tmp_path):
    need_node()
    reference = {"model": str(model_path), **generation_reference(model, seeds=40, replays=40)}
    print(run_node("parity-generation.test.js", reference, tmp_path))


@pytest.mark.slow
def test_continuous_cache_matches_python(model_path, tmp_path):
    """The tiny model with cache settings: next words and scores with the cache (by default) and without,
    greedy and seeded texts, streams and session calls with cache=True, and cache errors."""
    pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to write the cache settings")
    need_node()
    from web_cache_reference import cache_files, cache_reference

    reference = cache_reference(cache_files(model_path, tmp_path))
    output = run_node("parity-cache.test.js", reference, tmp_path)
    assert "ℹ pass 9" in output and "ℹ fail 0" in output
    print(output)


@pytest.mark.slow
def test_gated_cosine_cache_matches_python(model_path, tmp_path):
    """The tiny model with a gated cosine cache (cosine similarities, a share per position from the
    cache's log-sum-exp) in a format-3 file: everything the test above compares."""
    pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to write the cache settings")
    need_node()
    from web_cache_reference import GATED_COSINE, cache_files, cache_reference

    reference = cache_reference(cache_files(model_path, tmp_path, cache=GATED_COSINE, format_version="3"))
    assert reference["settings"]["gate"] == GATED_COSINE["gate"] and "mix" not in reference["settings"]
    output = run_node("parity-cache.test.js", reference, tmp_path)
    assert "ℹ pass 9" in output and "ℹ fail 0" in output
    print(output)


def test_bundled_model_cache_matches_python(bundled, tmp_path):
    """The bundled model with its own cache settings, as the test above (an int8 file: probabilities to
    2e-2, at least three in four seeded texts identical)."""
    pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to write the variants")
    if bundled.cache_settings is None:
        pytest.skip(f"{BUNDLED.name} has no continuous-cache settings: nothing to compare")
    need_node()
    from web_cache_reference import cache_files, cache_reference

    reference = cache_reference(cache_files(BUNDLED, tmp_path, cache=None))
    output = run_node("parity-cache.test.js", reference, tmp_path)
    assert "ℹ fail 0" in output
    print(output)


@pytest.mark.corpus
def test_every_reference_abstract_tokenizes_as_in_python(bundled, tmp_path):
    need_node()
    import csv

    with REFERENCE_CORPUS.open(newline="", encoding="utf-8") as f:
        abstracts = [row["patent_abstract"] for row in csv.DictReader(f)]
    tok = bundled.tokenizer
    rows = []
    for text in abstracts:
        ids = tok.encode(text)
        rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    reference = {"tokenizer_json": tok.to_json(), "abstracts": rows}
    output = run_node("parity-corpus.test.js", reference, tmp_path)
    assert f"{len(rows)} abstracts" in output
    print(output.splitlines()[0])


@pytest.mark.slow
def test_damaged_and_doctored_files_are_refused_as_in_python(model_path, tmp_path):
    pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the bad files")
    need_node()
    output = run_node("parity-files.test.js", model_file_reference(model_path), tmp_path)
    print(output.splitlines()[0])


def test_javascript_side_on_its_own(tmp_path):
    """Loading from paths, bytes and URLs, the Web Worker client, and JavaScript option messages."""
    need_node()
    output = run_node("unit.test.js", {}, tmp_path)
    assert "ℹ fail 0" in output


def test_readme_javascript_example_runs():
    """The README's Node example, as written, from the repository root."""
    need_node()
    import re
    import subprocess
    import uuid

    readme = (WEB.parent / "README.md").read_text(encoding="utf-8")
    block = re.findall(r"```js\n(.*?)```", readme, flags=re.DOTALL)[0]
    script = WEB / "test" / f".readme-example-{uuid.uuid4().hex}.mjs"  # inside web/: `nextword-web` resolves
    script.write_text(block, encoding="utf-8")
    try:
        result = subprocess.run(
            ["node", str(script)], cwd=WEB.parent, capture_output=True, text=True, timeout=300
        )
    finally:
        script.unlink()
    assert result.returncode == 0, result.stderr
    assert "probability" in result.stdout and len(result.stdout.split()) > 40


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for node")
@pytest.mark.parametrize(
    ("version", "too_old"),
    [
        ("v18.19.0", True),
        ("v20.18.3", True),
        ("v20.19.1", False),
        ("v21.7.3", True),
        ("v22.11.0", True),
        ("v22.12.0", False),
        ("v24.1.0", False),
    ],
)
def test_a_node_too_old_for_the_tests_is_named(tmp_path, monkeypatch, version, too_old):
    """Debian 12's Node 18 failed every JavaScript test with "node: bad option: --test-timeout": the
    tests now skip (or fail under NEXTWORD_REQUIRE_WEB=1) naming the version found and the one needed,
    as .ci/run's check does (^20.19 or >=22.12)."""
    from web_reference import _node_version

    node = tmp_path / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert _node_version.__wrapped__() == (version if too_old else None)
