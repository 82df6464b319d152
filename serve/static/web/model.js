// A loaded model: an onnxruntime-web session plus the tokenizer and decoding defaults from the same file.
// The API mirrors nextword.runtime.NextWordModel: generate, stream, nextWords, score.

import { untilAborted } from './abort.js';
import { BeamSearch } from './beam.js';
import { Generation, promptEnd } from './decoding.js';
import { ModelFileError, ModelRunError, NextwordError, oneLine, sessionError } from './errors.js';
import { readGraphInterface } from './graph-io.js';
import { checkLoadOptions } from './load-options.js';
import { PCG64, SeedSequence } from './random.js';
import { FILE_DEFAULTS, MAX_BATCH, resolveOptions, streamOptions, typeName } from './generation.js';
import { checkModelFile, corrupt, resolveLimits } from './model-check.js';
import {
  INPUT_IDS,
  LOGITS,
  LOGITS_FROM,
  readModelInfo,
  stateInputNames,
  stateOutputNames,
} from './model-file.js';
import { importOrt } from './ort.js';
import { WireError } from './protobuf.js';
import { callCache, lastLogprobs, perplexity, tokenLogprobs } from './scoring.js';
import { readSource } from './source.js';
import { SPECIAL_TOKENS } from './tokenizer.js';
import { threadOptions, threadsStarted } from './threads.js';
import { engineNormalizesThisVersion, UNICODE_VERSION } from './unicode.js';

let warnedUnicode = false;
const MAX_LOGIT = 1_000_000; // Python's probe.MAX_LOGIT: scaled by 1/T, larger ones overflow into NaN

/**
 * Load a nextword .onnx file for generation.
 * @param {string | URL | ArrayBuffer | ArrayBufferView | Blob} source a URL (fetched), a path under
 *   Node, or the file's bytes
 * @param {{ort?: object, sessionOptions?: object, limits?: object, numThreads?: number, fetch?: typeof fetch,
 *   signal?: AbortSignal}} [options]
 *   ort: an onnxruntime module (default: import('onnxruntime-web/wasm'), src/ort.js); numThreads: threads
 *   (default 1, as the Python runtime runs one thread per call; src/threads.js); limits: the file checks'
 *   caps; fetch: called as fetch(url, { signal }) (as fetch(url) without a signal); signal: aborted before
 *   the load is done, the load rejects with the signal's reason, as fetch does (an AbortError DOMException
 *   for controller.abort(), a TimeoutError for AbortSignal.timeout(ms)), and its download stops; already
 *   aborted, nothing is read or fetched
 * @returns {Promise<NextWordModel>}
 */
export async function load(source, options = {}) {
  checkLoadOptions(options);
  const { ort: given, sessionOptions = {}, limits, numThreads, fetch, signal } = options;
  const checked = resolveLimits(limits ?? undefined);
  signal?.throwIfAborted(); // before anything is read or fetched
  // the fetch is given the signal; a step that cannot be (a Blob, a fetch that ignores it) is cut short
  const { name, bytes } = await untilAborted(readSource(source, checked.maxFileBytes, fetch, signal), signal);
  const meta = checkModelFile(name, bytes, checked);
  signal?.throwIfAborted();
  const ort = given ?? (await untilAborted(importOrt(), signal));
  // numThreads, as the module reads it: onnxruntime-web's env.wasm, a native binding's session options
  const created = threadOptions(ort, given !== undefined, numThreads, sessionOptions);
  if (!warnedUnicode && !engineNormalizesThisVersion()) {
    warnedUnicode = true;
    console.warn(
      `nextword-web: this JavaScript engine's Unicode data is older than ${UNICODE_VERSION}; text with characters ` +
        'added since may be tokenized differently from the Python runtime',
    );
  }
  let creating;
  let session;
  try {
    creating = Promise.resolve(ort.InferenceSession.create(bytes, created));
    session = await untilAborted(creating, signal); // the first one may fetch onnxruntime-web's .wasm
  } catch (error) {
    if (!signal?.aborted) throw sessionError(ort, error, name);
    // aborted while onnxruntime built it: a session that still comes is released, not left in memory
    creating
      ?.then(
        (late) => (threadsStarted(ort), late.release()),
        () => {},
      )
      .catch(() => {});
    throw signal.reason;
  }
  threadsStarted(ort);
  try {
    signal?.throwIfAborted(); // aborted as the session came: released below
    const model = new NextWordModel(
      ort,
      session,
      readModelInfo(meta, session, name, graphOf(name, bytes)),
      name,
    );
    await probe(model);
    signal?.throwIfAborted();
    return model;
  } catch (error) {
    // a file refused (or a load aborted) once its session exists: the session's memory (WASM or native)
    // is freed, or every refused load would keep a model's worth of it
    await session.release().catch(() => {});
    throw error;
  }
}

