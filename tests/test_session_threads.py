"""The model's sessions: two spinning threads for a step that runs alone where its numbers are those of
one thread (any batch of an fp32 model, up to 4 rows of the bundled int8 one); two threads without
spinning, always, for batches of 5 rows or more whose numbers differ on two threads (the bundled
model's); the one-thread session otherwise. A text never depends on what else runs, nor on the cores."""

from __future__ import annotations

import numpy as np
import pytest

from nextword.runtime import GenerationConfig, load, probe
from nextword.runtime import model as model_module
from nextword.runtime import session as session_module
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.errors import ModelRunError


class Counting:
    """An onnxruntime session that counts the runs made through it (plain and I/O-bound)."""

    def __init__(self, session) -> None:
        self._session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self._session.run(*args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        self.runs += 1
        return self._session.run_with_iobinding(*args, **kwargs)

    def io_binding(self):
        return self._session.io_binding()

    def get_providers(self):
        return self._session.get_providers()


def _counted(path):
    model = load(path)
    assert model.wide_session is not None, "this machine has two cores or more"
    model.session, model.wide_session = Counting(model.session), Counting(model.wide_session)
    return model, model.session, model.wide_session


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    monkeypatch.setattr(model_module, "usable_cores", lambda: 2)  # CI machines have two; say so anyway


@pytest.mark.parametrize("which", ["bundled int8", "tiny fp32"])
def test_both_sessions_give_the_same_numbers_for_a_single_row(which, model_path):
    path = BUNDLED_MODEL if which == "bundled int8" else model_path
    auto, narrow = load(path), load(path, threads=1)
    assert auto.wide_session is not None and narrow.wide_session is None
    rng = np.random.default_rng(0)
    for positions in (1, 7, 64):
        ids = rng.integers(0, auto.vocab_size, (1, positions))
        state = [rng.standard_normal(s.shape).astype(np.float32) for s in auto.initial_state(1)]
        (a, a_state), (b, b_state) = auto.forward(ids, state), narrow.forward(ids, state)
        np.testing.assert_array_equal(a, b)
        for x, y in zip(a_state, b_state, strict=True):
            np.testing.assert_array_equal(x, y)
    config = GenerationConfig(max_words=60, stop_at_end=False, seed=4)
    assert auto.generate("the network", config) == narrow.generate("the network", config)


def _counted_pair(model):
    """Give ``model`` a counted pair session (two threads, no spinning) before a step needs one."""
    model.pair_session = Counting(load(model.source, threads=2).session)
    return model.pair_session


def test_large_int8_batches_run_on_two_threads_alone_or_not(monkeypatch):
    """The bundled int8 file: single rows and batches of up to 4 rows take the wide session when they
    run alone, one thread otherwise; batches of 5 rows or more, whose numbers depend on the thread
    count (which the checks find), run on two threads whatever else runs: the wide session alone (the
    pair's numbers), the pair of two threads without spinning otherwise. The texts are the same."""
    model, narrow, wide = _counted(BUNDLED_MODEL)
    pair = _counted_pair(model)
    six = GenerationConfig(max_words=5, stop_at_end=False, num_return_sequences=3, seed=1)
    model.generate(["the network", "a model"], six)  # the checks of up to 6 rows run (counted too)
    narrow.runs = wide.runs = pair.runs = 0
    model.generate("the network", max_words=5, stop_at_end=False)  # prompt + 4 steps, alone
    assert (narrow.runs, wide.runs, pair.runs) == (0, 5, 0)
    model.generate(["the network", "a model"], max_words=5, stop_at_end=False, num_return_sequences=2)
    assert (narrow.runs, wide.runs, pair.runs) == (0, 10, 0)  # two prompts fed, four rows stepped: wide
    alone = model.generate(["the network", "a model"], six)
    assert (narrow.runs, wide.runs, pair.runs) == (0, 15, 0)  # six rows alone: wide, two threads
    model.generate("the network", max_words=5, stop_at_end=False, num_beams=4)
    assert wide.runs > 15 and (narrow.runs, pair.runs) == (0, 0)  # beam search: four beams, wide
    assert model.wide_rows == 4  # the checks each batch size ran when first stepped: those of load()
    monkeypatch.setattr(session_module, "_FLIGHT", [None])  # another thread's run in progress
    before = wide.runs
    busy = model.generate(["the network", "a model"], six)
    model.generate("the network", max_words=5, stop_at_end=False)
    # busy: the two prompts fed on one thread (each prompt once: 2 rows), the six rows on the pair
    assert (narrow.runs, wide.runs - before, pair.runs) == (1 + 5, 0, 4)
    assert busy == alone


def test_a_pair_is_made_at_the_first_batch_that_needs_it_and_its_texts_are_those_of_two_threads():
    """load() makes no pair session; the first batch of 5 rows or more makes it, and that batch's
    texts are those of ``threads=2`` (the pair's own numbers), not of one thread."""
    model = load(BUNDLED_MODEL)
    assert model.pair_session is None
    model.generate("the network", max_words=3, num_return_sequences=4)
    assert model.pair_session is None  # 4 rows: the wide session's numbers are one thread's
    config = GenerationConfig(max_words=30, stop_at_end=False, seed=5, num_return_sequences=6)
    texts = model.generate("the network", config)
    assert model.pair_session is not None
    options = model.pair_session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert texts == load(BUNDLED_MODEL, threads=2).generate("the network", config)
    assert texts != load(BUNDLED_MODEL, threads=1).generate("the network", config)


def test_one_core_runs_the_same_sessions_for_large_int8_batches_and_gives_the_same_texts(monkeypatch):
    """With one usable core load() makes no wide session, yet a batch whose numbers differ on two
    threads still runs on the pair (made with the check at its first step): the text of a call does
    not depend on the machine's cores."""
    config = GenerationConfig(max_words=30, stop_at_end=False, seed=8, num_return_sequences=6)
    two_cores = load(BUNDLED_MODEL).generate(["the network", "a model"], config)
    monkeypatch.setattr(model_module, "usable_cores", lambda: 1)
    model = load(BUNDLED_MODEL)
    assert model.wide_session is None and model.pair_session is None
    model.generate("the network", max_words=5)  # one row: one thread, no check, no pair
    assert model.pair_session is None
    assert model.generate(["the network", "a model"], config) == two_cores
    assert model.pair_session is not None and model.wide_rows == 0  # no wide session to run on


def test_an_fp32_model_on_one_core_keeps_its_batches_on_one_thread(model_path, monkeypatch):
    """fp32: the pair's numbers are one thread's at any batch, so its batches stay on one thread."""
    monkeypatch.setattr(model_module, "usable_cores", lambda: 1)
    model = load(model_path)
    narrow = model.session = Counting(model.session)
    config = GenerationConfig(max_words=6, stop_at_end=False, seed=2, num_return_sequences=8)
    texts = model.generate("the network", config)
    checks = sum(1 for rows, _ in probe.WIDE_CHECKS if rows <= 8)  # each runs on both sessions
    assert narrow.runs == 6 + checks and model.pair_session is not None  # made for the check, never run
    assert texts == load(model_path, threads=1).generate("the network", config)
    model.generate("the network", max_words=2, num_return_sequences=64)  # the last check: 64 rows
    assert model.pair_session is None and model._plan._make_pair is None  # any batch agrees: dropped


def test_int8_batches_of_up_to_four_rows_give_the_numbers_of_one_thread():
    """What the check at load relies on: the bundled model's batches of 2-4 rows give one thread's
    numbers on two, those of 5 rows or more do not."""
    auto, narrow = load(BUNDLED_MODEL), load(BUNDLED_MODEL, threads=1)
    rng = np.random.default_rng(7)
    for rows in (2, 3, 4, 5, 16):
        ids = rng.integers(0, auto.vocab_size, (rows, 9))
        state = [rng.uniform(-1, 1, s.shape).astype(np.float32) for s in auto.initial_state(rows)]
        a, b = (
            auto.wide_session.run(None, _feed(auto, ids, state)),
            narrow.session.run(None, _feed(auto, ids, state)),
        )
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) == (rows <= 4), rows
    config = GenerationConfig(max_words=40, num_beams=4)
    assert auto.generate("the network", config) == narrow.generate("the network", config)


