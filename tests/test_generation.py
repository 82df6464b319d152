"""generate() controls, batches, streaming, beam search, suggestions, scoring, concurrency."""

import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nextword.runtime import MAX_BATCH, MAX_WORDS, GenerationConfig
from nextword.runtime import default as default_module
from nextword.runtime.beam import beam_search
from nextword.runtime.logits import softmax

PROMPTS = ["the network", "a neural network receives the weights. each neuron", "", "the system (12) stores"]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -0.1}, r"temperature must be a finite number >= 0 \(0 is greedy\), got -0.1"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": -1}, r"top_k must be in 0..1000000 \(0: no top-k filtering\), got -1"),
        ({"top_k": 2.5}, "top_k must be an integer"),
        ({"top_p": 0.0}, r"top_p must be a finite number > 0 and <= 1, got 0.0"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_words": -1}, r"max_words must be in 0..10000, got -1"),
        ({"max_words": MAX_WORDS + 1}, "max_words must be in 0..10000"),
        ({"min_words": 60}, r"min_words must be at most `max_words` \(50\), got 60: raise `max_words`"),
        ({"repetition_penalty": 0}, "repetition_penalty must be a finite number >= 0.01"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
        ({"stop": [""]}, "stop must be a string or a list of non-empty strings"),
        ({"stop": [3]}, "stop must be"),
        ({"stop_at_end": "yes"}, "stop_at_end must be True or False"),
        ({"num_return_sequences": 0}, "num_return_sequences must be in 1..256"),
        ({"num_beams": 0}, "num_beams must be in 1..256"),
        ({"num_beams": 4, "top_k": 5}, r"num_beams=4 .*cannot be combined .*top_k=5"),
        ({"num_beams": 4, "temperature": 0.7}, "temperature=0.7"),
        ({"num_beams": 2, "num_return_sequences": 3}, r"num_return_sequences=3 must be <= num_beams=2"),
        ({"length_penalty": float("nan")}, "length_penalty"),
        ({"seed": -3}, "seed must be an integer >= 0, got -3"),
        ({"colour": "blue"}, "unknown generation option"),
    ],
)
def test_every_option_is_validated(options, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig.from_options(**options)


def test_changes_lists_only_the_fields_that_differ_from_the_defaults():
    assert GenerationConfig().changes() == {}
    config = GenerationConfig(temperature=0.7, stop=("END",), max_words=GenerationConfig().max_words)
    assert config.changes() == {"temperature": 0.7, "stop": ("END",)}


def test_a_max_words_asked_for_lowers_a_default_min_words_above_it():
    file_defaults = GenerationConfig(min_words=20, no_repeat_ngram_size=2)
    capped = GenerationConfig.from_options(file_defaults, max_words=10)
    assert (capped.max_words, capped.min_words, capped.no_repeat_ngram_size) == (10, 10, 2)
    assert GenerationConfig.from_options(file_defaults, max_words=30).min_words == 20  # no conflict
    with pytest.raises(ValueError, match=r"min_words must be at most `max_words` \(10\), got 20"):
        GenerationConfig.from_options(file_defaults, max_words=10, min_words=20)  # both asked for
    with pytest.raises(ValueError, match=r"max_words must be in 0\.\.10000, got -1"):
        GenerationConfig.from_options(file_defaults, max_words=-1)


def test_beam_search_asked_for_drops_the_sampling_defaults_of_the_file():
    # a file exported with --top-k 40 --temperature 0.7: those defaults are for sampling
    file_defaults = GenerationConfig(top_k=40, top_p=0.9, temperature=0.7, no_repeat_ngram_size=3)
    beams = GenerationConfig.from_options(file_defaults, num_beams=3)
    assert (beams.num_beams, beams.top_k, beams.top_p, beams.temperature) == (3, None, None, 1.0)
    assert beams.no_repeat_ngram_size == 3  # not a sampling option: kept
    assert GenerationConfig.from_options(file_defaults, num_beams=3, temperature=0).temperature == 0
    assert GenerationConfig.from_options(file_defaults, num_beams=1).top_k == 40
    with pytest.raises(ValueError, match="cannot be combined with the sampling options top_k=5"):
        GenerationConfig.from_options(file_defaults, num_beams=3, top_k=5)  # both asked for


def test_stop_accepts_a_single_string():
    assert GenerationConfig(stop=".").stop == (".",)


def test_bad_prompts_and_batches_are_refused(model):
    with pytest.raises(ValueError, match="prompt must be a string or a list of strings, got int"):
        model.generate(42)
    with pytest.raises(ValueError, match="item 1 is NoneType"):
        model.generate(["ok", None])
    with pytest.raises(ValueError, match=rf"300 rows exceeds the cap of {MAX_BATCH}"):
        model.generate(["x"] * 100, num_return_sequences=3)
    with pytest.raises(ValueError, match="temperature"):
        model.generate("x", temperature=-1)
    assert model.generate([]) == []


# ----------------------------------------------------------------------------- result shapes


def test_result_is_a_string_or_a_list(model):
    assert isinstance(model.generate("the model", max_words=3, seed=0), str)
    assert len(model.generate(["a", "b"], max_words=3, seed=0)) == 2
    many = model.generate(["a", "b"], max_words=3, seed=0, num_return_sequences=3)
    assert isinstance(many, list) and len(many) == 6
    assert len(model.generate("a", max_words=3, seed=0, num_return_sequences=2)) == 2


def test_batch_of_different_length_prompts_equals_individual_greedy_calls(model):
    batch = model.generate(PROMPTS, temperature=0, max_words=25)
    assert batch == [model.generate(p, temperature=0, max_words=25) for p in PROMPTS]


def test_batched_sampling_row_equals_the_single_call_with_that_seed(model):
    (first, *_) = model.generate(PROMPTS[:1] * 3, seed=11, max_words=20, num_return_sequences=1)
    assert first == model.generate(PROMPTS[0], seed=11, max_words=20)
    rows = model.generate("the network", seed=4, max_words=20, num_return_sequences=4)
    assert len(set(rows)) > 1  # independent streams per sequence


def test_empty_and_unknown_only_prompts_generate(model):
    start = model.generate("", temperature=0, max_words=8)
    assert start and start[0].isupper() and not start.startswith(" ")
    assert model.generate("zzyzx qwerty plugh", max_words=8, seed=1).strip()


def test_prompt_of_100000_words(model):
    prompt = "the network stores the weights. " * 20000  # 100,000 words, fed in chunks of 256
    ids = model.generate_ids(
        model.prompt_ids(prompt), GenerationConfig(max_words=10, seed=0, stop_at_end=False)
    )
    assert len(ids) == 10


# ----------------------------------------------------------------------------- controls


def test_min_words_and_stop_at_end(model):
    tok = model.tokenizer
    ended = [
        len(model.generate_ids(model.prompt_ids("the model"), GenerationConfig(max_words=200, seed=s)))
        for s in range(8)
    ]
    assert min(ended) < 200  # the tiny model ends its documents
    config = GenerationConfig(max_words=200, min_words=150, seed=0)
    assert all(
        len(
            model.generate_ids(
                model.prompt_ids("the model"), GenerationConfig(max_words=200, min_words=150, seed=s)
            )
        )
        >= 150
        for s in range(3)
    )
    endless = GenerationConfig(max_words=120, stop_at_end=False, seed=0)
    ids = model.generate_ids(model.prompt_ids("the model"), endless)
    assert len(ids) == 120 and tok.eod_id not in ids
    assert config.min_words == 150


def test_stop_strings_end_the_text_and_are_not_included(model):
    free = model.generate("the network", max_words=40, temperature=0)
    assert "." in free
    cut = model.generate("the network", max_words=40, temperature=0, stop=".")
    assert cut == free[: free.index(".")]
    first_word = free.split()[0]
    stopped = model.generate("the network", max_words=40, temperature=0, stop=[first_word, "zzz"])
    assert stopped == free[: free.index(first_word)] == " "


def test_stop_strings_are_matched_as_the_text_is_normalized(model):
    """A full-width "！" or "．" (what a Chinese or Japanese keyboard types) never matched: NFKC makes
    every "！" of the text "!". Stop strings are read as the text is, curly apostrophes as "'" too."""
    free = model.generate("the network", max_words=40, temperature=0)
    assert "." in free and " input" in free
    for typed in ("\uff0e", "\uff49\uff4e\uff50\uff55\uff54"):  # ．, ｉｎｐｕｔ
        plain = unicodedata.normalize("NFKC", typed)
        cut = model.generate("the network", max_words=40, temperature=0, stop=typed)
        assert cut == model.generate("the network", max_words=40, temperature=0, stop=plain) != free
    from nextword.runtime.text import as_in_text

    assert as_in_text("it\u2019s") == "it's" and as_in_text("\uff01") == "!"
    assert as_in_text("\u00ab") == "\u00ab"  # a quotation mark, which no text holds, left as given
    from nextword.runtime.text import stop_forms

    # the marks tokenizer format 5 writes full-width after Chinese and Japanese words: either form cuts
    assert stop_forms(["\uff01", "!", "a,b", "x"]) == ("!", "\uff01", "a,b", "a\uff0cb", "x")


# Stop strings and the forms a text is cut at (web/test/unit.test.js asserts nextword-web's the same)
STOPS = ["\uff01", "!", "a,b", "x", "it\u2019s", "?:;", "\u2026", "a\uff1ab\uff1bc"]
STOP_FORMS = (
    *("!", "\uff01", "a,b", "a\uff0cb", "x", "it's"),
    *("?:;", "\uff1f\uff1a\uff1b", "...", "a:b;c", "a\uff1ab\uff1bc"),
)


def test_stop_strings_are_read_as_the_tokenizers_write_text():
    """Each apostrophe the tokenizers make "'" is "'" in a stop string too (text.py's table and
    splitting's), each of , ! ? : ; also full-width, and a stop string longer once normalized ("…" is
    "...") is found across the pieces that bring it."""
    from nextword.runtime import splitting
    from nextword.runtime.text import TextBuilder, as_in_text, stop_forms
    from nextword.runtime.tokenizer import Tokenizer

    apostrophes = splitting._APOSTROPHES.pattern.strip("[]")
    assert len(apostrophes) == 4 and [as_in_text(f"it{c}s") for c in apostrophes] == ["it's"] * 4
    assert stop_forms(STOPS) == STOP_FORMS
    tok = Tokenizer(["<pad>", "<unk>", "<eod>", "a", "."])
    builder, taken = TextBuilder(tok, None, ("\u2026",), False), []
    for token in ("a", ".", ".", "."):
        builder.add(token)
        taken.append(builder.take())
    assert builder.stopped and builder.text == "A" and taken == ["A", "", "", ""]


def test_unknown_token_only_when_allowed(model):
    tok = model.tokenizer
    allowed = GenerationConfig(max_words=60, allow_unknown=True, temperature=0, repetition_penalty=5.0)
    forbidden = GenerationConfig(max_words=60, temperature=3.0, seed=1)
    for seed in range(4):
        ids = model.generate_ids(
            model.prompt_ids("zzz"), GenerationConfig(max_words=60, temperature=3.0, seed=seed)
        )
        assert tok.unk_id not in ids
    # With unknown allowed and the logits forced, <unk> can appear: check the rule, not luck.
    from nextword.runtime.rules import Rules

    logits = np.zeros((1, model.vocab_size), dtype=np.float32)
    rules = Rules(allowed, tok)
    rules.apply(logits, [rules.history([tok.eod_id])], [0])
    assert logits[0, tok.unk_id] == 0 and logits[0, tok.pad_id] == -np.inf
    rules = Rules(forbidden, tok)
    rules.apply(logits, [rules.history([tok.eod_id])], [0])
    assert logits[0, tok.unk_id] == -np.inf


def test_repetition_penalty_and_no_repeat_ngrams(model):
    def max_repeat(text, n):
        words = text.lower().replace(".", " .").split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        return max((grams.count(g) for g in grams), default=0)

    plain = model.generate("the network", temperature=0, max_words=60, stop_at_end=False)
    assert max_repeat(plain, 3) > 1  # a tiny model repeats itself greedily
    no_repeat = model.generate(
        "the network", temperature=0, max_words=60, stop_at_end=False, no_repeat_ngram_size=3
    )
    prompt_words = ["the", "network"]
    words = prompt_words + no_repeat.lower().replace(".", " .").split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    assert len(grams) == len(set(grams))
    penalized = model.generate(
        "the network", temperature=0, max_words=60, stop_at_end=False, repetition_penalty=3.0
    )
    assert penalized != plain


def test_top_k_1_is_greedy_and_top_p_tiny_is_greedy(model):
    greedy = model.generate("the processor", temperature=0, max_words=20)
    assert model.generate("the processor", top_k=1, seed=3, max_words=20) == greedy
    assert model.generate("the processor", top_p=1e-6, seed=3, max_words=20) == greedy


# ----------------------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    "options",
    [
        {"seed": 1, "max_words": 40},
        {"temperature": 0, "max_words": 30},
        {"seed": 2, "max_words": 50, "stop": [". The", "zz"]},
        {"seed": 3, "max_words": 50, "stop": "s", "top_p": 0.9, "repetition_penalty": 1.2},
        {"seed": 5, "max_words": 0},
    ],
)
def test_stream_joined_equals_generate(model, options):
    pieces = list(model.stream("the system", **options))
    assert "".join(pieces) == model.generate("the system", **options)
    if options["max_words"] and "stop" not in options:
        assert len(pieces) > 1  # pieces come word by word, not all at the end


