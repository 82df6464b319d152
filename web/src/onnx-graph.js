// The parts of an ONNX graph that src/graph-bounds.js reads, decoded with src/protobuf.js as
// nextword/runtime/onnx_proto.py decodes them: nodes with their attributes, initializers (name, type,
// dims and the values of small integer ones), and the declared inputs and outputs. Weights are never
// copied. Integers that the file stores as int64 (dims, attribute ints, values) come back as bigints.

import {
  Budget,
  countVarints,
  fields,
  I32,
  I64,
  LEN,
  packedVarints,
  signed64,
  text,
  VARINT,
  WireError,
} from './protobuf.js';

export const FLOAT = 1;
export const UINT8 = 2;
export const INT32 = 6;
export const INT64 = 7;
export const STRING = 8;
export const BOOL = 9;
/** TensorProto.DataType: bytes per element (4-bit types round up to 1); Python's ITEM_BYTES. */
export const ITEM_BYTES = new Map(
  Object.entries({ 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8 })
    .concat(Object.entries({ 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1 }))
    .map(([type, size]) => [Number(type), size]),
);

const VALUE_ELEMENTS = 64; // tensors this small have their values decoded (shapes, axes, indices)
const MAX_LIST = 4096; // longest attribute list (ints, floats, strings) decoded
const MAX_DIMS = 64; // dimensions of one tensor, at most (Python: MAX_DEPTH * 2)
// Where a type's integer values live when raw_data is absent: int64_data (7) or int32_data (5).
const TYPED_FIELD = new Map([
  [INT64, 7],
  [INT32, 5],
  [BOOL, 5],
]);
const RAW_INT = new Map([
  [INT64, 8],
  [INT32, 4],
  [BOOL, 1],
]);

// Field numbers from onnx.proto, and the wire types each may have (a list: packed or one by one).
const WIRES = {
  graph: { 1: LEN, 5: LEN, 11: LEN, 12: LEN, 15: LEN },
  node: { 1: LEN, 2: LEN, 4: LEN, 5: LEN, 7: LEN },
  attribute: { 1: LEN, 2: I32, 3: VARINT, 4: LEN, 5: LEN, 6: LEN, 7: [I32, LEN], 8: [VARINT, LEN] },
  tensor: { 1: [VARINT, LEN], 2: VARINT, 3: LEN, 4: [I32, LEN], 5: [VARINT, LEN], 6: LEN },
  valueInfo: { 1: LEN, 2: LEN },
  type: { 1: LEN },
  tensorType: { 1: VARINT, 2: LEN },
  shape: { 1: LEN },
  dim: { 1: VARINT, 2: LEN },
};
Object.assign(WIRES.attribute, { 9: LEN, 10: LEN, 11: LEN, 20: VARINT, 22: LEN, 23: LEN });
Object.assign(WIRES.tensor, { 7: [VARINT, LEN], 8: LEN, 9: LEN, 10: [I64, LEN], 11: [VARINT, LEN] });
Object.assign(WIRES.tensor, { 13: LEN, 14: VARINT });

/**
 * The model's graphs, merged as protobuf merges repeated fields (nodes, initializers, inputs and
 * outputs concatenate): {nodes, initializers, inputs, outputs}. Throws WireError on malformed protobuf.
 * @param {Uint8Array} data the file
 * @param {[number, number][]} ranges where each top-level graph lies in `data`
 */
export function readGraph(data, ranges) {
  const reader = new Reader(data);
  const graph = { nodes: [], initializers: [], inputs: [], outputs: [] };
  for (const [start, end] of ranges) reader.graph(start, end, graph);
  return graph;
}

class Reader {
  constructor(data) {
    this.data = data;
    this.budget = new Budget();
  }

  *fields(start, end, kind) {
    yield* fields(this.data, start, end, this.budget, kind, WIRES[kind]);
  }

  text(a, b) {
    return text(this.data, a, b);
  }

  graph(start, end, graph) {
    for (const [n, , a, b] of this.fields(start, end, 'graph')) {
      if (n === 1) graph.nodes.push(this.node(a, b));
      else if (n === 5) graph.initializers.push(this.tensor(a, b));
      else if (n === 11) graph.inputs.push(this.valueInfo(a, b));
      else if (n === 12) graph.outputs.push(this.valueInfo(a, b));
    }
  }

  node(start, end) {
    const node = { opType: '', domain: '', inputs: [], outputs: [], attributes: new Map() };
    for (const [n, , a, b] of this.fields(start, end, 'node')) {
      if (n === 1) node.inputs.push(this.text(a, b));
      else if (n === 2) node.outputs.push(this.text(a, b));
      else if (n === 4) node.opType = this.text(a, b);
      else if (n === 7) node.domain = this.text(a, b);
      else if (n === 5) {
        const attribute = this.attribute(a, b);
        node.attributes.set(attribute.name, attribute);
      }
    }
    return node;
  }

