// Compiled by tests (tsc --noEmit --strict): the hand-written types describe the API as used.
import {
  checkModelFile,
  GENERATION_DEFAULTS,
  load,
  ModelFileError,
  NextwordError,
  resolveOptions,
  type GenerationOptions,
  type LoadLimits,
  SIZE_CAPS,
  Tokenizer,
  TokenizerVersion,
  withoutSizeCaps,
} from 'nextword-web';
import { WorkerModel, withoutSizeCaps as uncapped } from 'nextword-web/client';

async function main(): Promise<void> {
  const model = await load('model.onnx', { limits: { maxFileBytes: 1 << 20 }, numThreads: 1 });
  const options: GenerationOptions = {
    maxWords: 20,
    temperature: 0.8,
    topK: 40,
    topP: null,
    seed: 1n,
    stop: ['.'],
  };
  const text: string | string[] = await model.generate('a neural network', options);
  const texts: string[] = await model.generate(['a', 'b'], { numReturnSequences: 2 });
  const beams: string[] = await model.generate(['a', 'b'], {
    numBeams: 4,
    numReturnSequences: 2,
    lengthPenalty: 0.5,
  });
  for await (const piece of model.stream('a', { seed: 3 })) console.log(piece.length);
  // a file's own settings, readonly stop strings included, go back in as options
  await model.generate('a', { stop: model.info.generation.stop });
  await model.generate('a', { ...model.info.generation, maxWords: 5 });
  await model.generate('a', { stop: ['.', '!'] as const });
  const [best] = await model.nextWords('a', 5);
  const score = await model.score('a neural network');
  const ids: number[] = model.tokenizer.encode('x');
  const tok: Tokenizer = Tokenizer.fromJson('{}');
  const newest: TokenizerVersion = new Tokenizer(['a'], undefined, 3).version;
  console.log(
    text,
    texts,
    newest,
    beams,
    best.word,
    best.probability,
    score.perplexity,
    score.words[0].unknown,
    ids,
    tok.size,
  );
  console.log(model.info.generation.noRepeatNgramSize, model.info.generation.seed === null);
  const remote = await WorkerModel.load('/model.onnx', {
    ortUrl: '/ort/ort.wasm.min.mjs',
    wasmPaths: '/ort/',
    limits: uncapped(),
    sessionOptions: { graphOptimizationLevel: 'all' },
  });
  // a download that stalls ends: the signal reaches the fetch given to load() as its second argument
  const stopped = new AbortController();
  const keyed = await load('/model.onnx', {
    signal: AbortSignal.any([stopped.signal, AbortSignal.timeout(60_000)]),
    fetch: (url, init) => fetch(url, { ...init, headers: { authorization: 'Bearer k' } }),
  });
  await load('/model.onnx', { signal: stopped.signal, fetch: (url) => fetch(url) });
  await keyed.release();
  const trusted: LoadLimits = withoutSizeCaps({ maxNodes: 100 });
  console.log(
    trusted.maxFileBytes,
    SIZE_CAPS.includes('maxFileBytes'),
    (await load('big.onnx', { limits: trusted })).info,
  );
  console.log(remote.info.vocabulary, await remote.generate('x', { maxWords: 3 }));
  remote.terminate();
  await model.release();
}

main().catch((error: unknown) => {
  if (error instanceof ModelFileError || error instanceof NextwordError) console.error(error.message);
});

export async function more(): Promise<void> {
  const model = await load(new Uint8Array(8));
  const stream = model.stream('a');
  for await (const piece of stream) console.log(piece);
  const reason: 'length' | 'stop' | 'end' | null = stream.finishReason;
  const [first] = await model.suggest('a', 3);
  const words = (await model.score('a b')).words.map((w) => `${w.word} ${w.token} ${w.text}`);
  console.log(reason, first.text, first.probability, words);
  const settings = model.info.cache; // the file's continuous cache, or null
  const alone = await model.nextWords('a', 3, { cache: false });
  const mixed = await model.score('a b', { cache: settings ?? { theta: 1, mix: 0.1, window: 64 } });
  await model.generate('a', { cache: true, temperature: 0 });
  const gated = { theta: 10, gate: [-7.62, 0.814], similarity: 'cosine', window: 256 } as const;
  const share = settings?.gate ? `gate ${settings.gate[0]}, ${settings.gate[1]}` : `mix ${settings?.mix}`;
  const again = await model.nextWords('a', 3, { cache: gated });
  console.log(settings?.theta, settings?.window, alone[0].probability, mixed.perplexity, share, again);
}

export async function unions(prompt: string | string[], file: Blob): Promise<void> {
  // a prompt whose kind is known only at run time, as generate() takes it
  const model = await load(file);
  const out: string | string[] = await model.generate(prompt, { maxWords: 3 });
  const worker = await WorkerModel.load(file, { wasmPaths: new URL('/ort/', 'http://host/') });
  const remote: string | string[] = await worker.generate(prompt);
  await WorkerModel.load('/model.onnx', {
    wasmPaths: { wasm: '/ort/ort-wasm-simd-threaded.wasm', mjs: new URL('http://host/ort.mjs') },
  });
  // limits in part, the rest from the defaults, as load() takes them
  const meta = checkModelFile('model.onnx', new Uint8Array(8), { maxNodes: 100 });
  // the defaults are a GenerationConfig: stop a list, seed null
  const stop: readonly string[] = GENERATION_DEFAULTS.stop;
  const seed: bigint | null = GENERATION_DEFAULTS.seed;
  // a refusal names the values of the base as its origin's defaults ("this model file's")
  const resolved = resolveOptions(model.info.generation, { maxWords: 5 }, "this model file's");
  console.log(out, remote, meta.formatVersion, stop, seed, resolved.maxWords);
}
