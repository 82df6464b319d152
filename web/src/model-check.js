// Checks a model file before onnxruntime sees it: the checks of nextword/runtime/model_check.py, with
// the same messages (the fixes they suggest name this package's options). Returns the file's metadata,
// which onnxruntime-web does not expose.

import { ModelFileError } from './errors.js';
import { boundGraph } from './graph-bounds.js';
import { DEFAULT_ALLOWED_OPS, resolveLimits } from './limits.js';
import { mergeGraphs, readGraph, readTensor } from './onnx-graph.js';
import { parsePyJson, PyJsonError } from './pyjson.js';
import { Budget, fields, LEN, MAX_DEPTH, strictUtf8, text, VARINT, WireError } from './protobuf.js';
import { commas, pyLen, pyHead, strRepr } from './pyrepr.js';
import { checkFloats, checkTensor, refuseSparse } from './tensor-check.js';

export { DEFAULT_ALLOWED_OPS, DEFAULT_LIMITS, MiB, resolveLimits } from './limits.js';

export const KEY_FORMAT_VERSION = 'nextword.format_version';
export const KEY_TOKENIZER = 'nextword.tokenizer';
export const KEY_GENERATION = 'nextword.generation';
export const KEY_CACHE = 'nextword.cache'; // continuous-cache settings; absent: no cache
export const JSON_KEYS = [
  'nextword.config',
  'nextword.metrics',
  'nextword.parity',
  'nextword.versions',
  'nextword.quality',
  KEY_GENERATION,
  KEY_CACHE,
];
export const SUPPORTED_FORMAT_VERSIONS = [1, 2, 3]; // 3: the cache settings may use similarity and gate
const FORMAT_VERSION = /^[0-9]{1,9}$/;
// Objects and lists nested in one JSON metadata value, at most (Python's MAX_JSON_DEPTH): the exporter
// writes 5, and a value nested hundreds deep breaks whatever serializes it again.
export const MAX_JSON_DEPTH = 32;
const DEFAULT_DOMAINS = ['', 'ai.onnx'];

// Field numbers from onnx.proto, and the wire type each field we read must have.
const MODEL = { irVersion: 1, graph: 7, opsetImport: 8, metadata: 14, trainingInfo: 20, functions: 25 };
const WIRES = {
  model: { 1: VARINT, 7: LEN, 8: LEN, 14: LEN, 20: LEN, 25: LEN },
  opset: { 1: LEN, 2: VARINT },
  entry: { 1: LEN, 2: LEN },
  graph: { 1: LEN, 5: LEN, 15: LEN },
  node: { 4: LEN, 5: LEN, 7: LEN },
  attribute: { 5: LEN, 6: LEN, 10: LEN, 11: LEN, 22: LEN, 23: LEN },
  sparse: { 1: LEN, 2: LEN, 3: [VARINT, LEN] },
};

/** Python's `_short`: repr of a text cut to `limit` characters. */
export function short(value, limit = 80) {
  return strRepr(pyLen(value) <= limit ? value : `${pyHead(value, limit)}...`);
}

/**
 * Check a model file's bytes; return its metadata: {values (key -> text), json (the JSON entries, parsed),
 * formatVersion}, as the Python runtime's parse_metadata, and the graph's bounds (src/graph-bounds.js).
 * Throws ModelFileError naming the file, the problem and the fix. `name` names the file in messages.
 * @param {string} name
 * @param {Uint8Array} data
 * @param {object} [limits] caps and ranges; those left out take DEFAULT_LIMITS' values (resolveLimits)
 * @returns {{values: Map<string, string>, json: Map<string, Map<string, unknown>>, formatVersion: number,
 *   bounds: object | null}}
 */
