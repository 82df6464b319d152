// The page's "run in this browser" mode: a backend with the shape of api.js's server backend, answered by
// nextword-web in a Web Worker. The page fetches the model file from this server (model.onnx) itself, saying
// how far the download has come, and hands its bytes to the worker, which fetches onnxruntime-web's
// WebAssembly (static/ort/); from then on no word is asked of the server. Every URL is relative to the page
// (or to this file), so the page works behind a proxy that serves it under a path.
// nextword-web's modules (75 kB the page itself imports) are loaded when the mode is turned on: a page
// that stays with the server never fetches them.

import { keyHeaders, keyRefused } from './key.js';

const abort = () => new DOMException('stopped', 'AbortError');

const MODEL = 'model.onnx';
const WASM = 'static/ort/ort-wasm-simd-threaded.wasm'; // what onnxruntime-web's worker fetches, 3.7 MB sent
const STALL_MS = 30_000; // a download that brings no byte for this long has stalled
const PROGRESS_MS = 2_000; // the download's progress is said at most this often: a screen reader reads each

// `base`: the folder the server's files are under, ending in "/"; "" is the page's own folder. `key`: the
// API key of a server started with --api-key, which guards model.onnx too. `sizeLimits`: false loads a
// model file of any size, as a server started with --no-size-limits does (nextword-web's load() holds it
// to the same caps otherwise). `source`: the model file's bytes, fetched already (fetchModel, which says
// how far it has come), else fetched here; `signal`: an AbortSignal that stops the download and the
// worker's load, which then reject with an AbortError.
export async function createBrowserBackend(base = '', key = null, sizeLimits = true, options = {}) {
  const { signal, source } = options;
  const { WorkerModel, withoutSizeCaps } = await import('./web/client.js');
  const url = `${base}${MODEL}`;
  const model = await WorkerModel.load(source ?? (await fetchModel(url, key, { signal })), {
    workerUrl: `${base}static/web/worker.js`,
    ortUrl: `${base}static/ort/ort.wasm.min.mjs`,
    wasmPaths: `${base}static/ort/`,
    signal,
    ...(sizeLimits ? {} : { limits: withoutSizeCaps() }),
  });
  const info = model.info;
  return {
    name: 'browser',
    model,

    async info() {
      const quality = info.quality?.int8 ?? info.quality?.fp32 ?? {};
      return {
        id: url
          .split('/')
          .pop()
          .replace(/\.onnx$/, ''),
        vocabSize: info.vocabSize,
        layers: info.stateSizes.length,
        units: info.stateSizes,
        perplexity: quality.perplexity ?? info.metrics?.best?.val_perplexity ?? null,
      };
    },

    async generate(prompt, options, onText, signal) {
      // every setting the page shows, so that the file's decoding defaults never override the sliders
      // (as api.js does): one sampled text, streamed; null turns top-k and top-p off
      const chosen = {
        maxWords: options.maxWords,
        temperature: options.temperature,
        topK: options.topK > 0 ? options.topK : null,
        topP: options.topP < 1 ? options.topP : null,
        numReturnSequences: 1,
        numBeams: 1,
      };
      if (options.seed !== null && options.seed !== undefined) chosen.seed = options.seed;
      if (signal?.aborted) throw abort();
      const stream = model.stream(prompt, chosen);
      const stop = () => stream.return();
      signal?.addEventListener('abort', stop);
      try {
        for await (const piece of stream) onText(piece);
      } finally {
        signal?.removeEventListener('abort', stop);
      }
      if (signal?.aborted) throw abort();
      return { finishReason: stream.finishReason };
    },

    async suggest(prompt, k, signal) {
      const suggestions = await model.suggest(prompt, k);
      if (signal?.aborted) throw abort();
      return suggestions;
    },

    async score(text, signal) {
      const result = await model.score(text);
      if (signal?.aborted) throw abort();
      const words = result.words.map((w) => ({
        word: w.token,
        text: w.text,
        logprob: w.logprob,
        probability: Math.exp(w.logprob),
        unknown: w.unknown,
      }));
      return { perplexity: result.perplexity, totalLogprob: result.totalLogprob, words };
    },
  };
}