def test_stream_validates_at_call_time(model):
    with pytest.raises(ValueError, match="one prompt string"):
        model.stream(["a", "b"])
    with pytest.raises(ValueError, match="num_return_sequences and num_beams must be 1"):
        model.stream("a", num_beams=2)


# ----------------------------------------------------------------------------- beam search


def test_beam_search_is_deterministic_and_one_beam_is_greedy(model):
    tok = model.tokenizer
    for prompt in PROMPTS:
        greedy = model.generate(prompt, temperature=0, max_words=30)
        one_beam = beam_search(model, [model.prompt_ids(prompt)], GenerationConfig(num_beams=1, max_words=30))
        assert one_beam == [greedy]
    beams = model.generate(PROMPTS, num_beams=4, max_words=30, num_return_sequences=2)
    assert beams == model.generate(PROMPTS, num_beams=4, max_words=30, num_return_sequences=2)
    assert len(beams) == 2 * len(PROMPTS)
    assert tok is model.tokenizer


def test_beam_search_finds_likelier_text_than_greedy(model):
    def logprob(prompt, continuation):
        full = model.score(prompt + continuation)
        return full.total_logprob - model.score(prompt).total_logprob

    prompt = "each neuron"
    greedy = model.generate(prompt, temperature=0, max_words=12, stop_at_end=False)
    beam = model.generate(prompt, num_beams=8, max_words=12, stop_at_end=False, length_penalty=0.0)
    assert logprob(prompt, beam) >= logprob(prompt, greedy) - 1e-6


