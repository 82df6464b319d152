// The continuous cache against the Python runtime, on a model with cache settings (the tests' tiny fp32
// model, the bundled int8 one when it has them): next-word probabilities and scores (the cache on by
// default, off on request), greedy and seeded texts with cache: true, the decoding loop's session calls,
// streams, and the messages of cache errors. An int8 file's logits differ from Python's now and then
// (docs/web.md), so there probabilities are compared to 2e-2 and a few seeded texts may differ.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { load } from '../src/index.js';
import { camelOptions, f32, Mismatches, NO_REFERENCE, reference } from './reference.js';

const ref = reference();
const TOLERANCE = ref?.quantized ? 2e-2 : 1e-4; // fp32: the engines' logits agree to a few 1e-7
const models = {};

/** Python's message as this package words it. */
function inJavaScript(message) {
  return message?.replace('cache=True', 'cache: true').replace('True or False', 'true or false') ?? null;
}

function closeWords(got, want, label) {
  assert.equal(got.length, want.length, label);
  const wanted = new Map(want);
  got.forEach(({ word, probability }, i) => {
    const [wantWord, wantP] = want[i];
    const nearTie = want.some(([, p], j) => j !== i && Math.abs(p - wantP) < TOLERANCE);
    assert.ok(
      word === wantWord || (nearTie && wanted.has(word)),
      `${label}: ${word} at ${i}, Python: ${wantWord}`,
    );
    assert.ok(Math.abs(probability - wanted.get(word)) < TOLERANCE, `${label}: ${word} ${probability}`);
  });
}

function closeScore(got, want, label) {
  assert.equal(got.words.length, want.logprobs.length, label);
  got.words.forEach((w, i) =>
    assert.ok(Math.abs(w.logprob - want.logprobs[i]) < 5 * TOLERANCE, `${label}: ${w.word} ${w.logprob}`),
  );
  assert.ok(Math.abs(got.totalLogprob - want.total) < TOLERANCE * got.words.length, label);
  assert.ok(Math.abs(Math.log(got.perplexity / want.perplexity)) < TOLERANCE, label);
}

async function texts(model, cases) {
  const bad = new Mismatches('generations with the cache');
  for (const c of cases) {
    const got = await model.generate(c.prompt, camelOptions(c.options));
    bad.check(JSON.stringify(got) === JSON.stringify(c.text), {
      prompt: c.prompt,
      options: c.options,
      got,
      want: c.text,
    });
  }
  return bad;
}

