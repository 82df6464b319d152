"""The runtime's own argument checks raise WrongTypeError (a TypeError and a ValueError) for a value of the
wrong type, with the message they gave before; a value of the right type out of range stays a plain
ValueError. And arguments of the wrong type that were taken silently, or failed far in with an
AttributeError or "'int' object is not iterable", are refused naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from helpers import out_of_range, refused
from nextword.runtime import (
    BeamSearch,
    GenerationConfig,
    Generator,
    LoadLimits,
    NextWordModel,
    Tokenizer,
    TokenizerConfig,
    default_model,
    evaluate,
    evaluate_ids,
    load,
)
from nextword.runtime.cache import CacheConfig
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.errors import WrongTypeError
from nextword.runtime.provenance import DedupSettings, SplitRecord
from nextword.runtime.splitting import tokenize
from nextword.runtime.tokenizer import SPECIAL_TOKENS

SPECIALS = list(SPECIAL_TOKENS)
TOKENS = [*SPECIALS, "the", "network"]


@pytest.fixture(scope="module")
def model() -> NextWordModel:
    return load(BUNDLED_MODEL)


def ids(model: NextWordModel) -> list[int]:
    return model.prompt_ids("the network")


# ----------------------------------------------------------------- sites converted, message as before

WITHOUT_A_MODEL = [
    pytest.param(
        lambda: GenerationConfig(stop=[3]),
        r"^stop must be a string or a list of non-empty strings, got \[3\]$",
        id="stop-item",
    ),
    pytest.param(
        lambda: GenerationConfig(stop=5),
        "^stop must be a string or a list of non-empty strings, got 5$",
        id="stop",
    ),
    pytest.param(
        lambda: GenerationConfig(stop_at_end="yes"),
        "^stop_at_end must be True or False, got 'yes'$",
        id="stop_at_end",
    ),
    pytest.param(
        lambda: GenerationConfig(allow_unknown=1),
        "^allow_unknown must be True or False, got 1$",
        id="allow_unknown",
    ),
    pytest.param(
        lambda: GenerationConfig(cache=None), "^cache must be True or False, got None$", id="cache-field"
    ),
    pytest.param(
        lambda: GenerationConfig.from_options({"max_words": 3}),
        "^config must be a GenerationConfig, got dict; pass options by name",
        id="from_options",
    ),
    pytest.param(
        lambda: LoadLimits(max_nodes="5"),
        "^LoadLimits.max_nodes must be a positive integer, got '5'$",
        id="limits-int",
    ),
    pytest.param(
        lambda: LoadLimits(ir_versions=[3, 9]),
        r"^LoadLimits.ir_versions must be an inclusive range \(low, high\)",
        id="limits-range",
    ),
    pytest.param(
        lambda: LoadLimits(allowed_ops={("", "Add")}),
        "^LoadLimits.allowed_ops must be a frozenset of",
        id="limits-ops",
    ),
    pytest.param(
        lambda: LoadLimits(bound_graph="no"),
        "^LoadLimits.bound_graph must be True or False, got 'no'$",
        id="limits-bool",
    ),
    pytest.param(
        lambda: TokenizerConfig(min_count="2"), "^min_count must be an integer >= 1, got '2'$", id="min_count"
    ),
    pytest.param(
        lambda: TokenizerConfig(max_vocab=2.5),
        r"^max_vocab must be an integer > 3 \(it counts the special tokens\), got 2.5$",
        id="max_vocab",
    ),
    pytest.param(
        lambda: Tokenizer([*SPECIALS, 5]),
        "^vocabulary entry 3 must be a non-empty string, got 5$",
        id="tokens-entry",
    ),
    pytest.param(
        lambda: Tokenizer(TOKENS).decode("12"),
        r"^decode takes token ids \(a list of ints\), got str",
        id="decode-str",
    ),
    pytest.param(
        lambda: Tokenizer(TOKENS).token_of(2.0),
        r"^token id 2.0 is not in this vocabulary of ids 0..4$",
        id="token_of",
    ),
    pytest.param(
        lambda: Tokenizer(TOKENS).decode(["the"]),
        "^token id 'the' is not in this vocabulary",
        id="decode-item",
    ),
    pytest.param(lambda: tokenize(b"x", TokenizerConfig()), "^text must be a str, got bytes$", id="tokenize"),
    pytest.param(
        lambda: DedupSettings(threshold="0.2"),
        "^the near-duplicate threshold must be a number, got '0.2'$",
        id="threshold",
    ),
    pytest.param(
        lambda: DedupSettings(num_perm=64.0), "^num_perm must be a positive integer, got 64.0$", id="num_perm"
    ),
    pytest.param(
        lambda: SplitRecord(seed="0"), "^the split seed must be an integer, got '0'$", id="split-seed"
    ),
    pytest.param(
        lambda: SplitRecord(val_fraction="0.1"),
        r"^val_fraction must be between 0 and 1 \(exclusive\), got '0.1'$",
        id="val_fraction",
    ),
    pytest.param(
        lambda: SplitRecord(scheme=5), "^the split scheme must be a non-empty string, got 5$", id="scheme"
    ),
    pytest.param(
        lambda: CacheConfig(theta=1.0, mix=0.1, window="5"),
        "^cache window must be an integer, got '5'$",
        id="cache-window",
    ),
    pytest.param(
        lambda: CacheConfig(theta="1", mix=0.1, window=5),
        "^cache theta must be a finite number, got '1'$",
        id="cache-theta",
    ),
    pytest.param(
        lambda: CacheConfig(theta=1.0, mix=None, window=5, gate="ab"),
        r"^cache gate must be two numbers \[a, b\], got 'ab'$",
        id="cache-gate",
    ),
    pytest.param(
        lambda: CacheConfig(theta=1.0, mix=0.1, window=5, tuning=[]),
        "^cache tuning must be a JSON object, got list$",
        id="cache-tuning",
    ),
    pytest.param(lambda: load(5), "^model must be a path or bytes, got int$", id="load-model"),
    pytest.param(
        lambda: load(BUNDLED_MODEL, limits={"max_file_bytes": 10}),
        "^limits must be a LoadLimits, got dict$",
        id="load-limits",
    ),
    pytest.param(
        lambda: default_model(5),
        r"^model must be a path to a \.onnx file, a file's bytes or a loaded model",
        id="default_model",
    ),
    pytest.param(
        lambda: load(BUNDLED_MODEL, session_options={}),
        r"^session_options must be an onnxruntime\.SessionOptions, got dict",
        id="session_options",
    ),
    pytest.param(
        lambda: load(BUNDLED_MODEL, providers=5),
        "^providers must be a list of provider names, got 5$",
        id="providers",
    ),
    pytest.param(
        lambda: load(BUNDLED_MODEL, providers=[5]),
        r"^each provider must be a name or a \(name, options dict\) pair",
        id="provider",
    ),
    pytest.param(
        lambda: load(BUNDLED_MODEL, device=0),
        r"^device must be 'cpu', 'cuda' or 'cuda:N' \(GPU number N\), got 0$",
        id="device",
    ),
    pytest.param(
        lambda: Generator(None),
        r"^model must be a loaded model \(nextword.runtime.load\(path\)\), got None$",
        id="generator-model",
    ),
    pytest.param(
        lambda: evaluate("model.onnx", ["the network"]),
        r"^model must be a loaded model \(nextword.runtime.load\(path\)\), got 'model.onnx'$",
        id="evaluate-model",
    ),
]


@pytest.mark.parametrize(("call", "message"), WITHOUT_A_MODEL)
def test_a_wrong_type_is_a_wrong_type_error_with_its_message(call: Callable[[], Any], message: str) -> None:
    refused(call, message)


ROW_ID = r"^row must be a row id \(an int that add\(\) returned\), got "
WITH_A_MODEL = [
    pytest.param(
        lambda m: m.generate(5), "^prompt must be a string or a list of strings, got int$", id="generate"
    ),
    pytest.param(
        lambda m: m.generate(["a", 5]),
        "^prompt must be a string or a list of strings; item 1 is int$",
        id="generate-item",
    ),
    pytest.param(
        lambda m: m.generate("a", config={"max_words": 3}),
        "^config must be a GenerationConfig, got dict",
        id="generate-config",
    ),
    pytest.param(lambda m: m.stream(["a"]), r"^stream\(\) takes one prompt string, got list$", id="stream"),
    pytest.param(lambda m: m.score(None), "^text must be a string, got NoneType$", id="score"),
    pytest.param(lambda m: m.next_words(5), "^prompt must be a string, got int$", id="next_words-prompt"),
    pytest.param(
        lambda m: m.next_words("a", k="5"), r"^k must be an integer in 1\.\.\d+, got '5'$", id="next_words-k"
    ),
    pytest.param(
        lambda m: m.score("a", cache="yes"),
        "^cache must be True, False, None or a CacheConfig, got 'yes'$",
        id="cache",
    ),
    pytest.param(
        lambda m: m.forward(None, m.initial_state(1)),
        r"^input_ids must be token ids of shape \(batch, time\), got None$",
        id="input_ids",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[1.0, 2.0]]), m.initial_state(1)),
        "^input_ids must be integer token ids, got float64$",
        id="input_ids-float",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[5]]), m.initial_state(1), logits_from=1.5),
        r"^logits_from must be an integer position \(-1: the last\), got 1.5$",
        id="logits_from",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[5]]), None),
        r"^state must be \d+ float32 arrays .* got None$",
        id="state",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[5]]), [s.astype(np.float64) for s in m.initial_state(1)]),
        r"^state must be float32 arrays .* got \['float64'",
        id="state-float64",
    ),
    pytest.param(
        lambda m: m.stepper().step([5], m.initial_state(1)),
        r"^tokens must be a numpy array of token ids, shape \(rows,\), got list$",
        id="stepper-tokens",
    ),
    pytest.param(
        lambda m: m.stepper().step(np.array([5]), None),
        r"^state must be the model's \d+ arrays .* got NoneType$",
        id="stepper-state",
    ),
    pytest.param(
        lambda m: m.generator().add_ids(["the network"]),
        "^prompt 0 is text, where token ids belong",
        id="add_ids-text",
    ),
    pytest.param(
        lambda m: m.generator().add_ids([[2, True]]),
        r"^prompt 0 holds True or False, where token ids \(integers\) belong$",
        id="add_ids-bool",
    ),
    pytest.param(
        lambda m: m.generator().add_ids([[2, 4.5]]),
        r"^prompt 0 must be a list of token ids \(integers\), got float64$",
        id="add_ids-float",
    ),
    pytest.param(
        lambda m: m.generator().add(5), "^prompts must be a string or a list of strings, got int$", id="add"
    ),
    pytest.param(
        lambda m: m.generator().add(["a", 5]),
        "^prompt must be a string or a list of strings; item 1 is a int$",
        id="add-item",
    ),
    pytest.param(
        lambda m: m.generator().add("a", {"max_words": 3}),
        "^config must be a GenerationConfig, got dict; options by name",
        id="add-config",
    ),
    pytest.param(
        lambda m: m.generator().add("a", logprobs="3"),
        r"^logprobs must be an integer in 0\.\.20, got '3'$",
        id="logprobs",
    ),
    pytest.param(lambda m: m.generator().text([0]), ROW_ID + "\\[0\\]$", id="row-list"),
    pytest.param(lambda m: m.generator().cancel("0"), ROW_ID + "'0'$", id="cancel-str"),
    pytest.param(lambda m: m.generator().release(0.0), ROW_ID + "0.0$", id="release-float"),
    pytest.param(lambda m: m.generator().tokens(True), ROW_ID + "True$", id="row-bool"),
    pytest.param(lambda m: m.generator().finish_reason(None), ROW_ID + "None$", id="finish-reason"),
    pytest.param(lambda m: m.generator().pieces([0]), ROW_ID + "\\[0\\]$", id="pieces-at-the-call"),
    pytest.param(
        lambda m: BeamSearch(m, [ids(m)], {"num_beams": 2}),
        "^config must be a GenerationConfig, got dict$",
        id="beam-config",
    ),
    pytest.param(
        lambda m: evaluate(m, "the network"),
        r"^documents must be a list \(or any iterable\) of strings, got one str; pass \[text\] to evaluate "
        "one document$",
        id="evaluate-str",
    ),
    pytest.param(
        lambda m: evaluate(m, ["the network", None]),
        "^documents must be strings; document 1 is of type NoneType$",
        id="evaluate-item",
    ),
]


@pytest.mark.parametrize(("call", "message"), WITH_A_MODEL)
def test_a_wrong_type_given_to_a_model_is_a_wrong_type_error(
    model: NextWordModel, call: Callable[[NextWordModel], Any], message: str
) -> None:
    refused(lambda: call(model), message)


# A check that refused a wrong type and a value out of range with one raise, split: (a wrong type, its
# message; a value of the right type out of range, its message), a WrongTypeError and a plain ValueError.
SPLIT = [
    pytest.param(
        lambda m: GenerationConfig(stop=["a", 3]),
        "^stop must be a string or a list of non-empty strings",
        lambda m: GenerationConfig(stop=["a", ""]),
        "stop must be a string or a list of non-empty strings",
        id="stop",
    ),
    pytest.param(
        lambda m: LoadLimits(max_nodes=5.0),
        "^LoadLimits.max_nodes must be a positive integer, got 5.0$",
        lambda m: LoadLimits(max_nodes=0),
        "^LoadLimits.max_nodes must be a positive integer, got 0$",
        id="limits-int",
    ),
    pytest.param(
        lambda m: LoadLimits(ir_versions=(3, 9, 10)),
        "^LoadLimits.ir_versions must be an inclusive range",
        lambda m: LoadLimits(ir_versions=(9, 3)),
        "^LoadLimits.ir_versions must be an inclusive range",
        id="limits-range",
    ),
    pytest.param(
        lambda m: TokenizerConfig(min_count=None),
        "^min_count must be an integer >= 1, got None$",
        lambda m: TokenizerConfig(min_count=0),
        "^min_count must be an integer >= 1, got 0$",
        id="min_count",
    ),
    pytest.param(
        lambda m: TokenizerConfig(max_vocab="9"),
        "^max_vocab must be an integer > 3 .*, got '9'$",
        lambda m: TokenizerConfig(max_vocab=3),
        "^max_vocab must be an integer > 3 .*, got 3$",
        id="max_vocab",
    ),
    pytest.param(
        lambda m: Tokenizer([*SPECIALS, None]),
        "^vocabulary entry 3 must be a non-empty string, got None$",
        lambda m: Tokenizer([*SPECIALS, ""]),
        "^vocabulary entry 3 must be a non-empty string, got ''$",
        id="tokens-entry",
    ),
    pytest.param(
        lambda m: Tokenizer(TOKENS).token_of("4"),
        r"^token id '4' is not in this vocabulary of ids 0\.\.4$",
        lambda m: Tokenizer(TOKENS).token_of(5),
        r"^token id 5 is not in this vocabulary of ids 0\.\.4$",
        id="token_of",
    ),
    pytest.param(
        lambda m: DedupSettings(band_rows="2"),
        "^band_rows must be a positive integer, got '2'$",
        lambda m: DedupSettings(band_rows=0),
        "^band_rows must be a positive integer, got 0$",
        id="dedup-int",
    ),
    pytest.param(
        lambda m: SplitRecord(val_fraction=None),
        r"^val_fraction must be between 0 and 1 \(exclusive\), got None$",
        lambda m: SplitRecord(val_fraction=1.5),
        r"^val_fraction must be between 0 and 1 \(exclusive\), got 1.5$",
        id="val_fraction",
    ),
    pytest.param(
        lambda m: SplitRecord(scheme=None),
        "^the split scheme must be a non-empty string, got None$",
        lambda m: SplitRecord(scheme=""),
        "^the split scheme must be a non-empty string, got ''$",
        id="scheme",
    ),
    pytest.param(
        lambda m: CacheConfig(theta=1.0, mix="0.1", window=5),
        "^cache mix must be a finite number, got '0.1'$",
        lambda m: CacheConfig(theta=1.0, mix=math.inf, window=5),
        "^cache mix must be a finite number, got inf$",
        id="cache-mix",
    ),
    pytest.param(
        lambda m: CacheConfig(theta=1.0, mix=None, window=5, gate=(1, "b")),
        r"^cache gate must be two finite",
        lambda m: CacheConfig(theta=1.0, mix=None, window=5, gate=(1, math.nan)),
        r"^cache gate must be two finite",
        id="cache-gate",
    ),
    pytest.param(
        lambda m: load(BUNDLED_MODEL, device=["cpu"]),
        r"^device must be 'cpu', 'cuda' or 'cuda:N' .*, got \['cpu'\]$",
        lambda m: load(BUNDLED_MODEL, device="gpu"),
        r"^device must be 'cpu', 'cuda' or 'cuda:N' .*, got 'gpu'$",
        id="device",
    ),
    pytest.param(
        lambda m: m.next_words("a", k=2.0),
        r"^k must be an integer in 1\.\.\d+, got 2.0$",
        lambda m: m.next_words("a", k=0),
        r"^k must be an integer in 1\.\.\d+, got 0$",
        id="next_words-k",
    ),
    pytest.param(
        lambda m: m.forward(5, m.initial_state(1)),
        r"^input_ids must be token ids of shape \(batch, time\), got 5$",
        lambda m: m.forward(np.array([1, 2]), m.initial_state(1)),
        r"^input_ids must be .*, got shape \(2,\)$",
        id="input_ids",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[5]]), [None] * 4),
        r"^state must be \d+ float32 arrays .*, got \[None, None",
        lambda m: m.forward(np.array([[5]]), m.initial_state(2)),
        r"^state must be \d+ float32 arrays .*, got \[\(2, ",
        id="state",
    ),
    pytest.param(
        lambda m: m.forward(np.array([[5]]), m.initial_state(1), logits_from="-1"),
        "^logits_from must be an integer",
        lambda m: m.forward(np.array([[5]]), m.initial_state(1), logits_from=3),
        "^logits_from=3 selects no position",
        id="logits_from",
    ),
    pytest.param(
        lambda m: m.stepper().step(np.array([5.0]), m.initial_state(1)),
        r"got an array of float64, shape \(1,\)$",
        lambda m: m.stepper().step(np.array([[5]]), m.initial_state(1)),
        r"got an array of int64, shape \(1, 1\)$",
        id="stepper-tokens",
    ),
    pytest.param(
        lambda m: m.stepper().step(np.array([5]), 5),
        r"^state must be the model's \d+ arrays .*, got int$",
        lambda m: m.stepper().step(np.array([5]), m.initial_state(1)[:1]),
        r"^state must be .*, got 1 arrays$",
        id="stepper-state",
    ),
    pytest.param(
        lambda m: m.generator().add("a", logprobs=2.0),
        r"^logprobs must be an integer in 0\.\.20, got 2.0$",
        lambda m: m.generator().add("a", logprobs=21),
        r"^logprobs must be an integer in 0\.\.20, got 21$",
        id="logprobs",
    ),
]


@pytest.mark.parametrize(("wrong", "message", "out", "range_message"), SPLIT)
def test_a_wrong_type_and_a_value_out_of_range_are_told_apart(
    model: NextWordModel,
    wrong: Callable[[NextWordModel], Any],
    message: str,
    out: Callable[[NextWordModel], Any],
    range_message: str,
) -> None:
    refused(lambda: wrong(model), message)
    out_of_range(lambda: out(model), range_message)


# ------------------------------------------------------------- bugs: refused where they crashed or slipped by


def test_beam_search_refuses_a_path_for_the_model(model: NextWordModel) -> None:
    """BeamSearch(model="path") was AttributeError: 'str' object has no attribute 'tokenizer'."""
    config = GenerationConfig(num_beams=2, max_words=3)
    refused(
        lambda: BeamSearch("model.onnx", [ids(model)], config),  # type: ignore[arg-type]
        r"^model must be a loaded model \(nextword.runtime.load\(path\)\), got 'model.onnx'$",
    )
    search = BeamSearch(model, [ids(model)], config)
    while search.step():
        pass
    assert len(search.texts()) == 1


@pytest.mark.parametrize("config", [5, {"lowercase": False}, {}, "x", TokenizerConfig])
def test_a_tokenizer_refuses_a_config_that_is_no_tokenizer_config(config: Any) -> None:
    """Tokenizer(tokens, config) stored any config (5 or a dict failed later, in encode, with an
    AttributeError; {} was silently the default); Tokenizer.build and from_counts failed likewise."""
    message = r"^config must be a TokenizerConfig \(or None for the defaults\), got "
    refused(lambda: Tokenizer(TOKENS, config), message)
    refused(lambda: Tokenizer.build(["the network"], config), message)
    refused(lambda: Tokenizer.from_counts({"the": 3}, config), message)
    assert Tokenizer(TOKENS, None).config == TokenizerConfig() == Tokenizer(TOKENS).config
    kept = Tokenizer(TOKENS, TokenizerConfig(lowercase=False))
    assert kept.config.lowercase is False and kept.encode("The network") == [1, 4]
    assert Tokenizer.build(["the network"] * 2, None).tokens == [*SPECIALS, "network", "the"]


@pytest.mark.parametrize("value", ["no", 1, 0, None, np.float64(1.0)])
@pytest.mark.parametrize("name", ["lowercase", "drop_figure_refs"])
def test_tokenizer_config_switches_must_be_true_or_false(name: str, value: Any) -> None:
    """TokenizerConfig(lowercase='no') was taken, and 'no' is truthy: lowercasing stayed on."""
    refused(lambda: TokenizerConfig(**{name: value}), rf"^{name} must be True or False, got ")
    assert getattr(TokenizerConfig(**{name: np.False_}), name) is False  # a numpy bool is a bool


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ("the network", r"got one str; pass \[text\] to build from one document$"),
        (b"the network", r"got one bytes; pass \[text\] to build from one document$"),
        (None, "got None$"),
        (5, "got 5$"),
    ],
)
def test_tokenizer_build_refuses_documents_that_are_no_list(documents: Any, message: str) -> None:
    """Tokenizer.build('text') made each character a document; build(None) was "'NoneType' object is
    not iterable"."""
    refused(
        lambda: Tokenizer.build(documents, TokenizerConfig(min_count=1)),
        r"^documents must be a list \(or any iterable\) of strings, " + message,
    )
    built = Tokenizer.build(iter(["the network", "the cell"]), TokenizerConfig(min_count=1))
    assert built.tokens == [*SPECIALS, "the", "cell", "network"]


