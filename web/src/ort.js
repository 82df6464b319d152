// The onnxruntime-web build nextword-web runs on when load() is given none: its WebAssembly build
// ("onnxruntime-web/wasm": one 14 MB ort-wasm-simd-threaded.wasm), not the package's default export,
// whose WebGPU-enabled build fetches a 28 MB ort-wasm-simd-threaded.jsep.wasm that the CPU kernels
// these models run on do not need.

import { NextwordError, oneLine } from './errors.js';

/**
 * Import onnxruntime-web's WebAssembly build, or throw a NextwordError saying how to give it.
 * @returns {Promise<any>} the onnxruntime module
 */
export async function importOrt() {
  try {
    return await import('onnxruntime-web/wasm');
  } catch (error) {
    throw new NextwordError(
      `onnxruntime-web could not be imported: ${oneLine(error)}; install it beside nextword-web (npm ` +
        'install onnxruntime-web); a page without a bundler maps "onnxruntime-web/wasm" to its ' +
        'ort.wasm.min.mjs in an import map, or passes it: ' +
        "load(src, { ort: await import('/ort/ort.wasm.min.mjs') }), " +
        "WorkerModel.load(src, { ortUrl: '/ort/ort.wasm.min.mjs', wasmPaths: '/ort/' })",
    );
  }
}
