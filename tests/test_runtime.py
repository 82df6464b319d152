"""The runtime on the exported tiny model: loading, the step function, generation, evaluation."""

import logging
import re

import numpy as np
import pytest

from nextword.runtime import GenerationConfig, ModelFileError, evaluate, evaluate_ids, load


def test_load_reads_tokenizer_and_shape(model):
    assert model.vocab_size == len(model.tokenizer) > 10
    assert model.info.state_sizes == (32, 32)
    assert model.info.config["model"]["lstm_units"] == 32
    assert model.info.parity["passed"] is True
    assert model.providers == ["CPUExecutionProvider"]
    assert "vocab_size" in repr(model)


def test_load_accepts_bytes(model_path):
    assert load(model_path.read_bytes()).vocab_size == load(model_path).vocab_size


def test_same_seed_same_text_and_different_seeds_differ(model):
    a = model.generate("the network", max_words=30, seed=5)
    assert a == model.generate("the network", max_words=30, seed=5)
    assert len({model.generate("the network", max_words=30, seed=s) for s in range(5)}) > 1


def test_greedy_is_deterministic_and_learned_the_grammar(model):
    text = model.generate("the processor", temperature=0, max_words=12)
    assert text == model.generate("the processor", temperature=0, max_words=12, seed=99)
    first = text.split()[0]
    assert first in {"receives", "computes", "stores", "transmits", "updates", "classifies"}, text


def test_result_continues_the_prompt(model):
    tok = model.tokenizer
    for prompt in ("each neuron", "the network receives the weights", "the system stores"):
        config = GenerationConfig(max_words=6, temperature=0)
        text = model.generate(prompt, config)
        new = [tok.token_of(i) for i in model.generate_ids(model.prompt_ids(prompt), config)]
        assert tok.tokenize(prompt + text) == tok.tokenize(prompt) + new  # appending reads right
        assert not text.startswith("  ")
        assert model.generate(prompt + " ", config) == text.lstrip(" ")
    assert model.generate("", max_words=5, temperature=0)[0].isupper()  # start of a document


def test_max_words_counts_tokens(model):
    ids = model.generate_ids(
        model.prompt_ids("the system"), GenerationConfig(max_words=7, temperature=1.0, seed=0)
    )
    assert 0 < len(ids) <= 7
    assert model.generate("the system", max_words=0) == ""


def test_unknown_and_padding_are_never_generated(model):
    tok = model.tokenizer
    for seed in range(5):
        ids = model.generate_ids(
            model.prompt_ids("zzz qqq"), GenerationConfig(max_words=40, seed=seed, temperature=2.0)
        )
        assert tok.unk_id not in ids and tok.pad_id not in ids and tok.eod_id not in ids


def test_chunked_feeding_equals_whole(model):
    ids = np.asarray([model.prompt_ids("the network receives an input signal. " * 8)])
    whole_logits, whole_state = model.feed(ids, model.initial_state(1))
    chunked_logits, chunked_state = model.feed(ids, model.initial_state(1), chunk=7)
    np.testing.assert_allclose(chunked_logits, whole_logits, atol=1e-5)
    for a, b in zip(chunked_state, whole_state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # and split by hand at an arbitrary place, state carried
    first, state = model.forward(ids[:, :11], model.initial_state(1))
    second, _ = model.forward(ids[:, 11:], state)
    full, _ = model.forward(ids, model.initial_state(1))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-5)


def test_long_prompt_is_accepted(model):
    prompt = "the model updates the weights. " * 1000  # 6,000 tokens, fed in chunks
    assert isinstance(model.generate(prompt, max_words=5, seed=0), str)


def test_batch_rows_are_independent(model):
    ids = np.asarray(
        [model.prompt_ids("the system stores the weights"), model.prompt_ids("a neural network receives an")]
    )
    batch, _ = model.forward(ids, model.initial_state(2))
    for row in range(2):
        single, _ = model.forward(ids[row : row + 1], model.initial_state(1))
        np.testing.assert_allclose(batch[row : row + 1], single, atol=1e-5)


