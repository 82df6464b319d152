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


CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _ci_node_check(tmp_path: Path, call: str, **tools: str) -> tuple[int, str, str]:
    """Run .ci/run's Node check (NODE_NEEDED, node_version_ok and need_node, cut from the script) with
    ``call``, on a PATH that holds only ``tools`` (name: a shell script's body) and awk and id."""
    import shutil
    import subprocess

    script = CI_RUN.read_text()
    check = script[script.index("NODE_NEEDED=") : script.index("\nneed_node\n")]
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name in ("awk", "id"):
        (bin_ / name).symlink_to(shutil.which(name))
    for name, body in {"sudo": 'exec "$@"', **tools}.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash"), "-c", f"{check}\n{call}"],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_), "HOME": str(tmp_path)},
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason=".ci/run is a bash script")
@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("v18.19.0", False),
        ("18.19.0+dfsg-6~deb12u2", False),  # Debian 12's apt candidate
        ("v20.18.3", False),
        ("v20.19.0", True),
        ("20.19.1-1nodesource1", True),
        ("v21.7.3", False),
        ("v22.11.0", False),
        ("v22.12.0", True),
        ("1:22.12.0-1nodesource1", True),  # an apt candidate with an epoch
        ("v23.0.0", True),
        ("v24.1.0", True),
        ("(none)", False),
        ("", False),
    ],
)
def test_ci_run_takes_the_node_versions_the_tests_need(tmp_path, version, ok):
    """.ci/run's node_version_ok, which decides both whether apt's nodejs is installed and whether the
    Node found will do, holds the same line as the tests' own check (^20.19 or >=22.12)."""
    rc, _, err = _ci_node_check(tmp_path, f'node_version_ok "{version}"')
    assert (rc == 0) == ok, (version, rc, err)


NODE_22 = "echo v22.12.0"
NPM = "echo 10.9.0"


@pytest.mark.skipif(sys.platform == "win32", reason=".ci/run is a bash script")
@pytest.mark.parametrize(
    ("tools", "passes", "said"),
    [
        ({"node": NODE_22, "npm": NPM}, True, "node v22.12.0, npm 10.9.0"),
        ({"node": "echo v18.19.0", "npm": NPM}, False, "found node v18.19.0 ({bin}/node), npm 10.9.0."),
        ({"node": NODE_22}, False, "found node v22.12.0 ({bin}/node), no npm."),
    ],
)
def test_ci_run_stops_where_the_node_found_will_not_do(tmp_path, tools, passes, said):
    """With node on PATH, .ci/run goes on only where it is new enough and npm is there; else it stops,
    naming what it found and what to install."""
    rc, out, err = _ci_node_check(tmp_path, "need_node", **tools)
    said = said.format(bin=tmp_path / "bin")
    if passes:
        assert rc == 0 and out.strip() == said, (rc, out, err)
    else:
        assert rc == 1 and said in err and "Install Node 22 LTS" in err, (rc, out, err)


@pytest.mark.skipif(sys.platform == "win32", reason=".ci/run is a bash script")
@pytest.mark.parametrize(
    ("candidate", "installed"), [("18.19.0+dfsg-6~deb12u2", False), ("1:22.12.0-1nodesource1", True)]
)
def test_ci_run_installs_apts_nodejs_only_where_it_is_new_enough(tmp_path, candidate, installed):
    """No node: apt's nodejs is installed where its candidate will do (NodeSource's, with an epoch), and
    Debian 12's 18.x is not (a Node that fails every JavaScript test), which .ci/run says."""
    staged = tmp_path / "staged"
    staged.mkdir()
    for name, body in {"node": NODE_22, "npm": NPM}.items():
        (staged / name).write_text(f"#!/bin/sh\n{body}\n")
        (staged / name).chmod(0o755)
    log = tmp_path / "apt.log"
    apt_get = (
        f'echo "$@" >> {log}\n'
        f'case "$*" in *install*nodejs*) /bin/cp {staged}/node {staged}/npm {tmp_path}/bin/ ;; esac'
    )
    apt_cache = f"echo 'nodejs:'; echo '  Installed: (none)'; echo '  Candidate: {candidate}'"
    rc, out, err = _ci_node_check(tmp_path, "need_node", **{"apt-get": apt_get, "apt-cache": apt_cache})
    calls = log.read_text().splitlines()
    if installed:
        assert calls == ["update -qq", "install -y -qq nodejs"], calls
        assert rc == 0 and out.strip() == "node v22.12.0, npm 10.9.0", (rc, out, err)
    else:
        assert calls == ["update -qq"], calls
        assert f"apt offers nodejs {candidate}, not ^20.19.0 || >=22.12.0: not installing it" in err
        assert rc == 1 and "found no node, no npm." in err, (rc, out, err)
