"""Files that load and then fail: ``load()`` proves the graph is what its metadata says, and later
onnxruntime failures come out as ``ModelRunError`` naming the file.

Each crafted file is refused with a ``ModelFileError`` that names it: by the static bounds where they
can see the problem, else by the probe step (checked here with ``LoadLimits(bound_graph=False)``, so
the probe is the only guard), else, for a graph that only breaks on inputs the probe did not try, by
the first call that fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nextword.runtime
from nextword.runtime import LoadLimits, ModelFileError, load
from nextword.runtime.errors import ModelRunError

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted files")
import crafted  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

UNBOUNDED = LoadLimits(bound_graph=False)  # the probe alone


def _save(proto, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(proto.SerializeToString())
    return path


def _refused(path: Path, match: str, limits: LoadLimits | None = None) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        load(path, limits=limits)
    assert str(path) in str(info.value)
    return str(info.value)


@pytest.fixture(scope="module")
def int8_path(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    quantization = pytest.importorskip("onnxruntime.quantization")
    out = tmp_path_factory.mktemp("int8") / "q8.onnx"
    quantization.quantize_dynamic(str(model_path), str(out), weight_type=quantization.QuantType.QInt8)
    return out


def test_a_valid_model_passes_the_probe_for_both_precisions(model_path, int8_path):
    for path in (model_path, int8_path):
        model = load(path)
        assert model.score("the network receives the weights").perplexity > 0


# --------------------------------------------------------------------------- refused at load


def test_logits_wider_than_declared_are_refused_never_scored(model, model_path, tmp_path):
    """Reshape(x, Shape(x)) hides the real width (30) from shape inference; score would otherwise
    return a log-probability over the wrong vocabulary."""
    declared = model.vocab_size - 10
    path = _save(crafted.hidden_logits_width(crafted.proto(model_path), declared), tmp_path, "wide.onnx")
    _refused(
        path, f"graph output 'logits' is declared {declared} wide but the graph makes it {model.vocab_size}"
    )
    message = _refused(
        path,
        f"output 'logits' has shape \\(2, 2, {model.vocab_size}\\), not \\(2, 2, {declared}\\)",
        UNBOUNDED,
    )
    assert "probe step" in message


def test_lstm_hidden_width_differing_from_the_declared_state(model_path, tmp_path):
    names = ("h_0", "c_0", "h_0_out", "c_0_out")
    path = _save(crafted.declare_width(crafted.proto(model_path), names, 24), tmp_path, "w24.onnx")
    _refused(path, "is declared 24 wide but the graph makes it 32 wide")
    # onnxruntime reports the outputs' inferred width (32), so the signature check refuses it
    _refused(path, "h and c of a layer, in and out, must have one width|fails a probe step", UNBOUNDED)


def test_embedding_with_fewer_rows_than_the_tokenizer(model, model_path, tmp_path):
    """onnxruntime's Gather checks its indices: the probe feeds the largest token id, and fails."""
    rows = model.vocab_size - 5
    path = _save(crafted.short_embedding(crafted.proto(model_path), rows), tmp_path, "short.onnx")
    message = _refused(path, f"fails a probe step \\(2 rows, token ids up to {model.vocab_size - 1}\\)")
    assert "out of data bounds" in message and "re-download or re-export" in message


@pytest.mark.parametrize("value", [1_000_000, -5, 1])
def test_constant_sequence_lens(model_path, tmp_path, value):
    path = _save(crafted.sequence_lens(crafted.proto(model_path), value), tmp_path, "seq.onnx")
    _refused(path, "takes sequence_lens, which nextword step graphs never do")
    # Without the static rule: 1e6 and -5 fail the probe; 1 passes it (a batch of 2, 3 positions: valid
    # lengths) and fails the first call on one row.
    with pytest.raises(ModelFileError) as info:
        load(path, limits=UNBOUNDED).generate("the network", max_words=3)
    assert str(path) in str(info.value) and "sequence_lens" in str(info.value)