export function checkModelFile(name, data, limits) {
  limits = resolveLimits(limits ?? undefined); // a partial one read a missing cap as undefined (TypeError)
  if (data.length > limits.maxFileBytes)
    throw new ModelFileError(tooBig(name, data.length, limits.maxFileBytes));
  if (!data.length)
    throw new ModelFileError(`${name} is empty (0 bytes); re-download or re-export the model`);
  const budget = new Budget();
  let summary;
  try {
    summary = parseModel(data, budget); // the whole file, graphs included, before the first check
  } catch (error) {
    if (error instanceof WireError && String.fromCharCode(...data.subarray(4, 8)) === 'ORTM')
      // not ONNX, and marked (bytes 4-8) as onnxruntime's own format, a FlatBuffer
      throw new ModelFileError(
        `${name} is in onnxruntime's ORT format (convert_onnx_models_to_ort's output), not ONNX: ` +
          'nextword reads the .onnx file it was converted from',
      );
    if (error instanceof WireError) throw new ModelFileError(corrupt(name, error));
    throw error;
  }
  const meta = checkMetadata(name, summary.metadata, limits, isStepGraph(mergeGraphs(summary.decoded)));
  checkVersions(name, summary, limits);
  if (!summary.graphs.length)
    throw new ModelFileError(`${name} has no graph; re-export the model with \`nextword export\``);
  if (summary.functions || summary.trainingInfo) {
    const what = summary.functions ? 'model-local functions' : 'training information';
    throw new ModelFileError(
      `${name} contains ${what}, which nextword model files never carry; re-export the model with \`nextword export\``,
    );
  }
  const allowed = new Set(limits.allowedOps.map(([domain, op]) => `${domain}\u0000${op}`));
  // re-reads what the parse counted; a refused operator names the others of the top-level graphs
  const walker = new GraphWalker(name, data, allowed, new Budget(), summary.decoded);
  try {
    summary.graphs.forEach(([start, end], i) => {
      walker.graph(start, end, 1);
      checkFloats(summary.decoded[i], data, name); // each graph's nodes read its own initializers
    });
  } catch (error) {
    if (error instanceof WireError) throw new ModelFileError(corrupt(name, error));
    throw error;
  }
  // before onnxruntime-web folds and sizes anything; null when limits.boundGraph is off
  meta.bounds = limits.boundGraph ? boundGraph(mergeGraphs(summary.decoded), name, limits) : null;
  return meta;
}

export function tooBig(name, size, cap, stopped = false) {
  // stopped: a download without a declared length, cut off once past the limit (size: what was read)
  const what = stopped
    ? `larger than the ${commas(cap)}-byte limit for model files (its download was stopped at ${commas(size)} bytes)`
    : `${commas(size)} bytes, over the ${commas(cap)}-byte limit for model files`;
  return `${name} is ${what}; if you trust the file, raise it with load(..., { limits: { maxFileBytes: ... } })`;
}

export function corrupt(name, error) {
  return (
    `${name} could not be loaded as an ONNX model: it is not a valid ONNX protobuf (${error.message}); the ` +
    'file is truncated or corrupted, or not a model at all: re-download or re-export it'
  );
}

function parseModel(data, budget) {
  const summary = { irVersion: 0, opsets: [], metadata: [], graphs: [], decoded: [] };
  Object.assign(summary, { functions: 0, trainingInfo: 0 });
  for (const [number, , a, b] of fields(data, 0, data.length, budget, 'model', WIRES.model)) {
    if (number === MODEL.irVersion)
      summary.irVersion = a; // protobuf semantics: the last one wins
    else if (number === MODEL.opsetImport) {
      let domain = '';
      let version = 0;
      for (const [n, , x, y] of fields(data, a, b, budget, 'opset', WIRES.opset)) {
        if (n === 1) domain = text(data, x, y);
        else if (n === 2) version = x;
      }
      summary.opsets.push([domain, version]);
    } else if (number === MODEL.metadata) {
      let key = new Uint8Array(0);
      let value = new Uint8Array(0);
      for (const [n, , x, y] of fields(data, a, b, budget, 'entry', WIRES.entry)) {
        if (n === 1) key = data.subarray(x, y);
        else if (n === 2) value = data.subarray(x, y);
      }
      summary.metadata.push([key, value]);
    } else if (number === MODEL.graph) {
      summary.graphs.push([a, b]);
      summary.decoded.push(readGraph(data, [[a, b]], budget)); // decoded where Python decodes it
    } else if (number === MODEL.functions) summary.functions += 1;
    else if (number === MODEL.trainingInfo) summary.trainingInfo += 1;
  }
  return summary;
}

