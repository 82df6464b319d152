// The continuous cache of nextword/runtime/cache.py (Grave, Joulin & Usunier 2017): the model's
// next-word distribution mixed with the words that followed similar states earlier in the same text,
//
//   p(w) = (1 - share_t) * p_model(w) + share_t * p_cache(w)
//   p_cache(w) = sum over kept i with x_{i+1} = w of exp(theta * sim_ti) / sum over kept i of the same
//
// where h_i is the last LSTM layer's h after position i, sim_ti is h_t . h_i (similarity "dot") or the
// same of the unit-length states ("cosine"), and the share is a constant `mix` or, with a `gate` [a, b],
// sigmoid(a + b * L_t) with L_t = log sum over kept i of exp(theta * sim_ti). docs/model-format.md spells
// out the arithmetic; this file follows it step by step (float32 dot products, everything after them in
// float64).

import { NextwordError } from './errors.js';
import { pyRepr, pySorted, pyStr } from './pyrepr.js';

export const MAX_WINDOW = 4096; // positions kept at most (Python's MAX_WINDOW)
// theta and the gate's a and b at most, in size (Python's MAX_CACHE_NUMBER): past it the scores overflow
const MAX_CACHE_NUMBER = 1_000_000;
const FIRST_CAPACITY = 64; // slots allocated per row at first; doubled as a row's cache fills
const REQUIRED = ['theta', 'window'];
const KNOWN = [...REQUIRED, 'mix', 'tuning', 'similarity', 'gate'];
export const SIMILARITIES = Object.freeze(['dot', 'cosine']);

// How values are judged and shown: Python's for a model file's JSON (pyjson values), JavaScript's for
// the `cache` option of a call.
const PY_STYLE = {
  isReal: (v) => typeof v === 'bigint' || typeof v === 'number',
  isInt: (v) => typeof v === 'bigint',
  isObject: (v) => v instanceof Map,
  isList: Array.isArray,
  show: pyRepr,
  plain: pyStr,
  list: (names) => pyRepr(pySorted(names)),
  typeName: (v) =>
    v === null
      ? 'NoneType'
      : typeof v === 'boolean'
        ? 'bool'
        : typeof v === 'bigint'
          ? 'int'
          : typeof v === 'number'
            ? 'float'
            : typeof v === 'string'
              ? 'str'
              : Array.isArray(v)
                ? 'list'
                : 'dict',
};
const JS_STYLE = {
  isReal: (v) => typeof v === 'bigint' || typeof v === 'number',
  isInt: (v) => typeof v === 'bigint' || Number.isInteger(v),
  isObject: (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v),
  isList: (v) => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)),
  show: (v) => {
    if (typeof v === 'string' || Array.isArray(v))
      return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number(x) : x));
    return ArrayBuffer.isView(v) ? `[${Array.from(v).join(',')}]` : String(v);
  },
  plain: String,
  list: (names) => JSON.stringify([...names].sort()),
  typeName: (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v),
};

/**
 * The cache settings a model file stores (nextword.cache, a Map from src/pyjson.js), validated as
 * Python's CacheConfig.from_dict; null when the file has none ({}). Throws NextwordError with Python's
 * message.
 */
export function cacheFromMetadata(data) {
  if (!data || !data.size) return null;
  return validate(Object.fromEntries(data), PY_STYLE);
}

