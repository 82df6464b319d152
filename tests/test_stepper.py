"""The bound stepper: single-token steps through onnxruntime's I/O binding, bit for bit the logits and
states of ``forward``, whatever the batch does between steps, and the same texts from every loop."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from nextword.runtime import GenerationConfig, load
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.errors import ModelRunError
from nextword.runtime.stepper import BoundStepper, ForwardStepper, stepper_for


def _forward_step(model, tokens, state):
    logits, new_state = model.forward(np.asarray(tokens, dtype=np.int64)[:, None], state, logits_from=-1)
    return logits[:, 0], new_state


def test_bound_steps_equal_forward_bit_for_bit_as_rows_leave_and_join(model):
    """Own state passed back (nothing copied), rows dropped (a copy), rows added past the buffers'
    capacity (rebinding), the same token everywhere and different ones."""
    stepper = model.stepper()
    assert isinstance(stepper, BoundStepper) and isinstance(stepper_for(model), BoundStepper)
    rng = np.random.default_rng(0)
    ours, theirs = model.initial_state(3), model.initial_state(3)
    for step in range(12):
        rows = len(ours[0])
        tokens = rng.integers(0, model.vocab_size, rows)
        logits, ours = stepper.step(tokens, ours)
        expected, theirs = _forward_step(model, tokens, theirs)
        assert logits.shape == (rows, model.vocab_size) and logits.dtype == np.float32
        np.testing.assert_array_equal(logits, expected)
        for mine, want in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(mine, want)
        logits[:] = np.nan  # the caller may modify the logits: the next step does not read them
        if step == 3:  # a row leaves
            ours, theirs = [s[[0, 2]] for s in ours], [s[[0, 2]] for s in theirs]
        if step == 6:  # five rows join, past the capacity of three
            fresh = model.initial_state(5)
            ours = [np.concatenate([s, f]) for s, f in zip(ours, fresh, strict=True)]
            theirs = [np.concatenate([s, f]) for s, f in zip(theirs, fresh, strict=True)]
        if step == 9:  # the first rows of the last state, as a view
            ours, theirs = [s[:4] for s in ours], [s[:4] for s in theirs]


def test_the_state_returned_stays_valid_until_the_step_after_next(model):
    stepper = model.stepper()
    tokens = np.array([5, 9])
    _, first = stepper.step(tokens, model.initial_state(2))
    kept = [s.copy() for s in first]
    _, second = stepper.step(tokens, first)
    for s, k in zip(first, kept, strict=True):  # read by the second step, not written
        np.testing.assert_array_equal(s, k)
    expected, _ = _forward_step(model, tokens, second)
    np.testing.assert_array_equal(stepper.step(tokens, second)[0], expected)  # the state it was given
    np.testing.assert_array_equal(stepper.step(tokens, second)[0], expected)  # and again: a copy now


def test_a_state_that_does_not_fit_is_a_clear_error(model):
    stepper = model.stepper()
    with pytest.raises(ValueError, match="does not fit 2 tokens"):
        stepper.step(np.array([1, 2]), model.initial_state(3))
    with pytest.raises(ValueError, match=r"state must be the model's 4 arrays .* got 2 arrays"):
        stepper.step(np.array([1]), model.initial_state(1)[:2])


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0, "max_words": 30},
        {"temperature": 0.8, "top_k": 20, "num_return_sequences": 3, "stop": ["."], "max_words": 40},
        {"top_p": 0.9, "cache": True, "max_words": 30},  # on the bundled file, which has a cache
        {"num_beams": 3, "max_words": 12},
        {"num_beams": 2, "cache": True, "max_words": 12},
    ],
)
def test_texts_are_those_of_forward_steps(model_path, options):
    """Every decoding loop on the bound stepper gives the texts it gave on ``forward``."""
    path = BUNDLED_MODEL if options.get("cache") else model_path
    bound, plain = load(path), load(path)
    assert not options.get("cache") or bound.cache_settings is not None
    plain.stepper = lambda: ForwardStepper(plain)  # shadows the method: the loops fall back on forward
    config = GenerationConfig(seed=3, **options)
    prompts = ["the network", "a neural network receives the weights"]
    assert bound.generate(prompts, config) == plain.generate(prompts, config)


def _capped_to_two_rows(model_path) -> bytes:
    """The test model with its logits cut to the first two rows (the onnx package, the train extra's)."""
    import crafted

    return crafted.cap_logits(crafted.proto(model_path), axis=0, end=2).SerializeToString()


def test_a_step_that_fails_in_onnxruntime_raises_model_run_error(model_path, tmp_path):
    """A graph that passes the probe but cuts larger batches: the bound output no longer fits, and
    onnxruntime's refusal becomes a ModelRunError naming the file, not stale logits."""
    path = tmp_path / "rows.onnx"
    path.write_bytes(_capped_to_two_rows(model_path))
    model = load(path)
    stepper = model.stepper()
    stepper.step(np.array([1, 2]), model.initial_state(2))  # two rows work
    failed = r"onnxruntime failed running the model on input_ids \(3, 1\)"
    with pytest.raises(ModelRunError, match=failed) as info:
        stepper.step(np.array([1, 2, 3]), model.initial_state(3))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_calls_reuse_the_steppers_of_finished_calls_and_never_share_one(model_path, monkeypatch):
    """generate(), generate_ids() and stream() borrow a stepper an earlier call left (bound already)
    and give it back; a call in progress keeps its own, so concurrent calls never share one; the
    texts are those of fresh steppers."""
    from nextword.runtime import model as model_module

    model = load(model_path)
    made = []
    real = model.stepper

    def counting_stepper():
        made.append(real())
        return made[-1]

    monkeypatch.setattr(model, "stepper", counting_stepper)
    config = GenerationConfig(max_words=12, seed=3, stop_at_end=False)
    first = model.generate("the network", config)
    assert model.generate("the network", config) == first == load(model_path).generate("the network", config)
    assert len(made) == 1 and model._idle == made  # the second call took the first call's stepper
    stream = model.stream("the network", config)
    assert model._idle == []  # lent to the stream while it runs
    assert model.generate("a model", config) and len(made) == 2  # meanwhile a call gets its own
    assert "".join(stream) == first and sorted(map(id, model._idle)) == sorted(map(id, made))
    model.generate_ids(model.prompt_ids("the network"), config)
    assert len(made) == 2
    streams = [model.stream("the network", config) for _ in range(model_module.IDLE_STEPPERS + 2)]
    for open_stream in streams:  # streams left open hold theirs
        next(open_stream)
    assert len(made) == model_module.IDLE_STEPPERS + 2 and len(model._idle) == 0
    for open_stream in streams:  # closed (or collected): given back, as many as are kept
        open_stream.close()
    assert len(model._idle) == model_module.IDLE_STEPPERS
    model._idle.clear()
    model._give_back(made[0])
    assert len(model._idle) == 1
    with pytest.raises(ValueError):  # a call that fails gives its stepper back too
        model.stream("the network", config, cache=True)  # the tiny model has no cache
    assert len(model._idle) == 1


class _DeviceBinding:
    """An I/O binding that, like onnxruntime's for an input read on a GPU, copies a bound input when it
    is bound: later writes to the array are not seen until it is bound again."""

    def __init__(self, binding) -> None:
        self._binding, self._copies = binding, {}

    def bind_input(self, name, device, device_id, dtype, shape, address) -> None:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(address))
        copy = self._copies[name] = raw.view(dtype).reshape(shape).copy()  # kept alive while bound
        self._binding.bind_input(name, device, device_id, dtype, list(shape), copy.ctypes.data)

    def bind_output(self, *args) -> None:
        self._binding.bind_output(*args)


