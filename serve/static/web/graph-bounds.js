// Upper bounds on what a graph can make onnxruntime-web allocate and compute, worked out before it sees
// the file: nextword/runtime/graph_bounds.py, with the same rules and messages (the fixes they suggest
// name this package's limits). A few kilobytes of ONNX can ask for gigabytes (Concat doubling a constant
// 34 times, a MatMul outer product of two constants), and onnxruntime folds constant subgraphs while it
// builds the session: in a page the tab's memory cap stops that, under Node nothing does.
//
// The walk visits the nodes in dependency order, every tensor's shape known as an upper bound in terms
// of the batch size B and the number of positions T (src/dims.js), following the small integer tensors
// that Shape, Gather, Concat... compute for Reshape targets (src/shape-rules.js), and refuses a graph
// when a state width, the LSTM hidden size or the vocabulary is over its limit; a tensor grows faster
// than B * T; one tensor, all tensors together or the multiply-accumulates of one step exceed the
// limits (per batch row and position); or a shape cannot be bounded at all.

import { Dim, product, Refused, shapeText, Value } from './dims.js';
import { ModelFileError } from './errors.js';
import { FLOAT, INT64, ITEM_BYTES } from './onnx-graph.js';
import { commas, pyRepr, shorten } from './pyrepr.js';
import { constantValue, RULES } from './shape-rules.js';

const STATE = /^[hc]_\p{Nd}+$/u; // Python's \d: any decimal digit
const DEFAULT_DOMAINS = ['', 'ai.onnx'];
const UNBOUNDED_HINT = 'if you trust the file, load it with { limits: { boundGraph: false } }';

/** The sentence that tells a user how to raise limit `name` for a file they trust. */
function widenHint(name) {
  return `if you trust the file, raise it with load(..., { limits: { ${name}: ... } })`;
}

/**
 * Work out upper bounds for `graph` (src/onnx-graph.js's readGraph) and refuse it when they exceed
 * `limits`: {largestTensorBytes, totalBytes, macsPerToken (bigints), nodes}, per batch row and position.
 * Throws ModelFileError naming the file `name`, the tensor or node, and the limit to raise.
 */
export function boundGraph(graph, name, limits) {
  try {
    return new Bounder(graph, limits).run();
  } catch (error) {
    if (error instanceof Refused) throw new ModelFileError(`${name}: ${error.message}`);
    if (error instanceof ModelFileError) throw error;
    throw new ModelFileError(
      `${name}: the graph's sizes could not be bounded (internal error ${error?.name}: ` +
        `${shorten(String(error?.message))}); ${UNBOUNDED_HINT}`,
    );
  }
}

class Bounder {
  constructor(graph, limits) {
    this.graph = graph;
    this.limits = limits;
    this.known = new Map();
    this.largest = 0n;
    this.total = 0n;
    this.macs = 0n;
  }

  // ------------------------------------------------------------------- accounting

  run() {
    const { limits, graph } = this;
    if (graph.nodes.length > limits.maxNodes) {
      throw new Refused(
        `the graph has ${commas(graph.nodes.length)} nodes, over the limit of ${commas(limits.maxNodes)}; ` +
          widenHint('maxNodes'),
      );
    }
    for (const tensor of graph.initializers) this.set(tensor.name, constantValue(tensor), 'an initializer');
    this.inputs();
    for (const node of this.ordered()) {
      const outputs = this.node(node);
      if (node.outputs.length > outputs.length) {
        throw new Refused(
          `a ${node.opType} node names ${node.outputs.length} outputs but makes at most ${outputs.length}; ` +
            'the graph is invalid',
        );
      }
      node.outputs.forEach((out, i) => {
        if (out) this.set(out, outputs[i], `a ${node.opType} node`);
      });
    }
    this.outputs();
    if (this.total > BigInt(limits.maxGraphBytes)) {
      throw new Refused(
        `the graph's tensors together take up to ${commas(this.total)} bytes per batch row and position, ` +
          `over the ${commas(limits.maxGraphBytes)}-byte limit; ${widenHint('maxGraphBytes')}`,
      );
    }
    if (this.macs > BigInt(limits.maxMacsPerToken)) {
      throw new Refused(
        `one step of the graph takes up to ${commas(this.macs)} multiply-accumulates per batch row and ` +
          `position, over the limit of ${commas(limits.maxMacsPerToken)}; ${widenHint('maxMacsPerToken')}`,
      );
    }
    const { largest, total, macs } = this;
    return { largestTensorBytes: largest, totalBytes: total, macsPerToken: macs, nodes: graph.nodes.length };
  }

  set(name, value, madeBy) {
    if (this.known.has(name) && madeBy !== 'an initializer') {
      throw new Refused(`tensor ${shorten(name)} is written twice (by ${madeBy}); the graph is invalid`);
    }
    const numel = product(value.shape);
    linear(numel, `tensor ${shorten(name)} (${madeBy})`);
    const size = numel.c * BigInt(ITEM_BYTES.get(value.dtype) ?? 8);
    const cap = this.limits.maxTensorBytes;
    if (size > BigInt(cap)) {
      throw new Refused(
        `tensor ${shorten(name)} (${madeBy}, shape ${shapeText(value.shape)}) takes up to ${commas(size)} ` +
          `bytes per batch row and position, over the ${commas(cap)}-byte limit; ${widenHint('maxTensorBytes')}`,
      );
    }
    if (size > this.largest) this.largest = size;
    this.total += size;
    this.known.set(name, value);
  }

  cost(macs, node) {
    linear(macs, `the work of a ${node.opType} node`);
    this.macs += macs.c;
  }