def test_missing_cuda_falls_back_to_cpu_with_a_warning(model_path, caplog):
    with caplog.at_level(logging.WARNING):
        loaded = load(model_path, providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])
    assert loaded.providers == ["CPUExecutionProvider"]
    assert "NoSuchExecutionProvider" in caplog.text
    with pytest.raises(ValueError, match="list of provider names"):
        load(model_path, providers="CPUExecutionProvider")  # type: ignore[arg-type]


def test_providers_may_carry_their_options_as_onnxruntime_takes_them(model_path, monkeypatch, caplog):
    """``("CUDAExecutionProvider", {"device_id": 1})`` picks a GPU; the pairs reach onnxruntime as given,
    a pair of a missing provider is skipped like a name, and a malformed entry is a clear error (left to
    onnxruntime it would be printed and replaced by the CPU)."""
    import onnxruntime as ort

    from nextword.runtime import sessions

    seen, real = [], ort.InferenceSession

    def spy(data, sess_options, providers):
        seen.append(providers)
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(sessions.ort, "InferenceSession", spy)
    pair = ("CPUExecutionProvider", {"use_arena": "0"})
    with caplog.at_level(logging.WARNING):
        loaded = load(model_path, providers=[("CUDAExecutionProvider", {"device_id": 1}), pair])
    assert seen == [[pair]] and loaded.providers == ["CPUExecutionProvider"]
    assert "['CUDAExecutionProvider'] not available" in caplog.text
    assert loaded.generate("the network", temperature=0, max_words=8) == load(model_path).generate(
        "the network", temperature=0, max_words=8
    )
    for bad in (("CPUExecutionProvider", "use_arena=0"), ["CPUExecutionProvider", {}], 7):
        with pytest.raises(ValueError, match=r"a name or a \(name, options dict\) pair"):
            load(model_path, providers=[bad])  # type: ignore[list-item]
    assert loaded.wide_session is None  # options of its own: one session, as given
    # a pair without options is the name itself: the CPU's keeps load()'s default sessions
    seen.clear()
    plain = load(model_path, providers=[("CPUExecutionProvider", {})])
    assert seen[0] == ["CPUExecutionProvider"] and plain.wide_session is not None


