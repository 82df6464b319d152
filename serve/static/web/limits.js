// What a model file may ask of the runtime: the caps and ranges checkModelFile enforces, as the Python
// runtime's LoadLimits (nextword/runtime/limits.py), and their validation.

import { NextwordError } from './errors.js';

export const MiB = 1024 * 1024;

const EXPORTED =
  'Add And Cast Concat Gather LSTM Less MatMul Mul Not Reshape Shape Slice Squeeze Transpose Unsqueeze Where';
const PLAUSIBLE = 'Identity Constant';
const QUANTIZED = 'DequantizeLinear DynamicQuantizeLinear MatMulInteger';
/** (domain, op type) pairs a nextword graph may use, as Python's DEFAULT_ALLOWED_OPS. */
export const DEFAULT_ALLOWED_OPS = Object.freeze(
  [
    ...`${EXPORTED} ${PLAUSIBLE} ${QUANTIZED}`.split(' ').map((op) => ['', op]),
    ['com.microsoft', 'DynamicQuantizeLSTM'],
  ].map((pair) => Object.freeze(pair)),
);

/** What checkModelFile accepts; the defaults fit every model nextword exports. */
export const DEFAULT_LIMITS = Object.freeze({
  maxFileBytes: 64 * MiB,
  maxTokenizerBytes: 4 * MiB,
  maxMetadataBytes: 1 * MiB,
  irVersions: Object.freeze([7, 8]), // frozen: read by every load() and exported
  opsetVersions: Object.freeze([13, 18]),
  allowedOps: DEFAULT_ALLOWED_OPS,
  // The graph bounds (src/graph-bounds.js), per batch row and position, as Python's LoadLimits.
  maxVocabSize: 1_000_000,
  maxStateWidth: 4096,
  maxTensorBytes: 64 * MiB,
  maxGraphBytes: 256 * MiB,
  maxMacsPerToken: 128 * MiB,
  maxNodes: 10_000,
  boundGraph: true, // false: trust the file's graph (onnxruntime-web sizes it alone)
});
const POSITIVE = Object.keys(DEFAULT_LIMITS).filter((k) => /^max/.test(k)); // positive integers

/** Validate and complete `limits` (Python's LoadLimits.__post_init__): a wrong one is the caller's
 * NextwordError, not a ModelFileError, which says the file is unusable. */
export function resolveLimits(limits = {}) {
  const known = Object.keys(DEFAULT_LIMITS);
  const unknown = Object.keys(limits).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new NextwordError(
      `unknown limits ${JSON.stringify(unknown)}; known limits are ${JSON.stringify(known)}`,
    );
  }
  const out = { ...DEFAULT_LIMITS, ...limits };
  for (const name of POSITIVE) {
    if (!Number.isSafeInteger(out[name]) || out[name] < 1) {
      throw new NextwordError(`limits.${name} must be a positive integer, got ${JSON.stringify(out[name])}`);
    }
  }
  for (const name of ['irVersions', 'opsetVersions']) {
    const v = out[name];
    if (
      !Array.isArray(v) ||
      v.length !== 2 ||
      !v.every(Number.isSafeInteger) ||
      !(1 <= v[0] && v[0] <= v[1])
    ) {
      throw new NextwordError(
        `limits.${name} must be an inclusive range [low, high] with 1 <= low <= high, got ${JSON.stringify(v)}`,
      );
    }
  }
  const ops = out.allowedOps;
  if (
    !Array.isArray(ops) ||
    !ops.every((p) => Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === 'string'))
  ) {
    throw new NextwordError('limits.allowedOps must be a list of [domain, opType] string pairs');
  }
  if (typeof out.boundGraph !== 'boolean') {
    throw new NextwordError(`limits.boundGraph must be true or false, got ${JSON.stringify(out.boundGraph)}`);
  }
  return out;
}
