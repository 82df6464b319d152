// The parts of an ONNX graph that src/graph-bounds.js and src/tensor-check.js read, decoded with
// src/protobuf.js as nextword/runtime/onnx_proto.py decodes them: nodes with their attributes,
// initializers (name, type, dims, how many elements the file really holds, where their data lies and the
// values of small integer ones), and the declared inputs and outputs. Weights are never copied.
// Integers that the file stores as int64 (dims, attribute ints, values) come back as bigints.

import {
  Budget,
  countVarints,
  fields,
  I32,
  I64,
  LEN,
  MAX_DEPTH,
  packedVarints,
  signed64,
  text,
  VARINT,
  WireError,
} from './protobuf.js';
import { strRepr } from './pyrepr.js';

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
const FOUR_BIT = [21, 22, 23]; // two values per byte (raw) or per int32_data entry
// Which typed field holds each type's values when raw_data is absent (Python's _TYPED_FIELD).
const STORED_FIELD = new Map(
  Object.entries({ 1: 4, 14: 4, 7: 7, 8: 6, 11: 10, 15: 10, 12: 11, 13: 11 })
    .concat([2, 3, 4, 5, 6, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23].map((type) => [type, 5]))
    .map(([type, number]) => [Number(type), number]),
);

// Field numbers from onnx.proto, and the wire types each may have (a list: packed or one by one).
const WIRES = {
  graph: { 1: LEN, 5: LEN, 11: LEN, 12: LEN, 15: LEN },
  node: { 1: LEN, 2: LEN, 4: LEN, 5: LEN, 7: LEN },
  attribute: { 1: LEN, 2: I32, 3: VARINT, 4: LEN, 5: LEN, 6: LEN, 7: [I32, LEN], 8: [VARINT, LEN] },
  tensor: { 1: [VARINT, LEN], 2: VARINT, 3: LEN, 4: [I32, LEN], 5: [VARINT, LEN], 6: LEN },
  entry: { 1: LEN, 2: LEN },
  sparse: { 1: LEN, 2: LEN, 3: [VARINT, LEN] },
  value_info: { 1: LEN, 2: LEN }, // keyed by Python's names for them, which WireError messages show
  type: { 1: LEN },
  tensor_type: { 1: VARINT, 2: LEN },
  shape: { 1: LEN },
  dimension: { 1: VARINT, 2: LEN },
};
Object.assign(WIRES.attribute, { 9: LEN, 10: LEN, 11: LEN, 20: VARINT, 22: LEN, 23: LEN });
Object.assign(WIRES.tensor, { 7: [VARINT, LEN], 8: LEN, 9: LEN, 10: [I64, LEN], 11: [VARINT, LEN] });
Object.assign(WIRES.tensor, { 13: LEN, 14: VARINT });

/**
 * The model's graphs, merged as protobuf merges repeated fields (nodes, initializers, inputs and
 * outputs concatenate): {nodes, initializers, inputs, outputs}. Throws WireError on malformed protobuf.
 * @param {Uint8Array} data the file
 * @param {[number, number][]} ranges where each top-level graph lies in `data`
 * @param {Budget} [budget] the protobuf fields the whole file may spend
 */
export function readGraph(data, ranges, budget = new Budget()) {
  const reader = new Reader(data, budget);
  const graph = { nodes: [], initializers: [], inputs: [], outputs: [] };
  for (const [start, end] of ranges) reader.graph(start, end, graph, 1);
  return graph;
}

/** Graphs merged as protobuf merges repeated `graph` fields (their lists concatenate). */
export function mergeGraphs(graphs) {
  const keys = ['nodes', 'initializers', 'inputs', 'outputs'];
  return Object.fromEntries(keys.map((key) => [key, graphs.flatMap((graph) => graph[key])]));
}

/**
 * One TensorProto at data[start:end] (see Reader.tensor), its nesting `depth` counted from ModelProto.
 * Throws WireError on malformed protobuf.
 */
