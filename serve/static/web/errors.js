// The exceptions nextword-web throws on purpose, mirroring the Python runtime's: bad input is a
// NextwordError (Python: ValueError), an unusable model file a ModelFileError.

/** Bad input: an invalid option, prompt or argument. The message names the problem and the fix. */
export class NextwordError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NextwordError';
  }
}

/** A file that is not a usable nextword model; the message names the file, the problem and the fix. */
export class ModelFileError extends NextwordError {
  constructor(message) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/** onnxruntime failed while running a model that had loaded (a subclass of ModelFileError, as in Python:
 * load() probes the graph, so a later failure means a damaged or crafted file). */
export class ModelRunError extends ModelFileError {
  constructor(message) {
    super(message);
    this.name = 'ModelRunError';
  }
}

/**
 * What a failed `InferenceSession.create` throws: a ModelFileError naming the file `name`, unless
 * onnxruntime-web could not start its WebAssembly backend. It starts it on the first session: a .wasm
 * file that cannot be fetched or compiled fails that session with "no available backend found" (and
 * every later one with "previous call to 'initWasm()' failed"), whatever the model file holds, so that
 * error names the .wasm instead.
 */
export function sessionError(ort, error, name) {
  const message = String(error?.message ?? error);
  if (!/no available backend found|initWasm\(\)/.test(message)) {
    return new ModelFileError(`${name} could not be loaded as an ONNX model: ${oneLine(error)}`);
  }
  // every provider asked for (sessionOptions.executionProviders) is one this build lacks: not the .wasm's
  const missing = [...message.matchAll(/\[([^\]]+)\] backend not found/g)].map((found) => found[1]);
  if (missing.length && !/\[(wasm|cpu)\]/.test(message.replace(/\[[^\]]+\] backend not found/g, ''))) {
    return new NextwordError(
      `sessionOptions.executionProviders: this onnxruntime-web build has no ${missing.join(', ')} backend ` +
        "(onnxruntime-web/wasm runs 'wasm'); leave executionProviders out, or import a build that has it " +
        'and pass it as ort',
    );
  }
  if (/Dynamic require of/.test(message)) {
    // onnxruntime-web's ES module build under Node, asked to work a setting out with require() (the
    // thread count, with require('node:os'), when ort.env.wasm.numThreads is unset): not the .wasm's
    return new NextwordError(
      `onnxruntime-web could not start its WebAssembly backend: ${oneLine(error)}; its ES module build ` +
        "cannot require() Node's modules: set ort.env.wasm.numThreads to 1 before its first session " +
        '(load() does so when it is unset), in a new process: onnxruntime-web fails every later session ' +
        'with the same error',
    );
  }
  // the .wasm this context asked for, where the browser recorded it (a 404 is recorded too), else the
  // folder it was asked from
  const fetched = globalThis.performance?.getEntriesByType?.('resource') ?? [];
  const wasm = fetched.map((entry) => entry.name).filter((url) => /\.wasm(\?|$)/.test(url));
  const paths = ort.env?.wasm?.wasmPaths;
  const folder =
    typeof paths === 'string'
      ? paths
      : (paths?.wasm ?? 'the folder of the script holding onnxruntime-web, as no wasmPaths is set');
  const where = wasm.length ? wasm[wasm.length - 1] : `ort-wasm-*.wasm from ${folder}`;
  return new NextwordError(
    `onnxruntime-web could not start its WebAssembly backend (${where}): ${oneLine(error)}; ` +
      'check that the .wasm is served (wasmPaths) with its .mjs, from the same onnxruntime-web version: ' +
      'copy node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.{wasm,mjs} to a served folder and ' +
      "give its URL as ort.env.wasm.wasmPaths (import * as ort from 'onnxruntime-web/wasm') or as " +
      "WorkerModel.load's wasmPaths",
  );
}

/** An error's message on one line, at most 500 characters (as the Python runtime quotes onnxruntime). */
export function oneLine(error) {
  return String(error?.message ?? error)
    .split(/\s+/)
    .filter(Boolean)
    .join(' ')
    .slice(0, 500);
}
