// Types of nextword-web/client: the model API answered by a Web Worker.

import type {
  GenerationOptions,
  LoadLimits,
  ModelInfo,
  NextWord,
  ScoringOptions,
  Suggestion,
  TextScore,
  TextStream,
} from './index.js';

export { SIZE_CAPS, withoutSizeCaps } from './index.js';

export interface WorkerLoadOptions {
  /** a worker (or MessagePort) already running nextword-web/worker */
  worker?: Worker | MessagePort;
  /** where nextword-web/worker lives (default: next to this module, which Vite and webpack bundle) */
  workerUrl?: string | URL;
  /** onnxruntime-web's ES module, for workers that cannot resolve "onnxruntime-web/wasm" (no bundler) */
  ortUrl?: string | URL;
  /** the folder of onnxruntime-web's ort-wasm-simd-threaded.{wasm,mjs} (with or without ortUrl), or
   * onnxruntime-web's object form: the URL of each file */
  wasmPaths?: string | URL | { wasm?: string | URL; mjs?: string | URL };
  numThreads?: number;
  limits?: LoadLimits;
  /** passed to the worker's InferenceSession.create (plain data only) */
  sessionOptions?: Record<string, unknown>;
  /** aborted before the load is done: it rejects with the signal's reason and terminates the worker it
   * started (a worker given as `worker` stays the caller's); already aborted, it starts none */
  signal?: AbortSignal;
}

export class WorkerModel {
  static load(
    source: string | URL | ArrayBuffer | ArrayBufferView | Blob,
    options?: WorkerLoadOptions,
  ): Promise<WorkerModel>;
  /** The model's description (its tokenizer stays in the worker: `vocabulary` is its size). */
  readonly info: Omit<ModelInfo, 'tokenizer'> & { vocabulary: number; source: string };
  generate(prompt: string, options?: GenerationOptions): Promise<string | string[]>;
  generate(prompt: string[], options?: GenerationOptions): Promise<string[]>;
  generate(prompt: string | string[], options?: GenerationOptions): Promise<string | string[]>;
  /** Bad options throw a NextwordError here, when called, as NextWordModel.stream's do. */
  stream(prompt: string, options?: GenerationOptions): TextStream;
  nextWords(prompt: string, k?: number | bigint, options?: ScoringOptions): Promise<NextWord[]>;
  suggest(prompt: string, k?: number | bigint, options?: ScoringOptions): Promise<Suggestion[]>;
  score(text: string, options?: ScoringOptions): Promise<TextScore>;
  /** What the worker fetched (PerformanceResourceTiming fields), for measurements. */
  resources(): Promise<
    {
      name: string;
      transferSize: number;
      encodedBodySize: number;
      decodedBodySize: number;
      duration: number;
    }[]
  >;
  terminate(): void;
}