def test_beam_search_batch_equals_single_prompts(model):
    batch = model.generate(PROMPTS, num_beams=3, max_words=20)
    assert batch == [model.generate(p, num_beams=3, max_words=20) for p in PROMPTS]


# ----------------------------------------------------------------------------- suggestions and scores


def test_next_words_match_the_softmax(model):
    prompt = "the network receives"
    suggestions = model.next_words(prompt, k=5)
    assert len(suggestions) == 5
    probs = [p for _, p in suggestions]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0
    last, _ = model.feed(np.asarray([model.prompt_ids(prompt)]), model.initial_state(1))
    expected = softmax(last[0])
    for word, p in suggestions:
        assert p == pytest.approx(expected[model.tokenizer.id_of(word)], rel=1e-6)
        assert word not in ("<pad>", "<unk>", "<eod>")
    with pytest.raises(ValueError, match="k must be an integer"):
        model.next_words(prompt, k=0)


def test_score_totals_and_details(model):
    score = model.score("The network receives the weights.")
    assert [w.word for w in score.words] == ["the", "network", "receives", "the", "weights", "."]
    assert score.total_logprob == pytest.approx(sum(w.logprob for w in score.words))
    assert score.perplexity == pytest.approx(np.exp(-score.total_logprob / 6))
    odd = model.score("The network flibbertigibbets.")
    assert [w.unknown for w in odd.words] == [False, False, True, False]
    assert (
        model.score("the network receives the weights").perplexity
        < model.score("weights the the receives network").perplexity
    )
    with pytest.raises(ValueError, match="no words"):
        model.score("")


