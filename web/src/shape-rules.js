// How each operator a nextword graph may use changes shapes, as bounds: one function per operator, as
// nextword/runtime/shape_rules.py (same rules, same messages). Each rule takes the walk's context
// (get, need, ints, cost, stateWidth: see src/graph-bounds.js) and a node, and returns a Value per
// output, or throws Refused.

import {
  broadcast,
  Dim,
  floorDiv,
  MAX_VALUES,
  normalizeAxis,
  ONE,
  plus,
  product,
  Refused,
  saturated,
  upper,
  Value,
} from './dims.js';
import { lstmWeights } from './lstm-shapes.js';
import { BOOL, FLOAT, INT32, INT64, STRING, UINT8 } from './onnx-graph.js';

const BIG_END = 1n << 31n; // a Slice end at least this large means "to the end"
const INTEGERS = [INT64, INT32, BOOL];

/** What an initializer or a Constant node's tensor is: fixed dims, and small integer values. */
export function constantValue(tensor) {
  let values = null;
  if (tensor.values !== null && tensor.dims.length <= 1 && INTEGERS.includes(tensor.dataType)) {
    values = tensor.values.map((v) => new Dim(v));
  }
  return new Value(
    tensor.dims.map((d) => new Dim(d)),
    tensor.dataType,
    values,
  );
}

const attr = (node, name) => node.attributes.get(name) ?? null;
/** An integer attribute (a bigint), or `fallback` when absent. */
const attrInt = (node, name, fallback) => attr(node, name)?.i ?? fallback;

function present(ctx, node) {
  return node.inputs.flatMap((name, i) => (name ? [ctx.need(node, i)] : []));
}

function elementwise(ctx, node, dtype = null, arith = null) {
  const inputs = present(ctx, node);
  if (!inputs.length) throw new Refused(`a ${node.opType} node has no inputs; the graph is invalid`);
  const shape = broadcast(inputs.map((v) => v.shape));
  ctx.cost(product(shape), node);
  let values = null;
  let [a, b] = inputs.length === 2 ? [inputs[0].values, inputs[1].values] : [null, null];
  if (arith && a !== null && b !== null && shape.length <= 1) {
    const n = !shape.length ? 1n : shape[0].const && shape[0].exact ? shape[0].c : -1n;
    const fits = (list) => BigInt(list.length) === 1n || BigInt(list.length) === n;
    if (n > 0n && n <= BigInt(MAX_VALUES) && fits(a) && fits(b)) {
      const count = Number(n);
      const spread = (list) => Array.from({ length: count }, (_, i) => list[i % list.length]);
      [a, b] = [spread(a), spread(b)];
      values = a.map((x, i) => (x === null || b[i] === null ? null : arith(x, b[i])));
    }
  }
  if (dtype === null) {
    dtype = node.opType === 'Where' && inputs.length > 1 ? inputs[1].dtype : inputs[0].dtype;
  }
  return [new Value(shape, dtype, values)];
}

function mulValues(x, y) {
  const total = x.mul(y);
  return total.const || total.c > 0n ? total : null; // a negative size is not a size
}

function addValues(x, y) {
  return x.const && y.const ? saturated(x.c + y.c, 0, 0, x.exact && y.exact) : null;
}

function cast(ctx, node) {
  const value = ctx.need(node, 0);
  const dtype = attr(node, 'to')?.i != null ? Number(attr(node, 'to').i) : value.dtype;
  return [new Value(value.shape, dtype, INTEGERS.includes(dtype) ? value.values : null)];
}

