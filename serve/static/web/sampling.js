// Choosing the next token from logits, as nextword/runtime/sampling.py does it, operation for operation:
// float32 scores, temperature as a float32 multiply, one uniform draw per row from numpy's PCG64 stream,
// the two-level (blocks of 128, then tokens) inverse-CDF draw over the whole vocabulary, and for top-k /
// top-p the candidates alone with one float64 cumulative sum in id order.

import { blockSumF32, npExpF32, pairwiseSumF64, sumF32AsF64 } from './float32.js';

export const BLOCK = 128; // tokens per block of the two-level draw

const f = Math.fround;
const BITS = new Float32Array(1);
const INT = new Int32Array(BITS.buffer);

/**
 * Pick one token id per row of `scores` (rows x vocab, float32, overwritten); -1 for a row whose every
 * entry is -inf. temperature 0 takes the most likely token (ties: the lowest id) and draws nothing;
 * otherwise row i draws exactly one number from rngs[i].
 * @param {Float32Array} scores
 * @returns {number[]}
 */
export function sample(scores, rows, vocab, rngs, temperature, topK = null, topP = null, exp = npExpF32) {
  const rowOf = (r) => scores.subarray(r * vocab, (r + 1) * vocab);
  if (temperature === 0) {
    return Array.from({ length: rows }, (_, r) => {
      const row = rowOf(r);
      const best = argmax(row);
      return row[best] === -Infinity ? -1 : best;
    });
  }
  if (topK !== null && topK >= vocab) topK = null;
  if (topP !== null && topP >= 1) topP = null;
  const uniforms = rngs.map((rng) => 1.0 - rng.random()); // in (0, 1]
  return uniforms.map((u, r) => sampleRow(rowOf(r), u, temperature, topK, topP, exp));
}

/** np.argmax: the first maximum (the first NaN, if any). */
export function argmax(row) {
  let best = 0;
  for (let i = 0; i < row.length; i++) {
    if (Number.isNaN(row[i])) return i;
    if (row[i] > row[best]) best = i;
  }
  return best;
}

function rowMax(row) {
  let peak = -Infinity;
  for (let i = 0; i < row.length; i++) {
    if (Number.isNaN(row[i])) return NaN;
    if (row[i] > peak) peak = row[i];
  }
  return peak;
}

function sampleRow(row, u, temperature, topK, topP, exp) {
  let peak = rowMax(row);
  if (peak === -Infinity) return -1;
  const scale = f(1.0 / temperature);
  if (topK !== null) {
    const ids = topKIds(row, topK); // the candidates alone from here on
    let values = Float32Array.from(ids, (i) => row[i]);
    if (temperature !== 1) values = values.map((v) => f(v * scale));
    const top = rowMax(values);
    let probs = values.map((v) => exp(f(v - top)));
    let chosen = ids;
    if (topP !== null) [chosen, probs] = nucleus(ids, probs, topP);
    return drawAmong(chosen, probs, u);
  }
  if (temperature !== 1) {
    for (let i = 0; i < row.length; i++) row[i] = f(row[i] * scale);
    peak = f(peak * scale); // the maximum of the scaled row, bit for bit
  }
  for (let i = 0; i < row.length; i++) row[i] = exp(f(row[i] - peak)); // unnormalized; -inf entries are 0
  if (topP !== null) return drawAmong(...nucleus(null, row, topP), u);
  return drawBlocks(row, u);
}

/** The ids (increasing) of every entry at or above the k-th largest (ties with it all stay). */
function topKIds(row, k) {
  const sorted = Float32Array.from(row).sort(); // ascending
  const kth = sorted[row.length - k];
  const ids = [];
  for (let i = 0; i < row.length; i++) if (row[i] >= kth) ids.push(i);
  return ids;
}

/**
 * The smallest set of most likely tokens whose mass reaches `topP` of the total (ties in id order), as
 * [ids, probs] with ids increasing; `ids` null means `probs` is the whole vocabulary. Above 256 entries
 * the total and a pruning threshold come from the mass in each float32 exponent, as in Python.
 */
