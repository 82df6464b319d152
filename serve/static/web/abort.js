// The `signal` option of load() and WorkerModel.load: checked as fetch checks it, and a step that cannot
// be given a signal (a fetch given to load() that ignores it, a Blob read, a session being created) cut
// short when it aborts, so that an abort ends the load at once, with the signal's reason as fetch does.

/**
 * A TypeError where `signal` is neither an AbortSignal nor undefined or null (fetch's "no signal").
 * @param {unknown} signal
 */
export function checkSignal(signal) {
  if (signal !== undefined && signal !== null && typeof signal?.throwIfAborted !== 'function') {
    throw new TypeError(`signal must be an AbortSignal, got ${Object.prototype.toString.call(signal)}`);
  }
}

/**
 * What `promise` settles with, unless `signal` aborts first: then its reason (an AbortError DOMException
 * for controller.abort(), a TimeoutError for AbortSignal.timeout()), at once. The step itself goes on:
 * a caller that must undo what it makes (a session to release) waits for `promise` to do so.
 * @template T
 * @param {Promise<T>} promise
 * @param {AbortSignal | null | undefined} signal
 * @returns {Promise<T>}
 */
export function untilAborted(promise, signal) {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