function constantNode(ctx, node) {
  const has = (name) => node.attributes.has(name);
  if (has('value') && attr(node, 'value').tensors.length)
    return [constantValue(attr(node, 'value').tensors[0])];
  if (has('value_int') && attr(node, 'value_int').i !== null) {
    return [new Value([], INT64, [new Dim(attr(node, 'value_int').i)])];
  }
  if (has('value_ints') && attr(node, 'value_ints').ints !== null) {
    const ints = attr(node, 'value_ints').ints;
    const values = ints.length <= MAX_VALUES ? ints.map((v) => new Dim(v)) : null;
    return [new Value([new Dim(ints.length)], INT64, values)];
  }
  if (has('value_float')) return [new Value([], FLOAT)];
  if (has('value_floats') && attr(node, 'value_floats').floats !== null) {
    return [new Value([new Dim(attr(node, 'value_floats').floats)], FLOAT)];
  }
  if (has('value_strings')) return [new Value([new Dim(attr(node, 'value_strings').strings.length)], STRING)];
  if (has('value_string')) return [new Value([], STRING)];
  throw new Refused('a Constant node holds no value this runtime can bound; the graph is invalid');
}

function concat(ctx, node) {
  const inputs = present(ctx, node);
  if (!inputs.length || new Set(inputs.map((v) => v.shape.length)).size !== 1 || !inputs[0].shape.length) {
    throw new Refused('a Concat node joins tensors of different or zero rank; the graph is invalid');
  }
  const rank = inputs[0].shape.length;
  const axis = normalizeAxis(attrInt(node, 'axis', 0n), rank, 'Concat');
  const shape = [...inputs[0].shape];
  for (const value of inputs.slice(1)) {
    value.shape.forEach((d, i) => {
      shape[i] = i === axis ? plus(shape[i], d) : upper(shape[i], d);
    });
  }
  ctx.cost(product(shape), node);
  let values = null;
  if (rank === 1 && inputs.every((v) => v.values !== null)) {
    const joined = inputs.flatMap((v) => v.values);
    values = joined.length <= MAX_VALUES ? joined : null;
  }
  return [new Value(shape, inputs[0].dtype, values)];
}

function gather(ctx, node) {
  const data = ctx.need(node, 0);
  const indices = ctx.need(node, 1);
  if (!data.shape.length) throw new Refused('a Gather node reads from a scalar; the graph is invalid');
  const axis = normalizeAxis(attrInt(node, 'axis', 0n), data.shape.length, 'Gather');
  const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
  ctx.cost(product(shape), node);
  let values = null;
  const picks = ctx.ints(node, 1);
  if (data.values !== null && data.shape.length === 1 && picks !== null && indices.shape.length <= 1) {
    const n = BigInt(data.values.length);
    if (picks.every((i) => -n <= i && i < n)) {
      values = picks.map((i) => data.values[Number(i < 0n ? i + n : i)]);
    }
  }
  return [new Value(shape, data.dtype, values)];
}

function shapeOp(ctx, node) {
  const data = ctx.need(node, 0);
  const rank = BigInt(data.shape.length);
  const clamp = (x) => {
    const v = x < 0n ? x + rank : x;
    return Number(v < 0n ? 0n : v > rank ? rank : v);
  };
  const dims = data.shape.slice(clamp(attrInt(node, 'start', 0n)), clamp(attrInt(node, 'end', rank)));
  return [new Value([new Dim(dims.length)], INT64, dims)];
}

