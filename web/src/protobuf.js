// A small, strictly bounded protobuf wire-format reader: the same walk, bounds and messages as
// nextword/runtime/model_check.py (varints of at most 10 bytes, lengths inside their message, a field
// budget for the whole file, no groups, known fields with their expected wire types).

import { commas } from './pyrepr.js';

export const MAX_DEPTH = 32; // nested messages, counting from ModelProto
export const MAX_FIELDS = 2_000_000; // fields visited in messages we descend into

export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
export const I32 = 5;

/** The bytes do not follow the protobuf wire format (or exceed our bounds). */
export class WireError extends Error {}

/** Counts fields visited across the whole file, so a hostile file cannot make the walk slow. */
export class Budget {
  constructor(maxFields = MAX_FIELDS) {
    this.fields = 0;
    this.max = maxFields;
  }

  spend() {
    this.fields += 1;
    if (this.fields > this.max) throw new WireError(`more than ${commas(this.max)} protobuf fields`);
  }
}

const MASK64 = (1n << 64n) - 1n;

/**
 * Decode a base-128 varint at `pos`; returns [value, next position]. The value is a number when it is
 * a safe integer, else a bigint (unsigned 64-bit, as Python's reader masks it).
 */
export function varint(data, pos, end) {
  let value = 0;
  let big = null;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= end) throw new WireError(`varint runs past the end of its message at byte ${pos}`);
    const byte = data[pos + i];
    if (i < 7) value += (byte & 0x7f) * 2 ** (7 * i);
    else big = (big ?? BigInt(value)) | (BigInt(byte & 0x7f) << BigInt(7 * i));
    if (!(byte & 0x80)) {
      if (big === null) return [value, pos + i + 1];
      big &= MASK64;
      return [big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big, pos + i + 1];
    }
  }
  throw new WireError(`varint longer than 10 bytes at byte ${pos}`);
}

/**
 * Yield [field number, wire type, a, b] for each field of the message in data[start:end]. For varints
 * `a` is the value; for length-delimited and fixed-width fields data[a:b] holds the payload. Groups,
 * unknown wire types, field number 0, lengths running past `end` and known fields with the wrong wire
 * type (per `expected`) are errors.
 * @param {Uint8Array} data
 * @param {Record<number, number | number[]>} expected
 */
export function* fields(data, start, end, budget, kind, expected) {
  let pos = start;
  while (pos < end) {
    budget.spend();
    let key;
    [key, pos] = varint(data, pos, end);
    const number = typeof key === 'bigint' ? key >> 3n : Math.floor(key / 8);
    const wire = typeof key === 'bigint' ? Number(key & 7n) : key % 8;
    if (number == 0 || number > 0x1fffffff)
      throw new WireError(`invalid field number ${number} at byte ${pos}`);
    let item;
    if (wire === VARINT) {
      let value;
      [value, pos] = varint(data, pos, end);
      item = [Number(number), wire, value, 0];
    } else if (wire === LEN) {
      let length;
      [length, pos] = varint(data, pos, end);
      if (length > end - pos) {
        throw new WireError(`field ${number} of ${commas(length)} bytes runs past the end at byte ${pos}`);
      }
      item = [Number(number), wire, pos, pos + Number(length)];
      pos += Number(length);
    } else if (wire === I64 || wire === I32) {
      const size = wire === I64 ? 8 : 4;
      if (size > end - pos)
        throw new WireError(`fixed-width field ${number} runs past the end at byte ${pos}`);
      item = [Number(number), wire, pos, pos + size];
      pos += size;
    } else if (wire === SGROUP || wire === EGROUP) {
      throw new WireError(`field ${number} uses protobuf groups (wire type ${wire}), which ONNX never does`);
    } else {
      throw new WireError(`field ${number} has invalid wire type ${wire}`);
    }
    const want = expected[item[0]]; // a wire type, or those a repeated field may use (packed or not)
    if (want !== undefined && !(Array.isArray(want) ? want.includes(wire) : want === wire)) {
      const shown = Array.isArray(want) ? Math.min(...want) : want;
      throw new WireError(`${kind} field ${number} has wire type ${wire}, expected ${shown}`);
    }
    yield item;
  }
}

const LENIENT = new TextDecoder('utf-8', { ignoreBOM: true });

/** A string field for messages and comparisons (invalid UTF-8 shows as U+FFFD, as Python's "replace"). */
export function text(data, a, b) {
  return LENIENT.decode(data.subarray(a, b));
}

/**
 * Decode strict UTF-8 as Python's bytes.decode("utf-8") does: returns the string, or the offset of the
 * first byte of the first invalid sequence (Python's UnicodeDecodeError.start) as a number.
 * @returns {string | number}
 */
export function strictUtf8(bytes) {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
}

/** A varint read as the two's-complement int64 protobuf stores, as a bigint. */
export function signed64(value) {
  const v = BigInt(value);
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

/** The varints of a packed field, as bigints (int64). Throws WireError on a truncated one. */
export function packedVarints(data, start, end) {
  const values = [];
  for (let pos = start; pos < end;) {
    let value;
    [value, pos] = varint(data, pos, end);
    values.push(signed64(value));
  }
  return values;
}

/** How many varints a packed field holds, without decoding them (Python's count_varints). */
export function countVarints(data, start, end) {
  if (start < end && data[end - 1] & 0x80) {
    throw new WireError(`packed varints run past the end of their field at byte ${end}`);
  }
  let count = 0;
  for (let i = start; i < end; i++) if (!(data[i] & 0x80)) count += 1;
  return count;
}
