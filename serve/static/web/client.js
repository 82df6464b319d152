// The page side of nextword-web's Web Worker: the model API, answered by a worker (src/worker.js), so
// generation never blocks the page. Every method returns a promise; stream() an async iterator.

import { checkSignal } from './abort.js';
import { ModelFileError, ModelRunError, NextwordError } from './errors.js';
import { streamOptions } from './generation.js';
import { checkOptionNames } from './load-options.js';

export { SIZE_CAPS, withoutSizeCaps } from './size-caps.js';

// Errors rebuilt with their own class on this side of the worker (a worker can only post plain data).
const ERRORS = { ModelFileError, ModelRunError, NextwordError, TypeError, RangeError };

// WorkerModel.load's options: load()'s that can reach a worker (plain data), and the worker's own.
const LOAD_OPTIONS = [
  'worker',
  'workerUrl',
  'ortUrl',
  'wasmPaths',
  'numThreads',
  'limits',
  'sessionOptions',
  'signal',
];

/** WorkerModel.load's options as given, or a NextwordError naming the one it does not take (before any
 * worker starts: the worker's load() named its own list, or a function failed to be posted to it). */
function checkLoadOptions(options) {
  checkOptionNames(options, LOAD_OPTIONS, {
    call: 'WorkerModel.load',
    takes: 'it',
    hint: (unknown) =>
      unknown.some((k) => k === 'fetch' || k === 'ort')
        ? " (fetch and ort are load()'s: a function cannot reach the worker; fetch the model yourself and " +
          "pass its bytes, and give onnxruntime-web's module as ortUrl)"
        : '',
  });
}

// Request ids, one sequence for every client of this page: a worker (or port) the caller gave may be
// given again after a load was aborted, and the late answer to that load must settle no other request.
let nextId = 1;

