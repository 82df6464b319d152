// The page's "run in this browser" mode: a backend with the shape of api.js's server backend, answered by
// nextword-web in a Web Worker. The model file is fetched once from this server (model.onnx), with
// onnxruntime-web's WebAssembly (static/ort/); from then on no word is asked of the server. Every URL is
// relative to the page (or to this file), so the page works behind a proxy that serves it under a path.
// nextword-web's modules (75 kB the page itself imports) are loaded when the mode is turned on: a page
// that stays with the server never fetches them.

import { keyHeaders, keyRefused } from './key.js';

const abort = () => new DOMException('stopped', 'AbortError');

// `base`: the folder the server's files are under, ending in "/"; "" is the page's own folder. `key`: the
// API key of a server started with --api-key, which guards model.onnx too: the page then fetches the file
// itself, with the key, and hands the worker its bytes. `sizeLimits`: false loads a model file of any size,
// as a server started with --no-size-limits does (nextword-web's load() holds it to the same caps otherwise).
export async function createBrowserBackend(base = '', key = null, sizeLimits = true) {
  const { WorkerModel, withoutSizeCaps } = await import('./web/client.js');
  const url = `${base}model.onnx`;
  const source = key === null ? url : await fetchModel(url, key);
  const model = await WorkerModel.load(source, {
    workerUrl: `${base}static/web/worker.js`,
    ortUrl: `${base}static/ort/ort.wasm.min.mjs`,
    wasmPaths: `${base}static/ort/`,
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

async function fetchModel(url, key) {
  const response = await fetch(url, { headers: keyHeaders(key) });
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
  return new Uint8Array(await response.arrayBuffer());
}

// Wire the switch: on, load the model here once and hand the page the browser backend; off, the server's.
// The switch stays free while the model downloads: turned off then, the server answers at once (a download
// that stalls, behind a proxy or on a network gone quiet, never holds the page), and the model, if it comes,
// is kept for the next time it is turned on. document.body.dataset.loading is "browser" while it loads.
export function browserMode(page, serverBackend, doc = document, key = null) {
  const toggle = doc.getElementById('in-browser');
  const status = doc.getElementById('where-status');
  let local = null; // the browser backend, once loaded
  let loading = null; // its download, while it is under way
  let turns = 0; // the switch's changes: the last one decides what a finished download does
  const say = (text, failed = false) => {
    status.textContent = text;
    status.classList.toggle('error', failed);
  };
  const onServer = 'Words are generated on the server.';
  const load = async () => {
    const started = performance.now();
    try {
      // the server's own caps on the model file's size, which its operator chose (--no-size-limits)
      const { limits } = await serverBackend.info();
      if (limits?.modelDownload === false) throw new Error('this server keeps its model file to itself');
      local = await createBrowserBackend('', key, limits?.sizeLimits !== false);
      doc.defaultView.nextwordInBrowser = local; // for diagnostics: what the worker fetched (model.resources())
      return `Loaded in ${((performance.now() - started) / 1000).toFixed(1)} s. `;
    } finally {
      loading = null;
      delete doc.body.dataset.loading;
      if (!toggle.checked) say(onServer); // turned off meanwhile: no word of the download any more
    }
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
  toggle.addEventListener('change', async () => {
    const turn = ++turns;
    if (!toggle.checked) {
      page.setBackend(serverBackend);
      say(loading ? 'Words are generated on the server (the model goes on downloading).' : onServer);
      doc.body.dataset.backend = 'server';
      return;
    }
    let loaded = '';
    try {
      if (!local) {
        say('Downloading the model and onnxruntime-web (once)…');
        doc.body.dataset.loading = 'browser';
        loading ??= load();
        loaded = await loading;
      }
    } catch (error) {
      if (turn === turns) {
        toggle.checked = false;
        say(`Cannot run in this browser: ${error.message}`, true);
      }
      return;
    }
    if (turn !== turns) return; // turned off (and maybe on again) while the model downloaded
    page.setBackend(local);
    say(`${loaded}Words are generated in this browser.`);
    doc.body.dataset.backend = 'browser';
  });
}