@pytest.mark.parametrize("config", [None, {"max_words": 3}, {}, "greedy"])
def test_generate_ids_refuses_a_config_that_is_no_generation_config(
    model: NextWordModel, config: Any
) -> None:
    """model.generate_ids(ids, None or a dict) failed inside dataclasses.replace."""
    refused(
        lambda: model.generate_ids(ids(model), config),
        r"^config must be a GenerationConfig, such as model.info.generation \(the file's defaults\), got ",
    )
    assert len(model.generate_ids(ids(model), GenerationConfig(max_words=3, seed=0))) <= 3


@pytest.mark.parametrize("value", [None, 5])
def test_an_iterable_argument_given_as_none_or_a_number_names_the_parameter(
    model: NextWordModel, value: Any
) -> None:
    """None or an int where a list belongs was "'NoneType' object is not iterable" (or 'int')."""
    got = rf"got {value}$"
    prompts = (
        r"^prompts must be a list of token-id lists, one per prompt \(model.prompt_ids\(text\) gives one\), "
    )
    refused(lambda: model.generator().add_ids(value), prompts + got)
    refused(lambda: BeamSearch(model, value, GenerationConfig(num_beams=2)), prompts + got)
    refused(
        lambda: evaluate(model, value), r"^documents must be a list \(or any iterable\) of strings, " + got
    )
    refused(
        lambda: evaluate_ids(model, value),
        r"^documents must be a list \(or any iterable\) of token-id lists, " + got,
    )
    tokenizer = Tokenizer(TOKENS)
    refused(lambda: tokenizer.decode(value), r"^ids must be token ids \(a list of ints\), " + got)
    refused(lambda: Tokenizer(value), "^tokens must be a list of token strings in id order, " + got)
    refused(
        lambda: Tokenizer.build(value), r"^documents must be a list \(or any iterable\) of strings, " + got
    )
    prompt = ids(model)  # lists, tuples and generators are still taken
    gen = model.generator()
    rows = gen.add_ids((p for p in [prompt]), GenerationConfig(max_words=2, seed=0))
    gen.run()
    assert gen.tokens(rows[0]) == model.generate_ids(prompt, GenerationConfig(max_words=2, seed=0))
    assert evaluate_ids(model, ([*prompt, 2] for _ in range(2))).documents == 2
    assert Tokenizer(tuple(TOKENS)).decode(iter([3, 4])) == "The network"