/** Whether the graph's inputs (initializers left out) and outputs are a nextword step function's, of
 * any format (Python's is_step_graph): a file that has one and no metadata was re-saved by a tool. */
function isStepGraph(graph) {
  const stored = new Set(graph.initializers.map((tensor) => tensor.name));
  const inputs = new Set(graph.inputs.map((value) => value.name).filter((n) => !stored.has(n)));
  const outputs = new Set(graph.outputs.map((value) => value.name));
  const layers = Math.floor([...inputs].filter((n) => /^[hc]_\d+$/.test(n)).length / 2);
  const states = Array.from({ length: layers }, (_, l) => [`h_${l}`, `c_${l}`]).flat();
  const same = (names, expected) => names.size === expected.length && expected.every((n) => names.has(n));
  inputs.delete('logits_from');
  return (
    layers > 0 &&
    same(inputs, ['input_ids', ...states]) &&
    same(outputs, ['logits', ...states.map((n) => `${n}_out`)])
  );
}

function checkMetadata(name, entries, limits, stepGraph) {
  const meta = new Map();
  const rawTokenizer = [];
  const rawJson = new Map(); // key -> raw UTF-8 bytes, for the size caps
  for (const [rawKey, rawValue] of entries) {
    const key = strictUtf8(rawKey);
    if (typeof key === 'number') {
      throw new ModelFileError(
        `${name}: a metadata key (${short(text(rawKey, 0, rawKey.length))}) is not valid UTF-8; the file is ` +
          'corrupted or was not written by nextword: re-export it',
      );
    }
    const value = strictUtf8(rawValue);
    if (typeof value === 'number') {
      throw new ModelFileError(
        `${name}: metadata ${short(key)} is not valid UTF-8 (byte ${value}); the file is corrupted or was ` +
          'not written by nextword: re-export it',
      );
    }
    if (meta.has(key)) {
      throw new ModelFileError(
        `${name}: metadata key ${short(key)} appears more than once, so readers could disagree on its ` +
          'value; re-export the model with `nextword export`',
      );
    }
    meta.set(key, value);
    if (key === KEY_TOKENIZER) rawTokenizer.push(rawValue);
    if (JSON_KEYS.includes(key)) rawJson.set(key, rawValue);
  }
  if (!meta.has(KEY_FORMAT_VERSION) && stepGraph) {
    throw new ModelFileError(
      `${name} has a nextword graph but no nextword metadata (no '${KEY_FORMAT_VERSION}'): a tool that ` +
        're-saved it dropped its metadata_props, which hold the tokenizer and settings (onnx-graphsurgeon, ' +
        'onnx.utils.Extractor and onnx.helper.make_model(graph) do); copy them back from the original file ' +
        'before saving: new.metadata_props.extend(onnx.load("ORIGINAL.onnx").metadata_props)',
    );
  }
  if (!meta.has(KEY_FORMAT_VERSION)) {
    throw new ModelFileError(
      `${name} is not a nextword model (no '${KEY_FORMAT_VERSION}' metadata); export models with \`nextword export\``,
    );
  }
  const version = meta.get(KEY_FORMAT_VERSION);
  if (!FORMAT_VERSION.test(version) || !SUPPORTED_FORMAT_VERSIONS.includes(Number(version))) {
    const shown = FORMAT_VERSION.test(version) ? version : short(version);
    throw new ModelFileError(
      `${name} uses nextword model format ${shown}; this nextword reads [${SUPPORTED_FORMAT_VERSIONS.join(', ')}]. ` +
        'Upgrade nextword or re-export the model with this version',
    );
  }
  if (!meta.has(KEY_TOKENIZER)) {
    throw new ModelFileError(`${name} has no tokenizer ('${KEY_TOKENIZER}' metadata); re-export the model`);
  }
  checkSize(name, 'the embedded tokenizer', rawTokenizer[0], limits.maxTokenizerBytes, 'maxTokenizerBytes');
  const json = new Map();
  for (const key of JSON_KEYS) {
    const text = meta.get(key) ?? '{}';
    checkSize(name, `metadata '${key}'`, rawJson.get(key), limits.maxMetadataBytes, 'maxMetadataBytes');
    let value;
    try {
      value = parsePyJson(text);
    } catch (error) {
      if (!(error instanceof PyJsonError)) throw error;
      if (error.tooDeep) {
        throw new ModelFileError(
          `${name}: metadata '${key}' is JSON nested too deeply to read; the file was not written by ` +
            'nextword: re-export it',
        );
      }
      throw new ModelFileError(
        `${name}: metadata '${key}' is not valid JSON (${short(error.message)}); re-export the model with ` +
          '`nextword export`',
      );
    }
    if (!(value instanceof Map)) throw new ModelFileError(`${name}: metadata '${key}' must be a JSON object`);
    if (tooDeep(value)) {
      throw new ModelFileError(
        `${name}: metadata '${key}' is JSON nested more than ${MAX_JSON_DEPTH} levels deep, which nextword ` +
          'metadata never is; the file was not written by nextword: re-export it',
      );
    }
    json.set(key, value);
  }
  return { values: meta, json, formatVersion: Number(version) };
}

