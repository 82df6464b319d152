// The onnxruntime-web build nextword-web runs on when load() is given none: its WebAssembly build
// ("onnxruntime-web/wasm": one 14 MB ort-wasm-simd-threaded.wasm), not the package's default export,
// whose WebGPU-enabled build fetches a 28 MB ort-wasm-simd-threaded.jsep.wasm that the CPU kernels
// these models run on do not need.

import { NextwordError, oneLine } from './errors.js';

const GIVE_IT =
  'a page without a bundler maps "onnxruntime-web/wasm" to its ort.wasm.min.mjs in an import map, or ' +
  "passes it: load(src, { ort: await import('/ort/ort.wasm.min.mjs') }), " +
  "WorkerModel.load(src, { ortUrl: '/ort/ort.wasm.min.mjs', wasmPaths: '/ort/' })";

/**
 * Import onnxruntime-web's WebAssembly build, or throw a NextwordError saying how to give it.
 * @param {() => Promise<any>} [importer] the import (a test's stand-in)
 * @returns {Promise<any>} the onnxruntime module
 */
export async function importOrt(importer = () => import('onnxruntime-web/wasm')) {
  try {
    return await importer();
  } catch (error) {
    throw ortImportError(error);
  }
}

/** The NextwordError for an import of onnxruntime-web that failed: the fix where the package was not
 * found (not installed, or a page's bare name left unmapped), else onnxruntime-web's own message. */
function ortImportError(error) {
  const said = `onnxruntime-web could not be imported: ${oneLine(error)}`;
  const message = String(error?.message ?? error);
  if (error?.code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (package|module)/.test(message)) {
    return new NextwordError(
      `${said}; install it beside nextword-web (npm install onnxruntime-web); ${GIVE_IT}`,
    );
  }
  // a browser's bare name without an import map (Chromium, Firefox, Safari's words)
  if (/resolve module specifier|bare specifier|does not resolve to a valid URL/i.test(message)) {
    return new NextwordError(`${said}; ${GIVE_IT}`);
  }
  return new NextwordError(said);
}
