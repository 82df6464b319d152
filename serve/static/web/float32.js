// float32 arithmetic as numpy does it, for the sampling steps the Python runtime runs in float32.
//
// +, -, *, / of two float32 values: Math.fround of the double result is the correctly rounded float32
// result (a double has more than 2 x 24 + 2 bits, so rounding twice never differs from rounding once).
// np.exp on float32 arrays is not correctly rounded on x86-64 machines with AVX2+FMA3 or AVX512F: numpy
// runs its own vector kernel there (Cody-Waite reduction, a 5/2 rational polynomial, FMA steps), which
// differs from a correctly rounded exp in the last bit for about 4 inputs in 10. npExpF32 is that kernel,
// step by step, with fused multiply-adds emulated exactly; on other machines (Arm, or x86-64 without
// AVX2) numpy calls the C library's expf instead, and correctlyRoundedExpF32 is what to compare with.

const f = Math.fround;

/**
 * A fused multiply-add in float32: a * b + c (all float32) rounded once. The product is exact in a
 * double and the sum is rounded to a double s; rounding s to float32 can only differ from rounding the
 * exact sum once when s lies exactly halfway between two float32 values (the exact sum is then on one
 * side of that midpoint: the error term of the double sum tells which).
 */
export function fma32(a, b, c) {
  const s = a * b + c;
  const r = f(s);
  const d = s - r;
  if (d === 0) return r;
  const other = r + 2 * d; // the float32 on the other side of s, if s is a midpoint
  if (f(other) !== other) return r;
  const p = a * b;
  const bp = s - p;
  const error = p - (s - bp) + (c - bp); // s + error == p + c exactly (TwoSum)
  if (error === 0) return r; // a true tie: float32 rounding breaks it to even, as the hardware does
  return error > 0 === d > 0 ? f(other) : r;
}

const XMAX = f(88.72283935546875);
const XMIN = f(-103.97208404541015625);
const LOG2E = f(1.442695040888963407359924681001892137);
const MAGIC = f(12582912); // 0x1.8p23: adding and subtracting it rounds to the nearest integer
const LN2_HIGH = f(-6.93145752e-1);
const LN2_LOW = f(-1.42860677e-6);
const P0 = f(9.999999999980870924916e-1);
const P1 = f(7.257664613233124478488e-1);
const P2 = f(2.473615434895520810817e-1);
const P3 = f(5.114512081637298353406e-2);
const P4 = f(6.757896990527504603057e-3);
const P5 = f(5.082762527590693718096e-4);
const Q1 = f(-2.742335390411667452936e-1);
const Q2 = f(2.159509375685829852307e-2);

const POW2 = Float64Array.from({ length: 320 }, (_, i) => 2 ** (i - 160)); // 2^q, q in -160..159

/** numpy's float32 exp kernel (AVX2+FMA3 / AVX512F) for one float32 value. */
export function npExpF32(x) {
  if (!(x < XMAX)) return Number.isNaN(x) ? NaN : Infinity;
  if (x <= XMIN) return 0;
  let q = f(x * LOG2E);
  q = f(f(q + MAGIC) - MAGIC);
  let r = fma32(q, LN2_HIGH, x);
  r = fma32(q, LN2_LOW, r);
  let num = fma32(P5, r, P4);
  num = fma32(num, r, P3);
  num = fma32(num, r, P2);
  num = fma32(num, r, P1);
  num = fma32(num, r, P0);
  const den = fma32(fma32(Q2, r, Q1), r, 1);
  return f(f(num / den) * POW2[q + 160]);
}

const LOG_P = [
  0, 9.999999999999998702752e-1, 2.112677543073053063722, 1.480000633576506585156, 3.808837741388407920751e-1,
  2.589979117907922693523e-2,
].map(f);
const LOG_Q = [
  1, 2.612677543073109236779, 2.453006071784736363091, 9.864942958519418960339e-1, 1.546476374983906719538e-1,
  5.87509540312457434295e-3,
].map(f);
const LN2 = f(0.693147180559945309417232121458176568);
const SQRT1_2 = f(0.707106781186547524400844362104849039);
const FLT_MIN = 2 ** -126;
const LOG_BITS = new Float32Array(1);
const LOG_INT = new Uint32Array(LOG_BITS.buffer);