def test_device_names_a_gpu_strictly_where_providers_fall_back(model_path, monkeypatch, caplog):
    """``device="cuda"`` is an error, naming the fix, where onnxruntime has no CUDA provider or could
    not start it (missing CUDA or cuDNN libraries: onnxruntime then runs the CPU quietly); the same
    providers asked by name fall back to the CPU with a warning."""
    import onnxruntime as ort

    from nextword.runtime import sessions

    assert sessions.gpu_number("cpu") is None and sessions.gpu_number("cuda") == 0
    assert sessions.gpu_number("cuda:3") == 3
    for bad in ("gpu", "cuda:", "CUDA", "cuda:x", 0):
        with pytest.raises(ValueError, match=r"device must be 'cpu', 'cuda' or 'cuda:N'"):
            load(model_path, device=bad)  # type: ignore[arg-type]
    on_cpu = load(model_path, device="cpu")
    assert on_cpu.providers == ["CPUExecutionProvider"] and on_cpu.wide_session is not None  # the default
    with pytest.raises(ValueError, match="providers or device, not both"):
        load(model_path, providers=["CPUExecutionProvider"], device="cpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match=r"lacks .* install onnxruntime-gpu as docs/gpu\.md says"):
            load(model_path, device="cuda")
    # a build with the CUDA provider that cannot start it: the session gets the CPU alone
    real = ort.InferenceSession
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(
        sessions.ort,
        "InferenceSession",
        lambda data, sess_options, providers: real(
            data, sess_options=sess_options, providers=["CPUExecutionProvider"]
        ),
    )
    with pytest.raises(
        ValueError, match=r"could not start CUDAExecutionProvider .* fell back to CPUExecutionProvider"
    ):
        load(model_path, device="cuda:1")
    with caplog.at_level(logging.WARNING):
        fallen = load(model_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert (
        fallen.providers == ["CPUExecutionProvider"]
        and "could not start CUDAExecutionProvider" in caplog.text
    )


def test_an_int8_file_on_a_gpu_is_told_to_export_float32(model_path, monkeypatch, caplog):
    """Measured on an H200 (docs/gpu.md): the int8 file's quantized LSTM runs on the CPU inside a CUDA
    session, slower than the CPU alone. A session that reports the CUDA provider stands in for one."""
    import onnxruntime as ort

    from nextword.runtime import BUNDLED_MODEL, sessions

    class OnGpu:
        def __init__(self, *args, **kwargs) -> None:
            kwargs["providers"] = ["CPUExecutionProvider"]
            self._session = real(*args, **kwargs)

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._session, name)

    real = ort.InferenceSession
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(sessions.ort, "InferenceSession", OnGpu)
    with caplog.at_level(logging.WARNING):
        fp32 = load(model_path, device="cuda")
    assert "int8" not in caplog.text and fp32.providers[0] == "CUDAExecutionProvider"
    with caplog.at_level(logging.WARNING):
        int8 = load(BUNDLED_MODEL, device="cuda")
    assert "has int8 weights, which run slower on CUDAExecutionProvider than on the CPU alone" in caplog.text
    assert "export without --int8 for a GPU" in caplog.text
    assert int8.generate("the network", temperature=0, max_words=10) == load(
        BUNDLED_MODEL, threads=1
    ).generate(
        "the network", temperature=0, max_words=10
    )  # and the texts are right: the stepper binds its inputs at every step on such a session
    caplog.clear()
    monkeypatch.setattr(
        OnGpu, "get_providers", lambda self: ["AzureExecutionProvider", "CPUExecutionProvider"]
    )
    with caplog.at_level(logging.WARNING):
        load(BUNDLED_MODEL, providers=["CPUExecutionProvider"])  # a provider that is not a GPU: no warning
    assert "int8" not in caplog.text


def test_a_gpu_provider_that_fails_to_start_is_told_from_a_bad_file(
    model_path, tmp_path, monkeypatch, caplog
):
    """onnxruntime raises its own ``Fail`` (no ``RuntimeError``, so it does not fall back itself) for a
    GPU that does not exist ("invalid device ordinal"): that is the device, not the file, when the file
    loads on the CPU; ``device`` makes it an error, ``providers`` a warning and the CPU. A bad file is
    still the file's error. Providers may come from any iterable; anything else is named."""
    import onnxruntime as ort

    from nextword.runtime import ModelFileError, sessions

    class Fail(Exception):  # stands in for onnxruntime.capi.onnxruntime_pybind11_state.Fail
        pass

    def create(data, sess_options, providers):
        if any("CUDA" in str(p) for p in providers):
            raise Fail("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 101: invalid device ordinal")
        return real(data, sess_options=sess_options, providers=providers)

    real = ort.InferenceSession
    monkeypatch.setattr(
        sessions.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(sessions.ort, "InferenceSession", create)
    started = r"could not start CUDAExecutionProvider for .*tiny\.onnx, which loads on the CPU: "
    started += r".*invalid device ordinal"
    with pytest.raises(ValueError, match=started + ".*check the device number"):
        load(model_path, device="cuda:5")
    with caplog.at_level(logging.WARNING):
        fallen = load(
            model_path, providers=[("CUDAExecutionProvider", {"device_id": 5}), "CPUExecutionProvider"]
        )
    assert fallen.providers == ["CPUExecutionProvider"] and "running on the CPU" in caplog.text
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + bytes(200))
    with pytest.raises(ModelFileError):
        load(junk, device="cuda")
    assert load(model_path, providers=(p for p in ["CPUExecutionProvider"])).providers == [
        "CPUExecutionProvider"
    ]
    for bad in (5, b"CPUExecutionProvider"):
        with pytest.raises(ValueError, match="providers must be a list of provider names"):
            load(model_path, providers=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"providers is empty: leave it out \(or device='cpu'\)"):
        load(model_path, providers=[])
    with pytest.raises(ValueError, match="device must be"):
        load(model_path, device="cuda:\u0661")  # an Arabic-Indic one: not a GPU number


def test_the_gpu_checks_generation_part_runs_as_a_dry_run_without_a_gpu(model_path):
    """docs/gpu.md: ``scripts/gpu_check.py --cpu-dry-run`` runs the same steps on the CPU (the generation
    check stopped at "nothing to compare" and passed without comparing anything)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    run = [sys.executable, str(script), str(model_path)]
    result = subprocess.run([*run, "--cpu-dry-run"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for session in ("CUDA", "CUDA, TF32 off"):
        greedy = f"| {session}: greedy 50-word texts identical, one prompt a call; all four in one batch"
        assert f"{greedy} | 4/4; yes |" in result.stdout
        assert f"| {session} step, batch 64 |" in result.stdout
    result = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "CUDA is not available to onnxruntime" in result.stdout


def test_bad_files_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelFileError, match="could not be loaded as an ONNX model"):
        load(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError):
        load(empty)


def test_plain_onnx_file_is_not_a_nextword_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelFileError, match="not a nextword model"):
        load(path)


def test_metadata_problems_are_model_file_errors(model_path, tmp_path):
    onnx = pytest.importorskip("onnx")
    cases = {
        "nextword.format_version": ("99", "format 99"),
        "nextword.tokenizer": (
            '{"format": "nextword.tokenizer", "version": 1, "config": {}, "tokens": ["a"]}',
            "tokenizer is invalid",
        ),
        "nextword.metrics": ("[1, 2", "not valid JSON"),
    }
    for key, (value, message) in cases.items():
        proto = onnx.load(str(model_path))
        for prop in proto.metadata_props:
            if prop.key == key:
                prop.value = value
        path = tmp_path / "edited.onnx"
        onnx.save(proto, str(path))
        with pytest.raises(ModelFileError, match=message):
            load(path)


def test_tokenizer_that_does_not_fit_the_graph_is_refused(model_path, tmp_path):
    onnx = pytest.importorskip("onnx")
    from nextword.runtime import Tokenizer, TokenizerConfig

    proto = onnx.load(str(model_path))
    for prop in proto.metadata_props:
        if prop.key == "nextword.tokenizer":
            prop.value = Tokenizer.build(["one two three"], TokenizerConfig(min_count=1)).to_json()
    path = tmp_path / "mismatch.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelFileError, match=r"predicts .* classes but the tokenizer has 6 tokens"):
        load(path)


def test_evaluate_matches_a_direct_computation(model, documents):
    docs = documents[:3]
    result = evaluate(model, docs)
    tok = model.tokenizer
    nll, correct, n = 0.0, 0, 0
    for doc in docs:
        ids = np.asarray([[tok.eod_id, *tok.encode(doc), tok.eod_id]])
        logits, _ = model.forward(ids[:, :-1], model.initial_state(1))
        logp = logits[0] - np.log(np.exp(logits[0].astype(np.float64)).sum(-1, keepdims=True))
        targets = ids[0, 1:]
        nll -= logp[np.arange(len(targets)), targets].sum()
        correct += (logits[0].argmax(-1) == targets).sum()
        n += len(targets)
    assert result.words == n and result.documents == 3
    assert result.perplexity == pytest.approx(np.exp(nll / n), rel=1e-5)
    assert result.accuracy == pytest.approx(correct / n)
    assert result.accuracy <= result.top5_accuracy <= 1
    with pytest.raises(ValueError, match="no documents"):
        evaluate(model, [])


@pytest.mark.parametrize("logits_from", [-1, -3, 0, 5])
def test_logits_from_selects_positions_and_keeps_the_state(model, logits_from):
    """The graph computes the output layer only from ``logits_from`` on; the rest is unchanged."""
    assert model.info.has_logits_from and model.info.format_version == 2
    ids = np.asarray([model.prompt_ids("the network receives an input signal and stores it")])
    full, full_state = model.forward(ids, model.initial_state(1))
    part, part_state = model.forward(ids, model.initial_state(1), logits_from=logits_from)
    assert part.shape == full[:, logits_from:].shape
    np.testing.assert_allclose(part, full[:, logits_from:], atol=1e-5)
    for a, b in zip(part_state, full_state, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("logits_from", [10, 40, -11])
def test_logits_from_outside_the_input_is_refused(model, logits_from):
    ids = np.asarray([model.prompt_ids("the network receives an input signal and stores it")])
    assert ids.shape[1] == 10  # <eod> and 9 words
    with pytest.raises(ValueError, match=f"logits_from={logits_from} selects no position"):
        model.forward(ids, model.initial_state(1), logits_from=logits_from)


def test_arguments_of_the_wrong_kind_are_named_not_blamed_on_the_file(model, model_path):
    """A float or None for ``logits_from`` reached the graph (blamed on the model file, or a TypeError
    from a comparison), True was taken as 1; ``feed``'s ``chunk`` of 0 or -1 raised range()'s errors and
    its float ids were truncated. A model cannot be pickled (its sessions): said so, with what to do."""
    import copy
    import pickle

    from nextword.runtime import Generator

    ids = np.asarray([model.prompt_ids("the network receives an input signal")])
    state = model.initial_state(1)
    for bad in (1.5, None, True, "1"):
        with pytest.raises(ValueError, match="logits_from must be an integer position"):
            model.forward(ids, state, logits_from=bad)
    last, _ = model.forward(ids, state, logits_from=np.int64(-1))
    assert last.shape == (1, 1, model.vocab_size)
    for bad, said in ((0, "chunk must be an integer >= 1"), (-1, ">= 1"), (2.5, "chunk must be an integer")):
        with pytest.raises(ValueError, match=said):
            model.feed(ids, state, chunk=bad)
    with pytest.raises(ValueError, match="input_ids must be integer token ids, got float64"):
        model.feed(ids.astype(float), state)
    np.testing.assert_array_equal(
        model.feed(ids, state, chunk=np.int32(3))[0], model.feed(ids, state, chunk=3)[0]
    )
    for dump in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match=r"cannot be pickled .* load\(\) it there"):
            dump(model)
    shallow = copy.copy(model)  # shares the sessions
    assert shallow.generate("the network", max_words=6, temperature=0) == model.generate(
        "the network", max_words=6, temperature=0
    )
    for bad in (None, model_path):
        with pytest.raises(ValueError, match="model must be a loaded model"):
            Generator(bad)


def test_numpy_bools_are_bools(model):
    """``np.bool_`` (a numpy comparison's result) was refused where numpy ints and floats are taken."""
    config = GenerationConfig(stop_at_end=np.bool_(False), allow_unknown=np.False_, cache=np.True_)
    assert type(config.stop_at_end) is bool and config == GenerationConfig(stop_at_end=False, cache=True)
    assert model.next_words("the network", k=3, cache=np.bool_(False)) == model.next_words(
        "the network", k=3, cache=False
    )


def _with_format_version(proto, version: str, path):
    """Save ``proto`` to ``path`` with its nextword.format_version set to ``version``; return ``path``."""
    onnx = pytest.importorskip("onnx")
    for prop in proto.metadata_props:
        if prop.key == "nextword.format_version":
            prop.value = version
    onnx.save(proto, str(path))
    return path


def _format_1_file(model_path, tmp_path):
    """The same weights as a format-1 file: no logits_from input, logits at every position."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    proto = onnx.load(str(model_path))
    kept = [i for i in proto.graph.input if i.name != "logits_from"]
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    proto.graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "logits_from"))
    return _with_format_version(proto, "1", tmp_path / "format1.onnx")


def test_format_1_files_still_load_and_generate_the_same(model, model_path, tmp_path):
    old = load(_format_1_file(model_path, tmp_path))
    assert old.info.format_version == 1 and not old.info.has_logits_from
    ids = np.asarray([model.prompt_ids("a neural network receives")])
    logits, _ = old.forward(ids, old.initial_state(1), logits_from=-2)
    assert logits.shape == (1, 2, old.vocab_size)
    expected, _ = model.forward(ids, model.initial_state(1), logits_from=-2)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    options = {"max_words": 15, "seed": 3, "temperature": 0.8}
    assert old.generate("a neural network", **options) == model.generate("a neural network", **options)


def test_signature_must_match_the_format_version(model_path, tmp_path):
    """A format-1 file may not take logits_from, and a format-2 file must."""
    onnx = pytest.importorskip("onnx")
    mislabelled = [
        _with_format_version(onnx.load(str(model_path)), "1", tmp_path / "v1_with_input.onnx"),
        _with_format_version(onnx.load(str(_format_1_file(model_path, tmp_path))), "2", tmp_path / "v2.onnx"),
    ]
    for path in mislabelled:
        with pytest.raises(ModelFileError, match="do not match the nextword step signature"):
            load(path)


def test_session_options_for_steps_split_over_threads_do_not_spin():
    from nextword.runtime.model import default_session_options

    one = default_session_options()
    assert one.intra_op_num_threads == 1 and one.inter_op_num_threads == 1
    two = default_session_options(2)
    assert two.intra_op_num_threads == 2
    assert two.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    for bad in (0, -1, 1.5, True, 1000):
        with pytest.raises(ValueError, match=r"threads must be (an integer|in 1\.\.256)"):
            default_session_options(bad)
    assert default_session_options(np.int64(2)).intra_op_num_threads == 2  # as every integer option


def test_a_callers_mistake_in_forward_is_a_value_error_not_a_damaged_file(model):
    state = model.initial_state(1)
    vocab = model.vocab_size
    for ids, words in (
        (np.array([1, 2]), "shape (batch, time), got shape (2,)"),
        (np.zeros((1, 0), dtype=np.int64), "got shape (1, 0)"),
        (np.array([[1.0, 2.0]]), "integer token ids, got float64"),
        (np.array([[-1]]), f"holds -1, outside the vocabulary's ids 0..{vocab - 1}"),
        (np.array([[vocab]]), f"holds {vocab}, outside"),
    ):
        with pytest.raises(ValueError, match="input_ids") as caught:
            model.forward(ids, state)
        assert words in str(caught.value) and not isinstance(caught.value, ModelFileError)
    with pytest.raises(ValueError, match=r"state must be \d+ float32 arrays .* for 1 row\(s\)") as caught:
        model.forward(np.array([[1]]), model.initial_state(2))
    assert not isinstance(caught.value, ModelFileError)
    logits, _ = model.forward(np.array([[1, 2]], dtype=np.int32), state)  # any integer type
    assert logits.shape == (1, 2, vocab)
    with pytest.raises(ValueError, match=r"state must be float32 arrays .* got \['float64'") as caught:
        model.forward(np.array([[1]]), [s.astype(np.float64) for s in state])
    assert not isinstance(caught.value, ModelFileError)


def test_the_bound_stepper_refuses_what_forward_refuses(model):
    """model.stepper().step read -1 as the last id, truncated 5.9 to 5 and blamed the model file for an
    id past the vocabulary."""
    stepper, vocab = model.stepper(), model.vocab_size
    for tokens, words in (
        (np.array([-1]), f"tokens holds -1, outside the vocabulary's ids 0..{vocab - 1}"),
        (np.array([1] * 20 + [vocab]), f"tokens holds {vocab}, outside"),  # many rows: numpy's reductions
        (np.array([5.9]), "numpy array of token ids, shape (rows,), got an array of float64"),
        (np.array([[5]]), "got an array of int64, shape (1, 1)"),
        ([5], "got list"),
    ):
        with pytest.raises(ValueError, match="tokens") as caught:
            stepper.step(tokens, model.initial_state(np.asarray(tokens).size))
        assert words in str(caught.value) and not isinstance(caught.value, ModelFileError), caught.value
    with pytest.raises(ValueError, match=r"state must be the model's \d+ arrays .* got NoneType"):
        stepper.step(np.array([5]), None)
    logits, _ = stepper.step(np.array([5], dtype=np.int32), model.initial_state(1))
    assert np.array_equal(logits, model.forward(np.array([[5]]), model.initial_state(1))[0][:, -1])


def test_wrong_arguments_to_load_and_the_model_name_the_argument(model, model_path):
    from nextword.runtime import generate

    with pytest.raises(ValueError, match=r"session_options must be an onnxruntime\.SessionOptions, got dict"):
        load(model_path, session_options={})
    assert load(model_path, threads=np.int64(1)).generate("the network", max_words=2, seed=0)
    for size, words in ((-1, "batch_size must be an integer >= 0, got -1"), (1.5, "must be an integer")):
        with pytest.raises(ValueError, match=re.escape(words)):
            model.initial_state(size)
    with pytest.raises(ValueError, match=r"model must be a path to a \.onnx file, .* got int"):
        generate("a", model=5)
    with pytest.raises(ValueError, match=r"^text must be a string, got NoneType"):
        model.score(None)
    with pytest.raises(ValueError, match="prompts must be a string or a list of strings, got set"):
        model.generator().add({"a", "b"})


def test_evaluate_ids_checks_every_document_with_the_cache_or_without(model):
    """With the file's cache (evaluate's default) a bad id was numpy's IndexError; without it, a float
    was truncated and a one-id document was numpy's concatenate error."""
    from nextword.runtime.cache import CacheConfig

    vocab = model.vocab_size
    cached = CacheConfig(theta=0.3, mix=0.1, window=16)
    for documents, words in (
        ([[2, vocab, 2]], f"document 0 holds ids outside 0..{vocab - 1}"),
        ([[2, 5, 2], [2, -5, 2]], "document 1 holds ids outside"),
        ([[2, 5.9, 2]], "document 0 must be a list of token ids (integers), got float64"),
        ([[2, 5, 2], [2]], "document 1 has 1 id; a document is <eod> ids... <eod>"),
        ([[[2, 5, 2]]], "document 0 must be a list of token ids (integers), got int64 of shape (1, 3)"),
        ([[2, True, 2]], "document 0 holds True or False"),
        ([[]], "document 0 is empty"),
    ):
        for cache in (False, cached):
            with pytest.raises(ValueError) as caught:
                evaluate_ids(model, documents, cache=cache)
            assert words in str(caught.value), (cache, caught.value)
    with pytest.raises(
        ValueError, match=r"model must be a loaded model \(nextword.runtime.load\(path\)\), got 'model.onnx'$"
    ):
        evaluate("model.onnx", ["the network"])


def test_evaluate_and_generate_refuse_the_wrong_kind_of_argument(model):
    with pytest.raises(ValueError, match=r"documents must be a list .* got one str; pass \[text\]"):
        evaluate(model, "the network stores the weights")
    with pytest.raises(ValueError, match="document 1 is of type NoneType"):
        evaluate(model, ["the network", None])
    with pytest.raises(ValueError, match="config must be a GenerationConfig, got dict"):
        model.generate("the network", config={"max_words": 3})


def test_a_path_given_as_bytes_is_named_and_bytes_work_as_a_default_model(model_path):
    from nextword.runtime import generate

    with pytest.raises(
        ModelFileError, match=r"bytes are the model's contents; .* names a file: pass it as a str"
    ):
        load(str(model_path).encode())
    text = generate("the network", model=model_path.read_bytes(), max_words=3, seed=1)
    assert text == load(model_path).generate("the network", max_words=3, seed=1)
