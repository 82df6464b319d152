"""The parts of an ONNX ``ModelProto`` that nextword's checks read, decoded with :mod:`.wire`.

:func:`parse_model` turns a file's bytes into small dataclasses: versions, opsets, raw metadata
entries, and every graph with its nodes, attributes, initializers (dims, type, how many elements the
file really holds, and the values of small ones) and the declared inputs and outputs. Weights are
never copied: only their sizes are read. Field numbers are those of ``onnx.proto`` (checked against
onnx 1.23's copy). Nothing here decides what is acceptable: :mod:`.model_check` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wire import (
    I32,
    I64,
    LEN,
    VARINT,
    Budget,
    WireError,
    count_varints,
    fields,
    packed_fixed,
    packed_varints,
    signed64,
)

__all__ = [
    "ITEM_BYTES",
    "MAX_DEPTH",
    "Attribute",
    "Graph",
    "ModelSummary",
    "Node",
    "Tensor",
    "ValueInfo",
    "parse_model",
]

MAX_DEPTH = 32  # nested messages, counting from ModelProto (protobuf's own default limit is 100)
VALUE_ELEMENTS = 64  # tensors this small have their values decoded (shapes, axes, indices, scales)
MAX_LIST = 4096  # longest attribute list (ints, floats) decoded

# TensorProto.DataType: bytes per element (4-bit types round up to 1; strings are counted apart).
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16 = 10, 11, 12, 13, 14, 15, 16
ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8}
ITEM_BYTES |= {15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}
_FOUR_BIT = frozenset({21, 22, 23})
_RAW_FORMAT = {1: "f", 2: "B", 3: "b", 4: "H", 5: "h", 6: "i", 7: "q", 9: "?", 11: "d", 12: "I", 13: "Q"}
# Which typed field holds a type's values when raw_data is absent, and how many entries per element.
_INT32_TYPES = frozenset({2, 3, 4, 5, 6, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23})
_TYPED_FIELD = {1: 4, 14: 4, 7: 7, 8: 6, 11: 10, 15: 10, 12: 11, 13: 11} | dict.fromkeys(_INT32_TYPES, 5)

_V, _L, _F32 = frozenset({VARINT}), frozenset({LEN}), frozenset({I32})
_REPEATED_VARINT, _REPEATED_F32, _REPEATED_F64 = (
    frozenset({VARINT, LEN}),
    frozenset({I32, LEN}),
    frozenset({I64, LEN}),
)

# Field numbers and wire types read, per message.
_MODEL = {1: _V, 7: _L, 8: _L, 14: _L, 20: _L, 25: _L}  # ir_version graph opset metadata training functions
_OPSET = {1: _L, 2: _V}
_ENTRY = {1: _L, 2: _L}
_GRAPH = {1: _L, 5: _L, 11: _L, 12: _L, 15: _L}  # node initializer input output sparse_initializer
_NODE = {1: _L, 2: _L, 4: _L, 5: _L, 7: _L}  # input output op_type attribute domain
_ATTRIBUTE = {1: _L, 2: _F32, 3: _V, 4: _L, 5: _L, 6: _L, 7: _REPEATED_F32, 8: _REPEATED_VARINT}
_ATTRIBUTE |= {9: _L, 10: _L, 11: _L, 20: _V, 22: _L, 23: _L}
_TENSOR = {1: _REPEATED_VARINT, 2: _V, 3: _L, 4: _REPEATED_F32, 5: _REPEATED_VARINT, 6: _L}
_TENSOR |= {7: _REPEATED_VARINT, 8: _L, 9: _L, 10: _REPEATED_F64, 11: _REPEATED_VARINT, 13: _L, 14: _V}
_SPARSE = {1: _L, 2: _L, 3: _REPEATED_VARINT}
_VALUE_INFO = {1: _L, 2: _L}
_TYPE = {1: _L}
_TENSOR_TYPE = {1: _V, 2: _L}
_SHAPE = {1: _L}
_DIMENSION = {1: _V, 2: _L}


@dataclass
class Tensor:
    """A TensorProto: its declared type and dims, the elements its data really holds, small values."""

    name: str = ""
    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    stored: int = 0  # elements present in raw_data or the typed field
    external: list[tuple[str, str]] = field(default_factory=list)  # external_data entries
    data_location: int = 0  # 1 = EXTERNAL
    segmented: bool = False
    values: list[int] | list[float] | None = None  # decoded when the tensor has <= VALUE_ELEMENTS
    raw: tuple[int, int] | None = None  # where raw_data lies in the file, if the tensor has any
    float_data: list[tuple[int, int]] = field(default_factory=list)  # where float_data's values lie

    @property
    def numel(self) -> int:
        count = 1
        for d in self.dims:
            count *= d
        return count


@dataclass
class Attribute:
    name: str = ""
    i: int | None = None
    f: float | None = None
    s: str | None = None
    ints: list[int] | None = None  # None also when longer than MAX_LIST
    floats: list[float] | None = None
    strings: list[str] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)  # t and tensors
    graphs: list[Graph] = field(default_factory=list)  # g and graphs
    sparse: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (values, indices)


@dataclass
class Node:
    op_type: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass
class ValueInfo:
    """A declared graph input or output: element type and dims (int, a symbolic name, or None)."""

    name: str = ""
    elem_type: int | None = None  # None: not a tensor type
    dims: list[int | str | None] | None = None  # None: no shape given


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    initializers: list[Tensor] = field(default_factory=list)
    sparse_initializers: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)


@dataclass
class ModelSummary:
    ir_version: int = 0
    opsets: list[tuple[str, int]] = field(default_factory=list)
    metadata: list[tuple[bytes, bytes]] = field(default_factory=list)
    graphs: list[Graph] = field(default_factory=list)  # protobuf merges repeated ones; each is checked
    functions: int = 0
    training_info: int = 0


def parse_model(data: bytes, budget: Budget | None = None) -> ModelSummary:
    """Decode the fields nextword checks; raises :class:`WireError` on anything malformed."""
    return _Reader(data, budget or Budget()).model()


def _text(data: bytes, a: int, b: int) -> str:
    """A string field (invalid UTF-8 shows as U+FFFD)."""
    return data[a:b].decode("utf-8", errors="replace")


class _Reader:
    def __init__(self, data: bytes, budget: Budget) -> None:
        self.data, self.budget = data, budget

    def _fields(self, a: int, b: int, expected: dict, kind: str, depth: int):
        if depth > MAX_DEPTH:
            raise WireError(f"messages nested more than {MAX_DEPTH} deep")
        return fields(self.data, a, b, self.budget, expected, kind)

    def model(self) -> ModelSummary:
        model, data = ModelSummary(), self.data
        for number, _, a, b in self._fields(0, len(data), _MODEL, "model", 0):
            if number == 1:
                model.ir_version = a  # protobuf semantics: the last occurrence wins
            elif number == 8:
                domain, version = "", 0
                for n, _, x, y in self._fields(a, b, _OPSET, "opset", 1):
                    if n == 1:
                        domain = _text(data, x, y)
                    elif n == 2:
                        version = x
                model.opsets.append((domain, version))
            elif number == 14:
                model.metadata.append(self.entry(a, b, 1))
            elif number == 7:
                model.graphs.append(self.graph(a, b, 1))
            elif number == 25:
                model.functions += 1
            elif number == 20:
                model.training_info += 1
        return model

    def entry(self, a: int, b: int, depth: int) -> tuple[bytes, bytes]:
        key = value = b""
        for number, _, x, y in self._fields(a, b, _ENTRY, "entry", depth):
            if number == 1:
                key = self.data[x:y]
            elif number == 2:
                value = self.data[x:y]
        return key, value

    def graph(self, a: int, b: int, depth: int) -> Graph:
        graph = Graph()
        for number, _, x, y in self._fields(a, b, _GRAPH, "graph", depth):
            if number == 1:
                graph.nodes.append(self.node(x, y, depth + 1))
            elif number == 5:
                graph.initializers.append(self.tensor(x, y, depth + 1))
            elif number == 15:
                graph.sparse_initializers.append(self.sparse(x, y, depth + 1))
            elif number == 11:
                graph.inputs.append(self.value_info(x, y, depth + 1))
            elif number == 12:
                graph.outputs.append(self.value_info(x, y, depth + 1))
        return graph

    def node(self, a: int, b: int, depth: int) -> Node:
        node, data = Node(), self.data
        for number, _, x, y in self._fields(a, b, _NODE, "node", depth):
            if number == 1:
                node.inputs.append(_text(data, x, y))
            elif number == 2:
                node.outputs.append(_text(data, x, y))
            elif number == 4:
                node.op_type = _text(data, x, y)
            elif number == 7:
                node.domain = _text(data, x, y)
            elif number == 5:
                attribute = self.attribute(x, y, depth + 1)
                node.attributes[attribute.name] = attribute
        return node

    def attribute(self, a: int, b: int, depth: int) -> Attribute:
        attribute, data = Attribute(), self.data
        ints: list[int] = []
        floats: list[float] = []
        for number, wire, x, y in self._fields(a, b, _ATTRIBUTE, "attribute", depth):
            if number == 1:
                attribute.name = _text(data, x, y)
            elif number == 2:
                attribute.f = packed_fixed(data, x, y, "f")[0]
            elif number == 3:
                attribute.i = signed64(x)
            elif number == 4:
                attribute.s = _text(data, x, y)
            elif number in (5, 10):
                attribute.tensors.append(self.tensor(x, y, depth + 1))
            elif number in (6, 11):
                attribute.graphs.append(self.graph(x, y, depth + 1))
            elif number in (22, 23):
                attribute.sparse.append(self.sparse(x, y, depth + 1))
            elif number == 9:
                if len(attribute.strings) < MAX_LIST:
                    attribute.strings.append(_text(data, x, y))
            elif number == 8:
                ints.extend(self._ints(wire, x, y, len(ints)))
            elif number == 7:
                floats.extend(self._floats(wire, x, y, len(floats)))
        attribute.ints = ints if len(ints) <= MAX_LIST else None
        attribute.floats = floats if len(floats) <= MAX_LIST else None
        return attribute

    def _ints(self, wire: int, x: int, y: int, have: int) -> list[int]:
        if wire == VARINT:
            return [signed64(x)]
        if have + count_varints(self.data, x, y) > MAX_LIST:
            return [0] * (MAX_LIST + 1)  # too long to use: marks the list as unreadable
        return [signed64(v) for v in packed_varints(self.data, x, y)]

    def _floats(self, wire: int, x: int, y: int, have: int) -> list[float]:
        if have + (y - x) // 4 > MAX_LIST:
            return [0.0] * (MAX_LIST + 1)
        return packed_fixed(self.data, x, y, "f")

    def sparse(self, a: int, b: int, depth: int) -> tuple[Tensor, Tensor]:
        values = indices = Tensor()
        for number, _, x, y in self._fields(a, b, _SPARSE, "sparse", depth):
            if number == 1:
                values = self.tensor(x, y, depth + 1)
            elif number == 2:
                indices = self.tensor(x, y, depth + 1)
        return values, indices

    def tensor(self, a: int, b: int, depth: int) -> Tensor:
        tensor, data = Tensor(), self.data
        raw: tuple[int, int] | None = None
        typed: dict[int, list[tuple[int, int, int]]] = {}  # field -> [(wire, a, b)]
        for number, wire, x, y in self._fields(a, b, _TENSOR, "tensor", depth):
            if number == 1:
                if wire == VARINT:
                    tensor.dims.append(signed64(x))
                elif count_varints(data, x, y) > MAX_DEPTH * 2:
                    raise WireError(f"tensor with more than {MAX_DEPTH * 2} dimensions")
                else:
                    tensor.dims.extend(signed64(v) for v in packed_varints(data, x, y))
            elif number == 2:
                tensor.data_type = x
            elif number == 3:
                tensor.segmented = True
            elif number == 8:
                tensor.name = _text(data, x, y)
            elif number == 9:
                raw = (x, y)
            elif number == 13:
                tensor.external.append(self._external_entry(x, y, depth + 1))
            elif number == 14:
                tensor.data_location = tensor.data_location or x  # any non-DEFAULT occurrence counts
            elif number in (4, 5, 6, 7, 10, 11):
                typed.setdefault(number, []).append((wire, x, y))
        if len(tensor.dims) > MAX_DEPTH * 2:
            raise WireError(f"tensor with more than {MAX_DEPTH * 2} dimensions")
        self._data(tensor, raw, typed)
        return tensor

    def _external_entry(self, a: int, b: int, depth: int) -> tuple[str, str]:
        key, value = self.entry(a, b, depth)
        return _text(key, 0, len(key)), _text(value, 0, len(value))

    def _data(self, tensor: Tensor, raw: tuple[int, int] | None, typed: dict) -> None:
        """Count the elements the tensor holds and decode the values of small numeric tensors."""
        dtype, data = tensor.data_type, self.data
        size = ITEM_BYTES.get(dtype, 1)
        if raw is not None and dtype != STRING:
            tensor.raw = raw
            length = raw[1] - raw[0]
            if dtype in _FOUR_BIT:  # two per byte; an odd count leaves half a byte unused
                tensor.stored = tensor.numel if length == (tensor.numel + 1) // 2 else -1
            else:
                tensor.stored = length // size if length % size == 0 else -1
            fmt = _RAW_FORMAT.get(dtype)
            if fmt and 0 <= tensor.stored <= VALUE_ELEMENTS:
                tensor.values = packed_fixed(data, raw[0], raw[1], fmt) if tensor.stored else []
            return
        number = _TYPED_FIELD.get(dtype, 0)
        parts = typed.get(number, [])
        if number == 4:
            tensor.float_data = [(x, y) for _, x, y in parts]
        count, values = 0, []
        for wire, x, y in parts:
            if wire == LEN and number != 6:  # a packed run
                n = (y - x) // (8 if number == 10 else 4) if number in (4, 10) else count_varints(data, x, y)
                if number in (4, 10) and (y - x) % (8 if number == 10 else 4):
                    raise WireError(f"tensor {tensor.name!r}: packed values are not whole numbers")
                count += n
                if count <= VALUE_ELEMENTS:
                    values.extend(self._typed_values(number, wire, x, y))
            else:
                count += 1
                if count <= VALUE_ELEMENTS:
                    values.extend(self._typed_values(number, wire, x, y))
        if dtype in (COMPLEX64, COMPLEX128):
            count //= 2
        if dtype in _FOUR_BIT:  # int32_data holds two 4-bit values each
            count = tensor.numel if count == (tensor.numel + 1) // 2 else -1
        tensor.stored = count
        if count <= VALUE_ELEMENTS and dtype in _RAW_FORMAT:  # plain numbers, not half floats or pairs
            tensor.values = values

    def _typed_values(self, number: int, wire: int, x: int, y: int) -> list:
        data = self.data
        if number in (4, 10):
            fmt = "d" if number == 10 else "f"
            return packed_fixed(data, x, y, fmt)
        if number == 6:
            return []
        raw = [x] if wire == VARINT else packed_varints(data, x, y)
        return raw if number == 11 else [signed64(v) for v in raw]

    def value_info(self, a: int, b: int, depth: int) -> ValueInfo:
        info, data = ValueInfo(), self.data
        for number, _, x, y in self._fields(a, b, _VALUE_INFO, "value_info", depth):
            if number == 1:
                info.name = _text(data, x, y)
            elif number == 2:
                for n, _, p, q in self._fields(x, y, _TYPE, "type", depth + 1):
                    if n == 1:
                        self._tensor_type(info, p, q, depth + 2)
        return info

    def _tensor_type(self, info: ValueInfo, a: int, b: int, depth: int) -> None:
        info.elem_type = info.elem_type or 0
        for number, _, x, y in self._fields(a, b, _TENSOR_TYPE, "tensor_type", depth):
            if number == 1:
                info.elem_type = x
            elif number == 2:
                dims: list[int | str | None] = []
                for n, _, p, q in self._fields(x, y, _SHAPE, "shape", depth + 1):
                    if n != 1:
                        continue
                    dim: int | str | None = None
                    for m, _, r, s in self._fields(p, q, _DIMENSION, "dimension", depth + 2):
                        if m in (1, 2):
                            dim = signed64(r) if m == 1 else _text(self.data, r, s)
                    dims.append(dim)
                info.dims = dims
