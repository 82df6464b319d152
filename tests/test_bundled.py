"""The model shipped in the package: present, small, self-describing, and usable with the runtime alone."""

import os
import re
import subprocess
import sys

import pytest

from nextword.runtime import generate, load
from nextword.runtime.default import BUNDLED_MODEL

MAX_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def bundled():
    return load(BUNDLED_MODEL)


def test_bundled_model_is_in_the_package_and_small(bundled):
    assert BUNDLED_MODEL.is_file() and BUNDLED_MODEL.stat().st_size <= MAX_BYTES
    assert bundled.info.quality["precision"] == "int8"


def test_provenance_is_recorded(bundled):
    train = bundled.info.config["train"]
    assert train["corpus"]["paths"] == ["neural_network_patent_query.csv"]
    assert train["corpus"]["val_fraction"] == 0.1 and train["corpus"]["split_seed"] == 0
    assert train["data"]["documents"] == 3522
    assert train["command"].startswith("nextword train ")
    assert bundled.info.config["export"]["command"].startswith("nextword export ")
    assert bundled.info.metrics["best"]["val_perplexity"] > 1
    assert (
        bundled.info.parity["passed"]
        and bundled.info.parity["greedy_identical"] == bundled.info.parity["greedy_sequences"]
    )


def test_int8_is_within_two_percent_of_fp32(bundled):
    fp32, int8 = (bundled.info.quality[k]["perplexity"] for k in ("fp32", "int8"))
    assert abs(int8 - fp32) / fp32 <= 0.02


def test_generate_without_a_model_uses_the_bundled_one(monkeypatch):
    monkeypatch.delenv("NEXTWORD_MODEL", raising=False)
    text = generate("the present invention", seed=3)
    assert len(text.split()) >= 27  # with the prompt's 3 words: at least 30


def _loop(words: list[str]) -> list[str] | None:
    """A run of 1 to 10 words repeated three times in a row, if the text has one."""
    for size in range(1, 11):
        for i in range(len(words) - 3 * size + 1):
            if words[i : i + size] == words[i + size : i + 2 * size] == words[i + 2 * size : i + 3 * size]:
                return words[i : i + 3 * size]
    return None


def test_the_loop_detector_detects_loops():
    assert _loop(
        ["a", "vehicle", "speed", ",", "a", "vehicle", "speed", ",", "a", "vehicle", "speed", ",", "and"]
    )
    assert _loop(["the", "the", "the"]) and not _loop(["a", "b", "a", "b", "c", "a", "b"])


PROMPTS = [
    "the present invention",
    "a neural network",
    "",
    "the system comprises",
    "a method",
    "in one embodiment",
]


def test_greedy_does_not_loop_within_100_words_at_the_defaults(bundled):
    for prompt in PROMPTS:
        text = bundled.generate(prompt, temperature=0, max_words=100, stop_at_end=False)
        assert _loop(bundled.tokenizer.tokenize(text)) is None, (prompt, text)


def test_the_stored_decoding_defaults_are_what_prevents_loops(bundled):
    assert bundled.info.generation.no_repeat_ngram_size == 4
    looping = [
        p
        for p in PROMPTS
        if _loop(
            bundled.tokenizer.tokenize(
                bundled.generate(p, temperature=0, max_words=100, stop_at_end=False, no_repeat_ngram_size=0)
            )
        )
    ]
    assert (
        looping
    )  # without them, greedy decoding of this model does loop (so the test above means something)


def test_cli_generate_and_info_without_a_model():
    cli = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "NEXTWORD_MODEL"}
    out = subprocess.run(
        [sys.executable, "-c", cli, "generate", "the present invention", "--seed", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0 and len(out.stdout.split()) >= 30, out.stderr
    info = subprocess.run(
        [sys.executable, "-c", cli, "info"], capture_output=True, text=True, env=env, timeout=120
    )
    assert info.returncode == 0, info.stderr
    for needle in (
        "neural_network_patent_query.csv: 3522 documents",
        "split seed 0",
        "trained with",
        "exported with",
    ):
        assert needle in info.stdout, needle
    assert re.search(r"quality int8 +validation documents: perplexity \d", info.stdout)
