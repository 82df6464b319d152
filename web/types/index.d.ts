// Types of nextword-web (hand-written; the package is plain ES modules with no build step).

/** Bad input: an invalid option, prompt or argument. */
export class NextwordError extends Error {}
/** A file that is not a usable nextword model. */
export class ModelFileError extends NextwordError {}
/** onnxruntime failed running a model that had loaded (a damaged or crafted file). */
export class ModelRunError extends ModelFileError {}

/** Generation options: the Python runtime's GenerationConfig fields in camelCase. */
export interface GenerationOptions {
  /** words to generate at most (0..10000) */
  maxWords?: number;
  /** words to generate at least before the model may end the document */
  minWords?: number;
  /** softmax temperature; 0 is greedy */
  temperature?: number;
  /** sample only among the K most likely words (null or 0: all; 0 also turns a model file's topK off) */
  topK?: number | null;
  /** nucleus sampling: the most likely words that together hold P (0 < P <= 1) */
  topP?: number | null;
  /** > 1 makes words already in the prompt or the text less likely (1 = off) */
  repetitionPenalty?: number;
  /** never repeat a word sequence of this length (0 = off) */
  noRepeatNgramSize?: number;
  /** strings that end the text; the text is cut before them ([]: none, not even the model file's) */
  stop?: string | readonly string[];
  /** end where the model ends the document (false: run to maxWords) */
  stopAtEnd?: boolean;
  /** allow the unknown-word token <unk> in the output */
  allowUnknown?: boolean;
  /** texts to generate per prompt */
  numReturnSequences?: number;
  /** > 1: deterministic beam search with this many beams (no sampling options; numReturnSequences <= numBeams) */
  numBeams?: number;
  /** beam search: a hypothesis's total log-probability is divided by length ** lengthPenalty */
  lengthPenalty?: number;
  /** random seed (any non-negative integer); the same seed and options give the same text as Python */
  seed?: number | bigint | null;
  /** mix in the model file's continuous cache (an error when the file has none); default false */
  cache?: boolean;
}

/** What every continuous cache's settings hold. */
interface CacheSettingsBase {
  /** scale of the similarities (h_t . h_i, or the same of unit-length states with "cosine") */
  theta: number;
  /** earlier positions of the text kept (1..4096) */
  window: number;
  /** "dot" (the default: a file's settings leave it out) or "cosine" (unit-length states) */
  similarity?: 'dot' | 'cosine';
  /** how the values were chosen at export */
  tuning?: Record<string, unknown>;
}

/** A continuous cache's settings (the file's `nextword.cache`): exactly one of `mix` and `gate`. */
export type CacheSettings = CacheSettingsBase &
  (
    | {
        /** the cache distribution's constant share of the mixture (0 < mix < 1) */
        mix: number;
        gate?: null;
      }
    | {
        mix?: null;
        /** [a, b]: the share at each position is sigmoid(a + b * L_t), L_t the cache's log-sum-exp */
        gate: readonly [number, number];
      }
  );

/** Options of nextWords(), suggest() and score(). */
export interface ScoringOptions {
  /** undefined or null: the file's cache when it has one; false: the model alone; true: the file's
   * cache (an error when it has none); settings: those */
  cache?: boolean | null | CacheSettings;
}

/** Options after validation, as a model file's defaults are kept. */
export interface GenerationConfig extends Required<Omit<GenerationOptions, 'stop' | 'seed'>> {
  stop: readonly string[];
  seed: bigint | null;
}

/** Caps and ranges of the model-file checks (the Python runtime's LoadLimits). */
export interface LoadLimits {
  maxFileBytes?: number;
  maxTokenizerBytes?: number;
  maxMetadataBytes?: number;
  irVersions?: [number, number];
  opsetVersions?: [number, number];
  allowedOps?: [string, string][];
  /** widest vocabulary (the logits' declared width) */
  maxVocabSize?: number;
  /** widest LSTM state (h, c and the LSTM hidden size) */
  maxStateWidth?: number;
  /** largest tensor the graph may make, in bytes per batch row and position (weights included) */
  maxTensorBytes?: number;
  /** all of the graph's tensors together, in bytes per batch row and position */
  maxGraphBytes?: number;
  /** multiply-accumulates of one step, per batch row and position */
  maxMacsPerToken?: number;
  /** most nodes in the graph */
  maxNodes?: number;
  /** work out the graph's tensor sizes and cost before onnxruntime-web sees it (false: trust the file) */
  boundGraph?: boolean;
}