function reshape(ctx, node) {
  const data = ctx.need(node, 0);
  const target = ctx.need(node, 1);
  if (target.shape.length !== 1 || !target.shape[0].const || !target.shape[0].exact) {
    throw new Refused(
      "a Reshape node's target shape has no fixed length; the graph's sizes cannot be bounded",
    );
  }
  const numel = product(data.shape);
  const allowzero = Boolean(attrInt(node, 'allowzero', 0n));
  const declared = target.shape[0].c > 0n ? target.shape[0].c : 0n;
  const length = target.values !== null ? BigInt(target.values.length) : declared;
  if (length > BigInt(MAX_VALUES)) {
    throw new Refused(`a Reshape node asks for ${length} dimensions; the graph is invalid`);
  }
  const wanted = target.values ?? Array(Number(length)).fill(null);
  const out = [];
  let infer = null;
  wanted.forEach((want, i) => {
    if (want === null)
      out.push(new Dim(numel.c, numel.b, numel.t, false)); // at most the whole tensor
    else if (want.const && want.c === 0n && !allowzero) out.push(i < data.shape.length ? data.shape[i] : ONE);
    else if (want.const && want.c === -1n) {
      if (infer !== null) {
        throw new Refused('a Reshape node infers two dimensions (-1 twice); the graph is invalid');
      }
      infer = i;
      out.push(null);
    } else if (want.c < 0n) {
      throw new Refused(`a Reshape node asks for dimension ${want.c}; the graph is invalid`);
    } else out.push(want);
  });
  if (infer !== null) out[infer] = divide(numel, product(out.filter((d) => d !== null && d.exact)));
  return [new Value(out, data.dtype)];
}

/** The size a Reshape infers for -1: numel / known, or a bound on it. */
function divide(numel, known) {
  if (known.c > 0n && numel.b >= known.b && numel.t >= known.t) {
    const exact = numel.exact && known.exact && numel.c % known.c === 0n;
    return saturated(-floorDiv(-numel.c, known.c), numel.b - known.b, numel.t - known.t, exact);
  }
  return new Dim(numel.c, numel.b, numel.t, false); // the other dimensions are at least 1
}

function slice(ctx, node) {
  const data = ctx.need(node, 0);
  const rank = data.shape.length;
  const starts = ctx.ints(node, 1);
  const ends = ctx.ints(node, 2);
  const count = ctx.need(node, 1).shape; // starts is 1-D: its length is the number of axes sliced
  const n = count.length === 1 && count[0].const && count[0].exact ? count[0].c : null;
  let axes;
  if (ctx.get(node, 3) !== null) axes = ctx.ints(node, 3);
  else axes = n === null ? null : Array.from({ length: Number(n) }, (_, i) => BigInt(i));
  let steps;
  if (ctx.get(node, 4) !== null) steps = ctx.ints(node, 4);
  else steps = axes === null ? null : axes.map(() => 1n);
  const shape = [...data.shape];
  if (axes === null) {
    // unknown axes: any dimension may shrink
    return [
      new Value(
        shape.map((d) => new Dim(d.c, d.b, d.t, false)),
        data.dtype,
      ),
    ];
  }
  const where = axes.map((a) => normalizeAxis(a, rank, 'Slice'));
  const known = starts !== null && ends !== null && steps !== null;
  if (
    known &&
    !(starts.length === ends.length && ends.length === where.length && where.length === steps.length)
  ) {
    throw new Refused("a Slice node's starts, ends, axes and steps differ in length; the graph is invalid");
  }
  let values = null;
  where.forEach((axis, k) => {
    const d = shape[axis];
    if (known && steps[k] !== 0n && d.const && d.exact) {
      const picked = sliceRange(d.c, starts[k], ends[k], steps[k]);
      shape[axis] = new Dim(picked.length);
      if (rank === 1 && data.values !== null && BigInt(data.values.length) === d.c) {
        values = picked.indices().map((i) => data.values[Number(i)]);
      }
    } else if (known && steps[k] === 1n && starts[k] === 0n && ends[k] >= BIG_END) {
      // the whole dimension
    } else shape[axis] = new Dim(d.c, d.b, d.t, false);
  });
  return [new Value(shape, data.dtype, values)];
}