/**
 * numpy's float32 log kernel (AVX2+FMA3 / AVX512F) for one float32 value: the mantissa m in [0.5, 1)
 * and exponent e of x (subnormals scaled by 2^100 first), m doubled (and e lowered) when m <= sqrt(1/2),
 * then log(1 + (m - 1)) as a 5/5 rational polynomial in FMA steps, plus e * ln 2 in one more FMA.
 */
export function npLogF32(x) {
  if (Number.isNaN(x) || x < 0) return NaN;
  if (x === 0) return -Infinity;
  if (x === Infinity) return Infinity;
  const subnormal = x < FLT_MIN;
  LOG_BITS[0] = subnormal ? x * 2 ** 100 : x; // exact: a subnormal times 2^100 is a normal float32
  const bits = LOG_INT[0];
  let e = (bits >>> 23) - 126 - (subnormal ? 100 : 0);
  LOG_INT[0] = (bits & 0x7fffff) | (126 << 23);
  let m = LOG_BITS[0];
  if (m <= SQRT1_2) {
    m = m + m;
    e -= 1;
  }
  const r = f(m - 1);
  let num = fma32(LOG_P[5], r, LOG_P[4]);
  let den = fma32(LOG_Q[5], r, LOG_Q[4]);
  for (let k = 3; k >= 0; k--) {
    num = fma32(num, r, LOG_P[k]);
    den = fma32(den, r, LOG_Q[k]);
  }
  return fma32(e, LN2, f(num / den));
}

/** log rounded to float32 (what a correctly rounded logf returns). */
export function correctlyRoundedLogF32(x) {
  return f(Math.log(x));
}

/** exp rounded to float32 (what the C library's expf returns, up to its rare misroundings). */
export function correctlyRoundedExpF32(x) {
  return f(Math.exp(x));
}

/**
 * numpy's float32 pairwise sum of a[start:end] (its reduction loop: eight accumulators over blocks of
 * up to 128 elements, halves above that).
 */
export function pairwiseSumF32(a, start, end) {
  const n = end - start;
  if (n < 8) {
    let res = 0;
    for (let i = start; i < end; i++) res = f(res + a[i]);
    return res;
  }
  if (n <= 128) {
    const r = [
      a[start],
      a[start + 1],
      a[start + 2],
      a[start + 3],
      a[start + 4],
      a[start + 5],
      a[start + 6],
      a[start + 7],
    ];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = f(r[j] + a[start + i + j]);
    }
    let res = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; i < n; i++) res = f(res + a[start + i]);
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return f(pairwiseSumF32(a, start, start + half) + pairwiseSumF32(a, start + half, end));
}

/** numpy's float64 pairwise sum of a[start:end] (float32 or float64 values, summed in float64). */
export function pairwiseSumF64(a, start, end) {
  const n = end - start;
  if (n < 8) {
    let res = 0;
    for (let i = start; i < end; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    const r = [
      a[start],
      a[start + 1],
      a[start + 2],
      a[start + 3],
      a[start + 4],
      a[start + 5],
      a[start + 6],
      a[start + 7],
    ];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    }
    let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7])); // ((01)(23))((45)(67))
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSumF64(a, start, start + half) + pairwiseSumF64(a, start + half, end);
}

const BUFFER = 8192; // numpy's ufunc buffer size: a cast reduction runs in chunks of this many elements

/** `a.sum(dtype=np.float64)` for a float32 row: pairwise within numpy's cast buffers, in order. */
export function sumF32AsF64(a) {
  let total = 0;
  for (let start = 0; start < a.length; start += BUFFER)
    total += pairwiseSumF64(a, start, Math.min(a.length, start + BUFFER));
  return total;
}

/** `np.add.reduceat(a, starts)` for one block a[start:end] of a float32 array: the first element plus
 * the pairwise sum of the rest, in float32. */
export function blockSumF32(a, start, end) {
  return end - start > 1 ? f(a[start] + pairwiseSumF32(a, start + 1, end)) : a[start];
}