/**
 * A loaded model. Create one with load(). Calls may overlap: a model holds no state between calls, and
 * its session calls take turns (onnxruntime-web runs one at a time).
 */
export class NextWordModel {
  constructor(ort, session, info, source) {
    if (!Array.isArray(info?.stateSizes)) {
      throw new NextwordError(
        "NextWordModel has no public constructor: create one with await load(source, options) from 'nextword-web'",
      );
    }
    Object.assign(this, { ort, session, info, source });
    this._turn = Promise.resolve(); // the last session call queued (runSession)
    this._released = false;
    this.stateWidths = info.stateSizes.flatMap((units) => [units, units]); // h_0, c_0, h_1, c_1, ...
    this._stateInputs = stateInputNames(info.stateSizes.length);
    this._stateOutputs = stateOutputNames(info.stateSizes.length);
  }

  get tokenizer() {
    return this.info.tokenizer;
  }

  get vocabSize() {
    return this.info.vocabSize;
  }

  /** Zero LSTM state for `batch` sequences: [h_0, c_0, ...], each Float32Array(batch x units). */
  initialState(batch = 1) {
    return this.stateWidths.map((units) => new Float32Array(batch * units));
  }

  /**
   * One session call: ids (batch x time, all rows the same length) and state in; the logits of positions
   * `logitsFrom` on (Python slice semantics: -1 is the last) and the state after the last position out.
   * @returns {Promise<{logits: Float32Array, positions: number, state: Float32Array[]}>}
   */
  async forward(ids, state, logitsFrom = 0) {
    const batch = ids.length;
    const time = ids[0].length;
    if (!(-time <= logitsFrom && logitsFrom < time)) {
      throw new NextwordError(
        `logitsFrom=${logitsFrom} selects no position of an input of ${time} position(s); use a value from ` +
          `${-time} to ${time - 1} (-1 for the last position)`,
      );
    }
    const out = await runSession(this, ids, state, logitsFrom);
    const vocab = this.vocabSize;
    let wanted = time;
    if (logitsFrom && this.info.hasLogitsFrom) wanted = logitsFrom > 0 ? time - logitsFrom : -logitsFrom;
    const logitsDims = out[LOGITS].dims;
    const states = this._stateOutputs.map((name) => out[name]);
    if (
      !sameDims(logitsDims, [batch, wanted, vocab]) ||
      states.some((s, k) => !sameDims(s.dims, [batch, this.stateWidths[k]]))
    ) {
      const shapes = states.map((s) => pyShape(s.dims)).join(', ');
      throw new ModelRunError(
        `${this.source}: on input_ids of shape ${pyShape([batch, time])} the graph returned logits of shape ` +
          `${pyShape(logitsDims)} (expected ${pyShape([batch, wanted, vocab])}) and state of shapes ${shapes}; ` +
          'the graph only works for some batch sizes or lengths: the file is damaged or crafted, re-download ' +
          'or re-export it',
      );
    }
    let logits = out[LOGITS].data;
    const keep = logitsFrom < 0 ? -logitsFrom : time - logitsFrom;
    if (wanted !== keep) logits = keepLastPositions(logits, batch, wanted, keep, vocab);
    return { logits, positions: keep, state: states.map((s) => s.data) };
  }