/** Whether objects and lists nest more than MAX_JSON_DEPTH deep in `value` (itself level 1). */
function tooDeep(value) {
  const stack = [[value, 1]];
  while (stack.length) {
    const [item, depth] = stack.pop();
    for (const child of item instanceof Map ? item.values() : item) {
      if (child instanceof Map || Array.isArray(child)) {
        if (depth === MAX_JSON_DEPTH) return true;
        stack.push([child, depth + 1]);
      }
    }
  }
  return false;
}

/** A metadata value over its cap (its UTF-8 bytes, as Python counts them). */
function checkSize(name, what, raw, cap, option) {
  if (raw && raw.length > cap) {
    throw new ModelFileError(
      `${name}: ${what} is ${commas(raw.length)} bytes, over the ${commas(cap)}-byte limit; if you trust the ` +
        `file, raise it with load(..., { limits: { ${option}: ... } })`,
    );
  }
}

function checkVersions(name, summary, limits) {
  let [low, high] = limits.irVersions;
  const ir = summary.irVersion;
  if (!(low <= ir && ir <= high)) {
    const fix =
      ir > high
        ? 'the tool that saved it wrote a newer one (onnx.helper.make_model writes the newest); where the ' +
          `file uses nothing newer, set \`model.ir_version = ${high}\` before saving it`
        : `set \`model.ir_version = ${low}\` before saving it (newer IR versions read older files)`;
    throw new ModelFileError(
      `${name} has ONNX IR version ${ir}; this nextword accepts IR versions ${low}-${high} (what its exporter ` +
        `writes): ${fix}; if you trust the file, widen them with load(..., { limits: { irVersions: ... } })`,
    );
  }
  const versions = summary.opsets.filter(([domain]) => DEFAULT_DOMAINS.includes(domain)).map(([, v]) => v);
  if (!versions.length) {
    throw new ModelFileError(
      `${name} imports no default ONNX opset; re-export the model with \`nextword export\``,
    );
  }
  [low, high] = limits.opsetVersions;
  const bad = versions.filter((v) => !(low <= v && v <= high));
  if (bad.length) {
    throw new ModelFileError(
      `${name} uses ONNX opset ${bad[0]}; this nextword accepts opsets ${low}-${high} (the tested range): ` +
        're-export with `nextword export --opset 17`; if you trust the file, widen them with ' +
        'load(..., { limits: { opsetVersions: ... } })',
    );
  }
}

const LISTED_OPS = 8; // operators a refusal lists in the allowedOps it suggests, at most
const DEFAULT_OPS = new Set(DEFAULT_ALLOWED_OPS.map(([domain, op]) => `${domain}\u0000${op}`));

/**
 * Python's _operator_refused: the refusal of operator [domain, opType]. One that nextword export and
 * quantize_dynamic never write comes from a tool that rewrote the graph: the fix is the exported file,
 * or, for a file one trusts, the allowlist widened with every such operator of the top-level graphs
 * (`top`, decoded) and the graph bounds turned off, as they model only the default allowlist.
 */
