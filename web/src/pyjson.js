// A JSON reader that returns what Python's json.loads returns, so that a model file's metadata is
// accepted, refused and reported exactly as the Python runtime does: integers stay integers (bigint) and
// floats stay floats (number), NaN/Infinity are accepted, objects are Maps (any key is safe, duplicates:
// the last wins), and errors carry CPython's messages and positions (in code points).

const MAX_INT_DIGITS = 4300; // CPython's default int_max_str_digits
const MAX_DEPTH = 1000; // CPython's default recursion limit bounds the nesting it can decode

/** JSON that Python's json.loads refuses; `message` is Python's str(exception). */
export class PyJsonError extends Error {
  constructor(message, { tooDeep = false } = {}) {
    super(message);
    this.name = 'PyJsonError';
    this.tooDeep = tooDeep;
  }
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const ESCAPES = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Parse `text` as Python's json.loads would. Throws PyJsonError. */
export function parsePyJson(text) {
  return new Reader(text).document();
}

class Reader {
  constructor(text) {
    this.s = text;
    this.depth = 0;
  }

  fail(message, index) {
    const before = this.s.slice(0, index);
    const pos = Array.from(before).length;
    const line = before.split('\n').length;
    const lastBreak = before.lastIndexOf('\n');
    const column = Array.from(before.slice(lastBreak + 1)).length + 1;
    throw new PyJsonError(`${message}: line ${line} column ${column} (char ${pos})`);
  }

  skip(i) {
    while (i < this.s.length && WHITESPACE.has(this.s[i])) i++;
    return i;
  }

  document() {
    if (this.s.startsWith('\ufeff')) this.fail('Unexpected UTF-8 BOM (decode using utf-8-sig)', 0);
    const [value, end] = this.value(this.skip(0));
    const after = this.skip(end);
    if (after !== this.s.length) this.fail('Extra data', after);
    return value;
  }

  /** @returns {[unknown, number]} the value at `i` and the index after it */
  value(i) {
    const s = this.s;
    const c = s[i];
    if (c === '"') return this.string(i + 1);
    if (c === '{' || c === '[') {
      if (++this.depth > MAX_DEPTH) {
        throw new PyJsonError('maximum recursion depth exceeded while decoding a JSON document', {
          tooDeep: true,
        });
      }
      const result = c === '{' ? this.object(i + 1) : this.array(i + 1);
      this.depth--;
      return result;
    }
    if (c === 'n' && s.startsWith('null', i)) return [null, i + 4];
    if (c === 't' && s.startsWith('true', i)) return [true, i + 4];
    if (c === 'f' && s.startsWith('false', i)) return [false, i + 5];
    if (c === 'N' && s.startsWith('NaN', i)) return [NaN, i + 3];
    if (c === 'I' && s.startsWith('Infinity', i)) return [Infinity, i + 8];
    if (c === '-' && s.startsWith('-Infinity', i)) return [-Infinity, i + 9];
    return this.number(i);
  }

  number(start) {
    const s = this.s;
    const digit = (k) => k < s.length && s[k] >= '0' && s[k] <= '9';
    let i = start;
    if (s[i] === '-') i++;
    if (digit(i) && s[i] !== '0') {
      while (digit(i)) i++;
    } else if (s[i] === '0') {
      i++;
    } else {
      this.fail('Expecting value', start);
    }
    let isFloat = false;
    if (s[i] === '.' && digit(i + 1)) {
      isFloat = true;
      i += 2;
      while (digit(i)) i++;
    }
    if (i < s.length - 1 && (s[i] === 'e' || s[i] === 'E')) {
      const eStart = i;
      i++;
      if (i < s.length - 1 && (s[i] === '-' || s[i] === '+')) i++;
      while (digit(i)) i++;
      if (digit(i - 1)) isFloat = true;
      else i = eStart;
    }
    const literal = s.slice(start, i);
    if (isFloat) return [Number(literal), i];
    const digits = literal.replace('-', '').length;
    if (digits > MAX_INT_DIGITS) {
      throw new PyJsonError(
        `Exceeds the limit (${MAX_INT_DIGITS} digits) for integer string conversion: value has ` +
          `${digits} digits; use sys.set_int_max_str_digits() to increase the limit`,
      );
    }
    return [BigInt(literal), i];
  }

  string(end) {
    const s = this.s;
    const begin = end - 1;
    let out = '';
    for (;;) {
      let next = end;
      let c = '';
      for (; next < s.length; next++) {
        c = s[next];
        if (c === '"' || c === '\\') break;
        if (c.charCodeAt(0) <= 0x1f) this.fail('Invalid control character at', next);
      }
      if (next >= s.length) this.fail('Unterminated string starting at', begin);
      out += s.slice(end, next);
      next++;
      if (c === '"') return [out, next];
      if (next === s.length) this.fail('Unterminated string starting at', begin);
      c = s[next];
      if (c !== 'u') {
        end = next + 1;
        if (!(c in ESCAPES)) this.fail('Invalid \\escape', end - 2);
        out += ESCAPES[c];
        continue;
      }
      next++;
      end = next + 4;
      if (end >= s.length) this.fail('Invalid \\uXXXX escape', next - 1);
      let code = this.hex4(next, end);
      if (code >= 0xd800 && code <= 0xdbff && end + 6 < s.length && s[end] === '\\' && s[end + 1] === 'u') {
        const low = this.hex4(end + 2, end + 6);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          end += 6;
        }
      }
      out += code > 0xffff ? String.fromCodePoint(code) : String.fromCharCode(code);
    }
  }

  hex4(from, to) {
    const text = this.s.slice(from, to);
    if (!/^[0-9a-fA-F]{4}$/.test(text)) this.fail('Invalid \\uXXXX escape', to - 5);
    return parseInt(text, 16);
  }

  object(i) {
    const s = this.s;
    const map = new Map();
    i = this.skip(i);
    if (s[i] === '}') return [map, i + 1];
    for (;;) {
      if (s[i] !== '"') this.fail('Expecting property name enclosed in double quotes', i);
      const [key, afterKey] = this.string(i + 1);
      i = this.skip(afterKey);
      if (s[i] !== ':') this.fail("Expecting ':' delimiter", i);
      const [value, afterValue] = this.value(this.skip(i + 1));
      map.set(key, value); // like Python's dict: a repeated key keeps its first position, the last value
      i = this.skip(afterValue);
      if (s[i] === '}') return [map, i + 1];
      if (s[i] !== ',') this.fail("Expecting ',' delimiter", i);
      i = this.skip(i + 1);
    }
  }

  array(i) {
    const s = this.s;
    const list = [];
    i = this.skip(i);
    if (s[i] === ']') return [list, i + 1];
    for (;;) {
      const [value, after] = this.value(i);
      list.push(value);
      i = this.skip(after);
      if (s[i] === ']') return [list, i + 1];
      if (s[i] !== ',') this.fail("Expecting ',' delimiter", i);
      i = this.skip(i + 1);
    }
  }
}
