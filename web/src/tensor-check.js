// The tensor checks of nextword/runtime/model_check.py, with its messages: no data outside the file, no
// segmented or sparse tensors, a known element type, dims that are not negative, exactly as many
// elements as the dims declare, and quantization scales that are finite. The tensors come decoded by
// src/onnx-graph.js; src/model-check.js walks the graphs and calls these where Python does.

import { ModelFileError } from './errors.js';
import { FLOAT, ITEM_BYTES } from './onnx-graph.js';
import { commas, pyHead, pyLen, strRepr } from './pyrepr.js';

const DEFAULT_DOMAINS = ['', 'ai.onnx'];
const VALUE_ELEMENTS = 64n; // Python decodes the values of a typed-field tensor this small, no larger
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
      '; nextword models are one self-contained file and never read other files. Re-export the model ' +
      'with `nextword export`',
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
 * Python's _check_scales: the quantization scales a graph's nodes read from its float initializers must
 * be finite. A NaN or infinite scale does not make onnxruntime fail: the LSTM's clamped activations
 * turn it into finite nonsense. Run after checkTensor passed every initializer (each holds its elements).
 */
export function checkScales(graph, data, name) {
  const floats = new Map(graph.initializers.filter((t) => t.dataType === FLOAT).map((t) => [t.name, t]));
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const node of graph.nodes) {
    const domain = DEFAULT_DOMAINS.includes(node.domain) ? '' : node.domain;
    for (const i of SCALE_INPUTS.get(`${domain} ${node.opType}`) ?? []) {
      const tensor = i < node.inputs.length ? floats.get(node.inputs[i]) : undefined;
      // Python reads raw_data whatever its size, and float_data only when it decoded its values
      if (!tensor || (tensor.raw === null && tensor.stored > VALUE_ELEMENTS)) continue;
      const ranges = tensor.raw === null ? tensor.floatData : [tensor.raw];
      for (const [a, b] of ranges) {
        for (let at = a; at + 4 <= b; at += 4) {
          if (Number.isFinite(view.getFloat32(at, true))) continue;
          throw new ModelFileError(
            `${name}: the quantization scale ${shorten(tensor.name)} of a ${node.opType} node holds ` +
              'NaN or infinite values; the file is damaged or crafted: re-export the model',
          );
        }
      }
    }
  }
}
