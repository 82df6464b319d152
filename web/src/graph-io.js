// The graph's inputs and outputs as the file declares them (ValueInfoProto names and dimension names),
// read with src/protobuf.js. onnxruntime's Python binding decodes these as UTF-8 only when the Python
// runtime asks for them (nextword/runtime/model_file.py's _check_signature), and refuses a name that is
// not UTF-8 there; onnxruntime-web decodes them leniently. This module lets the signature check ask the
// same questions in the same order.

import { ModelFileError } from './errors.js';
import { Budget, fields, LEN, strictUtf8, text, VARINT } from './protobuf.js';

// Field numbers from onnx.proto.
const WIRES = {
  model: { 7: LEN },
  graph: { 5: LEN, 11: LEN, 12: LEN, 15: LEN },
  tensor: { 8: LEN },
  sparse: { 1: LEN },
  valueInfo: { 1: LEN, 2: LEN },
  type: { 1: LEN, 8: LEN },
  tensorType: { 2: LEN },
  shape: { 1: LEN },
  dim: { 1: VARINT, 2: LEN },
};

/**
 * The session's inputs (graph inputs that no initializer feeds, as onnxruntime lists them) and outputs:
 * {inputs, outputs}, each a list of {name, nameOk, paramsOk, input}: the name as onnxruntime-web shows
 * it, whether its bytes are UTF-8, whether every dimension name of its shape is, and whether it is an
 * input. Read after onnxruntime has parsed the file; malformed protobuf throws WireError all the same.
 * @param {Uint8Array} data
 */
export function readGraphInterface(data) {
  const budget = new Budget();
  const walk = (start, end, kind) => fields(data, start, end, budget, kind, WIRES[kind]);
  const inputs = [];
  const outputs = [];
  const initialized = new Set();
  const tensorName = (start, end) => {
    let name = '';
    for (const [n, , a, b] of walk(start, end, 'tensor')) if (n === 8) name = text(data, a, b);
    return name;
  };
  // Repeated top-level graphs merge (protobuf semantics): their lists join in order.
  for (const [number, , a, b] of walk(0, data.length, 'model')) {
    if (number !== 7) continue;
    for (const [n, , x, y] of walk(a, b, 'graph')) {
      if (n === 11) inputs.push(valueInfo(data, x, y, walk));
      else if (n === 12) outputs.push(valueInfo(data, x, y, walk));
      else if (n === 5) initialized.add(tensorName(x, y));
      else if (n === 15) {
        for (const [m, , s, e] of walk(x, y, 'sparse')) if (m === 1) initialized.add(tensorName(s, e));
      }
    }
  }
  const sessionInputs = inputs.filter((item) => !initialized.has(item.name));
  return { inputs: sessionInputs.map((item) => ({ ...item, input: true })), outputs };
}

function valueInfo(data, start, end, walk) {
  let raw = new Uint8Array(0);
  let paramsOk = true;
  for (const [n, , a, b] of walk(start, end, 'valueInfo')) {
    if (n === 1)
      raw = data.subarray(a, b); // the last one wins
    else if (n === 2) paramsOk = typeParamsOk(data, a, b, walk) && paramsOk;
  }
  return { name: text(raw, 0, raw.length), nameOk: isUtf8(raw), paramsOk };
}

function typeParamsOk(data, start, end, walk) {
  let ok = true;
  for (const [n, , a, b] of walk(start, end, 'type')) {
    // tensor_type and sparse_tensor_type: both hold elem_type (1) and shape (2)
    if (n !== 1 && n !== 8) continue;
    for (const [m, , x, y] of walk(a, b, 'tensorType')) {
      if (m !== 2) continue;
      for (const [k, , s, e] of walk(x, y, 'shape')) if (k === 1) ok = dimParamOk(data, s, e, walk) && ok;
    }
  }
  return ok;
}

/** A dimension's dim_param is UTF-8, or it has none (dim_value and dim_param are a oneof: the last wins). */
function dimParamOk(data, start, end, walk) {
  let param = null;
  for (const [n, , a, b] of walk(start, end, 'dim')) {
    if (n === 1) param = null;
    else if (n === 2) param = data.subarray(a, b);
  }
  return param === null || isUtf8(param);
}

function isUtf8(bytes) {
  return typeof strictUtf8(bytes) === 'string';
}

/** Python's refusal of a graph input or output name or dimension name that is not UTF-8. */
export function notUtf8(source) {
  return new ModelFileError(
    `${source}: a graph input or output declares a name or dimension that is not UTF-8 text; the file is ` +
      'damaged: re-download or re-export it',
  );
}

/**
 * Throw Python's refusal where the Python runtime would decode something that is not UTF-8: every
 * session input and output name (without `which`), or the dimension names of the inputs and outputs
 * for which `which(name, isInput)` is true (Python reads a shape only where its signature check looks).
 * @param {{inputs: object[], outputs: object[]}} graph from readGraphInterface, or null (not checked)
 */
export function requireUtf8(graph, source, which = null) {
  if (!graph) return;
  const items = [...graph.inputs, ...graph.outputs];
  if (which === null) {
    if (items.some((item) => !item.nameOk)) throw notUtf8(source);
    return;
  }
  if (items.some((item) => which(item.name, Boolean(item.input)) && !item.paramsOk)) throw notUtf8(source);
}