  // ------------------------------------------------------------------- the signature

  inputs() {
    const B = new Dim(1n, 1, 0);
    const T = new Dim(1n, 0, 1);
    for (const info of this.graph.inputs) {
      if (this.known.has(info.name)) continue; // an initializer listed as an input (old IR): its default
      let value;
      if (info.name === 'input_ids') value = new Value([B, T], info.elemType || INT64);
      else if (info.name === 'logits_from') value = new Value([], info.elemType || INT64);
      else if (STATE.test(info.name)) {
        const width = info.dims?.length ? info.dims.at(-1) : null;
        if (typeof width !== 'bigint' || width < 1n) {
          throw new Refused(`state input ${shorten(info.name)} has no fixed width (${pyRepr(info.dims)})`);
        }
        this.stateWidth(width, `state input ${shorten(info.name)}`);
        value = new Value([B, new Dim(width)], info.elemType || FLOAT);
      } else {
        throw new Refused(
          `graph input ${shorten(info.name)} is not part of the nextword step signature ` +
            '(input_ids, logits_from, h_0, c_0, ...)',
        );
      }
      this.set(info.name, value, 'a graph input');
    }
  }

  stateWidth(width, what) {
    const cap = this.limits.maxStateWidth;
    if (width > BigInt(cap)) {
      throw new Refused(
        `${what} is ${commas(width)} wide, over the limit of ${commas(cap)}; ${widenHint('maxStateWidth')}`,
      );
    }
  }

  outputs() {
    const cap = this.limits.maxVocabSize;
    for (const info of this.graph.outputs) {
      const declared = info.dims?.length ? info.dims.at(-1) : null;
      const fixed = typeof declared === 'bigint';
      if (info.name === 'logits' && fixed && declared > BigInt(cap)) {
        throw new Refused(
          `the logits are declared ${commas(declared)} wide (the vocabulary), over the limit of ` +
            `${commas(cap)}; ${widenHint('maxVocabSize')}`,
        );
      }
      const value = this.known.get(info.name);
      if (value === undefined) {
        throw new Refused(`graph output ${shorten(info.name)} is not computed by any node`);
      }
      const real = value.shape.length ? value.shape.at(-1) : null;
      if (fixed && real !== null && real.exact && real.const && real.c !== declared) {
        throw new Refused(
          `graph output ${shorten(info.name)} is declared ${declared} wide but the graph makes it ` +
            `${real.c} wide; the file is crafted or damaged: re-export the model`,
        );
      }
    }
  }

  /** The nodes in dependency order (Kahn's algorithm, as Python's); refuses cycles and dangling inputs. */
  ordered() {
    const nodes = this.graph.nodes;
    const producer = new Map();
    nodes.forEach((node, i) => {
      for (const out of node.outputs) {
        if (out && (producer.has(out) || this.known.has(out))) {
          throw new Refused(`tensor ${shorten(out)} is written twice; the graph is invalid`);
        }
        if (out) producer.set(out, i);
      }
    });
    const waiting = new Array(nodes.length).fill(0);
    const users = new Map();
    nodes.forEach((node, i) => {
      for (const name of node.inputs) {
        if (!name || this.known.has(name)) continue;
        if (!producer.has(name)) {
          throw new Refused(`node input ${shorten(name)} is not computed by any node; the graph is invalid`);
        }
        waiting[i] += 1;
        const from = producer.get(name);
        if (!users.has(from)) users.set(from, []);
        users.get(from).push(i);
      }
    });
    const ready = waiting.flatMap((count, i) => (count === 0 ? [i] : []));
    const order = [];
    while (ready.length) {
      const i = ready.pop();
      order.push(nodes[i]);
      for (const user of users.get(i) ?? []) {
        waiting[user] -= 1;
        if (waiting[user] === 0) ready.push(user);
      }
    }
    if (order.length !== nodes.length) {
      throw new Refused('the graph has a cycle; the file is crafted or damaged: re-export the model');
    }
    return order;
  }

  // ------------------------------------------------------------------- values (the rules' context)

  get(node, index) {
    if (index >= node.inputs.length || !node.inputs[index]) return null;
    const value = this.known.get(node.inputs[index]);
    if (value === undefined) throw new RangeError(`KeyError: ${node.inputs[index]}`);
    return value;
  }

  need(node, index) {
    const value = this.get(node, index);
    if (value === null) {
      throw new Refused(`a ${node.opType} node lacks its input ${index}; the graph is invalid`);
    }
    return value;
  }

  /** The constant integer values (bigints) of input `index`, or null when they are not known. */
  ints(node, index) {
    const value = this.get(node, index);
    if (value === null || value.values === null || value.values.some((v) => v === null || !v.const)) {
      return null;
    }
    return value.values.map((v) => v.c);
  }

  // ------------------------------------------------------------------- operators

  node(node) {
    const op = DEFAULT_DOMAINS.includes(node.domain) ? node.opType : `${node.domain}:${node.opType}`;
    const rule = RULES.get(op);
    if (rule === undefined) {
      throw new Refused(
        `the sizes of operator ${shorten(op)} are not modelled, so the graph's memory cannot be bounded; ` +
          UNBOUNDED_HINT,
      );
    }
    return rule(this, node);
  }
}

/** Refuse a size that grows faster than B * T (an outer product over the batch or the positions). */
function linear(size, what) {
  if (size.b > 1 || size.t > 1) {
    const grows = size.b > 1 ? 'batch size' : 'number of positions';
    throw new Refused(
      `${what} grows with the square of the ${grows} (${size}), which a nextword step never does; ` +
        'the graph is crafted or damaged: re-export the model',
    );
  }
}