describe('the continuous cache: parity with Python', { skip: !ref?.next_words && NO_REFERENCE }, () => {
  before(async () => {
    for (const [name, path] of Object.entries(ref.files)) models[name] = await load(path);
  });
  after(async () => {
    for (const model of Object.values(models)) await model.release();
  });

  test('the settings are read from the file; a file without them has none', () => {
    assert.deepEqual({ ...models.cached.info.cache }, ref.settings);
    assert.equal(models.plain.info.cache, null);
    assert.equal(models.default_on.info.generation.cache, true);
    assert.equal(models.cached.info.generation.cache, false);
  });

  test('next words: the cache mixed in by default, the model alone with cache: false', async () => {
    let changed = 0;
    for (const c of ref.next_words) {
      const cached = await models.cached.nextWords(c.prompt, 10);
      closeWords(cached, c.cached, `${JSON.stringify(c.prompt)} (cache)`);
      closeWords(await models.cached.nextWords(c.prompt, 10, { cache: true }), c.cached, 'cache: true');
      const plain = await models.cached.nextWords(c.prompt, 10, { cache: false });
      closeWords(plain, c.plain, `${JSON.stringify(c.prompt)} (no cache)`);
      if (cached.some((w, i) => Math.abs(w.probability - plain[i].probability) > 1e-3)) changed++;
    }
    assert.ok(changed > 0, 'the cache changed no probability by more than 1e-3');
    for (const c of ref.plain_next_words) {
      closeWords(
        await models.plain.nextWords(c.prompt, 10),
        c.words,
        `${JSON.stringify(c.prompt)} (no settings)`,
      );
    }
  });

  test('scores: the cache mixed in by default, the model alone with cache: false', async () => {
    for (const c of ref.scores) {
      closeScore(await models.cached.score(c.text), c.cached, `${c.text} (cache)`);
      closeScore(await models.cached.score(c.text, { cache: false }), c.plain, `${c.text} (no cache)`);
    }
    assert.ok(ref.scores.some((c) => Math.abs(c.cached.total - c.plain.total) > 1));
  });

  test("on Python's logits and states, the decoding loop makes the same calls and the same texts", async () => {
    const model = models.cached;
    const lastH = model.stateWidths.length - 2;
    for (const c of ref.replayed) {
      const replay = Object.create(model);
      let k = 0;
      replay.forward = async (ids, state, logitsFrom) => {
        const call = c.calls[k++];
        assert.ok(call, `more session calls than Python made for ${JSON.stringify(c.options)}`);
        assert.deepEqual(ids, call.ids, `call ${k - 1} feeds other ids`);
        assert.equal(logitsFrom, call.logits_from);
        const states = model.stateWidths.map((w) => new Float32Array(ids.length * w));
        states[lastH] = f32(call.h);
        return { logits: f32(call.logits), positions: call.shape[1], state: states };
      };
      const got = await replay.generate(c.prompt, camelOptions(c.options));
      assert.equal(k, c.calls.length, 'fewer session calls than Python made');
      assert.deepEqual(got, c.text, JSON.stringify(c.options));
    }
  });

  test('greedy texts with cache: true are identical, and differ from the texts without it', async () => {
    const bad = await texts(models.cached, ref.greedy);
    assert.equal(bad.items.length, 0, bad.message);
    assert.ok(ref.greedy.some((c) => JSON.stringify(c.text) !== JSON.stringify(c.plain_text)));
    const off = await texts(
      models.cached,
      ref.greedy.map((c) => ({ ...c, options: { ...c.options, cache: false }, text: c.plain_text })),
    );
    assert.equal(off.items.length, 0, off.message);
    console.log(`greedy with the cache: ${bad.checked} of ${bad.checked} generations identical`);
  });

  test('seeded texts with cache: true are identical (int8 files: nearly all)', async () => {
    const bad = await texts(models.cached, ref.sampled);
    console.log(`seeded with the cache: ${bad.checked - bad.items.length} of ${bad.checked} identical`);
    assert.ok(bad.items.length <= (ref.quantized ? Math.floor(bad.checked / 4) : 0), bad.message);
  });

  test("streams with cache: true are Python's pieces (where the text is Python's)", async () => {
    let same = 0;
    for (const c of ref.streams) {
      const stream = models.cached.stream(c.prompt, camelOptions(c.options));
      const pieces = [];
      for await (const piece of stream) pieces.push(piece);
      if (!ref.quantized || pieces.join('') === c.pieces.join('')) {
        assert.deepEqual(pieces, c.pieces, JSON.stringify(c.options));
        assert.equal(stream.finishReason, c.reason);
        same++;
      } else {
        assert.equal(pieces.join(''), await models.cached.generate(c.prompt, camelOptions(c.options)));
      }
    }
    assert.ok(same >= ref.streams.length / 2);
  });

  test("a file's decoding default cache: true applies to generate()", async () => {
    for (const c of ref.defaults) {
      assert.equal(await models.default_on.generate(c.prompt, { temperature: 0 }), c.text);
    }
  });

  test("cache errors carry Python's messages", async () => {
    const calls = {
      'generate cache=True, no cache in the file': () => models.plain.generate('x', { cache: true }),
      'next_words cache=True, no cache in the file': () => models.plain.nextWords('x', 3, { cache: true }),
      'score cache=True, no cache in the file': () => models.plain.score('x y', { cache: true }),
      'generate cache=1': () => models.cached.generate('x', { cache: 1 }),
    };
    for (const c of ref.errors) {
      let got = null;
      try {
        await calls[c.name]();
      } catch (error) {
        got = error.message;
      }
      assert.equal(got, inJavaScript(c.message), c.name);
    }
  });
});
