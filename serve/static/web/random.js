// numpy's random streams, bit for bit: np.random.SeedSequence (entropy pooling, spawn) and the PCG64 bit
// generator behind np.random.default_rng, with Generator.random() (53-bit doubles). The Python runtime
// seeds one stream per row with SeedSequence(seed).spawn(rows); so does this package.

import { NextwordError } from './errors.js';

const MASK32 = 0xffffffff;
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const POOL_SIZE = 4;

const mul32 = (a, b) => Math.imul(a, b) >>> 0;

function hashmix(value, hash) {
  value = (value ^ hash.value) >>> 0;
  hash.value = mul32(hash.value, MULT_A);
  value = mul32(value, hash.value);
  return (value ^ (value >>> XSHIFT)) >>> 0;
}

function mix(x, y) {
  const result = (mul32(MIX_MULT_L, x) - mul32(MIX_MULT_R, y)) >>> 0;
  return (result ^ (result >>> XSHIFT)) >>> 0;
}

/** numpy's _int_to_uint32_array: little-endian 32-bit words of a non-negative integer. */
function uint32Words(n) {
  n = BigInt(n);
  if (n < 0n) throw new RangeError('expected a non-negative integer');
  const words = [];
  if (n === 0n) words.push(0);
  while (n > 0n) {
    words.push(Number(n & BigInt(MASK32)));
    n >>= 32n;
  }
  return words;
}

/** `n` random 32-bit words from the platform's crypto (globalThis.crypto: browsers, Node 20 and later). */
function randomWords(n) {
  const source = globalThis.crypto;
  if (typeof source?.getRandomValues !== 'function') {
    throw new NextwordError(
      'a generation without a seed draws one from crypto.getRandomValues, which this JavaScript ' +
        'environment lacks (Node 18 and older have no global crypto): use Node 20 or later, or give a seed',
    );
  }
  return source.getRandomValues(new Uint32Array(n));
}

/** np.random.SeedSequence: turns a seed (any non-negative integer) into well-mixed state. */
export class SeedSequence {
  /**
   * @param {bigint | number | null} entropy null draws 128 bits from the platform's crypto
   * @param {number[]} [spawnKey]
   */
  constructor(entropy = null, spawnKey = []) {
    if (entropy === null) {
      const words = randomWords(4);
      entropy = words.reduce((acc, w, i) => acc | (BigInt(w) << BigInt(32 * i)), 0n);
    }
    this.entropy = BigInt(entropy);
    this.spawnKey = spawnKey;
    this.childrenSpawned = 0;
    this.pool = new Array(POOL_SIZE).fill(0);
    this._mixEntropy(this._assembledEntropy());
  }

  _assembledEntropy() {
    let run = uint32Words(this.entropy);
    const spawn = this.spawnKey.flatMap(uint32Words);
    if (spawn.length > 0 && run.length < POOL_SIZE)
      run = [...run, ...new Array(POOL_SIZE - run.length).fill(0)];
    return [...run, ...spawn];
  }

  _mixEntropy(entropy) {
    const hash = { value: INIT_A };
    const pool = this.pool;
    for (let i = 0; i < pool.length; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0, hash);
    for (let src = 0; src < pool.length; src++) {
      for (let dst = 0; dst < pool.length; dst++) {
        if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash));
      }
    }
    for (let src = pool.length; src < entropy.length; src++) {
      for (let dst = 0; dst < pool.length; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src], hash));
    }
  }

  /** `n` 32-bit words of state (generate_state(n, np.uint32)). */
  generateState(n) {
    let hash = INIT_B;
    const out = [];
    for (let i = 0; i < n; i++) {
      let value = (this.pool[i % POOL_SIZE] ^ hash) >>> 0;
      hash = mul32(hash, MULT_B);
      value = mul32(value, hash);
      out.push((value ^ (value >>> XSHIFT)) >>> 0);
    }
    return out;
  }

  /** `n` child sequences, independent of each other and of this one. */
  spawn(n) {
    const children = [];
    for (let i = this.childrenSpawned; i < this.childrenSpawned + n; i++) {
      children.push(new SeedSequence(this.entropy, [...this.spawnKey, i]));
    }
    this.childrenSpawned += n;
    return children;
  }
}

const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULT = (0x2360ed051fc65da4n << 64n) | 0x4385df649fccf645n;

/** np.random.default_rng(seedSequence): PCG64 (XSL-RR 128/64) and Generator.random(). */
export class PCG64 {
  /** @param {SeedSequence} seedSequence */
  constructor(seedSequence) {
    const w = seedSequence.generateState(8).map(BigInt); // 4 uint64 little-endian
    const u64 = (i) => w[2 * i] | (w[2 * i + 1] << 32n);
    const seed = (u64(0) << 64n) | u64(1);
    const inc = (u64(2) << 64n) | u64(3);
    this.state = 0n;
    this.inc = ((inc << 1n) | 1n) & MASK128;
    this._step();
    this.state = (this.state + seed) & MASK128;
    this._step();
  }

  _step() {
    this.state = (this.state * PCG_MULT + this.inc) & MASK128;
  }

  /** The next 64 random bits, as a bigint. */
  next64() {
    this._step();
    const s = this.state;
    const rot = Number(s >> 122n);
    const x = ((s >> 64n) ^ s) & MASK64;
    return ((x >> BigInt(rot)) | (x << BigInt((64 - rot) & 63))) & MASK64;
  }

  /** A double in [0, 1), as Generator.random(). */
  random() {
    return Number(this.next64() >> 11n) * (1.0 / 9007199254740992.0);
  }
}
