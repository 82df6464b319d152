// load()'s options: the names it takes and the check of each, before anything is read or fetched; the
// check of the names, which WorkerModel.load's options share.

import { checkSignal } from './abort.js';
import { NextwordError } from './errors.js';
import { checkThreads } from './threads.js';

export const LOAD_OPTIONS = ['ort', 'sessionOptions', 'limits', 'numThreads', 'fetch', 'signal'];

/**
 * A NextwordError unless `options` is a plain object whose names are all in `names`: load()'s first check
 * (below) and WorkerModel.load's (src/client.js). `call` names the function, `takes` what "takes [names]"
 * is said of, `hint(unknown)` follows that list.
 * @param {unknown} options
 * @param {readonly string[]} names
 * @param {{call: string, takes: string, hint: (unknown: string[]) => string}} words
 */
export function checkOptionNames(options, names, { call, takes, hint }) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options;
    throw new NextwordError(`${call} options must be an object, got ${got}`);
  }
  const unknown = Object.keys(options).filter((k) => !names.includes(k));
  if (unknown.length) {
    throw new NextwordError(
      `unknown ${call} option(s) ${JSON.stringify(unknown)}; ${takes} takes ${JSON.stringify(names)}${hint(unknown)}`,
    );
  }
}

/** load()'s options as they can be used, or a NextwordError naming the one that cannot (a TypeError for
 * a signal that is no AbortSignal, as fetch throws). */
export function checkLoadOptions(options) {
  checkOptionNames(options, LOAD_OPTIONS, {
    call: 'load',
    takes: 'load',
    hint: (unknown) => (unknown.includes('threads') ? ' (the number of threads is numThreads)' : ''),
  });
  const { numThreads, ort, signal } = options;
  if (
    numThreads !== undefined &&
    !(Number.isSafeInteger(numThreads) && numThreads >= 1 && numThreads <= 256)
  ) {
    throw new NextwordError(
      `numThreads must be an integer in 1..256, got ${typeof numThreads === 'string' ? JSON.stringify(numThreads) : String(numThreads)}`,
    );
  }
  if (ort !== undefined && typeof ort?.InferenceSession?.create !== 'function') {
    throw new NextwordError(
      "ort must be an onnxruntime module (await import('onnxruntime-web/wasm')), with " +
        'InferenceSession.create',
    );
  }
  checkThreads(numThreads, ort);
  checkSignal(signal);
}
