// Python's repr() and a few formatting helpers, so that messages about a model file's contents read
// exactly as the Python runtime writes them. Values are those src/pyjson.js returns: null (None),
// booleans, bigint (int), number (float), string, Array (list), Map (dict), PyTuple (tuple).

import { isPrintable } from './unicode.js';

/** A Python tuple, for messages that show one (e.g. `stop` read from a model file). */
export class PyTuple {
  /** @param {unknown[]} items */
  constructor(items) {
    this.items = items;
  }
}

/** Python's repr() of a value. */
export function pyRepr(value) {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return floatRepr(value);
  if (typeof value === 'string') return strRepr(value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (value instanceof PyTuple) {
    const inner = value.items.map(pyRepr).join(', ');
    return value.items.length === 1 ? `(${inner},)` : `(${inner})`;
  }
  if (value instanceof Map) {
    return `{${Array.from(value, ([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  }
  return String(value);
}

/** Python's str() of a number as f-strings print it: ints plain, floats as repr. */
export function pyStr(value) {
  return typeof value === 'string' ? value : pyRepr(value);
}

/** Python's repr() of a float: the shortest digits that round-trip, in Python's layout. */
export function floatRepr(x) {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  const point = exp + 1; // the value is 0.DIGITS x 10^point
  let text;
  if (point > -4 && point <= 16) {
    if (point <= 0) text = `0.${'0'.repeat(-point)}${digits}`;
    else if (point >= digits.length) text = `${digits}${'0'.repeat(point - digits.length)}.0`;
    else text = `${digits.slice(0, point)}.${digits.slice(point)}`;
  } else {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    text = `${digits[0]}${fraction}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return x < 0 ? `-${text}` : text;
}

/** Python's repr() of a str: quotes, escapes and non-printable characters as Python shows them. */
export function strRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${hex(cp, 2)}`;
    else if (cp < 0x7f || isPrintable(cp)) out += ch;
    else if (cp <= 0xff) out += `\\x${hex(cp, 2)}`;
    else if (cp <= 0xffff) out += `\\u${hex(cp, 4)}`;
    else out += `\\U${hex(cp, 8)}`;
  }
  return out + quote;
}

function hex(cp, width) {
  return cp.toString(16).padStart(width, '0');
}

/** Length in code points, as Python's len() counts a str. */
export function pyLen(text) {
  let n = 0;
  for (const _ of text) n++; // eslint-disable-line no-unused-vars
  return n;
}

/** The first `n` code points of `text` (Python's text[:n]). */
export function pyHead(text, n) {
  let out = '';
  let i = 0;
  for (const ch of text) {
    if (i++ >= n) break;
    out += ch;
  }
  return out;
}

/** An integer with thousands separators, as Python's f"{n:,}". */
export function commas(n) {
  const text = String(n);
  const sign = text.startsWith('-') ? '-' : '';
  return sign + text.slice(sign.length).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Python's ordering of str: by code point (JavaScript's default sort compares UTF-16 units). */
export function compareCodePoints(a, b) {
  const x = Array.from(a, (ch) => ch.codePointAt(0));
  const y = Array.from(b, (ch) => ch.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** Python's sorted() of strings. */
export function pySorted(strings) {
  return [...strings].sort(compareCodePoints);
}

/** Python's shorten (runtime/errors.py): the repr of a text cut to 80 characters, for a message. */
export function shorten(text) {
  return strRepr(pyLen(text) <= 80 ? text : `${pyHead(text, 80)}...`);
}