// The model file's bytes, fetched with the key (if any) and read as they come: onProgress(received, total)
// after each piece (total: the bytes the answer declares, else `size`, else null). `signal` stops it (an
// AbortError); a download that brings no byte for STALL_MS fails, naming the file and what to do.
export async function fetchModel(url, key, { signal, size = null, onProgress = () => {} } = {}) {
  signal?.throwIfAborted();
  const controller = new AbortController(); // aborted by `signal`, or by the watchdog of a stalled download
  const stop = () => controller.abort(signal.reason);
  signal?.addEventListener('abort', stop);
  let received = 0;
  let total = null;
  let stalled = false;
  let watchdog = null;
  const watch = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, STALL_MS);
  };
  try {
    watch();
    const response = await fetch(url, { headers: keyHeaders(key), signal: controller.signal });
    // the key was taken a moment ago (the server's model line): the server restarted with other keys since
    if (response.status === 401) throw new Error(keyRefused());
    if (!response.ok) {
      // the server's reason (a file changed on disk since it loaded it, say) says what to do
      const reason = await response.json().then(
        (body) => body?.error?.message,
        () => undefined,
      );
      const said = typeof reason === 'string' ? `: ${reason}` : '';
      throw new Error(`model file ${url} could not be fetched (HTTP ${response.status})${said}`);
    }
    // the length declared is of the bytes sent: not the file's where a proxy compressed them
    const declared = Number(response.headers.get('content-length'));
    const encoding = response.headers.get('content-encoding') ?? 'identity';
    total = declared > 0 && encoding === 'identity' ? declared : size;
    onProgress(0, total);
    if (!response.body) return new Uint8Array(await response.arrayBuffer());
    const reader = response.body.getReader();
    const chunks = [];
    for (;;) {
      watch();
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      if (total !== null && received > total) total = null; // not the size it said after all
      onProgress(received, total);
    }
    const bytes = new Uint8Array(received);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return bytes;
  } catch (error) {
    if (stalled) {
      throw new Error(
        `model file ${url} stopped arriving: nothing came for ${STALL_MS / 1000} s ` +
          `(${amounts(received, total)} received); check the connection, then turn the switch on again`,
      );
    }
    // fetch's own failures (a network gone, a connection cut) say nothing of what was fetched
    if (error instanceof TypeError)
      throw new Error(`model file ${url} could not be fetched: ${error.message}`);
    throw error;
  } finally {
    clearTimeout(watchdog);
    signal?.removeEventListener('abort', stop);
  }
}

// What onnxruntime-web's WebAssembly costs as it is sent (a HEAD's Content-Length), null where unsaid.
async function wasmSize(signal) {
  const response = await fetch(WASM, { method: 'HEAD', signal }).catch(() => null);
  const size = response?.ok ? Number(response.headers.get('content-length')) : NaN;
  return Number.isFinite(size) && size > 0 ? size : null;
}

// What ask(signal) resolves to: the server's word on the download, before it begins. A server that keeps
// it waiting is said after PROGRESS_MS, and given up after STALL_MS with an error that says so (its
// requests stopped): the switch stayed on in silence, for good, where the server never answered.
// `signal` stops it as it stops the rest of the load.
async function askServer(signal, ask, tell) {
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  signal.addEventListener('abort', stop);
  const waiting = setTimeout(() => tell('Asking the server what the download costs…'), PROGRESS_MS);
  const late = setTimeout(() => controller.abort(), STALL_MS);
  try {
    return await ask(controller.signal);
  } catch (error) {
    if (!controller.signal.aborted || signal.aborted) throw error;
    throw new Error(
      `the server did not say what the download costs within ${STALL_MS / 1000} s; ` +
        'check the connection, then turn the switch on again',
    );
  } finally {
    clearTimeout(waiting);
    clearTimeout(late);
    signal.removeEventListener('abort', stop);
  }
}

// "1.2 of 3.6 MB" (kB below a megabyte), or "3.6 MB" without a total: `received` in the total's unit.
function amounts(received, total = null) {
  const mega = (total ?? received) >= 1e6;
  const shown = (n) => (mega ? (n / 1e6).toFixed(1) : String(Math.round(n / 1e3)));
  const unit = mega ? 'MB' : 'kB';
  return total === null ? `${shown(received)} ${unit}` : `${shown(received)} of ${shown(total)} ${unit}`;
}

