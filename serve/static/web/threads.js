// How many threads onnxruntime runs a session on: load()'s numThreads (default 1, as the Python runtime
// runs one thread per call), whichever onnxruntime module runs it. onnxruntime-web reads its count from
// ort.env.wasm once, when its backend starts; a native binding (onnxruntime-node) from each session's
// intraOpNumThreads, and uses one thread per core when it is not set, so that an int8 file's batches of
// 5 rows or more (each thread quantizes its share of the rows) gave texts that differed by machine.

import { NextwordError } from './errors.js';

// ort.env.wasm -> the thread count that onnxruntime-web's backend started with at its first load()
const started = new WeakMap();

/**
 * Whether `ort` is onnxruntime-web (any of its builds): it records itself as env.versions.web. Every
 * binding carries an env.wasm (onnxruntime-common's), read by onnxruntime-web alone.
 */
export function isWebAssembly(ort) {
  const versions = ort?.env?.versions;
  if (versions !== null && typeof versions === 'object') return typeof versions.web === 'string';
  return ort?.env?.wasm !== null && typeof ort?.env?.wasm === 'object';
}

/** load()'s numThreads refused where onnxruntime-web cannot start threads: under Node. */
export function checkThreads(numThreads, ort) {
  const web = ort === undefined || isWebAssembly(ort);
  if (numThreads > 1 && web && globalThis.process?.release?.name === 'node') {
    // onnxruntime-web's threads are Web Workers fetched by URL: under Node its backend failed to start,
    // blamed on the .wasm, and every later load() in the process failed with it
    throw new NextwordError(
      'numThreads above 1 needs a browser (a cross-origin-isolated page, docs/web.md): under Node ' +
        "onnxruntime-web's WebAssembly threads do not start; leave numThreads at 1, or pass " +
        "onnxruntime-node as ort (load(src, { ort: await import('onnxruntime-node'), numThreads }))",
    );
  }
}

/**
 * Set the thread count before a session is created; returns the session options to create it with.
 * @param {any} ort the module that runs the session
 * @param {boolean} given whether load() was given it (an app's own module keeps a count it set)
 * @param {number | undefined} asked load()'s numThreads as given
 * @param {Record<string, unknown>} sessionOptions load()'s sessionOptions
 */
export function threadOptions(ort, given, asked, sessionOptions) {
  const options = { graphOptimizationLevel: 'all', ...sessionOptions };
  if (!isWebAssembly(ort)) {
    // a native binding: one thread per core unless told (the caller's intraOpNumThreads is kept)
    if (options.intraOpNumThreads === undefined) options.intraOpNumThreads = asked ?? 1;
    return options;
  }
  const wasm = ort.env.wasm;
  const startedWith = started.get(wasm);
  if (startedWith === undefined) {
    // left unset, onnxruntime-web works a count out at its start, with require('node:os') under Node,
    // which its ES module build cannot call ("Dynamic require of "node:os" is not supported")
    // 0 (onnxruntime-web's "work it out") fails there the same way
    const unset =
      wasm.numThreads === undefined ||
      (wasm.numThreads === 0 && globalThis.process?.release?.name === 'node');
    if (!given || asked !== undefined || unset) wasm.numThreads = asked ?? 1;
  } else if (asked !== undefined && asked !== startedWith) {
    throw new NextwordError(
      `numThreads: onnxruntime-web started with ${startedWith} thread(s) at this page's first ` +
        'load(), and its thread count cannot change after: give every load() the same numThreads, or ' +
        'load in a Worker of its own',
    );
  }
  return options;
}

/** Record the count onnxruntime-web started with, once a session was created. */
export function threadsStarted(ort) {
  if (isWebAssembly(ort) && !started.has(ort.env.wasm)) started.set(ort.env.wasm, ort.env.wasm.numThreads);
}
