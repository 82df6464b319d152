"""One canonical form for an exported graph, so that exporting the same run twice gives the same bytes.

tf2onnx's graph varies from one conversion to the next in everything but what it computes: the names
it gives nodes and tensors come from TensorFlow's graph and its own counters (``const_axes__47`` one
time, ``const_fold_opt__66`` the next; the shared embedding matrix ``GatherV2/ReadVariableOp:0`` or
``MatMul/ReadVariableOp:0``), nodes that do not depend on each other come in either order, and a
node's empty domain is sometimes written out and sometimes not. Here the graph is put in one form:

* nodes in a topological order that depends on the computation alone: of the nodes whose inputs are
  all computed, the first by (op type, domain, attributes, inputs), an input being a graph input by
  name, a constant by its contents, or a node's output by that node's place in the new order;
* every name but those of the graph's inputs and outputs (which the runtime and nextword-web feed and
  read) given by that order: node ``i`` is ``{op_type}_{i}``, its outputs ``{node}:{k}``, and the
  constants ``const_{j}`` in the order nodes first read them (any no node reads after them, by their
  contents), which is also the order they are stored in.
"""

from __future__ import annotations

import hashlib
import heapq

import onnx

__all__ = ["canonical_names"]

_SUBGRAPHS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def canonical_names(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Put ``proto``'s graph in its canonical form (see the module docstring), in place; returns it.

    The graph's inputs and outputs keep their names; its name becomes ``nextword``, and its doc string
    (tf2onnx writes the traced function's name there, numbered by how many functions the process
    traced before) and the nodes' doc strings are cleared. A graph with subgraphs (an exported one has
    none) is refused.
    """
    graph = proto.graph
    if any(a.type in _SUBGRAPHS for node in graph.node for a in node.attribute):
        raise ValueError("canonical_names: the graph holds subgraphs, whose names it does not rename")
    kept = {value.name for value in [*graph.input, *graph.output]}
    contents = {init.name: _digest(init) for init in graph.initializer if init.name not in kept}
    nodes = _ordered(list(graph.node), contents)

    names: dict[str, str] = {}
    order: list[str] = []  # constants in the order nodes first read them
    for i, node in enumerate(nodes):
        for name in node.input:
            if name in contents and name not in names:
                names[name] = f"const_{len(order)}"
                order.append(name)
        node.name = f"{node.op_type}_{i}"
        names |= {name: f"{node.name}:{k}" for k, name in enumerate(node.output) if name and name not in kept}
        node.doc_string = ""
        if not node.domain:  # written out or not, as tf2onnx happened to: never, here
            node.ClearField("domain")
    for name in sorted((n for n in contents if n not in names), key=contents.__getitem__):  # unread
        names[name] = f"const_{len(order)}"
        order.append(name)
    for node in nodes:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    del graph.node[:]
    graph.node.extend(nodes)
    _reorder_constants(graph, order, names, kept)
    infos = []
    for info in graph.value_info:
        if info.name in names or info.name in kept:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = names.get(info.name, info.name)
            infos.append(copy)
    del graph.value_info[:]
    graph.value_info.extend(sorted(infos, key=lambda info: info.name))
    graph.name, graph.doc_string = "nextword", ""
    return proto


def _ordered(nodes: list[onnx.NodeProto], contents: dict[str, str]) -> list[onnx.NodeProto]:
    """Copies of ``nodes`` in the canonical topological order (see the module docstring)."""
    made_by = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    waiting = [len({made_by[n] for n in node.input if n in made_by}) for node in nodes]
    users: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for source in {made_by[n] for n in node.input if n in made_by}:
            users.setdefault(source, []).append(i)
    place: dict[int, int] = {}  # a node's index in ``nodes`` -> its place in the new order

    def key(i: int) -> tuple:
        node = nodes[i]
        attributes = b"".join(
            a.SerializeToString(deterministic=True) for a in sorted(node.attribute, key=_name)
        )
        inputs = []
        for name in node.input:
            if not name:
                inputs.append((0, "", 0))
            elif name in made_by:
                inputs.append(
                    (1, "", place[made_by[name]] * 1024 + list(nodes[made_by[name]].output).index(name))
                )
            elif name in contents:
                inputs.append((2, contents[name], 0))
            else:  # a graph input
                inputs.append((3, name, 0))
        return (node.op_type, node.domain, attributes.hex(), tuple(inputs))

    ready = [(key(i), i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    result: list[onnx.NodeProto] = []
    while ready:
        _, i = heapq.heappop(ready)
        place[i] = len(result)
        copy = onnx.NodeProto()
        copy.CopyFrom(nodes[i])
        result.append(copy)
        for user in users.get(i, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (key(user), user))
    if len(result) != len(nodes):
        raise ValueError("canonical_names: the graph has a cycle")
    return result


def _reorder_constants(
    graph: onnx.GraphProto, order: list[str], names: dict[str, str], kept: set[str]
) -> None:
    """Store the constants in ``order``, named by ``names``; constants that are also graph inputs stay,
    after them. Each is appended again and its source emptied before the sources are dropped: at most
    one weight is held twice."""
    where = {init.name: i for i, init in enumerate(graph.initializer)}
    count = len(graph.initializer)
    for name in [*order, *[n for n in where if n in kept]]:
        tensor = graph.initializer.add()
        tensor.CopyFrom(graph.initializer[where[name]])
        graph.initializer[where[name]].Clear()
        tensor.name = names.get(name, name)
    del graph.initializer[:count]


def _digest(tensor: onnx.TensorProto) -> str:
    """A digest of what ``tensor`` holds, its name aside."""
    digest = hashlib.sha256(f"{tensor.data_type}:{list(tensor.dims)}:".encode())
    if tensor.HasField("raw_data"):
        digest.update(tensor.raw_data)
    else:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.ClearField("name")
        digest.update(copy.SerializeToString(deterministic=True))
    return digest.hexdigest()


def _name(attribute: onnx.AttributeProto) -> str:
    return attribute.name