  /** Token ids the model is conditioned on for `prompt`: start of a document, then the prompt. */
  promptIds(prompt, name = 'prompt') {
    if (typeof prompt !== 'string')
      throw new NextwordError(`${name} must be a string, got ${typeName(prompt)}`);
    return [this.tokenizer.eodId, ...this.tokenizer.encode(prompt)];
  }

  /**
   * Continue `prompt` (a string or a list of strings) and return the new text. Options are camelCase
   * versions of the Python runtime's (maxWords, minWords, temperature, topK, topP, repetitionPenalty,
   * noRepeatNgramSize, stop, stopAtEnd, allowUnknown, numReturnSequences, numBeams and lengthPenalty:
   * beam search when numBeams > 1, seed, cache: the file's continuous cache, off unless asked); options
   * not given take the model file's decoding defaults. Returns a list when `prompt` is a list or
   * numReturnSequences > 1.
   */
  async generate(prompt, options = {}) {
    const config = resolveOptions(this.info.generation, options, FILE_DEFAULTS);
    const [prompts, single] = asPromptList(prompt);
    const rows = prompts.length * Math.max(config.numReturnSequences, config.numBeams);
    if (rows > MAX_BATCH) {
      throw new NextwordError(
        `batch of ${prompts.length} prompt(s) x ${Math.max(config.numReturnSequences, config.numBeams)} ` +
          `sequences or beams = ${rows} rows exceeds the cap of ${MAX_BATCH}; split the prompts`,
      );
    }
    if (!prompts.length) return [];
    const ids = prompts.map((p) => this.promptIds(p));
    const ends = prompts.map((p) => promptEnd(this.tokenizer, p)); // marks the vocabulary lacks too
    const search =
      config.numBeams > 1 ? new BeamSearch(this, ids, config, ends) : new Generation(this, ids, config, ends);
    const texts = await search.run();
    return single && config.numReturnSequences === 1 ? texts[0] : texts;
  }

  /**
   * The continuation of one prompt in pieces as words are produced (an async iterator); the pieces
   * joined equal what generate() returns for the same options and seed. Options are checked now.
   */
  stream(prompt, options = {}) {
    const config = streamOptions(this.info.generation, prompt, options);
    const state = { finishReason: null };
    const pieces = streamPieces(
      this,
      [this.promptIds(prompt)],
      config,
      [promptEnd(this.tokenizer, prompt)],
      state,
    );
    // why the text ended, once it has: "length", "stop" or "end" (as the Python Generator's reasons)
    return Object.defineProperty(pieces, 'finishReason', { get: () => state.finishReason });
  }

  /**
   * The `k` most likely next words after `prompt`, most likely first: [{word, probability}]. With the
   * file's continuous cache when it has one; `{cache: false}`: the model alone (see src/cache.js).
   */
  async nextWords(prompt, k = 5, options = {}) {
    if (typeof k === 'bigint' && k >= 1n && k <= BigInt(this.vocabSize)) k = Number(k); // as maxWords
    if (k !== null && typeof k === 'object' && !Array.isArray(k))
      throw new NextwordError(
        'k must be an integer, got an object: k comes second and the options third, ' +
          'as in nextWords(prompt, 5, { cache: false }) and suggest(prompt, 5, { cache: false })',
      );
    if (!Number.isInteger(k) || k < 1 || k > this.vocabSize) {
      const shown = typeof k === 'string' ? JSON.stringify(k) : String(k);
      throw new NextwordError(`k must be an integer in 1..${this.vocabSize}, got ${shown}`);
    }
    const ids = this.promptIds(prompt);
    const probs = (await lastLogprobs(this, ids, callCache(this, options))).map(Math.exp);
    for (let i = 0; i < SPECIAL_TOKENS.length; i++) probs[i] = -1; // never listed
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
    return order
      .slice(0, k)
      .filter((i) => probs[i] >= 0)
      .map((i) => ({ word: this.tokenizer.tokenOf(i), probability: probs[i] }));
  }