/** The indices ONNX Slice picks along one axis of size `dim`, as Python's range: {length, indices()}. */
function sliceRange(dim, start, end, step) {
  const clamp = (x, low, high) => {
    const below = x > high ? high : x; // Python's max(low, min(high, x))
    return below < low ? low : below;
  };
  start = start < 0n ? start + dim : start;
  end = end < 0n ? end + dim : end;
  const [from, to] =
    step > 0n
      ? [clamp(start, 0n, dim), clamp(end, 0n, dim)]
      : [clamp(start, -1n, dim - 1n), clamp(end, -1n, dim - 1n)];
  const span = step > 0n ? to - from : from - to;
  const magnitude = step > 0n ? step : -step;
  const length = span > 0n ? (span + magnitude - 1n) / magnitude : 0n;
  const indices = () => Array.from({ length: Number(length) }, (_, i) => from + BigInt(i) * step);
  return { length, indices };
}

function squeeze(ctx, node) {
  const data = ctx.need(node, 0);
  const rank = data.shape.length;
  let axes = ctx.ints(node, 1);
  if (axes === null && ctx.get(node, 1) === null) {
    const given = attr(node, 'axes');
    axes = given !== null ? given.ints : data.shape.flatMap((d, i) => (d.equals(ONE) ? [BigInt(i)] : []));
  }
  if (axes === null) {
    throw new Refused("a Squeeze node's axes are not constant; the graph's sizes cannot be bounded");
  }
  const drop = new Set(axes.map((a) => normalizeAxis(a, rank, 'Squeeze')));
  const shape = data.shape.filter((_, i) => !drop.has(i));
  const values = data.values !== null && data.values.length === 1 ? data.values : null;
  return [new Value(shape, data.dtype, values)];
}

function unsqueeze(ctx, node) {
  const data = ctx.need(node, 0);
  let axes = ctx.ints(node, 1);
  if (axes === null && ctx.get(node, 1) === null) axes = attr(node, 'axes')?.ints ?? null;
  if (axes === null || axes.length > MAX_VALUES) {
    throw new Refused("an Unsqueeze node's axes are not constant; the graph's sizes cannot be bounded");
  }
  const rank = data.shape.length + axes.length;
  const where = new Set(axes.map((a) => normalizeAxis(a, rank, 'Unsqueeze')));
  if (where.size !== axes.length)
    throw new Refused('an Unsqueeze node repeats an axis; the graph is invalid');
  let next = 0;
  const shape = Array.from({ length: rank }, (_, i) => (where.has(i) ? ONE : data.shape[next++]));
  const values = data.values !== null && data.shape.length === 0 ? data.values : null;
  return [new Value(shape, data.dtype, values)];
}

function transpose(ctx, node) {
  const data = ctx.need(node, 0);
  const rank = data.shape.length;
  const given = attr(node, 'perm');
  const perm = given !== null ? given.ints : Array.from({ length: rank }, (_, i) => BigInt(rank - 1 - i));
  const sorted = perm && [...perm].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (perm === null || sorted.length !== rank || sorted.some((p, i) => p !== BigInt(i))) {
    const shown = perm === null ? 'None' : `[${perm.join(', ')}]`;
    throw new Refused(
      `a Transpose node's perm ${shown} is not a permutation of ${rank} axes; the graph is invalid`,
    );
  }
  return [
    new Value(
      perm.map((p) => data.shape[Number(p)]),
      data.dtype,
    ),
  ];
}

function matmul(ctx, node) {
  const a = ctx.need(node, 0);
  const b = ctx.need(node, 1);
  if (!a.shape.length || !b.shape.length)
    throw new Refused('a MatMul node multiplies a scalar; the graph is invalid');
  const left = a.shape.length > 1 ? a.shape : [ONE, ...a.shape];
  const right = b.shape.length > 1 ? b.shape : [...b.shape, ONE];
  let shape = [...broadcast([left.slice(0, -2), right.slice(0, -2)]), left.at(-2), right.at(-1)];
  const inner = upper(left.at(-1), right.at(-2));
  ctx.cost(product(shape).mul(inner), node);
  if (a.shape.length === 1) shape = [...shape.slice(0, -2), shape.at(-1)];
  if (b.shape.length === 1) shape = shape.slice(0, -1);
  return [new Value(shape, node.opType === 'MatMulInteger' ? INT32 : a.dtype)];
}

