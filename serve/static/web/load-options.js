// load()'s options: the names it takes and the check of each, before anything is read or fetched.

import { checkSignal } from './abort.js';
import { NextwordError } from './errors.js';
import { checkThreads } from './threads.js';

export const LOAD_OPTIONS = ['ort', 'sessionOptions', 'limits', 'numThreads', 'fetch', 'signal'];

/** load()'s options as they can be used, or a NextwordError naming the one that cannot (a TypeError for
 * a signal that is no AbortSignal, as fetch throws). */
export function checkLoadOptions(options) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new NextwordError(
      `load options must be an object, got ${options === null ? 'null' : typeof options}`,
    );
  }
  const unknown = Object.keys(options).filter((k) => !LOAD_OPTIONS.includes(k));
  if (unknown.length) {
    const hint = unknown.includes('threads') ? ' (the number of threads is numThreads)' : '';
    throw new NextwordError(
      `unknown load option(s) ${JSON.stringify(unknown)}; load takes ${JSON.stringify(LOAD_OPTIONS)}${hint}`,
    );
  }
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