  /**
   * nextWords() with the text that appends each word to `prompt` (spacing and sentence capitals applied;
   * no leading space after a prompt that ends in one): [{word, text, probability}], as the /v1/suggest
   * endpoint of `nextword serve` answers.
   */
  async suggest(prompt, k = 5, options = {}) {
    const words = await this.nextWords(prompt, k, options);
    const end = promptEnd(this.tokenizer, prompt); // "La niña come. ¿" -> "Por"
    return words.map(({ word, probability }) => {
      const text = this.tokenizer.piece(word, end.previous, end.starts);
      return { word, text: end.lstrip ? text.replace(/^ +/, '') : text, probability };
    });
  }

  /** How likely the model finds `text` as the start of a document: {totalLogprob, perplexity, words};
   * each word has its vocabulary token (`<unk>` when unknown, as in Python), the `token` as read, its
   * `text` as the tokenizer renders it, its logprob and whether it is unknown. With the file's
   * continuous cache when it has one; `{cache: false}`: the model alone. */
  async score(text, options = {}) {
    const ids = this.promptIds(text, 'text');
    if (ids.length < 2)
      throw new NextwordError(
        'text has no words to score (it is empty, or holds only spaces and marks the tokenizer drops): ' +
          'give a text with at least one word',
      );
    const logprobs = await tokenLogprobs(this, ids, callCache(this, options));
    const read = this.tokenizer.tokenize(text); // the words as read: an unknown one keeps its text
    const pieces = [...this.tokenizer.pieces(read)];
    const words = logprobs.map((logprob, i) => {
      const id = ids[i + 1];
      const word = this.tokenizer.tokenOf(id);
      return { word, token: read[i], text: pieces[i], logprob, unknown: id === this.tokenizer.unkId };
    });
    const total = words.reduce((sum, w) => sum + w.logprob, 0);
    return { totalLogprob: total, perplexity: perplexity(-total, words.length), words };
  }

  /**
   * Release the onnxruntime session once the session call under way has ended; every later session call
   * (a generation in progress included) is refused with a NextwordError.
   */
  async release() {
    if (this._released) return;
    this._released = true;
    await this._turn;
    await this.session.release();
  }
}

/** The declared inputs and outputs of a file onnxruntime has parsed (src/graph-io.js). */
function graphOf(name, bytes) {
  try {
    return readGraphInterface(bytes);
  } catch (error) {
    if (error instanceof WireError) throw new ModelFileError(corrupt(name, error));
    throw error;
  }
}

async function* streamPieces(model, ids, config, ends, state) {
  const generation = new Generation(model, ids, config, ends);
  while (!generation.done) {
    for (const update of await generation.step()) {
      if (update.finished) state.finishReason = update.reason;
      if (update.text) yield update.text;
    }
  }
}

function asPromptList(prompt) {
  if (typeof prompt === 'string') return [[prompt], true];
  if (Array.isArray(prompt)) {
    prompt.forEach((p, i) => {
      if (typeof p !== 'string') {
        throw new NextwordError(`prompt must be a string or a list of strings; item ${i} is ${typeName(p)}`);
      }
    });
    return [[...prompt], false];
  }
  throw new NextwordError(`prompt must be a string or a list of strings, got ${typeName(prompt)}`);
}

