// The example page: load the model in a Web Worker, stream generated text into the page.
// Query parameters: model (the .onnx URL, default /model.onnx), ort (onnxruntime-web's module URL).

import { WorkerModel } from '../src/client.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ORT = params.get('ort') ?? '../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
let model;
let running = null;

function options() {
  const number = (id) => ($(id).value === '' ? undefined : Number($(id).value));
  const seed = $('seed').value === '' ? undefined : BigInt($('seed').value);
  return {
    maxWords: number('maxWords'),
    temperature: number('temperature'),
    topK: number('topK') ?? null,
    seed,
  };
}

async function generate() {
  const prompt = $('prompt').value;
  $('output').replaceChildren(Object.assign(document.createElement('b'), { textContent: prompt }));
  $('generate').disabled = true;
  $('stop').disabled = false;
  const started = performance.now();
  let words = 0;
  try {
    running = model.stream(prompt, options());
    for await (const piece of running) {
      $('output').append(piece);
      words += 1;
    }
    const ms = performance.now() - started;
    $('status').textContent = `${words} pieces in ${ms.toFixed(0)} ms`;
  } catch (error) {
    $('status').textContent = `${error.name}: ${error.message}`;
  } finally {
    running = null;
    $('generate').disabled = false;
    $('stop').disabled = true;
  }
}

async function main() {
  const started = performance.now();
  const ortUrl = new URL(ORT, location.href);
  model = await WorkerModel.load(params.get('model') ?? '/model.onnx', {
    ortUrl,
    wasmPaths: new URL('.', ortUrl).href,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  $('status').textContent = `Model loaded in ${seconds} s (${model.info.vocabulary} words).`;
  $('generate').disabled = false;
  $('generate').addEventListener('click', generate);
  $('stop').addEventListener('click', () => running?.return());
  document.body.dataset.ready = 'true';
}

main().catch((error) => {
  $('status').textContent = `${error.name}: ${error.message}`;
  document.body.dataset.ready = 'error';
});
