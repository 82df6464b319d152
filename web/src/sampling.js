// Choosing the next token from logits, as nextword/runtime/sampling.py does it, operation for operation:
// float32 scores, temperature as a float32 multiply, top-k, top-p with a stable sort and float64 sums,
// and the two-level (blocks of 128, then tokens) inverse-CDF draw from numpy's PCG64 stream.

import { blockSumF32, npExpF32, sumF32AsF64 } from './float32.js';

export const BLOCK = 128; // tokens per block of the two-level draw

const f = Math.fround;

/**
 * Pick one token id per row of `scores` (rows x vocab, float32, overwritten: it is scratch space).
 * temperature 0 takes the most likely token (ties: the lowest id). Row i draws from rngs[i].
 * @param {Float32Array} scores
 * @param {{temperature: number, topK: number | null, topP: number | null, rngs: {random(): number}[],
 *   exp?: (x: number) => number}} options
 * @returns {number[]}
 */
export function sampleNext(scores, rows, vocab, { temperature, topK = null, topP = null, rngs, exp = npExpF32 }) {
  const chosen = [];
  for (let r = 0; r < rows; r++) {
    const row = scores.subarray(r * vocab, (r + 1) * vocab);
    chosen.push(temperature === 0 ? argmax(row) : sampleRow(row, temperature, topK, topP, rngs[r], exp));
  }
  return chosen;
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

function sampleRow(row, temperature, topK, topP, rng, exp) {
  const vocab = row.length;
  if (temperature !== 1) {
    const scale = f(1.0 / temperature);
    for (let i = 0; i < vocab; i++) row[i] = f(row[i] * scale);
  }
  if (topK !== null && topK < vocab) keepLargest(row, topK);
  let peak = -Infinity;
  for (let i = 0; i < vocab && !Number.isNaN(peak); i++) peak = Number.isNaN(row[i]) ? NaN : Math.max(peak, row[i]);
  for (let i = 0; i < vocab; i++) row[i] = exp(f(row[i] - peak)); // unnormalized; cut entries are 0
  if (topP !== null && topP < 1) nucleus(row, topP);
  return draw(row, rng);
}

/**
 * Set all but the `k` largest entries to -inf (np.argpartition's cut). Entries equal to the k-th
 * largest are kept lowest ids first; numpy's selection keeps an order of its own among such ties.
 */
function keepLargest(row, k) {
  const sorted = Float32Array.from(row).sort(); // ascending, NaN last
  const threshold = sorted[row.length - k];
  let above = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > threshold) above++;
  let ties = k - above; // how many entries equal to the threshold stay
  for (let i = 0; i < row.length; i++) {
    if (row[i] > threshold) continue;
    if (row[i] === threshold && ties > 0) ties--;
    else row[i] = -Infinity;
  }
}

/** Keep the smallest set of most likely tokens holding `topP` of the mass (sampling.py's arithmetic). */
function nucleus(probs, topP) {
  const nonzero = [];
  const zero = [];
  for (let i = 0; i < probs.length; i++) (probs[i] > 0 || Number.isNaN(probs[i]) ? nonzero : zero).push(i);
  nonzero.sort((a, b) => probs[b] - probs[a] || a - b); // stable: equal probabilities in id order
  const order = nonzero.concat(zero); // zeros last, in id order, as a stable sort of -probs puts them
  const sortedProbs = Float32Array.from(order, (i) => probs[i]);
  const threshold = topP * sumF32AsF64(sortedProbs);
  let cumulative = 0;
  for (let j = 0; j < order.length; j++) {
    cumulative += sortedProbs[j];
    if (cumulative - sortedProbs[j] >= threshold) probs[order[j]] = 0; // mass ahead of it already enough
  }
}

/** Inverse-CDF draw from unnormalized probs in two levels: a block of BLOCK tokens by the blocks'
 * masses, then a token inside it; a token of probability 0 is never returned. */
function draw(probs, rng) {
  const blocks = Math.ceil(probs.length / BLOCK);
  const masses = new Float64Array(blocks);
  let total = 0;
  for (let b = 0; b < blocks; b++) {
    total += blockSumF32(probs, b * BLOCK, Math.min(probs.length, (b + 1) * BLOCK));
    masses[b] = total;
  }
  let u = (1.0 - rng.random()) * masses[blocks - 1]; // in (0, total]
  const block = Math.min(searchSorted(masses, u), blocks - 1);
  const start = block * BLOCK;
  const inside = probs.subarray(start, Math.min(probs.length, start + BLOCK));
  if (block) u -= masses[block - 1];
  const cumulative = new Float64Array(inside.length);
  let running = 0;
  for (let i = 0; i < inside.length; i++) cumulative[i] = running += inside[i];
  let index = searchSorted(cumulative, u);
  if (index >= inside.length || inside[index] === 0) {
    // rounding between the two levels: take the block's last possible token
    index = inside.length - 1;
    while (index > 0 && inside[index] === 0) index--;
  }
  return start + index;
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
