// nextword-web: run a nextword .onnx model in the browser (or Node) with onnxruntime-web, with the same
// tokenizer, options, checks and random streams as the Python runtime. See README.md and docs/web.md.

export { load, NextWordModel } from './model.js';
export { ModelFileError, ModelRunError, NextwordError } from './errors.js';
export { DEFAULTS as GENERATION_DEFAULTS, MAX_BATCH, MAX_WORDS, resolveOptions } from './generation.js';
export { DEFAULT_LIMITS, checkModelFile } from './model-check.js';
export { SIZE_CAPS, withoutSizeCaps } from './size-caps.js';
export { Tokenizer, TokenizerConfig, EOD, PAD, UNK } from './tokenizer.js';
export { SeedSequence, PCG64 } from './random.js';
export { UNICODE_VERSION } from './unicode.js';
