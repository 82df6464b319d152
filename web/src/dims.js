// Sizes as upper bounds in the batch size B and the number of positions T, for src/graph-bounds.js:
// nextword/runtime/dims.py. A dimension is a monomial c * B**b * T**t, exactly that when `exact`, else at
// most that (B, T >= 1). Coefficients are bigints, so that sums and products stay exact up to the
// saturation point, as Python's ints do, and messages print the same figures.

export const SATURATE = 1n << 80n; // coefficients stop growing here: far over any limit
const MAX_POWER = 4; // powers of B and T stop growing here (anything over 1 is refused anyway)
export const MAX_VALUES = 64; // longest integer tensor whose values are followed (shape vectors)

/** A reason to refuse the graph, thrown deep in the walk and turned into a ModelFileError once. */
export class Refused extends Error {}

/** A size c * B**b * T**t: exactly that when `exact`, else at most that. */
export class Dim {
  /**
   * @param {bigint} c
   * @param {number} [b]
   * @param {number} [t]
   * @param {boolean} [exact]
   */
  constructor(c, b = 0, t = 0, exact = true) {
    this.c = BigInt(c);
    this.b = b;
    this.t = t;
    this.exact = exact;
    Object.freeze(this);
  }

  get const() {
    return this.b === 0 && this.t === 0;
  }

  /** @param {Dim} other */
  mul(other) {
    return saturated(this.c * other.c, this.b + other.b, this.t + other.t, this.exact && other.exact);
  }

  /** Python's dataclass equality: every field. */
  equals(other) {
    return this.c === other.c && this.b === other.b && this.t === other.t && this.exact === other.exact;
  }

  toString() {
    const terms = this.c !== 1n || this.const ? [String(this.c)] : [];
    if (this.b > 0) terms.push(this.b > 1 ? `B^${this.b}` : 'B');
    if (this.t > 0) terms.push(this.t > 1 ? `T^${this.t}` : 'T');
    return (this.exact ? '' : '<=') + terms.join('*');
  }
}

export const ONE = new Dim(1n);

export function saturated(c, b, t, exact) {
  if (c > SATURATE || c < -SATURATE) {
    c = c > 0n ? SATURATE : -SATURATE;
    exact = false;
  }
  return new Dim(c, Math.min(b, MAX_POWER), Math.min(t, MAX_POWER), exact);
}

const max = (...xs) => xs.reduce((a, x) => (x > a ? x : a));

/** A bound on either of two sizes (B, T >= 1). */
export function upper(x, y) {
  if (x.equals(y)) return x;
  return saturated(max(x.c, y.c, 0n), Math.max(x.b, y.b), Math.max(x.t, y.t), false);
}

export function plus(x, y) {
  if (x.b === y.b && x.t === y.t) return saturated(x.c + y.c, x.b, x.t, x.exact && y.exact);
  return saturated(max(x.c, 0n) + max(y.c, 0n), Math.max(x.b, y.b), Math.max(x.t, y.t), false);
}

/** @param {Iterable<Dim>} dims */
export function product(dims) {
  let total = ONE;
  for (const d of dims) total = total.mul(d);
  return total;
}

/**
 * What is known of one tensor: its shape (a bound per dimension), element type, and the known integer
 * contents of a rank <= 1 tensor (Dims, or null where one is unknown).
 */
export class Value {
  /**
   * @param {Dim[]} shape
   * @param {number} dtype
   * @param {(Dim | null)[] | null} [values]
   */
  constructor(shape, dtype, values = null) {
    this.shape = shape;
    this.dtype = dtype;
    this.values = values;
  }
}

export function shapeText(shape) {
  return `(${shape.map(String).join(', ')})`;
}

/** An axis in 0..rank-1 (a number), from one in -rank..rank-1 (a bigint or number). */
export function normalizeAxis(axis, rank, op) {
  const a = BigInt(axis);
  if (!(BigInt(-rank) <= a && a < BigInt(rank))) {
    throw new Refused(`a ${op} node uses axis ${a} of a rank-${rank} tensor; the graph is invalid`);
  }
  return (Number(a) + rank) % rank;
}

/** @param {Dim[][]} shapes */
export function broadcast(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const padded = shapes.map((s) => [...Array(rank - s.length).fill(ONE), ...s]);
  const out = [];
  for (let i = 0; i < rank; i++) {
    const real = padded.map((s) => s[i]).filter((d) => !d.equals(ONE));
    let merged = real.length ? real[0] : ONE;
    for (const d of real.slice(1)) merged = upper(merged, d);
    out.push(merged);
  }
  return out;
}

/** Python's floor division of bigints. */
export function floorDiv(a, b) {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}