@pytest.mark.parametrize("text", [5, None, {"format": "nextword.tokenizer"}, ["{}"]])
def test_tokenizer_from_json_refuses_what_is_no_json_string(text: Any) -> None:
    """from_json(5) raised json's TypeError, though its docstring promises a ValueError."""
    refused(
        lambda: Tokenizer.from_json(text),
        r"^text must be a JSON string \(str or bytes\), as to_json\(\) writes, got ",
    )
    tokenizer = Tokenizer(TOKENS)
    assert (
        Tokenizer.from_json(tokenizer.to_json())
        == tokenizer
        == Tokenizer.from_json(tokenizer.to_json().encode())
    )


@pytest.mark.parametrize(
    "providers", [{"CPUExecutionProvider": {}}, {"CPUExecutionProvider": {"intra_op_num_threads": 2}}]
)
def test_load_refuses_providers_given_as_a_mapping(providers: dict) -> None:
    """load(path, providers={name: options}) took the dict's keys and dropped the options silently."""
    error = refused(
        lambda: load(BUNDLED_MODEL, providers=providers),
        r"^providers must be a list, not a dict \(its keys would be taken and their options dropped\), got ",
    )
    assert "give a list of names or (name, options) pairs" in str(error)
    assert load(BUNDLED_MODEL, providers=[("CPUExecutionProvider", {})]).providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("token", [5, None, b"the", ("the",)])
