"""Every decoding option is bounded, for call options and for the defaults a model file stores; the
extreme values still accepted generate text made of words, never <pad>, <unk> or <eod>."""

from __future__ import annotations

import json
import time

import pytest

from nextword.runtime import GenerationConfig, Generator, ModelFileError, load
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

NEVER = ("<pad>", "<unk>", "<eod>")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 1e300}, r"temperature must be 0 \(greedy\) or from 0.01 to 100, got 1e\+300"),
        ({"temperature": 1e-45}, r"temperature must be 0 \(greedy\) or from 0.01 to 100, got 1e-45"),
        ({"temperature": MAX_TEMPERATURE * 1.01}, "temperature must be 0"),
        (
            {"length_penalty": 2000, "num_beams": 2},
            r"length_penalty must be a finite number >= -10 and <= 10",
        ),
        ({"length_penalty": 1e300}, "length_penalty must be a finite number >= -10 and <= 10, got 1e\\+300"),
        ({"length_penalty": -11}, "length_penalty"),
        ({"repetition_penalty": 1e-300}, r"repetition_penalty must be a finite number >= 0.01 and <= 100"),
        ({"repetition_penalty": 1e300}, "repetition_penalty"),
        ({"top_k": MAX_TOP_K + 1}, f"top_k must be in 0..{MAX_TOP_K}"),
        ({"no_repeat_ngram_size": MAX_NGRAM + 1}, f"no_repeat_ngram_size must be in 0..{MAX_NGRAM}"),
        ({"stop": ["x"] * (MAX_STOP_STRINGS + 1)}, f"stop holds 17 strings; at most {MAX_STOP_STRINGS}"),
        ({"stop": ["y" * (MAX_STOP_CHARS + 1)]}, f"is 65 characters; at most {MAX_STOP_CHARS}"),
    ],
)
def test_out_of_range_options_name_their_limit(model, options, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig.from_options(**options)
    with pytest.raises(ValueError, match=message):
        model.generate("the network", **options)


def test_two_million_stop_strings_are_refused_at_once():
    stop = tuple(f"s{i}" for i in range(2_000_000))  # made before the clock starts: only the check is timed
    start = time.perf_counter()
    with pytest.raises(ValueError, match="stop holds 2,000,000 strings"):
        GenerationConfig(stop=stop)
    assert time.perf_counter() - start < 5  # no per-string work before the count is checked


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": MIN_TEMPERATURE},
        {"temperature": MAX_TEMPERATURE},
        {"temperature": MAX_TEMPERATURE, "stop_at_end": False},
        {"repetition_penalty": MAX_PENALTY, "temperature": 0},
        {"repetition_penalty": 1 / MAX_PENALTY},
        {"top_k": MAX_TOP_K, "top_p": 1e-9},
        {"no_repeat_ngram_size": MAX_NGRAM, "temperature": 0, "stop_at_end": False},
        {"stop": ["q" * MAX_STOP_CHARS] * MAX_STOP_STRINGS},
        {"num_beams": 3, "length_penalty": MAX_LENGTH_PENALTY},
        {"num_beams": 3, "length_penalty": -MAX_LENGTH_PENALTY, "stop_at_end": False},
    ],
)
def test_extreme_accepted_values_generate_words(model, options):
    texts = model.generate(["the network", ""], max_words=40, seed=3, **options)
    if options.get("num_beams", 1) == 1:  # stream() does not search beams
        stream = "".join(model.stream("the network", max_words=40, seed=3, **options))
        assert stream == texts[0]
    for text in texts:
        assert not any(token in text for token in NEVER), text
    if not options.get("stop_at_end", True) and "stop" not in options:
        assert len(texts[0].split()) >= 5


def test_no_repeat_unigrams_never_emit_padding(model):
    """Once every word has been used, nothing is allowed: the text ends rather than emit <pad>."""
    words = len(model.tokenizer)
    text = model.generate(
        "the", no_repeat_ngram_size=1, stop_at_end=False, temperature=0, max_words=words + 20
    )
    assert not any(token in text for token in NEVER), text
    tokens = model.tokenizer.encode(text)
    assert len(tokens) == len(set(tokens))  # no word twice
    # the README: such a text ends as at the end of a document, stop_at_end off or not
    gen = Generator(model)
    config = GenerationConfig(no_repeat_ngram_size=1, stop_at_end=False, max_words=words + 20, seed=3)
    rows = gen.add(["the", "a"], config)
    gen.run()
    assert [gen.finish_reason(r) for r in rows] == ["end", "end"]
    assert all(len(gen.tokens(r)) < words for r in rows)  # fewer than the vocabulary: pad, unk, eod never


# --------------------------------------------------------------------------- stored defaults


def _with_defaults(model_path, tmp_path, value: str):
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the files")
    proto = onnx.load(str(model_path))
    for prop in proto.metadata_props:
        if prop.key == "nextword.generation":
            prop.value = value
            break
    else:
        proto.metadata_props.add(key="nextword.generation", value=value)
    path = tmp_path / "defaults.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"length_penalty": 1e300}, "length_penalty must be a finite number >= -10 and <= 10"),
        ({"temperature": 1e-45}, "temperature must be 0"),
        ({"stop": ["x"] * 17}, "stop holds 17 strings"),
        ({"stop": ["z" * 100]}, "stop string 'z+'... is 100 characters"),
        ({"top_k": 10**30}, "top_k must be in 0..1000000"),
        (
            {"temperature": 10**400},
            r"temperature must be a finite number >= 0 \(0 is greedy\), got 10+\.\.\.",
        ),
    ],
)
def test_stored_defaults_are_bounded_like_call_options(model_path, tmp_path, defaults, message):
    path = _with_defaults(model_path, tmp_path, json.dumps(defaults))
    with pytest.raises(ModelFileError, match=f"holds invalid decoding defaults: {message}") as info:
        load(path)
    assert str(path) in str(info.value)


def test_two_million_stored_stop_strings_are_refused_before_parsing(model_path, tmp_path):
    """24 MB of stop strings made 20 words take 4.5 s (generate) and 45.6 s (stream)."""
    path = _with_defaults(model_path, tmp_path, json.dumps({"stop": [f"s{i:06d}" for i in range(2_000_000)]}))
    start = time.perf_counter()
    with pytest.raises(
        ModelFileError, match=r"metadata 'nextword.generation' is [\d,]+ bytes, over the 1,048,576"
    ):
        load(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("digits", [400, 5000])
def test_an_integer_too_large_for_a_float_is_refused_as_a_value_error(digits):
    with pytest.raises(ValueError, match="temperature must be a finite number") as caught:
        GenerationConfig(temperature=10**digits)
    assert len(str(caught.value)) < 200
