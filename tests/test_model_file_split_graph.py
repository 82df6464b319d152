"""A model file whose graph is written as several ``graph`` fields (protobuf merges them, and so does
onnxruntime): the checks read the merged graph, so a valid model split so loads and generates as the
whole one, and a node hidden in a later field is checked with the rest."""

from __future__ import annotations

import pytest

from nextword.runtime import ModelFileError, load
from nextword.runtime.default import BUNDLED_MODEL

onnx = pytest.importorskip("onnx", reason="install nextword[train] to edit model files")


def _graph_field(**parts: list) -> bytes:
    """A serialized ModelProto holding only a graph with ``parts`` (node=..., initializer=...): appended
    to a model's bytes, it is a second ``graph`` field."""
    extra = onnx.ModelProto()
    for name, items in parts.items():
        getattr(extra.graph, name).extend(items)
    return extra.SerializeToString()


def test_a_graph_split_across_two_fields_loads_and_generates_as_one() -> None:
    """Nodes in the first graph field and every weight in a second: the file loads and generates the
    same text as the bundled model."""
    proto = onnx.load(str(BUNDLED_MODEL))
    weights = list(proto.graph.initializer)
    del proto.graph.initializer[:]
    data = proto.SerializeToString() + _graph_field(initializer=weights)
    options = {"max_words": 12, "seed": 1}
    assert load(data).generate("the network", **options) == load(BUNDLED_MODEL).generate(
        "the network", **options
    )


def test_a_node_in_a_later_graph_field_that_writes_the_logits_again_is_refused() -> None:
    """A second producer of ``logits`` appended as another graph field is found in the merged graph and
    refused before onnxruntime sees the file."""
    proto = onnx.load(str(BUNDLED_MODEL))
    producer = next(node for node in proto.graph.node if "logits" in node.output)
    data = proto.SerializeToString() + _graph_field(node=[producer])
    with pytest.raises(
        ModelFileError, match=r"^<model bytes>: tensor 'logits' is written twice; the graph is invalid$"
    ):
        load(data)


def test_a_node_in_a_later_graph_field_reading_nothing_known_is_refused() -> None:
    """A node appended in another graph field whose input no node computes is refused by name."""
    proto = onnx.load(str(BUNDLED_MODEL))
    stray = onnx.helper.make_node("Identity", ["nowhere"], ["stray"])
    data = proto.SerializeToString() + _graph_field(node=[stray])
    with pytest.raises(ModelFileError, match=r"node input 'nowhere' is not computed by any node"):
        load(data)