def test_tokenizer_id_of_refuses_what_is_no_string(token: Any) -> None:
    """id_of(5) returned the unknown word's id silently."""
    tokenizer = Tokenizer(TOKENS)
    refused(lambda: tokenizer.id_of(token), "^token must be a str, got ")
    assert tokenizer.id_of("network") == 4 and tokenizer.id_of("cell") == tokenizer.unk_id


def test_an_empty_dict_is_no_longer_taken_for_the_default(model: NextWordModel) -> None:
    """A config (or limits) given as {} was falsy, so `config or default` took the default silently:
    generate(config={}), Generator.add(config={}), Generator(model, defaults={}), load(limits={})."""
    refused(lambda: model.generate("a", config={}), "^config must be a GenerationConfig, got dict")
    refused(lambda: model.generator(config={}), "^config must be a GenerationConfig, got dict")
    refused(lambda: model.generator().add("a", {}), "^config must be a GenerationConfig, got dict")
    refused(lambda: Generator(model, defaults={}), r"^defaults must be a GenerationConfig, got \{\}$")
    refused(lambda: load(BUNDLED_MODEL, limits={}), "^limits must be a LoadLimits, got dict$")
    assert model.generate("a", config=None, max_words=2, seed=0) == model.generate("a", max_words=2, seed=0)


