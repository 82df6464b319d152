"""A Generator or BeamSearch whose step is cut part way (Ctrl-C inside onnxruntime's run, a notebook's
stop button, a failed session call) steps no further: its rows had chosen tokens the model never saw,
or a prompt being fed was dropped, and going on wrote other text than an uninterrupted run, silently
(a prompt lost while fed even ended as "done", with no text and no finish reason)."""

from __future__ import annotations

import pytest

import nextword.runtime.generator as generator_module
from nextword.runtime import BeamSearch, GenerationConfig, Generator, InterruptedStepError

CONFIG = GenerationConfig(max_words=30, stop_at_end=False, seed=1)
PROMPTS = ["the network", "a neural network receives"]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_a_generator_interrupted_inside_a_step_refuses_to_go_on(model, monkeypatch):
    reference = model.generator()
    expected = [reference.text(r) for r in [*reference.add(PROMPTS, CONFIG)] if reference.run() is None]
    gen = model.generator()
    rows = gen.add(PROMPTS, CONFIG)
    for _ in range(6):
        gen.step()
    written = [gen.text(r) for r in rows]
    monkeypatch.setattr(gen._batch._stepper, "step", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        gen.step()
    monkeypatch.undo()
    assert not gen.done  # a `while not gen.done: gen.step()` loop reaches the refusal below
    for call in (gen.step, gen.run, lambda: next(gen.pieces(rows[0])), lambda: gen.add("the")):
        with pytest.raises(InterruptedStepError, match=r"failed part way \(KeyboardInterrupt\)"):
            call()
    # what the rows wrote before is still read, and a new generator writes the uninterrupted texts
    assert all(
        e.startswith(w) and gen.text(r).startswith(w) for e, w, r in zip(expected, written, rows, strict=True)
    )
    again = model.generator()
    assert [again.text(r) for r in again.add(PROMPTS, CONFIG) if again.run() is None] == expected


def test_a_generator_interrupted_while_feeding_a_prompt_is_not_done(model, monkeypatch):
    gen = Generator(model, chunk=4)  # a prompt fed over several steps
    (row,) = gen.add("the network receives an input signal and the processor", CONFIG)
    monkeypatch.setattr(generator_module, "prefill_round", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        gen.step()
    monkeypatch.undo()
    assert not gen.done and gen.finish_reason(row) is None
    with pytest.raises(InterruptedStepError, match="start a new one"):
        gen.run()


def test_a_beam_search_interrupted_inside_a_step_refuses_to_go_on_or_to_answer(model, monkeypatch):
    config = GenerationConfig(num_beams=3, max_words=20, stop_at_end=False)
    prompts = [model.prompt_ids("the network")]
    search = BeamSearch(model, prompts, config)
    for _ in range(4):
        search.step()
    monkeypatch.setattr(search._stepper, "step", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        search.step()
    monkeypatch.undo()
    assert not search.done
    for call in (search.step, search.texts, search.results):
        with pytest.raises(InterruptedStepError, match=r"BeamSearch.*\(KeyboardInterrupt\).*a new search"):
            call()
    fresh = BeamSearch(model, prompts, config)
    while fresh.step():
        pass
    assert fresh.texts()[0]