/** One session call, its failures as ModelRunError naming the file and the shapes fed (as Python). */
async function runSession(model, ids, state, logitsFrom) {
  const { Tensor } = model.ort;
  const batch = ids.length;
  const time = ids[0].length;
  const flat = new BigInt64Array(batch * time);
  ids.forEach((row, b) => row.forEach((id, t) => (flat[b * time + t] = BigInt(id))));
  const feed = {}; // in the Python runtime's order: state, input_ids, logits_from
  model._stateInputs.forEach(
    (name, k) => (feed[name] = new Tensor('float32', state[k], [batch, model.stateWidths[k]])),
  );
  feed[INPUT_IDS] = new Tensor('int64', flat, [batch, time]);
  if (model.info.hasLogitsFrom)
    feed[LOGITS_FROM] = new Tensor('int64', BigInt64Array.of(BigInt(logitsFrom)), []);
  // onnxruntime-web's WebAssembly runs one call of a session at a time: calls that overlap (two
  // generate() calls awaited together) corrupt its memory, so this model's calls take turns
  const before = model._turn;
  let done = () => {};
  model._turn = new Promise((resolve) => (done = resolve));
  await before;
  try {
    if (model._released) {
      throw new NextwordError(`${model.source} was released: load() it again to use it`);
    }
    return await model.session.run(feed);
  } catch (error) {
    if (error instanceof NextwordError) throw error;
    const shapes = Object.entries(feed)
      .map(([name, tensor]) => `${name} ${pyShape(tensor.dims)}`)
      .join(', ');
    const failure = new ModelRunError(
      `${model.source}: onnxruntime failed running the model on ${shapes}: ${oneLine(error)}; the file is ` +
        'damaged or crafted: re-download or re-export it',
    );
    failure.cause = error;
    throw failure;
  } finally {
    done();
  }
}

/**
 * One step on a batch of 2 before load() returns, as the Python runtime's probe: every special id and the
 * largest id, random state; every output must be float32, of the declared shape, and finite.
 */
async function probe(model) {
  const { tokenizer, vocabSize: vocab, stateSizes, hasLogitsFrom } = model.info;
  const largest = vocab - 1;
  const ids = [
    [tokenizer.eodId, largest, tokenizer.unkId],
    [largest, tokenizer.padId, tokenizer.eodId],
  ];
  const rng = new PCG64(new SeedSequence(0n));
  const state = model.stateWidths.map((w) =>
    Float32Array.from({ length: 2 * w }, () => rng.random() * 2 - 1),
  );
  const positions = hasLogitsFrom ? 2 : 3;
  let out;
  try {
    out = await runSession(model, ids, state, -2);
  } catch (error) {
    if (!(error instanceof ModelRunError)) throw error;
    throw new ModelFileError(
      `${model.source} loads but fails a probe step (2 rows, token ids up to ${largest}): onnxruntime says ` +
        `${oneLine(error.cause)}; the file is damaged or crafted: re-download or re-export it`,
    );
  }
  const expected = [[2, positions, vocab], ...model.stateWidths.map((w) => [2, w])];
  [LOGITS, ...model._stateOutputs].forEach((name, i) => {
    const value = out[name];
    let problem = null;
    if (value.type !== 'float32') problem = `is ${value.type}, not float32`;
    else if (!sameDims(value.dims, expected[i]))
      problem = `has shape ${pyShape(value.dims)}, not ${pyShape(expected[i])}`;
    else if (!value.data.every(Number.isFinite)) problem = 'holds NaN or infinite values';
    else if (name === LOGITS && value.data.some((v) => Math.abs(v) > MAX_LOGIT))
      problem = `holds scores beyond ±${MAX_LOGIT.toLocaleString('en-US')}, which no trained model makes`;
    if (problem) {
      throw new ModelFileError(
        `${model.source}: on a probe step of 2 rows the graph's output '${name}' ${problem} (the metadata ` +
          `declares a vocabulary of ${vocab} and state widths [${stateSizes.join(', ')}]); the file is damaged ` +
          'or crafted: re-download or re-export it',
      );
    }
  });
}

function sameDims(dims, expected) {
  return dims.length === expected.length && dims.every((d, i) => Number(d) === expected[i]);
}

/** Python's repr of a shape tuple: (2, 3), (2,), (). */
function pyShape(dims) {
  return dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
}

/** The last `wanted` positions of (batch x positions x vocab) logits, for format-1 files. */
function keepLastPositions(logits, batch, positions, wanted, vocab) {
  const out = new Float32Array(batch * wanted * vocab);
  for (let b = 0; b < batch; b++) {
    const from = (b * positions + positions - wanted) * vocab;
    out.set(logits.subarray(from, from + wanted * vocab), b * wanted * vocab);
  }
  return out;
}