export interface LoadOptions {
  /** an onnxruntime module with InferenceSession and Tensor (default: import('onnxruntime-web/wasm')) */
  ort?: unknown;
  /** passed to InferenceSession.create */
  sessionOptions?: Record<string, unknown>;
  limits?: LoadLimits;
  /**
   * threads (default 1, as the Python runtime's one thread per call): onnxruntime-web's
   * env.wasm.numThreads (unless an ort given has its own), a native binding's intraOpNumThreads
   * (unless sessionOptions sets it)
   */
  numThreads?: number;
  /** fetches a URL source in place of globalThis.fetch (e.g. with headers); must return a Response.
   * Called as fetch(url, { signal }) when load() has a signal: pass it on to reach the download */
  fetch?: typeof fetch;
  /** aborted before the load is done, the load rejects with the signal's reason, as fetch does (an
   * AbortError DOMException for controller.abort(), a TimeoutError for AbortSignal.timeout(ms)), and its
   * download stops; already aborted, nothing is read or fetched */
  signal?: AbortSignal;
}

export interface ModelInfo {
  formatVersion: number;
  tokenizer: Tokenizer;
  stateSizes: number[];
  vocabSize: number;
  config: Record<string, unknown>;
  metrics: Record<string, unknown>;
  parity: Record<string, unknown>;
  versions: Record<string, unknown>;
  quality: Record<string, unknown>;
  /** the model file's decoding defaults */
  generation: GenerationConfig;
  /** the model file's continuous-cache settings, null when it has none */
  cache: Readonly<CacheSettings> | null;
  hasLogitsFrom: boolean;
}

export interface NextWord {
  word: string;
  probability: number;
}

export interface TextScore {
  totalLogprob: number;
  perplexity: number;
  /** token: the word as the tokenizer read it (normalized: lowercased by a lowercasing model; an unknown
   * word keeps its own); word: the vocabulary token scored (token itself, or <unk> when unknown, as
   * Python's WordScore.word; its token is WordScore.token); text: token as rendered, with spacing */
  words: { word: string; token: string; text: string; logprob: number; unknown: boolean }[];
}

/** A next word with the text that appends it to the prompt. */
export interface Suggestion {
  word: string;
  text: string;
  probability: number;
}

/** stream()'s pieces; finishReason ("length", "stop" or "end") once the text has ended. */
export interface TextStream extends AsyncIterableIterator<string> {
  readonly finishReason: 'length' | 'stop' | 'end' | null;
}

export class NextWordModel {
  /** load() makes one: a model needs a session and the file's settings. */
  private constructor();
  readonly info: ModelInfo;
  readonly source: string;
  readonly tokenizer: Tokenizer;
  readonly vocabSize: number;
  generate(prompt: string, options?: GenerationOptions): Promise<string | string[]>;
  generate(prompt: string[], options?: GenerationOptions): Promise<string[]>;
  generate(prompt: string | string[], options?: GenerationOptions): Promise<string | string[]>;
  stream(prompt: string, options?: GenerationOptions): TextStream;
  nextWords(prompt: string, k?: number | bigint, options?: ScoringOptions): Promise<NextWord[]>;
  /** nextWords with the text that appends each word to the prompt (as `nextword serve`'s /v1/suggest) */
  suggest(prompt: string, k?: number | bigint, options?: ScoringOptions): Promise<Suggestion[]>;
  score(text: string, options?: ScoringOptions): Promise<TextScore>;
  promptIds(prompt: string): number[];
  release(): Promise<void>;
}

/** Load a nextword .onnx file: a URL (fetched), a path under Node, or the file's bytes. */
export function load(
  source: string | URL | ArrayBuffer | ArrayBufferView | Blob,
  options?: LoadOptions,
): Promise<NextWordModel>;

export class TokenizerConfig {
  constructor(options?: {
    lowercase?: boolean;
    dropFigureRefs?: boolean;
    minCount?: number;
    maxVocab?: number;
  });
  lowercase: boolean;
  dropFigureRefs: boolean;
  minCount: number;
  maxVocab: number;
}

/** The tokenizer format versions this package reads (test/unit.test.js keeps it in step with
 * src/tokenizer.js). */
export type TokenizerVersion = 1 | 2 | 3 | 4 | 5;