function nucleus(ids, probs, topP) {
  let goal;
  let keep = null;
  if (probs.length > 256) {
    const exponents = new Int32Array(probs.length);
    let bins = 0;
    for (let i = 0; i < probs.length; i++) {
      BITS[0] = probs[i];
      exponents[i] = INT[0] >> 23; // the biased float32 exponent: probs are >= 0
      bins = Math.max(bins, exponents[i] + 1);
    }
    const mass = new Float64Array(bins); // np.bincount(exponents, weights=probs)
    for (let i = 0; i < probs.length; i++) mass[exponents[i]] += probs[i];
    goal = topP * pairwiseSumF64(mass, 0, bins);
    let running = 0;
    for (let r = 0; r < bins; r++) {
      running += mass[bins - 1 - r]; // from the top exponent down
      if (running >= goal * (1 + 1e-9)) {
        const lowest = bins - 1 - r;
        keep = [];
        for (let i = 0; i < probs.length; i++) if (exponents[i] >= lowest) keep.push(i);
        break;
      }
    }
  } else {
    goal = topP * sumF32AsF64(probs);
  }
  if (keep !== null) {
    ids = keep.map((i) => (ids === null ? i : ids[i]));
    probs = Float32Array.from(keep, (i) => probs[i]);
  } else if (ids === null) {
    ids = Array.from(probs, (_, i) => i);
  }
  const order = Array.from(probs, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b); // stable
  let cumulative = 0;
  let size = 0;
  for (let j = 0; j < order.length; j++) {
    const p = probs[order[j]];
    cumulative += p;
    if (cumulative - p < goal) size++; // the mass ahead of it, as Python computes it
  }
  const chosen = order.slice(0, Math.max(1, size)).sort((a, b) => a - b);
  return [chosen.map((i) => ids[i]), Float32Array.from(chosen, (i) => probs[i])];
}

/** Inverse-CDF draw among candidate ids (increasing) with unnormalized probs; u in (0, 1]. */
function drawAmong(ids, probs, u) {
  const cumulative = new Float64Array(probs.length);
  let running = 0;
  for (let i = 0; i < probs.length; i++) cumulative[i] = running += probs[i];
  let index = searchSorted(cumulative, u * cumulative[cumulative.length - 1]);
  if (index >= ids.length || probs[index] === 0) index = lastNonzero(probs); // rounding at the very end
  return ids[index];
}

/** Inverse-CDF draw from unnormalized probs (the whole vocabulary) in two levels: a block of BLOCK tokens
 * by the blocks' masses, then a token inside it; a token of probability 0 is never returned. */
function drawBlocks(probs, u) {
  const blocks = Math.ceil(probs.length / BLOCK);
  const masses = new Float64Array(blocks);
  let total = 0;
  for (let b = 0; b < blocks; b++) {
    total += blockSumF32(probs, b * BLOCK, Math.min(probs.length, (b + 1) * BLOCK));
    masses[b] = total;
  }
  u *= masses[blocks - 1]; // in (0, total]
  const block = Math.min(searchSorted(masses, u), blocks - 1);
  const start = block * BLOCK;
  const inside = probs.subarray(start, Math.min(probs.length, start + BLOCK));
  if (block) u -= masses[block - 1]; // now in (0, mass of the block]
  const cumulative = new Float64Array(inside.length);
  let running = 0;
  for (let i = 0; i < inside.length; i++) cumulative[i] = running += inside[i];
  let index = searchSorted(cumulative, u);
  if (index >= inside.length || inside[index] === 0) index = lastNonzero(inside); // rounding between levels
  return start + index;
}

function lastNonzero(values) {
  let index = values.length - 1;
  while (index > 0 && values[index] === 0) index--;
  return index;
}

/** np.searchsorted(a, u) (side "left"): the first index whose value is >= u. */
function searchSorted(a, u) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