/** A model loaded in a Web Worker. Create one with WorkerModel.load(). */
export class WorkerModel {
  /**
   * Start a worker and load a model in it.
   * @param {string | URL | ArrayBuffer | ArrayBufferView | Blob} source the model's URL (resolved against
   *   the page), its bytes (a copy transferred to the worker) or a Blob (sent to it)
   * @param {{worker?: Worker | MessagePort, workerUrl?: string | URL, ortUrl?: string | URL,
   *   wasmPaths?: string | URL | {wasm?: string | URL, mjs?: string | URL}, numThreads?: number,
   *   limits?: object, signal?: AbortSignal}} [options]
   *   workerUrl: nextword-web/worker's URL (default: beside this module, which Vite and webpack
   *   bundle); ortUrl: onnxruntime-web's ES module (e.g. ".../ort.wasm.min.mjs"), needed where the worker
   *   cannot resolve "onnxruntime-web/wasm" (no bundler); wasmPaths: the folder of its .wasm and .mjs, or
   *   onnxruntime-web's {wasm, mjs} with the URL of each; signal: aborted before the load is done, the
   *   load rejects with the signal's reason, as fetch does (an AbortError DOMException for
   *   controller.abort()), and the worker it started is terminated, which stops what it was fetching (the
   *   model, onnxruntime-web's WebAssembly); already aborted, it rejects at once and starts no worker. A
   *   worker given as `worker` stays the caller's: not terminated, but no longer listened to (a load it
   *   had begun goes on there)
   */
  static async load(source, options = {}) {
    checkLoadOptions(options);
    const { worker, workerUrl, signal, ...rest } = options;
    checkSignal(signal); // as load() checks it
    signal?.throwIfAborted(); // before any worker is started
    // Node has no Web Worker; onnxruntime-web, once loaded there, sets globalThis.Worker to
    // worker_threads' Worker, which has neither addEventListener nor module scripts by URL
    if (!worker && typeof globalThis.Worker?.prototype?.addEventListener !== 'function') {
      throw new NextwordError(
        'WorkerModel needs a Web Worker, which this JavaScript environment lacks (WorkerModel runs in a ' +
          "browser); under Node use load() from 'nextword-web', in a worker_threads Worker of your own " +
          'for a server that must stay responsive, or give WorkerModel.load a worker (a MessagePort ' +
          'served by nextword-web/worker)',
      );
    }
    const base = globalThis.location?.href;
    const absolute = (url) =>
      url === undefined ? undefined : base ? new URL(String(url), base).href : String(url);
    // onnxruntime-web's wasmPaths: a folder, or {wasm, mjs} with a URL each (String() of it was "[object Object]")
    const paths = rest.wasmPaths;
    const wasmPaths =
      paths !== null && typeof paths === 'object' && !(paths instanceof URL)
        ? Object.fromEntries(Object.entries(paths).map(([key, url]) => [key, absolute(url)]))
        : absolute(paths);
    let port = worker;
    let name = 'the worker';
    let hint = '';
    if (!port && workerUrl !== undefined) {
      name = `the worker ${absolute(workerUrl)}`;
      port = new Worker(absolute(workerUrl), { type: 'module' });
    } else if (!port) {
      // Written as bundlers look for it (Vite, webpack, Parcel): they bundle the worker and its imports
      // as a chunk of their own and put its URL here. A bundler that does not (esbuild) leaves this URL
      // pointing beside its bundle: such builds give nextword-web/worker as an entry point and workerUrl.
      port = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
      // named from import.meta.url by hand: a second new URL(..., import.meta.url) would be bundled again
      const here = String(import.meta.url);
      name = `the worker ${here.slice(0, here.lastIndexOf('/') + 1)}worker.js`;
      hint =
        '; a bundler that does not bundle workers (esbuild) needs nextword-web/worker as an entry ' +
        'point of its own, its URL given as workerUrl';
    }
    const client = new WorkerModel(port, name, hint);
    let payload = source;
    const transfer = [];
    if (typeof source === 'string' || source instanceof URL) payload = absolute(source);
    else if (ArrayBuffer.isView(source)) {
      // a copy of exactly the view's bytes, sent over: a Buffer's slice() shares its memory (sending
      // its buffer detached the caller's, or sent the whole pool), and a DataView has no slice()
      payload = new Uint8Array(source.buffer, source.byteOffset, source.byteLength).slice().buffer;
      transfer.push(payload);
    }
    const loadOptions = { ...rest, ortUrl: absolute(rest.ortUrl), wasmPaths };
    // aborted: the load fails now, and a worker started here ends at once, with the fetches it made
    // (one the caller gave stays theirs, and this client stops listening to it)
    const abort = () => client._fail(signal.reason, !worker);
    signal?.addEventListener('abort', abort);
    try {
      client.info = await client._request({ type: 'load', source: payload, options: loadOptions }, transfer);
      signal?.throwIfAborted(); // aborted as the answer came in
    } catch (error) {
      // a worker started here for a model that failed to load is of no use: ended, not left running
      // with its memory (a worker given by the caller stays theirs)
      if (!worker) client.terminate();
      else if (signal?.aborted) client._fail(error, false); // aborted as the answer came in
      throw error;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
    return client;
  }

  /**
   * @param {Worker | MessagePort} port
   * @param {string} [name] the worker as error messages name it
   * @param {string} [hint] what a worker whose script could not be loaded tells next
   */
  constructor(port, name = 'the worker', hint = '') {
    if (typeof port?.addEventListener !== 'function') {
      throw new NextwordError(
        'WorkerModel has no public constructor: create one with await WorkerModel.load(source, options)',
      );
    }
    this.port = port;
    this._terminated = false;
    this._pending = new Map();
    // A worker whose script cannot load (a 404, a server gone) or that throws outside a request fires
    // "error", and a reply that cannot be read "messageerror": no answer will come, so every request
    // waiting for one fails now rather than never settling.
    this._listeners = {
      message: (event) => this._receive(event.data),
      error: (event) =>
        this._fail(
          new NextwordError(`${name} failed: ${event?.message || `its script could not be loaded${hint}`}`),
        ),
      messageerror: () => this._fail(new NextwordError(`${name} sent a reply that could not be read`)),
    };
    for (const [type, listener] of Object.entries(this._listeners)) port.addEventListener(type, listener);
    port.start?.();
  }

  /** As NextWordModel.generate: the continuation of `prompt` (a string, or a list for a list). */
  generate(prompt, options = {}) {
    return this._request({ type: 'generate', prompt, options });
  }

  /** As NextWordModel.nextWords. */
  nextWords(prompt, k = 5, options = {}) {
    return this._request({ type: 'nextWords', prompt, k, options });
  }

  /** As NextWordModel.suggest. */
  suggest(prompt, k = 5, options = {}) {
    return this._request({ type: 'suggest', prompt, k, options });
  }

  /** As NextWordModel.score. */
  score(text, options = {}) {
    return this._request({ type: 'score', text, options });
  }

  /** As NextWordModel.stream: pieces as they are generated (and `finishReason` once done). Leaving the
   * loop early stops the worker. Options are checked now, as NextWordModel.stream checks them. */
  stream(prompt, options = {}) {
    this._check();
    // against the file's defaults, as the worker's model checks them (a WorkerModel made with `new`, not
    // load(), has none: its worker checks them alone)
    if (this.info?.generation) streamOptions(this.info.generation, prompt, options);
    const id = nextId++;
    const queue = [];
    let wake = null;
    let finished = false;
    let failure = null;
    let finishReason = null;
    this._pending.set(id, {
      piece: (text) => {
        queue.push(text);
        wake?.();
      },
      resolve: (result) => {
        finishReason = result?.finishReason ?? null;
        finished = true;
        wake?.();
      },
      reject: (error) => {
        failure = error;
        wake?.();
      },
    });
    this.port.postMessage({ id, type: 'stream', prompt, options });
    const port = this.port;
    return {
      get finishReason() {
        return finishReason;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        for (;;) {
          if (queue.length) return { value: queue.shift(), done: false };
          if (failure) throw failure;
          if (finished) return { value: undefined, done: true };
          await new Promise((resolve) => (wake = resolve));
          wake = null;
        }
      },
      async return() {
        if (!finished) port.postMessage({ type: 'cancel', target: id });
        finished = true;
        queue.length = 0;
        wake?.(); // a next() waiting for a piece ends now
        return { value: undefined, done: true };
      },
    };
  }

  /** The resources the worker fetched (PerformanceResourceTiming fields), for measurements. */
  resources() {
    return this._request({ type: 'resources' });
  }

  /** Stop the worker (a MessagePort given as `worker` is closed). */
  terminate() {
    this._fail(terminated());
  }

  /** Stop the worker (`end`; else only stop listening to it, a worker the caller gave) and fail every
   * request waiting for it with `error`; later calls fail at once. */
  _fail(error, end = true) {
    this._terminated = true;
    if (end) {
      (this.port.terminate ?? this.port.close)?.call(this.port);
    } else {
      for (const [type, listener] of Object.entries(this._listeners)) {
        this.port.removeEventListener(type, listener);
      }
    }
    for (const { reject } of this._pending.values()) reject(error);
    this._pending.clear();
  }

  /** A call after terminate() fails at once: nothing would ever answer it. */
  _check() {
    if (this._terminated) throw terminated();
  }

  _request(message, transfer = []) {
    if (this._terminated) return Promise.reject(terminated());
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this.port.postMessage({ id, ...message }, transfer);
    });
  }

  _receive({ id, result, error, piece }) {
    const pending = this._pending.get(id);
    if (!pending) return;
    if (piece !== undefined) {
      pending.piece(piece);
      return;
    }
    this._pending.delete(id);
    if (error) {
      const Type = Object.hasOwn(ERRORS, error.name) ? ERRORS[error.name] : Error;
      const failure = new Type(error.message);
      if (!Object.hasOwn(ERRORS, error.name)) failure.name = error.name;
      pending.reject(failure);
    } else {
      pending.resolve(result);
    }
  }
}

function terminated() {
  return new NextwordError('the worker was terminated: load the model again (WorkerModel.load)');
}