def _feed(model, ids, state):
    from nextword.runtime.model_file import INPUT_IDS, LOGITS_FROM, state_input_names

    feed = {INPUT_IDS: ids, **dict(zip(state_input_names(len(model.info.state_sizes)), state, strict=True))}
    if model.info.has_logits_from:
        feed[LOGITS_FROM] = np.asarray(0, dtype=np.int64)
    return feed


def test_an_fp32_model_runs_its_batches_alone_on_the_wide_session_with_the_same_numbers(model_path):
    model, narrow, wide = _counted(model_path)
    assert model.wide_rows == probe.MAX_ROWS  # fp32: the same numbers on one thread or two, any batch
    config = GenerationConfig(max_words=20, stop_at_end=False, seed=2, num_return_sequences=8)
    texts = model.generate(["the network", "a model"], config)
    assert wide.runs > 0 and narrow.runs == 0
    assert texts == load(model_path, threads=1).generate(["the network", "a model"], config)


def test_the_load_check_finds_an_int8_models_batches_differ():
    bundled = load(BUNDLED_MODEL)
    assert bundled.wide_session is not None
    assert probe.wide_rows(bundled.session, bundled.wide_session, bundled.info, "x") == 4


def test_a_step_while_another_runs_takes_the_one_thread_session(model_path, monkeypatch):
    model, narrow, wide = _counted(model_path)
    monkeypatch.setattr(session_module, "_FLIGHT", [None])  # another thread's run in progress
    model.generate("the network", max_words=5, stop_at_end=False)
    stepper = model.stepper()
    stepper.step(np.array([3]), model.initial_state(1))
    assert wide.runs == 0 and narrow.runs == 6
    assert session_module.runs_in_flight() == 1  # every run took its entry out again