class _DeviceSession:
    """A CPU session that reports a GPU provider and binds as one (:class:`_DeviceBinding`)."""

    def __init__(self, session) -> None:
        self._session = session

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def io_binding(self):
        return _DeviceBinding(self._session.io_binding())

    def run_with_iobinding(self, binding) -> None:
        self._session.run_with_iobinding(binding._binding)

    def __getattr__(self, name):
        return getattr(self._session, name)


@pytest.mark.parametrize("which", ["tiny fp32", "bundled int8"])
def test_a_session_whose_bindings_copy_inputs_gets_each_steps_tokens_and_state(which, model_path):
    """With the CUDA provider onnxruntime copies a bound input to the GPU when it is bound, so a binding
    made once would feed its first tokens and state at every step (seen on an H200: no greedy text of
    a CUDA session matched the CPU's). The stepper binds the inputs again before each step there."""
    path = BUNDLED_MODEL if which == "bundled int8" else model_path
    cpu, device = load(path, threads=1), load(path, threads=1)
    device.session = _DeviceSession(device.session)
    prompts, config = (
        ["the network", "a neural network receives"],
        GenerationConfig(temperature=0, max_words=25),
    )
    assert device.generate(prompts, config) == cpu.generate(prompts, config)
    stepper, state = device.stepper(), device.initial_state(2)
    expected = cpu.initial_state(2)
    for tokens in ([3, 4], [7, 8], [3, 4]):
        logits, state = stepper.step(np.array(tokens), state)
        want, expected = _forward_step(cpu, tokens, expected)
        np.testing.assert_array_equal(logits, want)


def test_a_step_that_fails_on_a_gpu_names_the_device_as_a_likely_cause(model_path, tmp_path):
    """On a GPU a failed step may be the device's (out of memory): the message says so, and how to tell
    it from a damaged file, rather than blaming the file alone."""
    path = tmp_path / "rows.onnx"
    path.write_bytes(_capped_to_two_rows(model_path))
    model = load(path, threads=1)
    model.session = _DeviceSession(model.session)
    with pytest.raises(ModelRunError, match="on CUDAExecutionProvider that may be the device") as info:
        model.stepper().step(np.array([1, 2, 3]), model.initial_state(3))
    assert "if the same call fails on the CPU (device='cpu') too, the file is damaged" in str(info.value)
    with pytest.raises(ModelRunError, match="the file is damaged or crafted") as info:  # outputs of the
        model.forward(np.array([[1], [2], [3]]), model.initial_state(3))  # wrong shape: the file's alone
    assert "device" not in str(info.value)