function validate(data, style) {
  const fail = (message) => {
    throw new NextwordError(message);
  };
  const keys = Object.keys(data);
  const unknown = keys.filter((k) => !KNOWN.includes(k));
  const missing = REQUIRED.filter((k) => !keys.includes(k));
  if (unknown.length || missing.length) {
    fail(`cache settings: unknown keys ${style.list(unknown)}, missing keys ${style.list(missing)}`);
  }
  const { theta, window } = data;
  const mix = data.mix ?? null; // absent or null: none (then a gate is needed)
  const gate = data.gate ?? null;
  const similarity = 'similarity' in data ? data.similarity : 'dot';
  if (!SIMILARITIES.includes(similarity)) {
    fail(
      `cache similarity must be one of ${SIMILARITIES.map(style.show).join(', ')}, got ${style.show(similarity)}`,
    );
  }
  if ((mix === null) === (gate === null)) {
    fail(
      'cache settings need exactly one of mix (a constant share) and gate (a, b), got ' +
        (mix === null ? 'neither' : `both (mix ${style.show(mix)}, gate ${style.show(gate)})`),
    );
  }
  const finite = (name, value, wanted = 'a finite number') => {
    if (!style.isReal(value) || !Number.isFinite(Number(value))) {
      fail(`cache ${name} must be ${wanted}, got ${style.show(value)}`);
    }
  };
  finite('theta', theta);
  if (Number(theta) < 0) fail(`cache theta must be >= 0, got ${style.plain(theta)}`);
  if (Number(theta) > MAX_CACHE_NUMBER) {
    fail(
      `cache theta must be at most ${MAX_CACHE_NUMBER.toLocaleString('en-US')}, got ${style.plain(theta)}`,
    );
  }
  if (mix !== null) {
    finite('mix', mix);
    if (!(Number(mix) > 0 && Number(mix) < 1)) {
      fail(`cache mix must be between 0 and 1 (exclusive), got ${style.plain(mix)}`);
    }
  }
  if (gate !== null) {
    if (!style.isList(gate)) fail(`cache gate must be two numbers [a, b], got ${style.show(gate)}`);
    if (gate.length !== 2) fail(`cache gate must be two numbers [a, b], got ${gate.length}`);
    for (const value of gate) {
      finite('gate', value, 'two finite numbers [a, b]');
      if (Math.abs(Number(value)) > MAX_CACHE_NUMBER) {
        fail(
          `cache gate must be two numbers [a, b] within ±${MAX_CACHE_NUMBER.toLocaleString('en-US')}, got ${style.plain(value)}`,
        );
      }
    }
  }
  if (!style.isInt(window)) fail(`cache window must be an integer, got ${style.show(window)}`);
  if (!(window >= 1 && window <= MAX_WINDOW)) {
    fail(`cache window must be in 1..${MAX_WINDOW}, got ${style.plain(window)}`);
  }
  const tuning = 'tuning' in data ? data.tuning : {}; // absent: {} (a file's Maps are checked as given)
  if ('tuning' in data && !style.isObject(tuning)) {
    fail(`cache tuning must be a JSON object, got ${style.typeName(tuning)}`);
  }
  // the keys of Python's CacheConfig.to_dict(): `mix` or `gate`, `similarity` only when not "dot"
  const settings = { theta: Number(theta) };
  if (gate === null) settings.mix = Number(mix);
  settings.window = Number(window);
  settings.tuning = tuning; // as given (a Map from a file: src/model-file.js makes it plain)
  if (similarity !== 'dot') settings.similarity = similarity;
  if (gate !== null) settings.gate = Object.freeze([Number(gate[0]), Number(gate[1])]);
  return Object.freeze(settings);
}

/**
 * The settings a call uses (Python's resolve_cache): undefined or null, the file's own (`stored`, null
 * when it has none); false, none; true, the file's (an error when it has none); an object
 * {theta, mix or gate, window[, similarity]}, those.
 */
export function resolveCache(stored, cache) {
  if (cache === undefined || cache === null) return stored;
  if (cache === false) return null;
  if (cache === true) return requiredCache(stored);
  if (JS_STYLE.isObject(cache)) {
    // a key set to undefined is a key not given, as in the generation options
    const given = Object.fromEntries(Object.entries(cache).filter(([, value]) => value !== undefined));
    return validate(given, JS_STYLE);
  }
  throw new NextwordError(
    `cache must be true, false, null or an object {theta, mix, window}, got ${JS_STYLE.show(cache)}`,
  );
}

/** The file's settings; NextwordError when it has none (Python's required_cache). */
export function requiredCache(stored) {
  if (stored) return stored;
  throw new NextwordError(
    'cache: true but this model file has no continuous-cache settings; re-export it with a nextword that ' +
      'tunes them, or leave cache unset',
  );
}

/** numpy's logaddexp. */
export function logaddexp(x, y) {
  if (x === y) return x + Math.LN2;
  const d = x - y;
  if (d > 0) return x + Math.log1p(Math.exp(-d));
  if (d <= 0) return y + Math.log1p(Math.exp(d));
  return d; // NaN
}