export function readTensor(data, start, end, budget, depth) {
  return new Reader(data, budget).tensor(start, end, depth);
}

class Reader {
  constructor(data, budget = new Budget()) {
    this.data = data;
    this.budget = budget;
  }

  /** The fields of a message nested `depth` deep (ModelProto: 0), as Python's reader bounds it. */
  *fields(start, end, kind, depth) {
    if (depth > MAX_DEPTH) throw new WireError(`messages nested more than ${MAX_DEPTH} deep`);
    yield* fields(this.data, start, end, this.budget, kind, WIRES[kind]);
  }

  text(a, b) {
    return text(this.data, a, b);
  }

  graph(start, end, graph, depth) {
    for (const [n, , a, b] of this.fields(start, end, 'graph', depth)) {
      if (n === 1) graph.nodes.push(this.node(a, b, depth + 1));
      else if (n === 5) graph.initializers.push(this.tensor(a, b, depth + 1));
      else if (n === 15)
        this.sparse(a, b, depth + 1); // decoded as Python does; src/tensor-check.js refuses it
      else if (n === 11) graph.inputs.push(this.valueInfo(a, b, depth + 1));
      else if (n === 12) graph.outputs.push(this.valueInfo(a, b, depth + 1));
    }
  }

  /** A SparseTensorProto: [values, indices], each null when absent (the last of each counts). */
  sparse(start, end, depth) {
    const parts = [null, null, null];
    for (const [n, , a, b] of this.fields(start, end, 'sparse', depth)) {
      if (n === 1 || n === 2) parts[n] = this.tensor(a, b, depth + 1);
    }
    return [parts[1], parts[2]];
  }

  node(start, end, depth) {
    const node = { opType: '', domain: '', inputs: [], outputs: [], attributes: new Map() };
    for (const [n, , a, b] of this.fields(start, end, 'node', depth)) {
      if (n === 1) node.inputs.push(this.text(a, b));
      else if (n === 2) node.outputs.push(this.text(a, b));
      else if (n === 4) node.opType = this.text(a, b);
      else if (n === 7) node.domain = this.text(a, b);
      else if (n === 5) {
        const attribute = this.attribute(a, b, depth + 1);
        node.attributes.set(attribute.name, attribute);
      }
    }
    return node;
  }

