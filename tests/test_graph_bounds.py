"""Memory and time from small files: what a graph may make the runtime allocate is bounded before
onnxruntime creates a session (``LoadLimits``), so none of these files ever reaches onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextword.runtime import LoadLimits, ModelFileError, ModelLimitError, load
from nextword.runtime.limits import MiB
from nextword.runtime.model_check import inspect_model_file

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted files")
import crafted  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture
def no_onnxruntime(monkeypatch):
    """Fail the test if anything creates an onnxruntime session."""
    import onnxruntime

    def refuse(*args, **kwargs):
        raise AssertionError("onnxruntime.InferenceSession was called on a file the bounds should refuse")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def _refused(proto, match: str, limits: LoadLimits | None = None) -> str:
    data = proto.SerializeToString()
    with pytest.raises(ModelFileError, match=match) as info:
        load(data, limits=limits)
    assert type(info.value) in (ModelFileError, ModelLimitError)  # refused before a step ran
    return str(info.value)


def test_exported_models_are_bounded_close_to_their_real_size(model, model_path):
    """The bounds are upper bounds, and for the tiny model within a small factor of the real figures."""
    bounds = inspect_model_file(model_path).bounds
    vocab, embedding, units = model.vocab_size, 16, 32
    lstm_macs = 4 * units * (embedding + units) + 4 * units * (units + units)
    assert lstm_macs + units * vocab <= bounds.macs_per_token <= 1.2 * (lstm_macs + units * vocab)
    weights = sum(numpy_helper.to_array(t).nbytes for t in crafted.proto(model_path).graph.initializer)
    assert weights <= bounds.total_bytes <= 1.5 * weights
    assert bounds.largest_tensor_bytes == 4 * (4 * units) * units  # an LSTM's recurrent weights


def test_doubling_concats_are_refused_before_onnxruntime(model_path, no_onnxruntime):
    """A 5.7 KB file of 34 doubling Concats took 2.6 GB while onnxruntime folded it."""
    proto = crafted.doubling_concats(crafted.proto(model_path), times=34)
    message = _refused(proto, r"tensor 'seed_\d+' \(a Concat node, shape \(\d+\)\) takes up to")
    assert "over the 67,108,864-byte limit" in message and "LoadLimits(max_tensor_bytes=...)" in message


@pytest.mark.parametrize("build", [crafted.constant_outer_product, crafted.broadcast_product])
def test_outer_products_of_small_constants_are_refused(model_path, build, no_onnxruntime):
    proto = build(crafted.proto(model_path), 8192)  # 64 KiB of constants, 256 MiB of product
    assert len(proto.SerializeToString()) < len(crafted.proto(model_path).SerializeToString()) + 70_000
    _refused(proto, r"tensor 'outer' .* shape \(8192, 8192\)\) takes up to 268,435,456 bytes")


def test_tensors_that_grow_with_the_square_of_the_input_are_refused(model_path, no_onnxruntime):
    _refused(crafted.positions_outer_product(crafted.proto(model_path)), "grows with the square of the batch")


@pytest.mark.parametrize("hidden", [10_000, 100_000])
def test_lstm_hidden_size_over_the_limit(model_path, hidden, no_onnxruntime):
    """Hidden width 10k (1.7 GB, 7 s per 20 words) and 100k (~160 GB on the first call)."""
    _refused(
        crafted.wide_lstm(crafted.proto(model_path), hidden),
        f"hidden size of an LSTM node is {hidden:,} wide",
    )


def test_declared_state_width_and_vocabulary_over_the_limits(model, model_path, no_onnxruntime):
    names = ("h_0", "c_0", "h_0_out", "c_0_out")
    proto = crafted.declare_width(crafted.proto(model_path), names, 5000)
    _refused(proto, "state input 'h_0' is 5,000 wide, over the limit of 4,096")
    _refused(
        crafted.proto(model_path),
        f"logits are declared {model.vocab_size} wide .* over the limit of 10",
        LoadLimits(max_vocab_size=10),
    )


def test_tensor_that_declares_more_data_than_it_holds(model_path, no_onnxruntime):
    _refused(
        crafted.missing_data(crafted.proto(model_path), [1 << 40]), "declares 1,099,511,627,776 elements"
    )


def test_sparse_initializers_are_refused(model_path, no_onnxruntime):
    """onnxruntime would expand one to its dense shape while loading."""
    proto = crafted.proto(model_path)
    values = helper.make_tensor("sv", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("si", TensorProto.INT64, [1], [0])
    proto.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [1 << 40]))
    _refused(proto, "sparse initializer 'sv' is a sparse tensor")


def test_cycles_and_dangling_inputs_are_refused(model_path, no_onnxruntime):
    proto = crafted.proto(model_path)
    proto.graph.node.extend(
        [
            helper.make_node("Identity", ["loop_b"], ["loop_a"]),
            helper.make_node("Identity", ["loop_a"], ["loop_b"]),
        ]
    )
    _refused(proto, "has a cycle")
    proto = crafted.proto(model_path)
    proto.graph.node.append(helper.make_node("Identity", ["nowhere"], ["unused"]))
    _refused(proto, "node input 'nowhere' is not computed by any node")


def test_operators_the_bounds_do_not_model_need_bound_graph_off(model_path):
    proto = crafted.proto(model_path)
    proto.graph.node.append(helper.make_node("Neg", ["h_0"], ["unused_neg"]))
    widened = frozenset(LoadLimits().allowed_ops | {("", "Neg")})
    _refused(
        proto,
        "operator 'Neg' are not modelled.*LoadLimits\\(bound_graph=False\\)",
        LoadLimits(allowed_ops=widened),
    )
    model = load(proto.SerializeToString(), limits=LoadLimits(allowed_ops=widened, bound_graph=False))
    assert model.generate("the network", max_words=3, seed=0)


@pytest.mark.parametrize(
    ("limit", "match"),
    [
        ("max_tensor_bytes", "takes up to .* bytes per batch row and position, over the 1,000-byte limit"),
        ("max_graph_bytes", "tensors together take up to .* over the 1,000-byte limit"),
        ("max_macs_per_token", "multiply-accumulates per batch row and position, over the limit of 1,000"),
        ("max_nodes", "nodes, over the limit of 1,000"),
    ],
)
def test_each_graph_limit_refuses_the_tiny_model_when_set_below_it(model_path, limit, match):
    limits = LoadLimits(**{limit: 1000})
    proto = crafted.proto(model_path)
    if limit == "max_nodes":
        proto.graph.node.extend(helper.make_node("Identity", ["h_0"], [f"copy_{i}"]) for i in range(1000))
    message = _refused(proto, match, limits)
    assert f"LoadLimits({limit}=...)" in message
    with pytest.raises(ModelLimitError) as refused:  # the limit is named, for a command to advise its flag
        load(proto.SerializeToString(), limits=limits)
    assert refused.value.limit == limit and refused.value.problem in message


def test_default_limits_fit_the_bundled_model_with_room_to_spare():
    bundled = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"
    if not bundled.is_file():
        pytest.skip("no bundled model in this checkout")
    bounds = inspect_model_file(bundled).bounds
    limits = LoadLimits()
    assert bounds.largest_tensor_bytes * 10 < limits.max_tensor_bytes
    assert bounds.total_bytes * 10 < limits.max_graph_bytes
    assert bounds.macs_per_token * 10 < limits.max_macs_per_token
    assert bounds.nodes * 10 < limits.max_nodes


def test_limits_are_validated():
    for name in ("max_tensor_bytes", "max_graph_bytes", "max_macs_per_token", "max_nodes", "max_state_width"):
        with pytest.raises(ValueError, match=f"LoadLimits.{name} must be a positive integer"):
            LoadLimits(**{name: 0})
    with pytest.raises(ValueError, match=r"LoadLimits\.bound_graph must be True or False"):
        LoadLimits(bound_graph="yes")
    assert LoadLimits().max_tensor_bytes == 64 * MiB


def test_huge_constant_reshape_is_refused(model_path, no_onnxruntime):
    proto = crafted.proto(model_path)
    target = crafted.add_initializer(proto, "huge_shape", np.array([1 << 30, 4], dtype=np.int64))
    proto.graph.node.append(helper.make_node("Reshape", ["h_0", target], ["huge"]))
    _refused(proto, r"tensor 'huge' \(a Reshape node, shape \(1073741824, 4\)\)")
