// Web Worker entry of nextword-web: WorkerModel.load() (src/client.js) starts it, from where Vite and
// webpack bundle it. To start it yourself, give its URL as served (with esbuild, an entry point of its own
// in your build) to new Worker(url, { type: 'module' }), or to WorkerModel.load as workerUrl. Bundlers and
// browsers do not resolve a package name inside new URL('...', import.meta.url).

import { NextwordError } from './errors.js';
import { serve } from './worker-core.js';

// a worker's global scope posts to the page and has no document (a page's window has one; Node has neither)
if (typeof globalThis.postMessage !== 'function' || 'document' in globalThis) {
  throw new NextwordError(
    'nextword-web/worker is the script of a Web Worker and runs only as one: start it with ' +
      "new Worker(url, { type: 'module' }) or let WorkerModel.load (nextword-web/client) start it; to " +
      "run a model in a page or under Node, import { load } from 'nextword-web'",
  );
}
serve(globalThis);
