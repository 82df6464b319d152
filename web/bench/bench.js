// Benchmark page for benchmarks/web.py: a cold start of the model in a Web Worker (worker, onnxruntime,
// its .wasm, the model file, the session, the first word), then RUNS generations of WORDS words.
// Query: words, runs, warmup (seconds of generating between the first and the timed runs), backend
// ("wasm" or "webgpu"). The result lands in window.benchResult.

import { WorkerModel } from '../src/client.js';

const params = new URLSearchParams(location.search);
const words = Number(params.get('words') ?? 200);
const runs = Number(params.get('runs') ?? 3);
const backend = params.get('backend') ?? 'wasm';
const warmup = Number(params.get('warmup') ?? 10);

let adapterInfo = null;

async function webgpuAdapter() {
  if (!navigator.gpu) return 'navigator.gpu is undefined';
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return 'navigator.gpu.requestAdapter() returned null';
  const { vendor, architecture, device, description } = adapter.info ?? {};
  adapterInfo = { vendor, architecture, device, description };
  return null;
}

async function main() {
  const noGpu = await webgpuAdapter();
  if (backend === 'webgpu' && noGpu) return { backend, unavailable: noGpu };
  const bundle = backend === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs';
  const ortUrl = new URL(`../node_modules/onnxruntime-web/dist/${bundle}`, location.href);
  const started = performance.now();
  const model = await WorkerModel.load('/model.onnx', {
    ortUrl,
    wasmPaths: new URL('.', ortUrl).href,
    sessionOptions: backend === 'webgpu' ? { executionProviders: ['webgpu', 'wasm'] } : {},
  });
  const loaded = performance.now();
  await model.generate('a neural network', { maxWords: 1, seed: 0 });
  const first = performance.now();
  const timed = async (seed) => {
    const t = performance.now();
    await model.generate('a neural network', { maxWords: words, seed, stopAtEnd: false });
    return (performance.now() - t) / words;
  };
  const fresh = await timed(0);
  const until = performance.now() + warmup * 1000;
  while (performance.now() < until) await timed(1);
  const msPerWord = [];
  for (let r = 0; r < runs; r++) msPerWord.push(await timed(r + 2));
  const pageResources = performance
    .getEntriesByType('resource')
    .map(({ name, decodedBodySize }) => ({ name, decodedBodySize }));
  const workerResources = await model.resources();
  model.terminate();
  return {
    backend,
    webgpu: noGpu ?? 'adapter available',
    adapter: adapterInfo,
    userAgent: navigator.userAgent,
    crossOriginIsolated,
    load_ms: loaded - started,
    first_word_ms: first - loaded,
    fresh_ms_per_word: fresh,
    ms_per_word: msPerWord,
    resources: [...pageResources, ...workerResources],
  };
}

main().then(
  (result) => (window.benchResult = result),
  (error) => (window.benchResult = { error: `${error.name}: ${error.message}` }),
);
