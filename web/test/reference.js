// Reference outputs of the Python runtime, written by tests/test_web.py (pytest) before it runs a test file
// here. Run alone (`npm test`), the parity tests are skipped with this reason.

import { readFileSync } from 'node:fs';

export const NO_REFERENCE =
  "needs the Python runtime's reference outputs: run through pytest (make web-test)";

/** The reference JSON named by NEXTWORD_WEB_REFERENCE, or null. */
export function reference() {
  const path = process.env.NEXTWORD_WEB_REFERENCE;
  return path ? JSON.parse(readFileSync(path, 'utf8')) : null;
}

/** A float32 array sent as base64 of little-endian bytes. */
export function f32(b64) {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** Collects mismatches and reports them all at once, with the first few in full. */
export class Mismatches {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.checked = 0;
  }

  check(equal, detail) {
    this.checked += 1;
    if (!equal) this.items.push(detail);
  }

  get message() {
    const shown = this.items
      .slice(0, 5)
      .map((d) => JSON.stringify(d, null, 1))
      .join('\n');
    return `${this.items.length} of ${this.checked} ${this.what} differ from Python:\n${shown}`;
  }
}

/** Python's snake_case option names as this package's camelCase ones. */
export function camelOptions(options) {
  return Object.fromEntries(
    Object.entries(options).map(([k, v]) => [
      k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()),
      k === 'seed' && typeof v === 'string' ? BigInt(v) : v,
    ]),
  );
}