# DynamicQuantizeLSTM inputs: 1 W, 2 R (int8), 8 W scale, 9 W zero point, 10 R scale, 11 R zero point.
@pytest.mark.parametrize(
    ("lstm_input", "value", "match"),
    [
        (8, [np.nan], "quantization scale .* holds NaN or infinite values"),
        (10, [np.inf], "quantization scale .* holds NaN or infinite values"),
        (None, np.inf, "quantization scale .* holds NaN or infinite values"),  # the embedding's scale
        # shapes the hidden size does not give: refused before onnxruntime (before 1.29 it read past them)
        (
            8,
            [0.1, 0.1, 0.1],
            r"of hidden size 32 has input weights' scale of shape \(3\), not \(1\) or \(1, 128\)",
        ),
        (9, [0, 0], r"has input weights' zero point of shape \(2\), not"),
        (2, "transposed", r"has recurrent weights of shape \(1, 128, 32\), not \(1, 32, 128\); the file is"),
        (1, "input 100 wide", r"has input weights of shape \(1, 100, 128\), not \(1, 16, 128\)"),
        # each alike: before 1.29 onnxruntime read R's zero point as long as W's
        (
            9,
            np.zeros((1, 128)),
            r"input weights' scale of shape \(1\) and input weights' zero point of shape",
        ),
    ],
)
def test_mutated_int8_scales_zero_points_and_shapes(int8_path, tmp_path, lstm_input, value, match):
    proto = crafted.proto(int8_path)
    if lstm_input is None:
        name = next(n.input[1] for n in proto.graph.node if n.op_type == "DequantizeLinear")
    else:
        name = next(n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM").input[lstm_input]
    current = numpy_helper.to_array(crafted.initializer(proto, name))
    if isinstance(value, str) and value == "transposed":  # the same weights with their last two axes swapped
        value = np.swapaxes(current, 1, 2)
    elif isinstance(value, str):  # weights for an input 100 wide
        value = np.resize(current, (1, 100, current.shape[2]))
    crafted.replace_initializer(proto, name, np.asarray(value, dtype=current.dtype))
    _refused(_save(proto, tmp_path, "q.onnx"), match)


def test_logits_that_are_not_finite_fail_the_probe(model_path, tmp_path):
    proto = crafted.proto(model_path)
    crafted.rename_output(proto, "logits", "real_logits")
    # infinite logits the graph makes (a NaN or an infinity stored in the file is refused before the probe)
    huge = crafted.add_initializer(proto, "huge", np.float32([3e38]))
    proto.graph.node.append(helper.make_node("Mul", ["real_logits", huge], ["large_logits"]))
    proto.graph.node.append(helper.make_node("Mul", ["large_logits", huge], ["logits"]))
    _refused(_save(proto, tmp_path, "infinite.onnx"), "output 'logits' holds NaN or infinite values")


@pytest.mark.parametrize(("at", "value", "raw"), [(0, np.nan, True), (-1, -np.inf, True), (5, np.nan, False)])
def test_a_nan_or_infinite_float_weight_is_refused(model_path, tmp_path, at, value, raw):
    """Only quantization scales were checked: a NaN in an LSTM's float bias loaded, and made text; one in
    float_data (more than 64 values, whose values the reader does not decode) too."""
    proto = crafted.lstm_bias(crafted.proto(model_path), at, value, raw)
    _refused(_save(proto, tmp_path, "b.onnx"), "the weights '.*' holds NaN or infinite values; the file is")


def test_state_output_of_the_wrong_type_fails_the_probe(model_path, tmp_path):
    proto = crafted.proto(model_path)
    crafted.rename_output(proto, "h_0_out", "real_h_0_out")
    proto.graph.node.append(helper.make_node("Cast", ["real_h_0_out"], ["h_0_out"], to=TensorProto.DOUBLE))
    for output in proto.graph.output:
        if output.name == "h_0_out":
            output.type.tensor_type.elem_type = TensorProto.DOUBLE
    _refused(_save(proto, tmp_path, "f64.onnx"), "output 'h_0_out' is float64, not float32")


# --------------------------------------------------------------------------- failing later


@pytest.fixture(scope="module")
def one_row_breaks(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Works for a batch of two (the probe's), fails in onnxruntime for one row."""
    path = tmp_path_factory.mktemp("crafted") / "batch2.onnx"
    path.write_bytes(crafted.fails_below_batch_two(crafted.proto(model_path)).SerializeToString())
    return path


def test_a_call_that_fails_in_onnxruntime_raises_model_run_error(one_row_breaks):
    model = load(one_row_breaks)
    assert issubclass(ModelRunError, ModelFileError)  # existing handlers of bad files catch it
    assert nextword.runtime.ModelRunError is ModelRunError  # importable where ModelFileError is
    assert len(model.generate(["the network", "a model"], max_words=3, seed=0)) == 2  # two rows work
    for call in (
        lambda: model.generate("the network", max_words=3),
        lambda: "".join(model.stream("the network", max_words=3)),
        lambda: model.score("the network receives"),
        lambda: model.next_words("the network"),
        lambda: model.forward(np.zeros((1, 1), dtype=np.int64), model.initial_state(1)),
    ):
        with pytest.raises(ModelRunError) as info:
            call()
        message = str(info.value)
        assert str(one_row_breaks) in message and "onnxruntime failed running the model" in message
        assert "input_ids (1, " in message and "\n" not in message


def test_cli_reports_a_failing_call_in_one_line_with_exit_2(one_row_breaks):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nextword.cli.main",
            "generate",
            "the network",
            "--model",
            str(one_row_breaks),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("nextword generate: error: ")
        and str(one_row_breaks) in lines[0]
    )


def test_outputs_of_the_wrong_shape_on_other_inputs_raise_model_run_error(model_path, tmp_path):
    """Graphs that pass the probe (2 rows, 2 positions) but cut larger batches or longer inputs: every
    call checks its outputs' shapes, so no numpy error or silently wrong score follows."""
    rows = _save(crafted.cap_logits(crafted.proto(model_path), axis=0, end=2), tmp_path, "rows.onnx")
    model = load(rows)
    assert len(model.generate(["a", "b"], max_words=3, seed=0)) == 2
    with pytest.raises(
        ModelRunError, match=r"returned logits of shape \(2, 1, \d+\) \(expected \(3, 1, \d+\)\)"
    ):
        model.generate(["a", "b", "c"], max_words=3, seed=0)
    positions = _save(crafted.cap_logits(crafted.proto(model_path), axis=1, end=3), tmp_path, "pos.onnx")
    model = load(positions)
    assert model.generate("the network", max_words=5, seed=0)  # one position at a time: fine
    with pytest.raises(ModelRunError, match="the graph only works for some batch sizes or lengths") as info:
        model.score("the network receives the weights and stores them")
    assert str(positions) in str(info.value)