# ------------------------------------------------------------------- concurrency and the default model


def test_32_threads_equal_serial_calls(model):
    jobs = [
        (PROMPTS[i % len(PROMPTS)], {"seed": i, "max_words": 25, "top_k": 10 if i % 2 else None})
        for i in range(64)
    ]
    serial = [model.generate(p, **o) for p, o in jobs]
    with ThreadPoolExecutor(max_workers=32) as pool:
        threaded = list(pool.map(lambda job: model.generate(job[0], **job[1]), jobs))
    assert threaded == serial


def test_module_level_generate_loads_the_model_once(model_path, monkeypatch):
    monkeypatch.setattr(default_module, "_models", {})
    calls = []
    real_load = default_module.load

    def slow_load(path, **options):
        calls.append(path)
        threading.Event().wait(0.2)  # widen the race window
        return real_load(path, **options)

    monkeypatch.setattr(default_module, "load", slow_load)
    monkeypatch.setenv("NEXTWORD_MODEL", str(model_path))
    barrier = threading.Barrier(16)

    def call(i):
        barrier.wait()
        return default_module.generate("the model", seed=i, max_words=5)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16)))
    assert len(calls) == 1 and all(isinstance(r, str) for r in results)
    from nextword.runtime import generate

    assert generate("the model", seed=3, max_words=5) == results[3]
    assert generate("the model", model=str(model_path), seed=3, max_words=5) == results[3]


def test_module_level_generate_without_any_model_explains(monkeypatch, tmp_path):
    monkeypatch.delenv("NEXTWORD_MODEL", raising=False)
    monkeypatch.setattr(default_module, "BUNDLED_MODEL", tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match="NEXTWORD_MODEL"):
        default_module.generate("x")


def test_perplexity_of_an_all_but_impossible_text_is_inf_not_an_error():
    from nextword.runtime.scoring import perplexity

    assert perplexity(2.0, 2) == pytest.approx(np.e)
    assert perplexity(1e6, 2) == float("inf")