def test_runs_leave_the_flight_count_as_they_found_it_even_when_they_fail(model_path):
    model = load(model_path)
    model.generate("the network", max_words=3)
    feed = {
        i.name: np.zeros([1 if isinstance(d, str) else d for d in i.shape], dtype=np.float64)
        for i in model.session.get_inputs()
    }  # float64 everywhere: fails inside onnxruntime
    with pytest.raises(ModelRunError):  # (forward refuses such a state before any run)
        session_module.run_session(model.session, ["logits"], feed, "test")
    assert session_module.runs_in_flight() == 0


def test_threads_choose_one_session_and_conflict_with_session_options(model_path, monkeypatch):
    fixed = load(model_path, threads=2)
    assert fixed.wide_session is None and fixed.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ValueError, match="threads or session_options"):
        load(model_path, threads=1, session_options=model_module.default_session_options())
    assert load(model_path, session_options=model_module.default_session_options()).wide_session is None
    monkeypatch.setattr(model_module, "usable_cores", lambda: 1)
    assert load(model_path).wide_session is None  # one core: nothing to share a step with
    wide = model_module.default_session_options(2, spinning=True)
    assert wide.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_a_step_just_after_another_threads_run_takes_the_one_thread_session(model_path, monkeypatch):
    """Threads that step in turn are mostly in Python between runs: a run that another thread ended
    moments ago shows them, and the step keeps to one thread; a run of long ago does not count."""
    import time

    model, narrow, wide = _counted(model_path)
    stepper, state = model.stepper(), model.initial_state(1)
    monkeypatch.setattr(session_module, "_LAST", (-1, time.perf_counter() + 60))  # another thread, "now"
    assert not session_module.alone()
    stepper.step(np.array([3]), state)
    assert (narrow.runs, wide.runs) == (1, 0)
    monkeypatch.setattr(session_module, "_LAST", (-1, time.perf_counter() - 1))  # a second ago
    assert session_module.alone()
    stepper.step(np.array([3]), model.initial_state(1))
    assert (narrow.runs, wide.runs) == (1, 1)
    stepper.step(np.array([3]), model.initial_state(1))  # the last run was this thread's own
    assert (narrow.runs, wide.runs) == (1, 2)


def test_a_thread_that_ended_the_last_run_still_sees_another_threads_recent_one(model_path, monkeypatch):
    """A thread stepping back to back ends the last run itself most of the time; another thread that
    ended one moments before it still shows, so the step keeps to one thread (a spinning pool then
    would burn a core the other thread needs)."""
    import threading
    import time

    model, narrow, wide = _counted(model_path)
    ids, state = np.zeros((1, 1), dtype=np.int64), model.initial_state(1)
    monkeypatch.setattr(session_module, "_LAST", (0, 0.0))
    monkeypatch.setattr(session_module, "_OTHER", 0.0)
    worker = threading.Thread(target=model.forward, args=(ids, state))
    worker.start()
    worker.join()  # another thread's run, just ended
    assert (narrow.runs, wide.runs) == (0, 1)  # it ran alone
    model.forward(ids, state)
    model.forward(ids, state)  # this thread's own run ended last; the worker's is still recent
    assert (narrow.runs, wide.runs) == (2, 1)
    monkeypatch.setattr(session_module, "_OTHER", time.perf_counter() - 1)  # the worker's, a second ago
    model.forward(ids, state)
    assert (narrow.runs, wide.runs) == (2, 2)


class _DiffersFrom:
    """A stand-in for the wide session: the one-thread session's numbers, nudged from ``rows`` rows on."""

    def __init__(self, session, rows: int) -> None:
        self.session, self.rows, self.sizes = session, rows, []

    def run(self, names, feed, *args):
        outputs = self.session.run(names, feed, *args)
        self.sizes.append(len(feed["input_ids"]))
        if len(feed["input_ids"]) >= self.rows:
            outputs[0] = outputs[0] + 1e-3
        return outputs


