// Measurements of nextword-web under Node, for benchmarks/web.py (which prints and documents them).
//   node bench/node.mjs speed MODEL WORDS RUNS WARMUP_S -> {"load_ms", "first_word_ms", "fresh_ms_per_word",
//                                                          "ms_per_word": [...]}
//   node bench/node.mjs texts CASES.json          -> the generated text of every case, as JSON lines
// "speed" times one cold start (import onnxruntime-web, read the file, create the session, first word),
// the first generation of WORDS words after it (V8 still tiering up the WASM kernels), then, after
// WARMUP_S seconds of generating, RUNS generations of WORDS words (temperature 1, seeded, never ending).

import { readFileSync } from 'node:fs';

const [mode, ...args] = process.argv.slice(2);
const started = performance.now();
const { load } = await import('../src/index.js');

if (mode === 'speed') {
  const [path, words, runs, warmup] = [args[0], Number(args[1]), Number(args[2]), Number(args[3] ?? 10)];
  const model = await load(path);
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
  const result = {
    load_ms: loaded - started,
    first_word_ms: first - loaded,
    fresh_ms_per_word: fresh,
    ms_per_word: msPerWord,
  };
  console.log(JSON.stringify(result));
} else if (mode === 'texts') {
  const { model: path, cases } = JSON.parse(readFileSync(args[0], 'utf8'));
  const model = await load(path);
  for (const { prompt, options } of cases) {
    const camel = Object.fromEntries(
      Object.entries(options).map(([k, v]) => [
        k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()),
        k === 'seed' ? BigInt(v) : v,
      ]),
    );
    console.log(JSON.stringify(await model.generate(prompt, camel)));
  }
} else {
  throw new Error(`unknown mode ${mode}: speed or texts`);
}