export class Tokenizer {
  /** `version`: the tokenizer format version whose rules it follows (1; 2, which reads the literal
   * "<unk>" as one token; 3, which also keeps combining marks inside words; 4, which also drops the
   * characters that only format text, such as a soft hyphen; or 5, the newest and the default, which
   * also makes each Han ideograph a token, drops the Arabic tatweel and reads a `"` between Hebrew
   * letters as the gershayim). */
  constructor(tokens: string[], config?: TokenizerConfig, version?: TokenizerVersion);
  static fromJson(text: string): Tokenizer;
  readonly config: TokenizerConfig;
  readonly version: TokenizerVersion;
  readonly size: number;
  readonly tokens: string[];
  readonly padId: number;
  readonly unkId: number;
  readonly eodId: number;
  tokenize(text: string): string[];
  encode(text: string): number[];
  decode(ids: Iterable<number | bigint>): string;
  pieces(tokens: Iterable<string>, previous?: string | null): Generator<string>;
  /** `starts`: whether `token` begins a sentence (left out: from `previous` alone). */
  piece(token: string, previous: string | null, starts?: boolean): string;
  /** Whether `token` ends a sentence (`.`, `?`, `!`; not a `.` after initials such as `e.g`, the token
   * `previous` before it). */
  static endsSentence(token: string, previous?: string | null): boolean;
  /** Whether the token after `token` begins a sentence, `starts` saying whether `token` did and
   * `previous` being the token before it. */
  static startsAfter(token: string, starts: boolean, previous?: string | null): boolean;
  /** Whether the token after a text begins a sentence, from its tokens before it, the latest first. */
  static beginsSentence(before: Iterable<string>): boolean;
  idOf(token: string): number;
  tokenOf(id: number | bigint): string;
}

export const PAD: '<pad>';
export const UNK: '<unk>';
export const EOD: '<eod>';
export const MAX_WORDS: number;
export const MAX_BATCH: number;
/** GenerationConfig() of the Python runtime: stop is a (frozen) list, seed null. */
export const GENERATION_DEFAULTS: Readonly<GenerationConfig>;
export const DEFAULT_LIMITS: Readonly<Required<LoadLimits>>;
/** The names of the limits withoutSizeCaps() lifts. */
export const SIZE_CAPS: readonly (keyof LoadLimits)[];
/**
 * `limits` (default: load()'s) with every cap on size and cost lifted (file, tokenizer, tensors, graph,
 * work per word, state width), for a file one trusts; the checks of what the file is stay.
 */
export function withoutSizeCaps(limits?: LoadLimits): LoadLimits;
/** The Unicode version of the Python whose tokenization this package reproduces. */
export const UNICODE_VERSION: string;
/**
 * `base` with `options` over it, checked as generate() checks them. `origin`: whose defaults `base` holds
 * ("this model file's", as generate() and stream() say of `model.info.generation`): a refusal of options
 * that conflict then names the values taken from `base` as its defaults ("numBeams=4 is this model file's
 * decoding default"), as Python's `GenerationConfig.from_options(..., origin=...)` does.
 */
export function resolveOptions(
  base: GenerationConfig,
  options?: GenerationOptions,
  origin?: string | null,
): GenerationConfig;
/** A model file's metadata, as the Python runtime's parse_metadata reads it. */
export interface ModelFileMetadata {
  /** every metadata entry: key -> text */
  values: Map<string, string>;
  /** the JSON entries, parsed */
  json: Map<string, Map<string, unknown>>;
  formatVersion: number;
  /** what the graph may use at most, per batch row and position; null when limits.boundGraph is off */
  bounds: GraphBounds | null;
}
/** Upper bounds worked out from a model's graph (the Python runtime's GraphBounds). */
export interface GraphBounds {
  largestTensorBytes: bigint;
  totalBytes: bigint;
  macsPerToken: bigint;
  nodes: number;
}
/** Check a model file's bytes as load() does; limits left out take DEFAULT_LIMITS' values. */
export function checkModelFile(name: string, data: Uint8Array, limits?: LoadLimits): ModelFileMetadata;

/** numpy's SeedSequence. */
export class SeedSequence {
  constructor(entropy?: bigint | number | null, spawnKey?: number[]);
  spawn(n: number): SeedSequence[];
  generateState(n: number): number[];
}

/** numpy's PCG64 with Generator.random(). */
export class PCG64 {
  constructor(seedSequence: SeedSequence);
  next64(): bigint;
  random(): number;
}