def test_the_load_check_finds_the_first_batch_size_whose_numbers_differ(model_path):
    """wide_rows stops at the first checked batch size whose numbers differ on the two sessions."""
    model = load(model_path, threads=1)
    for differs, expected in ((1, 0), (3, 2), (5, 4), (9, 8), (64, 8), (65, probe.MAX_ROWS)):
        wide = _DiffersFrom(model.session, differs)
        assert probe.wide_rows(model.session, wide, model.info, "x") == expected, differs
        checked = [rows for rows, _ in probe.WIDE_CHECKS]
        last = next((k for k, rows in enumerate(checked) if rows >= differs), len(checked) - 1)
        assert wide.sizes == checked[: last + 1]  # every check up to the first that differs


def test_the_checks_run_when_a_batch_size_first_needs_them_with_the_verdicts_of_running_them_all(model_path):
    """WideCheck runs a check only when a step first has a batch size past those already checked, and
    answers for every batch size what running every check at once (wide_rows) answers."""
    model = load(model_path, threads=1)
    checked = [rows for rows, _ in probe.WIDE_CHECKS]

    def runs_needed(asked: int, differs: int) -> int:  # checks run once batches of up to `asked` rows came
        for k, size in enumerate(checked):
            if size >= differs or size >= asked:  # the first that differs, or the first that covers
                return k + 1
        return len(checked)

    for differs in (1, 3, 5, 9, 64, 65):
        all_at_once = probe.wide_rows(model.session, _DiffersFrom(model.session, differs), model.info, "x")
        wide = _DiffersFrom(model.session, differs)
        check = probe.WideCheck(model.session, wide, model.info, "x")
        assert wide.sizes == []  # nothing runs until a step asks
        asked = 0
        for rows in (1, 1, 3, 2, 6, 20, 64, 100, 7):
            assert check.allows(rows) == (rows <= all_at_once), (differs, rows)
            asked = max(asked, rows)
            assert wide.sizes == checked[: runs_needed(asked, differs)], (differs, rows)  # in order, once
        assert check.settle() == all_at_once


def test_load_checks_a_single_row_and_leaves_larger_batches_to_their_first_step(model_path):
    """load() runs the one-row check alone (every use of the wide session needs it); a batch of 3 rows
    runs the checks of 2 and 3 rows at its first step, and the texts are those of one thread."""
    model = load(model_path)
    check = model._plan._check
    assert check is not None and check.agreed == 1
    config = GenerationConfig(max_words=6, stop_at_end=False, seed=3, num_return_sequences=3)
    texts = model.generate("the network", config)
    assert check.agreed == 3  # the checks of 2 and 3 rows ran; 4 and up wait for a batch that size
    assert texts == load(model_path, threads=1).generate("the network", config)
    assert model.wide_rows == probe.MAX_ROWS and check.agreed == probe.MAX_ROWS  # fp32: any batch


def test_a_model_whose_single_row_differs_on_two_threads_keeps_one_session(model_path, monkeypatch):
    """When one row's numbers already differ on two threads, load() drops the second session."""
    real = probe.WideCheck

    class Differs(real):
        def __init__(self, session, wide, info, source):
            super().__init__(session, _DiffersFrom(session, 1), info, source)

    monkeypatch.setattr(model_module, "WideCheck", Differs)
    model = load(model_path)
    assert model.wide_session is None and model.wide_rows == 0


def test_a_verdict_read_while_the_last_check_lands_is_exact(model_path):
    """A no would send a batch of 5 rows or more to two threads, whose numbers may differ: a step that
    reads ``agreed`` just before another thread's last check raises it, then finds the checks final,
    reads it again."""

    class Racing(probe.WideCheck):
        reads = 0

        @property
        def agreed(self):
            self.reads += 1
            return 0 if self.reads == 1 else self._agreed  # the first read: before the last check landed

        @agreed.setter
        def agreed(self, value):
            self._agreed = value

    model = load(model_path, threads=1)
    check = Racing(model.session, _DiffersFrom(model.session, 65), model.info, "x")
    check._agreed, check._final = probe.MAX_ROWS, True  # what the other thread's last check left
    assert check.allows(6)


def test_settled_checks_let_go_of_their_sessions(model_path):
    model = load(model_path, threads=1)
    check = probe.WideCheck(model.session, _DiffersFrom(model.session, 3), model.info, "x")
    assert check.settle() == 2 and check._session is None and check._wide is None
    assert check.allows(2) and not check.allows(3)  # the verdicts stay