  /** {name, i, s, ints, floats (how many), strings, tensors}; ints and floats are null when too long. */
  attribute(start, end) {
    const attribute = { name: '', i: null, s: null, ints: [], floats: 0, strings: [], tensors: [] };
    for (const [n, wire, a, b] of this.fields(start, end, 'attribute')) {
      if (n === 1) attribute.name = this.text(a, b);
      else if (n === 3) attribute.i = signed64(a);
      else if (n === 4) attribute.s = this.text(a, b);
      else if (n === 5 || n === 10) attribute.tensors.push(this.tensor(a, b));
      else if (n === 9) {
        if (attribute.strings.length < MAX_LIST) attribute.strings.push(this.text(a, b));
      } else if (n === 8 && attribute.ints !== null) {
        if (wire === VARINT) attribute.ints.push(signed64(a));
        else if (attribute.ints.length + countVarints(this.data, a, b) > MAX_LIST) attribute.ints = null;
        else attribute.ints.push(...packedVarints(this.data, a, b));
      } else if (n === 7) {
        if (wire === LEN && (b - a) % 4) {
          throw new WireError(`packed field of ${b - a} bytes is not a whole number of 4-byte values`);
        }
        attribute.floats += wire === LEN ? (b - a) / 4 : 1;
      }
    }
    if (attribute.ints?.length > MAX_LIST) attribute.ints = null;
    if (attribute.floats > MAX_LIST) attribute.floats = null;
    return attribute;
  }

  /** {name, dataType, dims (bigints), values}: values (bigints) of small int64, int32 and bool tensors. */
  tensor(start, end) {
    const tensor = { name: '', dataType: 0, dims: [], values: null };
    let raw = null;
    const typed = [];
    for (const [n, wire, a, b] of this.fields(start, end, 'tensor')) {
      if (n === 1) {
        if (wire === VARINT) tensor.dims.push(signed64(a));
        else if (countVarints(this.data, a, b) > MAX_DIMS) {
          throw new WireError(`tensor with more than ${MAX_DIMS} dimensions`);
        } else tensor.dims.push(...packedVarints(this.data, a, b));
      } else if (n === 2) tensor.dataType = Number(a);
      else if (n === 8) tensor.name = this.text(a, b);
      else if (n === 9) raw = [a, b];
      else if (n === 5 || n === 7) typed.push([n, wire, a, b]);
    }
    if (tensor.dims.length > MAX_DIMS) throw new WireError(`tensor with more than ${MAX_DIMS} dimensions`);
    if (RAW_INT.has(tensor.dataType)) tensor.values = this.values(tensor.dataType, raw, typed);
    return tensor;
  }

  /** The integer values of a tensor that holds at most VALUE_ELEMENTS of them, else null. */
  values(dtype, raw, typed) {
    const data = this.data;
    if (raw !== null) {
      const size = RAW_INT.get(dtype);
      const length = raw[1] - raw[0];
      if (length % size || length / size > VALUE_ELEMENTS) return null;
      const view = new DataView(data.buffer, data.byteOffset + raw[0], length);
      return Array.from({ length: length / size }, (_, k) => {
        if (size === 8) return view.getBigInt64(k * 8, true);
        if (size === 4) return BigInt(view.getInt32(k * 4, true));
        return view.getUint8(k) ? 1n : 0n;
      });
    }
    const number = TYPED_FIELD.get(dtype);
    let count = 0;
    const values = [];
    for (const [n, wire, a, b] of typed) {
      if (n !== number) continue;
      count += wire === LEN ? countVarints(data, a, b) : 1;
      if (count <= VALUE_ELEMENTS) values.push(...(wire === LEN ? packedVarints(data, a, b) : [signed64(a)]));
    }
    return count <= VALUE_ELEMENTS ? values : null;
  }

  /** {name, elemType (null: not a tensor type), dims (null: no shape; each a bigint, a string or null)}. */
  valueInfo(start, end) {
    const info = { name: '', elemType: null, dims: null };
    for (const [n, , a, b] of this.fields(start, end, 'valueInfo')) {
      if (n === 1) info.name = this.text(a, b);
      else if (n === 2) {
        for (const [m, , x, y] of this.fields(a, b, 'type')) if (m === 1) this.tensorType(info, x, y);
      }
    }
    return info;
  }

  tensorType(info, start, end) {
    info.elemType = info.elemType ?? 0;
    for (const [n, , a, b] of this.fields(start, end, 'tensorType')) {
      if (n === 1) info.elemType = Number(a);
      else if (n === 2) {
        const dims = [];
        for (const [m, , x, y] of this.fields(a, b, 'shape')) {
          if (m !== 1) continue;
          let dim = null;
          for (const [k, , p, q] of this.fields(x, y, 'dim')) {
            if (k === 1) dim = signed64(p);
            else if (k === 2) dim = this.text(p, q);
          }
          dims.push(dim);
        }
        info.dims = dims;
      }
    }
  }
}