function operatorRefused(name, domain, opType, top) {
  const shown = short(domain ? `${domain}:${opType}` : opType);
  if (DEFAULT_OPS.has(`${domain}\u0000${opType}`)) {
    return new ModelFileError(
      `${name} uses the operator ${shown}, which the limits given do not allow; if you trust the file, ` +
        'widen them with load(..., { limits: { allowedOps: ... } })',
    );
  }
  const found = new Map([[`${domain}\u0000${opType}`, [domain, opType]]]);
  for (const node of top.flatMap((graph) => graph.nodes)) {
    const pair = [DEFAULT_DOMAINS.includes(node.domain) ? '' : node.domain, node.opType];
    const key = pair.join('\u0000');
    if (!DEFAULT_OPS.has(key) && !found.has(key)) found.set(key, pair);
  }
  const pairs = [...found.values()].map(([d, op]) => `[${short(d)}, ${short(op)}]`);
  const listed = pairs.slice(0, LISTED_OPS).join(', ') + (pairs.length > LISTED_OPS ? ', ...' : '');
  return new ModelFileError(
    `${name} uses the operator ${shown}, which neither \`nextword export\` nor onnxruntime's quantize_dynamic ` +
      "writes: if a tool rewrote the graph (onnxruntime's optimized_model_filepath, static or QDQ " +
      'quantization, 4-bit quantization...), load the file `nextword export` wrote, which onnxruntime ' +
      'optimizes as it loads; if you trust the file, widen two limits at once: load(..., { limits: { ' +
      `allowedOps: [...DEFAULT_LIMITS.allowedOps, ${listed}], boundGraph: false } }) (DEFAULT_LIMITS: from ` +
      'nextword-web); with allowedOps alone the graph bounds refuse it next, as they do not model those ' +
      "operators' sizes",
  );
}

/** Walks graphs, nodes, attributes and tensors; throws ModelFileError on the first refusal. */
class GraphWalker {
  constructor(name, data, allowed, budget, top) {
    Object.assign(this, { name, data, allowed, budget, top });
  }

  fields(start, end, kind) {
    return fields(this.data, start, end, this.budget, kind, WIRES[kind]);
  }

  enter(depth) {
    if (depth > MAX_DEPTH) throw new WireError(`messages nested more than ${MAX_DEPTH} deep`);
  }

  graph(start, end, depth) {
    this.enter(depth);
    for (const [number, , a, b] of this.fields(start, end, 'graph')) {
      if (number === 1) this.node(a, b, depth + 1);
      else if (number === 5) this.tensor(a, b, depth + 1, 'initializer');
      else if (number === 15) this.sparse(a, b, depth + 1, 'sparse initializer');
    }
  }

  node(start, end, depth) {
    this.enter(depth);
    let opType = '';
    let domain = '';
    const attributes = [];
    for (const [number, , a, b] of this.fields(start, end, 'node')) {
      if (number === 4) opType = text(this.data, a, b);
      else if (number === 7) domain = text(this.data, a, b);
      else if (number === 5) attributes.push([a, b]);
    }
    const keyDomain = DEFAULT_DOMAINS.includes(domain) ? '' : domain;
    if (!this.allowed.has(`${keyDomain}\u0000${opType}`))
      throw operatorRefused(this.name, keyDomain, opType, this.top);
    for (const [a, b] of attributes) this.attribute(a, b, depth + 1, opType);
  }

  attribute(start, end, depth, opType) {
    this.enter(depth);
    const where = `an attribute of a ${opType} node`;
    for (const [number, , a, b] of this.fields(start, end, 'attribute')) {
      if (number === 5 || number === 10) this.tensor(a, b, depth + 1, where);
      else if (number === 6 || number === 11) this.graph(a, b, depth + 1);
      else if (number === 22 || number === 23) this.sparse(a, b, depth + 1, where);
    }
  }

  sparse(start, end, depth, where) {
    this.enter(depth);
    const parts = [null, null, null]; // the last values (field 1) and indices (field 2), as protobuf keeps
    for (const [number, , a, b] of this.fields(start, end, 'sparse')) {
      if (number === 1 || number === 2) parts[number] = readTensor(this.data, a, b, this.budget, depth + 1);
    }
    refuseSparse(this.name, parts[1], parts[2], where);
  }

  tensor(start, end, depth, where) {
    checkTensor(this.name, readTensor(this.data, start, end, this.budget, depth), where);
  }
}
