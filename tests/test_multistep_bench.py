"""benchmarks.multistep and its report: the step graph unrolled K times with an ``ArgMax`` between
steps, built, checked against the runtime's own greedy steps and timed end to end on the tiny test model
(two LSTM layers); the report's figures and estimates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import __main__ as listing
from benchmarks import multistep, multistep_report
from nextword.runtime.model_file import INPUT_IDS, LOGITS_FROM, state_input_names, state_output_names


def _greedy_by_forward(model, first: int, state, words: int):
    """``words`` greedy tokens by ``model.forward``, padding and unknown banned, and the state after."""
    banned, token, out = multistep.banned_ids(model), first, []
    for _ in range(words):
        logits, state = model.forward(np.array([[token]], dtype=np.int64), state)
        row = logits[0, -1].copy()
        row[banned] = -np.inf
        token = int(row.argmax())
        out.append(token)
    return out, state


def test_the_unrolled_graph_steps_as_the_model_does(model, model_path):
    layers = len(model.info.state_sizes)
    assert layers == 2  # the renaming covers every layer's state
    steps = 5
    session = multistep.session(multistep.unrolled(model_path.read_bytes(), steps))
    rng = np.random.default_rng(3)
    state = [rng.standard_normal(s.shape).astype(np.float32) * 0.3 for s in model.initial_state(1)]
    first = int(rng.integers(4, model.vocab_size))
    mask = np.zeros(model.vocab_size, dtype=np.float32)
    mask[multistep.banned_ids(model)] = -np.inf
    feed = {INPUT_IDS: np.array([[first]], dtype=np.int64), multistep.MASK: mask}
    feed.update(zip(state_input_names(layers), state, strict=True))
    if model.info.has_logits_from:
        feed[LOGITS_FROM] = np.asarray(-1, dtype=np.int64)
    tokens, *after = session.run([multistep.TOKENS, *state_output_names(layers)], feed)
    expected, expected_state = _greedy_by_forward(model, first, state, steps)
    assert tokens.shape == (1, steps) and tokens[0].tolist() == expected
    for got, want in zip(after, expected_state, strict=True):  # the state after the last token fed
        np.testing.assert_array_equal(got, want)  # the same kernels on the same numbers: bit for bit


@pytest.mark.slow
def test_multistep_benchmark_runs_end_to_end(model_path, tmp_path, capsys):
    out = tmp_path / "multistep.json"
    argv = ["--model", str(model_path), "--steps", "2,4", "--words", "8", "--rounds", "2"]
    assert multistep.main([*argv, "--result-json", str(out)]) == 0
    result = json.loads(out.read_text())
    keys = [row["key"] for row in result["rows"]]
    assert keys == [
        "bare",
        "default",
        "t1",
        "x2_t1",
        "x4_t1",
        "t2",
        "x2_t2",
        "x4_t2",
        "t2s",
        "x2_t2s",
        "x4_t2s",
    ]
    for row in result["rows"]:
        assert row["us_per_word"]["n"] == 2 and row["us_per_word"]["median"] > 0
        if row["steps"] is None:
            assert row["check"] is None and row["build_ms"] is None
        else:  # every word of every unrolled graph is the default's greedy choice
            assert row["check"] == {"words": 8, "same_as_stepper": 8} and row["build_ms"] > 0
    rules = result["rules"]
    assert rules["words"] == 8 * len(multistep.RULE_PROMPTS) and 0 <= rules["overruled"] <= rules["words"]
    assert [len(row) for row in rules["flags"]] == [8] * len(multistep.RULE_PROMPTS)
    assert sum(map(sum, rules["flags"])) == rules["overruled"]
    printed = capsys.readouterr().out
    assert "| unrolled graph, 4 words per call | 2 threads, spinning |" in printed
    assert "Every unrolled graph chose the default's tokens at every word." in printed


def _result(same: int) -> dict:
    def row(key, label, setting, steps, us, check=None):
        stat = {"median": us, "q1": us - 1, "q3": us + 1, "n": 5}
        built = 90.0 if steps else None
        return {"key": key, "label": label, "setting": setting, "steps": steps, "us_per_word": stat} | {
            "check": check,
            "build_ms": built,
        }

    return {
        "settings": {"words": 16, "rounds": 3, "steps": [8]},
        "model": {"path": "m.onnx", "vocab": 100},
        "rows": [
            row("bare", multistep_report.BARE, "default", None, 250.0),
            row("default", "stepper", "default", None, 300.0),
            row("t1", "stepper", "1 thread", None, 400.0),
            row(
                "x8_t1",
                "unrolled graph, 8 words per call",
                "1 thread",
                8,
                200.0,
                {"words": 16, "same_as_stepper": same},
            ),
        ],
    }


def test_the_report_reads_its_figures_and_says_when_tokens_differ():
    text = multistep_report.render(_result(16))
    line = next(x for x in text.splitlines() if x.startswith("| unrolled graph, 8 words per call"))
    assert "| 0.50× | 0.67× | 0.80× | 16/16 | 90.0 |" in line  # vs its stepper, the default, the bare step
    assert "the fastest: unrolled graph, 8 words per call on 1 thread, 200 us per word" in text
    assert "Every unrolled graph chose" in text
    differing = multistep_report.render(_result(15))
    assert "15/16" in differing and "**Some unrolled graphs chose other tokens" in differing


def test_a_call_keeps_its_words_up_to_the_first_overruled_one():
    flags = [[False, False, True, False, False, False, False], [True]]
    # K=4: calls keep 3 (the third overruled), then 4; then 1 for the second prompt
    assert multistep_report.words_per_call(flags, 4) == pytest.approx(8 / 3)
    assert multistep_report.words_per_call(flags, 2) == pytest.approx(8 / 5)  # 2, 1, 2, 2, then 1
    assert multistep_report.words_per_call([[False] * 10], 4) == pytest.approx(10 / 3)  # 4, 4, 2
    assert multistep_report.words_per_call([], 4) == 0.0


def test_the_report_estimates_what_the_rules_leave_of_each_call():
    result = _result(16)
    result["rules"] = {
        "words": 16,
        "overruled": 2,
        "flags": [[False] * 7 + [True] + [False] * 7 + [True]],  # calls of 8 words keep 8, then 8
        "prompts": ["a"],
        "no_repeat_ngram_size": 4,
        "repetition_penalty": 1.0,
        "min_words": 0,
    }
    text = multistep_report.render(result)
    assert "overrule the graph's `ArgMax` at 2 of 16 greedy words (12.5%; 1 prompts, 16 words each)" in text
    assert "| 8 | 8.00 | 1 thread | 200 | 0.80× |" in text  # 200 us x 8 steps / 8 words; bare 250
    assert "the best of them, K = 8 at 200 us per word, is 0.67× the default's greedy loop." in text
    result["rules"]["flags"] = [[False, True] * 8]  # every call keeps 2 of its 8 steps
    text = multistep_report.render(result)
    assert "| 8 | 2.00 | 1 thread | 800 | 3.20× |" in text
    assert "K = 8 at 800 us per word, is 2.67× the default's greedy loop (slower: the graph's gain" in text


def test_options_are_checked_and_the_benchmark_is_listed(capsys):
    for bad in (["--steps", "8,x"], ["--steps", "0"], ["--words", "20", "--steps", "8"]):
        with pytest.raises(SystemExit) as stop:
            multistep.parse_args(bad)
        assert stop.value.code == 2
    assert "multiple of every --steps" in capsys.readouterr().err
    assert listing.main() == 0
    assert "  multistep " in capsys.readouterr().out