  /** {name, i, s, ints, floats (how many), strings, tensors}; ints and floats are null when too long. */
  attribute(start, end, depth) {
    const attribute = { name: '', i: null, s: null, ints: [], floats: 0, strings: [], tensors: [] };
    for (const [n, wire, a, b] of this.fields(start, end, 'attribute', depth)) {
      if (n === 1) attribute.name = this.text(a, b);
      else if (n === 3) attribute.i = signed64(a);
      else if (n === 4) attribute.s = this.text(a, b);
      else if (n === 5 || n === 10) attribute.tensors.push(this.tensor(a, b, depth + 1));
      else if (n === 6 || n === 11)
        this.graph(a, b, { nodes: [], initializers: [], inputs: [], outputs: [] }, depth + 1);
      else if (n === 22 || n === 23) this.sparse(a, b, depth + 1);
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

  /**
   * {name, dataType, dims (bigints), values, stored, segmented, external, location, raw, floatData}:
   * values (bigints) of small int64, int32 and bool tensors; stored, the elements its data really holds
   * (a bigint, -1n when the bytes are not a whole number of them); external, its external_data entries
   * ([key, value]); raw and floatData, where raw_data and float_data's values lie in the file.
   */
  tensor(start, end, depth) {
    const tensor = { name: '', dataType: 0, dims: [], values: null, stored: 0n, segmented: false };
    Object.assign(tensor, { external: [], location: 0, raw: null, floatData: [] });
    let raw = null;
    const typed = [];
    for (const [n, wire, a, b] of this.fields(start, end, 'tensor', depth)) {
      if (n === 1) {
        if (wire === VARINT) tensor.dims.push(signed64(a));
        else if (countVarints(this.data, a, b) > MAX_DIMS) {
          throw new WireError(`tensor with more than ${MAX_DIMS} dimensions`);
        } else tensor.dims.push(...packedVarints(this.data, a, b));
      } else if (n === 2) tensor.dataType = Number(a);
      else if (n === 3) tensor.segmented = true;
      else if (n === 8) tensor.name = this.text(a, b);
      else if (n === 9) raw = [a, b];
      else if (n === 13) tensor.external.push(this.entry(a, b, depth + 1));
      else if (n === 14 && !tensor.location)
        tensor.location = Number(a); // any non-DEFAULT one counts
      else if ([4, 5, 6, 7, 10, 11].includes(n)) typed.push([n, wire, a, b]);
    }
    if (tensor.dims.length > MAX_DIMS) throw new WireError(`tensor with more than ${MAX_DIMS} dimensions`);
    this.stored(tensor, tensor.dataType === STRING ? null : raw, typed);
    if (RAW_INT.has(tensor.dataType)) tensor.values = this.values(tensor.dataType, raw, typed);
    return tensor;
  }

  /** How many elements the tensor holds (Python's _data): its raw_data, else its type's typed field. */
  stored(tensor, raw, typed) {
    const dtype = tensor.dataType;
    const numel = tensor.dims.reduce((p, d) => p * d, 1n);
    const half = (count) => (count === (numel + 1n) / 2n ? numel : -1n); // 4-bit types, two per unit
    if (raw !== null) {
      tensor.raw = raw;
      const length = BigInt(raw[1] - raw[0]);
      const size = BigInt(ITEM_BYTES.get(dtype) ?? 1);
      tensor.stored = FOUR_BIT.includes(dtype) ? half(length) : length % size ? -1n : length / size;
      return;
    }
    const number = STORED_FIELD.get(dtype) ?? 0;
    let count = 0;
    for (const [n, wire, a, b] of typed) {
      if (n !== number) continue;
      if (n === 4) tensor.floatData.push([a, b]);
      if (wire !== LEN || n === 6) count += 1;
      else if (n === 4 || n === 10) {
        const size = n === 10 ? 8 : 4;
        if ((b - a) % size) {
          throw new WireError(`tensor ${strRepr(tensor.name)}: packed values are not whole numbers`);
        }
        count += (b - a) / size;
      } else count += countVarints(this.data, a, b);
    }
    if (dtype === 14 || dtype === 15) count = Math.floor(count / 2); // complex: two per element
    tensor.stored = FOUR_BIT.includes(dtype) ? half(BigInt(count)) : BigInt(count);
  }

  entry(start, end, depth) {
    let key = '';
    let value = '';
    for (const [n, , a, b] of this.fields(start, end, 'entry', depth)) {
      if (n === 1) key = this.text(a, b);
      else if (n === 2) value = this.text(a, b);
    }
    return [key, value];
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
  valueInfo(start, end, depth) {
    const info = { name: '', elemType: null, dims: null };
    for (const [n, , a, b] of this.fields(start, end, 'value_info', depth)) {
      if (n === 1) info.name = this.text(a, b);
      else if (n === 2) {
        for (const [m, , x, y] of this.fields(a, b, 'type', depth + 1)) {
          if (m === 1) this.tensorType(info, x, y, depth + 2);
        }
      }
    }
    return info;
  }

  tensorType(info, start, end, depth) {
    info.elemType = info.elemType ?? 0;
    for (const [n, , a, b] of this.fields(start, end, 'tensor_type', depth)) {
      if (n === 1) info.elemType = Number(a);
      else if (n === 2) {
        const dims = [];
        for (const [m, , x, y] of this.fields(a, b, 'shape', depth + 1)) {
          if (m !== 1) continue;
          let dim = null;
          for (const [k, , p, q] of this.fields(x, y, 'dimension', depth + 2)) {
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
