// The sampler against numpy: float32 exp and log, the sums, SeedSequence/PCG64 streams and sample_next's draws on
// the same logits.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  blockSumF32,
  correctlyRoundedExpF32,
  correctlyRoundedLogF32,
  npExpF32,
  npLogF32,
  pairwiseSumF32,
  sumF32AsF64,
} from '../src/float32.js';
import { PCG64, SeedSequence } from '../src/random.js';
import { sample } from '../src/sampling.js';
import { f32, Mismatches, NO_REFERENCE, reference } from './reference.js';

const ref = reference();

describe('random streams match numpy', { skip: !ref?.rng && NO_REFERENCE }, () => {
  test('SeedSequence(seed).spawn(3) -> default_rng(child).random()', () => {
    for (const { seed, draws } of ref.rng) {
      const children = new SeedSequence(BigInt(seed)).spawn(draws.length);
      const got = children.map((child) => {
        const rng = new PCG64(child);
        return draws[0].map(() => rng.random());
      });
      assert.deepEqual(got, draws, `seed ${seed}`);
    }
  });
});

describe('float32 arithmetic matches numpy', { skip: !ref?.sampler && NO_REFERENCE }, () => {
  const kernels = {
    exp: { simd: npExpF32, libm: correctlyRoundedExpF32 },
    log: { simd: npLogF32, libm: correctlyRoundedLogF32 },
  };
  for (const [name, flavours] of Object.entries(kernels)) {
    test(`np.${name} on float32, bit for bit`, () => {
      const { flavour, x, y } = ref.sampler[name];
      const inputs = f32(x);
      const want = f32(y);
      const kernel = flavours[flavour];
      let differ = 0;
      for (let i = 0; i < inputs.length; i++) {
        const got = Math.fround(kernel(inputs[i]));
        if (!(Object.is(got, want[i]) || (Number.isNaN(got) && Number.isNaN(want[i])))) differ++;
      }
      assert.equal(
        differ,
        0,
        `${differ} of ${inputs.length} ${name} values differ (numpy's ${name}: ${flavour})`,
      );
    });
  }

  test('np.add.reduceat, sum(dtype=float64) and float32 row sums, bit for bit', () => {
    for (const { data, reduceat, sum64, sum32 } of ref.sampler.sums) {
      const a = f32(data);
      const blocks = f32(reduceat);
      blocks.forEach((want, b) =>
        assert.equal(blockSumF32(a, b * 128, Math.min(a.length, (b + 1) * 128)), want),
      );
      assert.equal(sumF32AsF64(a), sum64, `sum of ${a.length}`);
      assert.equal(pairwiseSumF32(a, 0, a.length), sum32, `float32 sum of ${a.length}`);
    }
  });
});

describe('sampling matches Python on the same logits', { skip: !ref?.sampler && NO_REFERENCE }, () => {
  test('every setting, seed and draw', () => {
    const { logits, cases, exp } = ref.sampler;
    const sets = Object.fromEntries(
      Object.entries(logits).map(([name, s]) => [name, { ...s, data: f32(s.data) }]),
    );
    const bad = new Mismatches('draws');
    for (const c of cases) {
      const { rows, vocab, data } = sets[c.set];
      const rngs = new SeedSequence(BigInt(c.seed)).spawn(rows).map((s) => new PCG64(s));
      for (const want of c.draws) {
        const scores = Float32Array.from(data);
        for (let r = 0; r < rows; r++) for (const id of c.banned) scores[r * vocab + id] = -Infinity;
        const expF32 = exp.flavour === 'simd' ? npExpF32 : correctlyRoundedExpF32;
        const got = sample(
          scores,
          rows,
          vocab,
          rngs,
          c.temperature,
          c.top_k ?? null,
          c.top_p ?? null,
          expF32,
        );
        bad.check(JSON.stringify(got) === JSON.stringify(want), { ...c, draws: undefined, got, want });
      }
    }
    assert.equal(bad.items.length, 0, bad.message);
    console.log(`${bad.checked} batched draws identical to Python's`);
  });
});
