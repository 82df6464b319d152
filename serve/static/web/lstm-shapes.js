// An LSTM's weights against its hidden size, as nextword/runtime/shape_rules.py's _lstm_weights (same
// rules, same messages): onnxruntime before 1.29 did not check them, and read past weights smaller than
// the hidden size said (microsoft/onnxruntime#29595), or past a recurrent zero point checked against the
// input's (#29462). A size known only when the graph runs is refused too: the exporter writes these as
// initializers.

import { Refused, shapeText } from './dims.js';

// An LSTM's inputs that hold weights, by position (8 to 11: DynamicQuantizeLSTM's scales and zero points)
const WEIGHTS = new Map([
  [1, 'input weights'],
  [2, 'recurrent weights'],
  [3, 'bias'],
  [8, "input weights' scale"],
  [9, "input weights' zero point"],
  [10, "recurrent weights' scale"],
  [11, "recurrent weights' zero point"],
]);
const SAME_SHAPE = [
  [8, 9],
  [10, 11],
  [8, 10],
]; // a zero point has its scale's shape; R's pair has W's

/**
 * Refuse an LSTM node (ONNX LSTM, or com.microsoft DynamicQuantizeLSTM when `quantized`, its weights
 * stored transposed) whose weights do not have exactly the shapes `hidden` (a bigint), `directions` and
 * its input's `width` (a Dim) give them. `ctx.get(node, i)`: input i's Value, or null.
 */
export function lstmWeights(ctx, node, hidden, directions, width, quantized) {
  const gates = 4n * hidden;
  const size = width.const && width.exact ? width.c : null;
  const wanted = new Map([
    [1, [quantized ? [directions, size, gates] : [directions, gates, size]]],
    [2, [quantized ? [directions, hidden, gates] : [directions, gates, hidden]]],
    [3, [[directions, 2n * gates]]],
  ]);
  if (quantized) for (const i of [8, 9, 10, 11]) wanted.set(i, [[directions], [directions, gates]]);
  const shapes = new Map();
  const nodeA = `${quantized ? 'a' : 'an'} ${node.opType} node`; // a DynamicQuantizeLSTM, an LSTM
  for (const [index, allowed] of wanted) {
    const value = index < node.inputs.length ? ctx.get(node, index) : null;
    if (value === null) continue;
    shapes.set(index, value.shape);
    if (allowed.some((shape) => fits(value.shape, shape))) continue;
    const expected = allowed.map((shape) => `(${shape.map((n) => (n === null ? '*' : n)).join(', ')})`);
    throw new Refused(
      `${nodeA} of hidden size ${hidden} has ${WEIGHTS.get(index)} of shape ` +
        `${shapeText(value.shape)}, not ${expected.join(' or ')}; the file is crafted or damaged: re-export the model`,
    );
  }
  for (const [a, b] of SAME_SHAPE) {
    if (!shapes.has(a) || !shapes.has(b)) continue;
    const [first, second] = [shapes.get(a), shapes.get(b)];
    if (first.length === second.length && first.every((d, i) => d.c === second[i].c)) continue;
    throw new Refused(
      `${nodeA} has ${WEIGHTS.get(a)} of shape ${shapeText(first)} and ` +
        `${WEIGHTS.get(b)} of shape ${shapeText(second)}, which must be alike; the file is crafted ` +
        'or damaged: re-export the model',
    );
  }
}

// Whether `shape` is `wanted` (null: any size), every size known exactly.
function fits(shape, wanted) {
  return (
    shape.length === wanted.length &&
    shape.every((d, i) => d.const && d.exact && (wanted[i] === null || d.c === wanted[i]))
  );
}
