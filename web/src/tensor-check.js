// The tensor checks of nextword/runtime/model_check.py, with its messages: no data outside the file, no
// segmented or sparse tensors, a known element type, dims that are not negative, exactly as many
// elements as the dims declare, and float weights and quantization scales that are finite. The tensors
// come decoded by src/onnx-graph.js; src/model-check.js walks the graphs and calls these where Python
// does.

import { ModelFileError } from './errors.js';
import { FLOAT, ITEM_BYTES } from './onnx-graph.js';
import { commas, pyHead, pyLen, strRepr } from './pyrepr.js';

const DEFAULT_DOMAINS = ['', 'ai.onnx'];
// Inputs that hold quantization scales: 'domain op type' -> input positions (Python's _SCALE_INPUTS).
const SCALE_INPUTS = new Map([
  [' DequantizeLinear', [1]],
  ['com.microsoft DynamicQuantizeLSTM', [8, 10]],
]);

/** Python's shorten: the repr of a text cut to 80 characters. */
function shorten(text) {
  return strRepr(pyLen(text) <= 80 ? text : `${pyHead(text, 80)}...`);
}

/** Python's str() of a list of ints: "[2, 3]". */
const dimsText = (dims) => `[${dims.join(', ')}]`;

/** Refuse a tensor whose data lives outside the file (Python's _check_external). */
export function checkExternal(name, tensor, where) {
  if (!tensor.external.length && !tensor.location) return;
  const target = tensor.external.find(([k]) => k === 'location')?.[1] ?? '';
  throw new ModelFileError(
    `${name}: tensor ${shorten(tensor.name)} (${where}) keeps its data outside the file` +
      (target ? ` (location ${shorten(target)})` : '') +
      '; nextword models are one self-contained file and never read other files. If you trust the file, ' +
      'bring its data in with onnx, onnx.save(onnx.load(PATH), OUT) (onnx.load reads the external data), or ' +
      're-export the model with `nextword export`',
  );
}

/** Python's _check_tensor: external data, segments, element type, dims and the data they declare. */
export function checkTensor(name, tensor, where) {
  checkExternal(name, tensor, where);
  const label = `${name}: tensor ${shorten(tensor.name)} (${where})`;
  if (tensor.segmented) {
    throw new ModelFileError(`${label} is segmented, which nextword models never are; re-export the model`);
  }
  if (!ITEM_BYTES.has(tensor.dataType)) {
    throw new ModelFileError(`${label} has unknown element type ${tensor.dataType}; re-export the model`);
  }
  if (tensor.dims.some((d) => d < 0n)) {
    throw new ModelFileError(
      `${label} has a negative dimension ${dimsText(tensor.dims)}; re-export the model`,
    );
  }
  const numel = tensor.dims.reduce((p, d) => p * d, 1n);
  if (tensor.stored !== numel) {
    const held = tensor.stored < 0n ? 0n : tensor.stored;
    throw new ModelFileError(
      `${label} declares ${commas(numel)} elements (dims ${dimsText(tensor.dims)}) but holds ` +
        `${commas(held)}; the file is damaged or crafted: re-export the model`,
    );
  }
}

/**
 * Python's _check_sparse: a sparse tensor (`values` and `indices`, each a decoded tensor or null when
 * absent) is refused, after the external-data check of its two parts.
 */
export function refuseSparse(name, values, indices, where) {
  const empty = { name: '', external: [], location: 0 };
  for (const tensor of [values ?? empty, indices ?? empty]) checkExternal(name, tensor, where);
  throw new ModelFileError(
    `${name}: ${where} ${shorten((values ?? empty).name)} is a sparse tensor, which nextword models never ` +
      'contain (onnxruntime would expand it to its full size when loading); re-export the model with ' +
      '`nextword export`',
  );
}

/**
 * Python's _check_floats: the float initializers (quantization scales and weights) must be finite. A NaN
 * or infinite scale or weight does not make onnxruntime fail: the LSTM's clamped activations turn it into
 * finite nonsense. Scales are named as such, and checked first; of initializers sharing a name, the last
 * (the one onnxruntime takes). Run after checkTensor passed every initializer (each holds its elements).
 */
export function checkFloats(graph, data, name) {
  const byName = new Map(graph.initializers.filter((t) => t.dataType === FLOAT).map((t) => [t.name, t]));
  const scales = new Map(); // initializer name -> the op type of a node that reads it as a scale
  for (const node of graph.nodes) {
    const domain = DEFAULT_DOMAINS.includes(node.domain) ? '' : node.domain;
    for (const i of SCALE_INPUTS.get(`${domain} ${node.opType}`) ?? []) {
      const input = node.inputs[i];
      if (i < node.inputs.length && byName.has(input) && !scales.has(input)) scales.set(input, node.opType);
    }
  }
  const floats = [...byName.values()];
  const ordered = [...floats.filter((t) => scales.has(t.name)), ...floats.filter((t) => !scales.has(t.name))];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const tensor of ordered) {
    // raw_data, else float_data's packed runs and single values
    const ranges = tensor.raw === null ? tensor.floatData : [tensor.raw];
    if (ranges.every(([a, b]) => allFinite(view, a, b))) continue;
    const what = scales.has(tensor.name)
      ? `the quantization scale ${shorten(tensor.name)} of a ${scales.get(tensor.name)} node`
      : `the weights ${shorten(tensor.name)}`;
    throw new ModelFileError(
      `${name}: ${what} holds NaN or infinite values; the file is damaged or crafted: re-export the model`,
    );
  }
}

// Whether the little-endian float32 values in [a, b) of `view` are all finite: read in place, whatever
// their alignment (no copy of a large weight).
function allFinite(view, a, b) {
  for (let at = a; at + 4 <= b; at += 4) if (!Number.isFinite(view.getFloat32(at, true))) return false;
  return true;
}
