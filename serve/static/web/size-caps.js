// The caps on a model file's size and cost that withoutSizeCaps() lifts, as the Python runtime's
// LoadLimits.without_size_caps(): the file, its tokenizer, the graph's tensors and work per word, the state's
// width. Every other check (versions, operators, nodes, metadata, vocabulary) stays. No imports: the page
// side of the Web Worker (src/client.js) exports it too.

const PROTOBUF_LIMIT = 2 ** 31 - 1; // the largest message protobuf reads: one ONNX file without external data

const UNCAPPED = Object.freeze({
  maxFileBytes: PROTOBUF_LIMIT,
  maxTokenizerBytes: PROTOBUF_LIMIT,
  maxTensorBytes: PROTOBUF_LIMIT,
  maxGraphBytes: Number.MAX_SAFE_INTEGER,
  maxMacsPerToken: Number.MAX_SAFE_INTEGER,
  maxStateWidth: 2 ** 31,
});

/** The names of the limits withoutSizeCaps() lifts. */
export const SIZE_CAPS = Object.freeze(Object.keys(UNCAPPED));

/**
 * `limits` (default: none given, so load()'s defaults) with every cap on size and cost lifted, for a file
 * one trusts, such as one's own export: `load(file, { limits: withoutSizeCaps() })` loads a model of any
 * size, while every check of what the file is and which operators it runs stays.
 * @param {object} [limits]
 * @returns {object}
 */
export function withoutSizeCaps(limits = {}) {
  return { ...limits, ...UNCAPPED };
}