BIG = 10**5000  # past Python's 4,300-digit limit for writing an integer as text


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (lambda m: m.generate("x", stop=[BIG]), WrongTypeError, "stop must be a string or a list"),
        (lambda m: GenerationConfig(stop=(BIG,)), WrongTypeError, "stop must be a string or a list"),
        (lambda m: Tokenizer([*SPECIALS, BIG]), WrongTypeError, "vocabulary entry 3 must be"),
        (lambda m: m.tokenizer.decode([BIG]), ValueError, "token id an integer of more than 4,300"),
        (lambda m: m.tokenizer.token_of(BIG), ValueError, "token id an integer of more than 4,300"),
        (lambda m: m.next_words("x", k=BIG), ValueError, "k must be an integer in 1.."),
    ],
    ids=["generate-stop", "config-stop", "tokenizer", "decode", "token_of", "next_words-k"],
)
def test_an_integer_too_long_to_write_is_named_not_a_python_error(model, call, kind, message) -> None:
    """Writing the value into the message raised Python's own "Exceeds the limit (4300 digits) for
    integer string conversion" in place of nextword's refusal (found by fuzzing with atheris)."""
    with pytest.raises(kind) as refusal:
        call(model)
    assert str(refusal.value).startswith(message) and "4,300 digits" in str(refusal.value)