function dequantize(ctx, node) {
  const data = ctx.need(node, 0);
  const scale = ctx.need(node, 1);
  ctx.cost(product(data.shape), node);
  return [new Value(data.shape, scale.dtype)];
}

function dynamicQuantize(ctx, node) {
  const data = ctx.need(node, 0);
  ctx.cost(product(data.shape), node);
  return [new Value(data.shape, UINT8), new Value([], FLOAT), new Value([], UINT8)];
}

/** ONNX LSTM, and com.microsoft DynamicQuantizeLSTM (weights stored transposed, int8). */
function lstm(ctx, node) {
  const op = node.opType;
  const x = ctx.need(node, 0);
  const r = ctx.need(node, 2);
  ctx.need(node, 1); // the input weights: sized as an initializer
  const quantized = op === 'DynamicQuantizeLSTM';
  if (x.shape.length !== 3 || r.shape.length !== 3) {
    throw new Refused(`an ${op} node's input or recurrent weights are not rank 3; the graph is invalid`);
  }
  if (ctx.get(node, 4) !== null) {
    throw new Refused(
      `an ${op} node takes sequence_lens, which nextword step graphs never do (a constant there cannot ` +
        'follow the batch); the file is crafted or damaged: re-export the model',
    );
  }
  let width = quantized ? r.shape[1] : r.shape[2];
  const hidden = attr(node, 'hidden_size')?.i ?? null;
  if (hidden !== null) width = new Dim(hidden);
  if (!(width.const && width.exact && width.c > 0n)) {
    throw new Refused(`an ${op} node has no fixed hidden size; the graph's sizes cannot be bounded`);
  }
  ctx.stateWidth(width.c, `the hidden size of an ${op} node`);
  const directions = new Dim(attr(node, 'direction')?.s === 'bidirectional' ? 2n : 1n);
  lstmWeights(ctx, node, width.c, directions.c, x.shape[2], quantized);
  const batchFirst = Boolean(attrInt(node, 'layout', 0n));
  const [steps, batch] = batchFirst ? [x.shape[1], x.shape[0]] : [x.shape[0], x.shape[1]];
  ctx.cost(product([steps, batch, directions, new Dim(4n), width, plus(x.shape[2], width)]), node);
  const y = batchFirst ? [batch, steps, directions, width] : [steps, directions, batch, width];
  const state = batchFirst ? [batch, directions, width] : [directions, batch, width];
  return [new Value(y, x.dtype), new Value(state, x.dtype), new Value(state, x.dtype)];
}

/** The rule of each operator, by op type (domain-qualified outside the default domain). */
export const RULES = new Map([
  ['Identity', (ctx, node) => [ctx.need(node, 0)]],
  ['Cast', cast],
  ['Constant', constantNode],
  ['Add', (ctx, node) => elementwise(ctx, node, null, addValues)],
  ['Mul', (ctx, node) => elementwise(ctx, node, null, mulValues)],
  ['And', (ctx, node) => elementwise(ctx, node, BOOL)],
  ['Less', (ctx, node) => elementwise(ctx, node, BOOL)],
  ['Not', (ctx, node) => elementwise(ctx, node, BOOL)],
  ['Where', (ctx, node) => elementwise(ctx, node)],
  ['Concat', concat],
  ['Gather', gather],
  ['Shape', shapeOp],
  ['Reshape', reshape],
  ['Slice', slice],
  ['Squeeze', squeeze],
  ['Unsqueeze', unsqueeze],
  ['Transpose', transpose],
  ['MatMul', matmul],
  ['MatMulInteger', matmul],
  ['DequantizeLinear', dequantize],
  ['DynamicQuantizeLinear', dynamicQuantize],
  ['LSTM', lstm],
  ['com.microsoft:DynamicQuantizeLSTM', lstm],
]);
