// What a model file says about itself, validated against its graph: nextword/runtime/model_file.py's
// read_model_info, reading the metadata that src/model-check.js took out of the file (onnxruntime-web
// exposes none) and the input/output signature of the session.

import { cacheFromMetadata } from './cache.js';
import { ModelFileError, NextwordError } from './errors.js';
import { optionsFromMetadata } from './generation.js';
import { requireUtf8 } from './graph-io.js';
import { KEY_CACHE, KEY_GENERATION, KEY_TOKENIZER, short } from './model-check.js';
import { pyRepr, pySorted } from './pyrepr.js';
import { Tokenizer } from './tokenizer.js';

export const INPUT_IDS = 'input_ids';
export const LOGITS_FROM = 'logits_from'; // format 2 on: first position whose logits are computed
export const LOGITS = 'logits';
export const LOGITS_FROM_SINCE = 2;
const STATE_INPUT = /^([hc])_(\d+)$/;

/** Graph input names of the LSTM state, in the order state is passed around. */
export function stateInputNames(layers) {
  return Array.from({ length: layers }, (_, l) => [`h_${l}`, `c_${l}`]).flat();
}

/** Graph output names of the new LSTM state, matching stateInputNames. */
export function stateOutputNames(layers) {
  return stateInputNames(layers).map((name) => `${name}_out`);
}

/** A JSON value from src/pyjson.js as plain JavaScript (Maps to objects, safe integers to numbers). */
export function toPlain(value) {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  if (Array.isArray(value)) return value.map(toPlain);
  if (value instanceof Map) return Object.fromEntries(Array.from(value, ([k, v]) => [k, toPlain(v)]));
  return value;
}

/**
 * Read and check the metadata and the signature of a loaded session (Python's read_model_info).
 * @param {{values: Map<string, string>, json: Map<string, Map<string, unknown>>, formatVersion: number}} metadata
 *   what checkModelFile read
 * @param {{inputMetadata: object[], outputMetadata: object[]}} session
 * @param {string} source names the file in messages
 * @param {{inputs: object[], outputs: object[]} | null} [graph] the declared inputs and outputs
 *   (src/graph-io.js), to refuse names that are not UTF-8 where Python does
 */
export function readModelInfo(metadata, session, source, graph = null) {
  const { values, json, formatVersion: version } = metadata; // checked by checkModelFile
  let tokenizer;
  try {
    tokenizer = Tokenizer.fromJson(values.get(KEY_TOKENIZER));
  } catch (error) {
    if (!(error instanceof NextwordError)) throw error;
    throw new ModelFileError(`${source}: the embedded tokenizer is invalid: ${error.message}`);
  }
  const { stateSizes, vocabSize } = checkSignature(session, source, version, graph);
  if (vocabSize !== tokenizer.size) {
    throw new ModelFileError(
      `${source}: the graph predicts ${vocabSize} classes but the tokenizer has ${tokenizer.size} tokens; the ` +
        'file mixes a graph and a tokenizer from different models',
    );
  }
  return Object.freeze({
    formatVersion: version,
    tokenizer,
    stateSizes,
    vocabSize,
    config: toPlain(json.get('nextword.config')),
    metrics: toPlain(json.get('nextword.metrics')),
    parity: toPlain(json.get('nextword.parity')),
    versions: toPlain(json.get('nextword.versions')),
    quality: toPlain(json.get('nextword.quality')),
    generation: generationDefaults(json.get(KEY_GENERATION), source),
    cache: cacheSettings(json.get(KEY_CACHE), source),
    hasLogitsFrom: version >= LOGITS_FROM_SINCE,
  });
}

/** The file's continuous-cache settings (nextword.cache), null without them; malformed ones refused. */
function cacheSettings(data, source) {
  try {
    const settings = cacheFromMetadata(data);
    return settings && Object.freeze({ ...settings, tuning: toPlain(settings.tuning) });
  } catch (error) {
    if (!(error instanceof NextwordError)) throw error;
    throw new ModelFileError(
      `${source}: metadata '${KEY_CACHE}' holds invalid cache settings: ${short(error.message)}`,
    );
  }
}

function generationDefaults(data, source) {
  let defaults;
  try {
    defaults = optionsFromMetadata(data);
  } catch (error) {
    if (!(error instanceof NextwordError)) throw error;
    throw new ModelFileError(
      `${source}: metadata '${KEY_GENERATION}' holds invalid decoding defaults: ${error.message}`,
    );
  }
  if (defaults.seed !== null)
    throw new ModelFileError(`${source}: metadata '${KEY_GENERATION}' may not fix a seed`);
  return defaults;
}

