// The Web Worker side of nextword-web: a model loaded in the worker, answering the page's requests, so
// that generation never blocks the page. src/worker.js wires it to the worker's global scope; tests wire
// it to a MessagePort. The protocol is private to src/client.js.

import { NextwordError, oneLine } from './errors.js';
import { load } from './model.js';
import { importOrt } from './ort.js';

// A stream takes a turn of the event loop at most this often (ms), so that a cancel reaches it: the
// model's steps resolve without one, so a cancel once waited for the whole text.
const TURN_MS = 8;

/** A turn of the event loop (a message through a channel of its own: setTimeout is clamped to 4 ms). */
function turn() {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

/** onnxruntime-web's ES module at `url` (WorkerModel.load's ortUrl), or a NextwordError naming it. */
async function importOrtUrl(url) {
  const fix =
    "give ortUrl the URL of onnxruntime-web's ort.wasm.min.mjs as your server serves it (copied from " +
    "node_modules/onnxruntime-web/dist/, e.g. '/ort/ort.wasm.min.mjs'), or leave ortUrl out where a " +
    'bundler bundles the worker';
  let ort;
  try {
    ort = await import(/* webpackIgnore: true */ /* @vite-ignore */ url);
  } catch (error) {
    throw new NextwordError(`ortUrl ${url} could not be imported (${oneLine(error)}); ${fix}`);
  }
  if (typeof ort?.InferenceSession?.create !== 'function' || !ort.env?.wasm) {
    throw new NextwordError(`ortUrl ${url} is not onnxruntime-web (it has no InferenceSession); ${fix}`);
  }
  return ort;
}

/**
 * Answer requests arriving on `port` (anything with postMessage and a "message" event).
 * Requests: {id, type: "load" | "generate" | "stream" | "nextWords" | "suggest" | "score" | "resources" |
 * "cancel", ...}.
 * Replies: {id, result} or {id, error: {name, message}}; a stream also sends {id, piece} messages.
 */
export function serve(port) {
  let model = null;
  const streaming = new Set(); // ids of the streams in progress
  const cancelled = new Set(); // of those, the ones the page has left

  const reply = (message) => port.postMessage(message);
  const fail = (id, error) =>
    reply({ id, error: { name: error?.name ?? 'Error', message: String(error?.message ?? error) } });

  const handlers = {
    async load({ source, options = {} }) {
      const { ortUrl, wasmPaths, ...rest } = options;
      // wasmPaths applies to the onnxruntime-web the worker imports itself (a bundled worker) as well as
      // to the one at ortUrl; without either, load() imports it as it does in a page
      let ort;
      if (ortUrl || wasmPaths) {
        ort = ortUrl ? await importOrtUrl(ortUrl) : await importOrt();
        if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
        ort.env.wasm.numThreads = rest.numThreads ?? 1;
      }
      // the model before goes first (never two in memory); a load that then fails leaves no model, which
      // later requests are told of, rather than the released one
      const before = model;
      model = null;
      await before?.release();
      model = await load(source, { ...rest, ort });
      const { tokenizer, ...info } = model.info;
      return { ...info, vocabulary: tokenizer.size, source: model.source };
    },
    generate: ({ prompt, options }) => loaded().generate(prompt, options),
    // What this worker fetched (onnxruntime, its .wasm, the model...): for measurements.
    resources: () =>
      performance
        .getEntriesByType('resource')
        .map(({ name, transferSize, encodedBodySize, decodedBodySize, duration }) => ({
          name,
          transferSize,
          encodedBodySize,
          decodedBodySize,
          duration,
        })),
    nextWords: ({ prompt, k, options }) => loaded().nextWords(prompt, k, options),
    suggest: ({ prompt, k, options }) => loaded().suggest(prompt, k, options),
    score: ({ text, options }) => loaded().score(text, options),
    async stream({ id, prompt, options }) {
      const pieces = loaded().stream(prompt, options);
      streaming.add(id);
      let last = performance.now();
      try {
        for await (const piece of pieces) {
          if (performance.now() - last > TURN_MS) {
            await turn(); // a cancel waiting in the queue is read here
            last = performance.now();
          }
          if (cancelled.has(id)) break;
          reply({ id, piece });
        }
      } finally {
        streaming.delete(id);
        cancelled.delete(id);
      }
      return { finishReason: pieces.finishReason };
    },
  };

  function loaded() {
    if (!model) throw new Error('no model loaded: send a "load" request first');
    return model;
  }

  const onMessage = async (event) => {
    const request = event.data;
    if (request?.type === 'cancel') {
      if (streaming.has(request.target)) cancelled.add(request.target); // one that ended is forgotten
      return;
    }
    const handler = handlers[request?.type];
    if (!handler) {
      fail(request?.id, new Error(`unknown request type ${JSON.stringify(request?.type)}`));
      return;
    }
    try {
      reply({ id: request.id, result: await handler(request) });
    } catch (error) {
      fail(request.id, error);
    }
  };
  port.addEventListener('message', onMessage);
  port.start?.();
  return () => port.removeEventListener('message', onMessage);
}
