// Log-probabilities of given text under a model, with or without the continuous cache: what
// nextWords() and score() compute (nextword/runtime/scoring.py's next_words and token_logprobs).

import { ContinuousCache, resolveCache } from './cache.js';
import { PROMPT_CHUNK } from './decoding.js';
import { NextwordError } from './errors.js';

/** The cache settings a nextWords()/score() call uses: `options.cache` against the file's own. */
export function callCache(model, options) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new NextwordError(`options must be an object, got ${String(options)}`);
  }
  const unknown = Object.keys(options).filter((k) => k !== 'cache');
  if (unknown.length) {
    throw new NextwordError(
      `unknown option(s) ${JSON.stringify(unknown.sort())}; the only option is "cache"`,
    );
  }
  return resolveCache(model.info.cache, options.cache);
}

/**
 * Log-probabilities (float64, one per vocabulary id) of the token after `ids`; with `cache` (settings),
 * the ids are fed one per session call and the cache is mixed in.
 */
export async function lastLogprobs(model, ids, cache = null) {
  let state = model.initialState(1);
  let logits;
  if (!cache) {
    for (let start = 0; start < ids.length; start += PROMPT_CHUNK) {
      ({ logits, state } = await model.forward([ids.slice(start, start + PROMPT_CHUNK)], state, -1));
    }
    return logSoftmax(logits);
  }
  const rows = newCache(model, cache);
  for (const token of ids) {
    ({ logits, state } = await model.forward([[token]], state, 0));
    rows.observe([token], state[state.length - 2]);
  }
  const logprobs = logSoftmax(logits);
  rows.mixLogprobs(logprobs);
  return logprobs;
}

/**
 * For `ids`, the log-probability of each of ids[1:] given every id before it (Python's token_logprobs):
 * in chunks without a cache, one token per session call with one.
 */
export async function tokenLogprobs(model, ids, cache = null) {
  const vocab = model.vocabSize;
  const out = [];
  let state = model.initialState(1);
  if (!cache) {
    for (let start = 0; start < ids.length - 1; start += PROMPT_CHUNK) {
      const targets = ids.slice(start + 1, start + 1 + PROMPT_CHUNK);
      const step = await model.forward([ids.slice(start, start + targets.length)], state, 0);
      state = step.state;
      targets.forEach((id, t) => out.push(logSoftmax(step.logits.subarray(t * vocab, (t + 1) * vocab))[id]));
    }
    return out;
  }
  const rows = newCache(model, cache);
  for (let p = 0; p < ids.length - 1; p++) {
    const step = await model.forward([[ids[p]]], state, 0);
    state = step.state;
    rows.observe([ids[p]], state[state.length - 2]);
    const logprobs = logSoftmax(step.logits);
    rows.mixLogprobs(logprobs);
    out.push(logprobs[ids[p + 1]]);
  }
  return out;
}

function newCache(model, settings) {
  return new ContinuousCache(settings, 1, model.stateWidths[model.stateWidths.length - 2]);
}

// exp(nll / words), as Python's scoring.perplexity: Infinity where that overflows (a text the model finds
// all but impossible), NaN where the log-likelihood is NaN (never shown as an overflow)
export function perplexity(nll, words) {
  const mean = nll / words;
  return mean < 709 || Number.isNaN(mean) ? Math.exp(mean) : Infinity;
}

/** Log-probabilities of one row of logits, in float64 (as the Python runtime's log_softmax). */
export function logSoftmax(logits) {
  let peak = -Infinity;
  for (const v of logits) peak = Math.max(peak, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - peak);
  const shift = peak + Math.log(sum);
  return Array.from(logits, (v) => v - shift);
}