function checkSignature(session, source, version, graph) {
  if (!session.inputMetadata || !session.outputMetadata) {
    throw new ModelFileError(
      `${source}: this onnxruntime build does not describe its graph inputs (inputMetadata); use ` +
        'onnxruntime-web 1.30 or later',
    );
  }
  requireUtf8(graph, source); // every name, as Python's session.get_inputs()/get_outputs() decode them
  const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
  const outputs = new Map(session.outputMetadata.map((m) => [m.name, m]));
  if (!inputs.has(INPUT_IDS) || !outputs.has(LOGITS)) {
    throw new ModelFileError(`${source}: the graph needs an '${INPUT_IDS}' input and a '${LOGITS}' output`);
  }
  const layerSet = new Set();
  for (const name of inputs.keys()) {
    const m = STATE_INPUT.exec(name);
    if (m) layerSet.add(Number(m[2]));
  }
  const layers = [...layerSet].sort((a, b) => a - b);
  if (!layers.length || layers.some((l, i) => l !== i)) {
    throw new ModelFileError(
      `${source}: the graph's state inputs ${pyRepr(pySorted(inputs.keys()))} are not h_0, c_0, h_1, ...`,
    );
  }
  const hasLogitsFrom = version >= LOGITS_FROM_SINCE;
  const expectedInputs = [
    INPUT_IDS,
    ...stateInputNames(layers.length),
    ...(hasLogitsFrom ? [LOGITS_FROM] : []),
  ];
  const expectedOutputs = [LOGITS, ...stateOutputNames(layers.length)];
  const same = (names, expected) => names.size === expected.length && expected.every((n) => names.has(n));
  if (!same(inputs, expectedInputs) || !same(outputs, expectedOutputs)) {
    throw new ModelFileError(
      `${source}: graph inputs ${pyRepr(pySorted(inputs.keys()))} / outputs ${pyRepr(pySorted(outputs.keys()))} ` +
        `do not match the nextword step signature ${pyRepr(pySorted(expectedInputs))} / ` +
        `${pyRepr(pySorted(expectedOutputs))}`,
    );
  }
  checkTypes(inputs, outputs, layers.length, source);
  // The shapes Python reads here: each h_<layer> input and logits (below: every h_/c_ input and output).
  requireUtf8(graph, source, (name, input) => (input ? /^h_\d+$/.test(name) : name === LOGITS));
  const last = (meta) => (meta.isTensor && meta.shape.length ? meta.shape[meta.shape.length - 1] : undefined);
  const stateSizes = layers.map((l) => last(inputs.get(`h_${l}`)));
  const vocabSize = last(outputs.get(LOGITS));
  if (![...stateSizes, vocabSize].every((n) => Number.isInteger(n) && n > 0)) {
    throw new ModelFileError(
      `${source}: the state widths and the vocabulary size must be fixed in the graph`,
    );
  }
  requireUtf8(graph, source, (name) => name.startsWith('h_') || name.startsWith('c_'));
  const declared = new Map(
    [...inputs, ...outputs]
      .filter(([name]) => name.startsWith('h_') || name.startsWith('c_'))
      .map(([name, m]) => [name, m.isTensor && m.shape.length ? m.shape[m.shape.length - 1] : null]),
  );
  stateSizes.forEach((width, layer) => {
    const names = [`c_${layer}`, `h_${layer}_out`, `c_${layer}_out`];
    if (names.some((name) => declared.get(name) !== width)) {
      const shown = names.map((name) => `${name} ${declared.get(name) ?? 'None'}`).join(', ');
      throw new ModelFileError(
        `${source}: layer ${layer} declares h_${layer} ${width} wide but ${shown}; h and c of a layer, in and ` +
          'out, must have one width',
      );
    }
  });
  if (hasLogitsFrom) {
    const m = inputs.get(LOGITS_FROM);
    if (m.type === 'int64') requireUtf8(graph, source, (name, input) => input && name === LOGITS_FROM);
    if (m.type !== 'int64' || m.shape.length) {
      throw new ModelFileError(`${source}: the graph input '${LOGITS_FROM}' must be an int64 scalar`);
    }
  }
  return { stateSizes, vocabSize };
}

/** Python's _check_types: the element types the graph declares for what nextword feeds it and reads
 * back (input_ids int64, the state float32 in and out, logits float32; logits_from: with its shape). */
function checkTypes(inputs, outputs, layers, source) {
  const expected = [
    [INPUT_IDS, 'int64', true],
    ...stateInputNames(layers).map((name) => [name, 'float32', true]),
    ...[LOGITS, ...stateOutputNames(layers)].map((name) => [name, 'float32', false]),
  ];
  for (const [name, want, isInput] of expected) {
    const meta = (isInput ? inputs : outputs).get(name);
    const got = meta.isTensor ? meta.type : null;
    if (got === want) continue;
    const fix =
      got === 'float16'
        ? 'the file was converted to float16 with its inputs and outputs; convert it with keep_io_types=True ' +
          "(onnxconverter-common's float16.convert_float_to_float16), which keeps them float32"
        : 'a tool changed the types the graph declares; load the file `nextword export` wrote';
    throw new ModelFileError(
      `${source}: the graph's ${isInput ? 'input' : 'output'} '${name}' is ${got ?? 'a non-tensor value'}, ` +
        `not ${want} (nextword feeds input_ids as int64 and the state h_i, c_i as float32, and reads every ` +
        `output as float32): ${fix}`,
    );
  }
}