// Wire the switch: on, load the model here once and hand the page the browser backend; off, the server's.
// The status says the download's size first, then how far it has come (every PROGRESS_MS at most), then
// that onnxruntime-web loads. The switch stays free meanwhile: turned off, the server answers at once and
// the download stops (its AbortController aborted: the page's fetch and the worker, with what it was
// fetching), so that no more data is spent; turned on again, it starts anew. A model file that arrived
// whole is kept for the next time, and so is a model loaded. document.body.dataset.loading is "browser"
// while it loads.
export function browserMode(page, serverBackend, doc = document, key = null) {
  const toggle = doc.getElementById('in-browser');
  const status = doc.getElementById('where-status');
  let local = null; // the browser backend, once loaded
  let fetched = null; // the model file's bytes, downloaded whole, until the worker has loaded them
  let download = null; // the AbortController of the load under way
  const say = (text, failed = false) => {
    status.textContent = text;
    status.classList.toggle('error', failed);
  };
  const onServer = 'Words are generated on the server.';
  const load = async (signal) => {
    const started = performance.now();
    const tell = (text) => signal.aborted || say(text); // nothing more once switched off
    // the server's own caps on the model file's size, which its operator chose (--no-size-limits), and the
    // download's size, said before it begins
    const [{ limits, bytes }, wasm] = await askServer(
      signal,
      (asking) => Promise.all([serverBackend.info(asking), wasmSize(asking)]),
      tell,
    );
    const size = { model: Number.isFinite(bytes) && bytes > 0 ? bytes : null, wasm };
    if (limits?.modelDownload === false) throw new Error('this server keeps its model file to itself');
    signal.throwIfAborted();
    const ort = size.wasm ? `onnxruntime-web (${amounts(size.wasm)})` : 'onnxruntime-web';
    if (!fetched) {
      tell(`Downloading the model${size.model ? ` (${amounts(size.model)})` : ''} and ${ort}, once…`);
      // the progress, said at most every PROGRESS_MS, the latest figures within that (a trailing update)
      let [latest, said, timer] = ['', performance.now(), null];
      const update = () => {
        [said, timer] = [performance.now(), null];
        tell(latest);
      };
      const onProgress = (received, total) => {
        latest = `Downloading the model: ${amounts(received, total)}…`;
        timer ??= setTimeout(update, Math.max(0, said + PROGRESS_MS - performance.now()));
      };
      try {
        fetched = await fetchModel(MODEL, key, { signal, size: size.model, onProgress });
      } finally {
        clearTimeout(timer);
      }
    }
    tell(`Loading ${ort}…`);
    // the worker's fetches are its own: past STALL_MS, a hint of what to do where the connection stalled
    const slow = setTimeout(() => {
      tell(
        `Still loading ${ort} after ${STALL_MS / 1000} s: where the connection has stalled, turn the switch off.`,
      );
    }, STALL_MS);
    try {
      local = await createBrowserBackend('', key, limits?.sizeLimits !== false, { signal, source: fetched });
    } finally {
      clearTimeout(slow);
    }
    fetched = null; // the worker holds the model now
    doc.defaultView.nextwordInBrowser = local; // for diagnostics: what the worker fetched (model.resources())
    return `Loaded in ${((performance.now() - started) / 1000).toFixed(1)} s. `;
  };
  // the page starts with the server: a switch the browser restored as it was (back, forward, a reload) is
  // turned off, rather than shown on while the server answers (and the model's download waits for a click)
  toggle.checked = false;
  // a server started with --no-model-download offers no model file to run here: the switch is off for good
  page.described?.then((info) => {
    if (info?.limits?.modelDownload !== false) return;
    toggle.checked = false;
    toggle.disabled = true;
    say('Words are generated on the server, which keeps its model file to itself (--no-model-download).');
  });
  const settled = () => {
    download = null;
    delete doc.body.dataset.loading;
  };
  toggle.addEventListener('change', async () => {
    if (!toggle.checked) {
      page.setBackend(serverBackend);
      doc.body.dataset.backend = 'server';
      if (download) {
        download.abort(); // the page's fetch, and the worker with what it fetches: no more data spent
        settled();
        say('Download stopped; words are generated on the server.');
      } else {
        say(onServer);
      }
      return;
    }
    let loaded = '';
    if (!local) {
      const current = (download = new AbortController());
      doc.body.dataset.loading = 'browser';
      try {
        loaded = await load(current.signal);
      } catch (error) {
        if (download !== current) return; // switched off meanwhile, which said so
        settled();
        toggle.checked = false;
        say(`Cannot run in this browser: ${error.message}`, true);
        return;
      }
      if (download !== current) return; // switched off as it ended: the model is kept for the next time
      settled();
    }
    page.setBackend(local);
    say(`${loaded}Words are generated in this browser.`);
    doc.body.dataset.backend = 'browser';
  });
}