/** log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)). */
export function softplus(z) {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

/**
 * Per-row ring buffers of earlier states h_i (float32) and the ids that followed them, plus each row's
 * current state h_t (the query). Rows are the rows of a batch; take() reorders or drops them.
 */
export class ContinuousCache {
  constructor(config, rows, units) {
    Object.assign(this, { config, units });
    this.cosine = config.similarity === 'cosine';
    this.gate = config.gate ?? null;
    if (!this.gate) {
      // today's exact expressions, so files with a constant mix give the same numbers as before
      this.logOdds = Math.log(config.mix / (1 - config.mix));
      this.logKeep = Math.log1p(-config.mix);
      this.logMix = Math.log(config.mix);
    }
    this.rows = Array.from({ length: rows }, () => emptyRow());
  }

  get length() {
    return this.rows.length;
  }

  /**
   * The model read `tokens` (one per row of `rows`, default all) and its last layer now holds `h`
   * (rows x units, in the same order): each row's previous state is stored with the token that followed
   * it, then its row of `h` becomes the query (unit-length first with cosine similarities).
   */
  observe(tokens, h, rows = null) {
    const { units } = this;
    const { window } = this.config;
    tokens.forEach((token, j) => {
      const row = this.rows[rows === null ? j : rows[j]];
      if (row.query) {
        const slot = row.count % window;
        if (slot >= row.values.length) grow(row, Math.min(window, Math.max(FIRST_CAPACITY, 2 * slot)), units);
        row.keys.set(row.query, slot * units);
        row.values[slot] = token;
        row.count += 1;
      }
      const query = h.slice(j * units, (j + 1) * units);
      row.query = this.cosine ? unitLength(query) : query;
    });
  }

  /** Keep the rows `rows` in this order (drop the others; a repeated row is copied). */
  take(rows) {
    const seen = new Set();
    this.rows = rows.map((r) => {
      const row = this.rows[r];
      if (!seen.has(r)) {
        seen.add(r);
        return row;
      }
      return {
        ...row,
        keys: row.keys.slice(),
        values: row.values.slice(),
        query: row.query?.slice() ?? null,
      };
    });
  }

  /**
   * p_cache of row `r` where it is not zero: {tokens (ascending), probs, logOdds}, or null for an empty
   * cache. logOdds is z, the log-odds of the cache's share: log(mix / (1 - mix)), or a + b * L_t with a
   * gate (L_t = the log-sum-exp of the row's scores).
   */
  probabilities(r) {
    const row = this.rows[r];
    const used = Math.min(row.count, this.config.window);
    if (!used) return null;
    const { units } = this;
    const { keys, query } = row;
    const scores = new Float64Array(used);
    let peak = -Infinity;
    for (let i = 0; i < used; i++) {
      let dot = 0;
      for (let k = 0, base = i * units; k < units; k++) dot += keys[base + k] * query[k];
      scores[i] = this.config.theta * Math.fround(dot); // a float32 similarity, scaled in float64
      peak = Math.max(peak, scores[i]);
    }
    let total = 0;
    for (let i = 0; i < used; i++) {
      scores[i] = Math.exp(scores[i] - peak);
      total += scores[i];
    }
    const logOdds = this.gate ? this.gate[0] + this.gate[1] * (peak + Math.log(total)) : this.logOdds;
    const byToken = new Map();
    for (let i = 0; i < used; i++) {
      const token = row.values[i];
      byToken.set(token, (byToken.get(token) ?? 0) + scores[i] / total);
    }
    const tokens = [...byToken.keys()].sort((a, b) => a - b);
    return { tokens, probs: tokens.map((t) => byToken.get(t)), logOdds };
  }

  /**
   * Turn the model's logits (rows x vocab, float32, in place) into scores whose softmax is the mixture:
   * only the tokens in a row's cache change, to log(exp(l_w) + exp(z) * p_cache(w) * Z), z the log-odds
   * of the row's share (log(mix / (1 - mix)) with a constant mix).
   */
  mixLogits(logits, vocab) {
    this.rows.forEach((_, j) => {
      const found = this.probabilities(j);
      if (!found) return;
      const base = j * vocab;
      let peak = -Infinity;
      for (let v = 0; v < vocab; v++) peak = Math.max(peak, logits[base + v]);
      let sum = 0;
      for (let v = 0; v < vocab; v++) sum += Math.exp(logits[base + v] - peak);
      const lse = peak + Math.log(sum); // log sum_v exp(l_v), in float64
      found.tokens.forEach((token, i) => {
        const old = logits[base + token];
        logits[base + token] = logaddexp(old, found.logOdds + lse + Math.log(found.probs[i]));
      });
    });
  }

  /** Turn row `r`'s log-probabilities (float64, one row, in place) into the mixture's. */
  mixLogprobs(logprobs, r = 0) {
    const found = this.probabilities(r);
    if (!found) return;
    let { logKeep, logMix: logShare } = this;
    if (this.gate) {
      // log(1 - share) = -softplus(z), log(share) = z - softplus(z)
      const sp = softplus(found.logOdds);
      [logKeep, logShare] = [-sp, found.logOdds - sp];
    }
    const model = found.tokens.map((token) => logprobs[token] + logKeep);
    for (let v = 0; v < logprobs.length; v++) logprobs[v] += logKeep;
    found.tokens.forEach((token, i) => {
      logprobs[token] = logaddexp(model[i], logShare + Math.log(found.probs[i]));
    });
  }
}

/** `h` (float32) at unit length: float32(float64(h) / n), n its float64 norm; a zero vector stays zero. */
export function unitLength(h) {
  let sum = 0;
  for (let k = 0; k < h.length; k++) sum += h[k] * h[k];
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let k = 0; k < h.length; k++) h[k] = h[k] / norm; // stored back as float32
  return h;
}

function emptyRow() {
  return { keys: new Float32Array(0), values: new Int32Array(0), count: 0, query: null };
}

function grow(row, capacity, units) {
  const keys = new Float32Array(capacity * units);
  keys.set(row.keys);
  const values = new Int32Array(capacity);
  values.set(row.values);
  Object.assign(row, { keys, values });
}
