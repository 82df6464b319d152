// The word-level tokenizer of nextword/runtime/tokenizer.py, in JavaScript: the same ids, the same text.
// Python's regex classes, case mappings and NFKC come from src/unicode.js (tables generated from
// Python), so the result does not depend on this engine's Unicode version.

import { NextwordError } from './errors.js';
import { typeName } from './generation.js';
import { PyJsonError, parsePyJson } from './pyjson.js';
import { commas, pyHead, pyLen, pyRepr, pySorted } from './pyrepr.js';
import {
  HAN,
  capitalized,
  carriesStart,
  endsSentence,
  glued,
  mayEndSentence,
  startsAfter,
} from './spacing.js';
import { CLASS, isSpace, pyLower, pyNfkc } from './unicode.js';

export const PAD = '<pad>'; // id 0: never generated
export const UNK = '<unk>'; // id 1: any word outside the vocabulary
export const EOD = '<eod>'; // id 2: end of one document and start of the next
export const SPECIAL_TOKENS = Object.freeze([PAD, UNK, EOD]);
export const MAX_TOKEN_CHARS = 1000;
export const MAX_VOCAB_SIZE = 1_000_000;
export const TOKENIZER_FORMAT_VERSION = 5; // the newest: 3 keeps marks in words, 4 drops invisible ones, 5 splits Han
export const READABLE_VERSIONS = Object.freeze([1, 2, 3, 4, 5]);
const FORMAT_NAME = 'nextword.tokenizer';
const CONFIG_FIELDS = ['lowercase', 'drop_figure_refs', 'min_count', 'max_vocab'];

const { word: W, space: S, digit: D, figLetter: L, mark: M } = CLASS;
const QUOTES = /["\u201c\u201d\u201e\u201f\u00ab\u00bb`\u00b4]/gu;
const APOSTROPHES = /[\u2018\u2019\u201b\u2032]/gu;
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/gu; // eslint-disable-line no-control-regex
const WHITESPACE = new RegExp(`[${S}]+`, 'gu');
const UNUSABLE = new RegExp(`[${S}\\u{0}-\\u{1f}\\u{7f}-\\u{9f}\\u{d800}-\\u{dfff}]`, 'u');
// A high surrogate that no low one follows (code units: no u flag); only then can dropping a figure
// reference join two surrogates into one character.
const LONE_HIGH = /[\ud800-\udbff](?![\udc00-\udfff])/;
// Starts only where a run of whitespace starts, as in Python: tried from every space of a run, the leading
// whitespace would scan the rest of the run each time (quadratic in its length).
const FIGURE_REF = new RegExp(
  `(?<![${S}])[${S}]*\\([${S}]*[${D}]+[${L}]?'*(?:[${S}]*[,\\-][${S}]*[${D}]+[${L}]?'*)*[${S}]*\\)`,
  'gu',
);
const WORD_OR_SYMBOL = `[${W}]+(?:(?:[\\-/'.]|(?<=[${D}]),(?=[${D}]))[${W}]+)*|[^${W}${S}]`;
const TOKEN = new RegExp(WORD_OR_SYMBOL, 'gu'); // version 1
const TOKEN_V2 = new RegExp(`<unk>|${WORD_OR_SYMBOL}`, 'gu'); // version 2: "<unk>" is one token
// Version 3: a combining mark is a word character too; a word also continues across a middle dot, the
// Hebrew maqaf, geresh and gershayim, and the zero-width non-joiner and joiner, and a number across the
// Arabic decimal and thousands separators.
const WORD_V3 = `[${W}${M}]+(?:(?:[\\-/'.\\u00b7\\u05be\\u05f3\\u05f4\\u200c\\u200d]|(?<=[${D}])[,\\u066b\\u066c](?=[${D}]))[${W}${M}]+)*`;
const TOKEN_V3 = new RegExp(`<unk>|${WORD_V3}|[^${W}${M}${S}]`, 'gu');
const TOKEN_BY_VERSION = new Map([
  [1, TOKEN],
  [2, TOKEN_V2],
  [3, TOKEN_V3],
  [4, TOKEN_V3],
  [5, TOKEN_V3],
]);
// Version 4 drops the characters that only format text (the default-ignorable format controls but the
// joiners of words and emoji) before anything else, and reads a zero-width space as a space.
const INVISIBLE =
  /[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}]/gu;
// Version 5 drops the Arabic tatweel after NFKC (composing the text again), reads an ASCII quote between
// two Hebrew letters as the gershayim, and makes each Han ideograph a token of its own.
const TATWEEL = /\u0640/g;
const GERSHAYIM = /(?<=[\u05d0-\u05ea])"(?=[\u05d0-\u05ea])/g;
// ... and the marks NFKC makes ASCII, full-width again right after an ideograph (of the Basic Multilingual
// Plane: past it, Python may read one as a stand-in) or kana (runtime/splitting.py's _CJK_MARK)
const CJK_MARK =
  /(?<=[\u3005-\u3007\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])[,!?:;]/g;
const FULL_WIDTH = { ',': '\uff0c', '!': '\uff01', '?': '\uff1f', ':': '\uff1a', ';': '\uff1b' };
const HAN_CHAR = new RegExp(`[${HAN}]`, 'gu');
const NOT_ASCII = /[^\x00-\x7f]/; // eslint-disable-line no-control-regex

/** How text is normalized (the fields a model file's tokenizer carries). */
export class TokenizerConfig {
  constructor({ lowercase = true, dropFigureRefs = true, minCount = 2, maxVocab = 20000 } = {}) {
    this.lowercase = lowercase;
    this.dropFigureRefs = dropFigureRefs;
    this.minCount = minCount;
    this.maxVocab = maxVocab;
  }
}

/** Maps text to word ids and back, exactly as the Python runtime's Tokenizer. */
export class Tokenizer {
  /**
   * @param {unknown[]} tokens id i is tokens[i]; the first three must be the special tokens
   * @param {TokenizerConfig} [config]
   * @param {number} [version] the tokenizer format version whose splitting rules it follows
   */
  constructor(tokens, config = new TokenizerConfig(), version = TOKENIZER_FORMAT_VERSION) {
    if (!READABLE_VERSIONS.includes(version)) {
      // a version given from JavaScript (fromJson checks the file's own first): integers shown as such
      const shown = Number.isInteger(version) ? String(version) : pyRepr(version);
      throw new NextwordError(
        `tokenizer format version must be one of [${READABLE_VERSIONS.join(', ')}], got ${shown}`,
      );
    }
    if (tokens.length > MAX_VOCAB_SIZE) {
      throw new NextwordError(
        `the vocabulary has ${commas(tokens.length)} tokens, more than the ${commas(MAX_VOCAB_SIZE)} ` +
          'allowed; lower max_vocab',
      );
    }
    const head = tokens.slice(0, SPECIAL_TOKENS.length);
    if (head.length !== SPECIAL_TOKENS.length || head.some((t, i) => t !== SPECIAL_TOKENS[i])) {
      throw new NextwordError(
        `the vocabulary must start with the special tokens ${pyRepr([...SPECIAL_TOKENS])}, ` +
          `got [${head.map((t) => shorten(t)).join(', ')}]`,
      );
    }
    const index = new Map();
    tokens.forEach((token, i) => {
      if (typeof token !== 'string' || !token) {
        throw new NextwordError(`vocabulary entry ${i} must be a non-empty string, got ${shorten(token)}`);
      }
      const length = pyLen(token);
      if (length > MAX_TOKEN_CHARS) {
        throw new NextwordError(
          `vocabulary entry ${i} is ${commas(length)} characters long, more than the ` +
            `${commas(MAX_TOKEN_CHARS)} allowed: ${shorten(token)}`,
        );
      }
      const bad = UNUSABLE.exec(token);
      if (bad) {
        throw new NextwordError(
          `vocabulary entry ${i} (${shorten(token)}) contains ${pyRepr(bad[0])}, which no tokenized ` +
            'text contains (whitespace, control character or lone surrogate); the tokenizer was not ' +
            'written by nextword: re-export the model',
        );
      }
      if (index.has(token)) {
        throw new NextwordError(
          `vocabulary token ${shorten(token)} appears twice (ids ${index.get(token)} and ${i})`,
        );
      }
      index.set(token, i);
    });
    this.config = config;
    this.version = version;
    this._tokens = tokens;
    this._index = index;
  }

  /** Restore a tokenizer from the JSON a model file carries; errors as in Python's from_json. */
  static fromJson(text) {
    let data;
    try {
      data = parsePyJson(text);
    } catch (error) {
      if (!(error instanceof PyJsonError)) throw error;
      if (error.tooDeep) throw new NextwordError('tokenizer JSON is nested too deeply to parse');
      throw new NextwordError(`tokenizer JSON does not parse: ${error.message}`);
    }
    if (!(data instanceof Map) || data.get('format') !== FORMAT_NAME) {
      throw new NextwordError(`not a nextword tokenizer (expected "format": "${FORMAT_NAME}")`);
    }
    const version = data.get('version');
    const readable = READABLE_VERSIONS.find((n) => pyEqualsInt(version, n)); // 1.0 and true are 1
    if (readable === undefined) {
      throw new NextwordError(
        `tokenizer format version ${pyRepr(version)} is not supported (this nextword reads versions ` +
          `${READABLE_VERSIONS.slice(0, -1).join(', ')} and ${READABLE_VERSIONS.at(-1)}); upgrade nextword ` +
          'or re-export the model',
      );
    }
    const raw = data.has('config') ? data.get('config') : new Map();
    const tokens = data.get('tokens');
    if (!(raw instanceof Map) || !Array.isArray(tokens)) {
      throw new NextwordError('tokenizer JSON needs a "config" object and a "tokens" list');
    }
    const unknown = pySorted([...raw.keys()].filter((k) => !CONFIG_FIELDS.includes(k)));
    if (unknown.length) {
      throw new NextwordError(
        `tokenizer config has unknown fields ${pyRepr(unknown)}; known fields are ${pyRepr(pySorted(CONFIG_FIELDS))}`,
      );
    }
    for (const name of ['lowercase', 'drop_figure_refs']) {
      if (raw.has(name) && typeof raw.get(name) !== 'boolean') {
        throw new NextwordError(
          `tokenizer config ${name} must be true or false, got ${shorten(raw.get(name))}`,
        );
      }
    }
    const pick = (name, fallback) => (raw.has(name) ? raw.get(name) : fallback);
    const minCount = pick('min_count', 2n);
    const maxVocab = pick('max_vocab', 20000n);
    if (typeof minCount !== 'bigint' || minCount < 1n) {
      throw new NextwordError(`min_count must be an integer >= 1, got ${pyRepr(minCount)}`);
    }
    if (typeof maxVocab !== 'bigint' || maxVocab <= BigInt(SPECIAL_TOKENS.length)) {
      throw new NextwordError(
        `max_vocab must be an integer > ${SPECIAL_TOKENS.length} (it counts the special tokens), ` +
          `got ${pyRepr(maxVocab)}`,
      );
    }
    const config = new TokenizerConfig({
      lowercase: pick('lowercase', true),
      dropFigureRefs: pick('drop_figure_refs', true),
      minCount: Number(minCount),
      maxVocab: Number(maxVocab),
    });
    return new Tokenizer(tokens, config, readable);
  }

  /** Normalize `text` and split it into word and punctuation tokens (no vocabulary lookup). */
  tokenize(text) {
    return tokenize(text, this.config, this.version);
  }

  /** Token ids of `text`; words outside the vocabulary become the unknown id. */
  encode(text) {
    return this.tokenize(text).map((token) => this._index.get(token) ?? this.unkId);
  }

  /** Readable text for `ids`; padding is left out and end-of-document starts a new paragraph. */
  decode(ids) {
    if (typeof ids === 'string')
      // its characters would be read as ids one by one: decode('12') gave tokens 1 and 2
      throw new TypeError(
        'decode takes token ids (an array of integers), got a string: encode() turns text into ids',
      );
    if (typeof ids?.[Symbol.iterator] !== 'function')
      // Array.from(5) is [], so decode(5) gave ''
      throw new TypeError(`decode takes token ids (an array of integers), got ${typeName(ids)}`);
    return Array.from(this.pieces(Array.from(ids, (id) => this.tokenOf(id)))).join('');
  }

  /**
   * Each token as the text piece that continues the text so far; `previous` is the token before the
   * first one (null at the start of a text).
   * @param {Iterable<string>} tokens
   * @param {string | null} [previous]
   */
  *pieces(tokens, previous = null) {
    let newParagraph = false;
    let starts = previous === null || endsSentence(previous);
    for (const token of tokens) {
      if (token === PAD) continue;
      if (token === EOD) {
        newParagraph = newParagraph || previous !== null;
        previous = null;
        starts = true;
        continue;
      }
      let piece = this.piece(token, previous, starts);
      if (newParagraph) {
        piece = `\n\n${piece}`;
        newParagraph = false;
      }
      yield piece;
      starts = startsAfter(token, starts, previous);
      previous = token;
    }
  }

  /** Whether `token` ends a sentence (spacing.js: not the dot after initials, `previous`). */
  static endsSentence(token, previous = null) {
    return endsSentence(token, previous);
  }

  /** Whether the token after `token` begins a sentence, `starts` saying whether `token` did and
   * `previous` being the token before it (spacing.js). */
  static startsAfter(token, starts, previous = null) {
    return startsAfter(token, starts, previous);
  }

  /** Whether the token after a text begins a sentence, from the text's tokens `before` it, the latest
   * first (it reads only as far back as it needs): at a document start or end, after a sentence end (not
   * the dot after initials, e.g.), or after parentheses, ¿ or ¡ that follow one of those.
   * @param {Iterable<string>} before */
  static beginsSentence(before) {
    const tokens = withoutPadding(before); // padding writes nothing (pieces)
    for (let step = tokens.next(); !step.done; step = tokens.next()) {
      const token = step.value;
      if (token === EOD) return true;
      if (mayEndSentence(token)) {
        const older = tokens.next(); // a sentence end, unless a dot after initials, a ";" not Greek's
        return endsSentence(token, older.done ? null : older.value);
      }
      if (!carriesStart(token)) return false;
    }
    return true;
  }

  /** The text that appends `token` after `previous`: a space unless punctuation says otherwise, and a
   * capital at a sentence start when the tokenizer lowercases. `starts`: whether `token` begins a
   * sentence (undefined: from `previous` alone, a text start or a sentence end). */
  piece(token, previous, starts = undefined) {
    const space = glued(token, previous) ? '' : ' ';
    const start = starts ?? (previous === null || endsSentence(previous));
    return space + (this.config.lowercase && start ? capitalized(token) : token);
  }

  get size() {
    return this._tokens.length;
  }

  /** The vocabulary in id order (a copy). */
  get tokens() {
    return [...this._tokens];
  }

  /** The id of `token`, or the unknown id; a `token` that is not a string is a TypeError. */
  idOf(token) {
    if (typeof token !== 'string') throw new TypeError(`token must be a string, got ${typeName(token)}`);
    return this._index.get(token) ?? this.unkId;
  }

  /** The token of id `id`, an integer (or bigint) in 0..size - 1: RangeError outside it, TypeError if no integer. */
  tokenOf(id) {
    if (typeof id === 'bigint') id = Number(id); // an id read from an int64 tensor's BigInt64Array
    const token = Number.isInteger(id) ? this._tokens[id] : undefined;
    if (token !== undefined) return token;
    const ids = `0..${this.size - 1}`;
    if (Number.isInteger(id)) throw new RangeError(`token id ${id} is not in this vocabulary of ids ${ids}`);
    const shown = typeof id === 'string' ? shorten(id) : typeof id === 'number' ? String(id) : typeName(id);
    throw new TypeError(`token ids must be integers in ${ids}, got ${shown}`);
  }

  get padId() {
    return 0;
  }

  get unkId() {
    return 1;
  }

  get eodId() {
    return 2;
  }
}

/** Python's `value == n` for a JSON value and an int (True == 1 and 1.0 == 1 in Python). */
function pyEqualsInt(value, n) {
  return value === BigInt(n) || value === n || (typeof value === 'boolean' && Number(value) === n);
}

/** Python's `_shorten`: repr of a value cut to about `limit` characters. */
export function shorten(value, limit = 60) {
  const text = pyRepr(value);
  return pyLen(text) <= limit ? text : `${pyHead(text, limit)}...`;
}

/** Steps 1-3 of the Python module docstring: Unicode, quotes, figure references, case, whitespace. */
export function normalize(text, config, version = TOKENIZER_FORMAT_VERSION) {
  return normalizedParts(text, config, version).join('');
}

/** Split `text` into tokens according to `config` and the rules of tokenizer format `version`. */
export function tokenize(text, config, version = TOKENIZER_FORMAT_VERSION) {
  if (typeof text !== 'string') throw new TypeError(`text must be a string, got ${typeof text}`);
  const pattern = TOKEN_BY_VERSION.get(version);
  let parts = normalizedParts(text, config, version);
  if (version >= 5)
    parts = parts.map((part) => (NOT_ASCII.test(part) ? part.replace(HAN_CHAR, ' $& ') : part));
  return parts.length === 1
    ? (parts[0].match(pattern) ?? [])
    : parts.flatMap((part) => part.match(pattern) ?? []);
}

/**
 * The normalized text, in parts read apart: one, unless dropping a figure reference left a lone high
 * surrogate just before a lone low one. Python keeps those two characters (each a token of its own);
 * side by side in a JavaScript string they would read as one, so the text is cut between them.
 */
function normalizedParts(text, config, version, dropped = false) {
  if (version >= 4 && !dropped) {
    const pieces = removedApart(text, INVISIBLE, (found) => (found === '\u200b' ? ' ' : ''));
    // cut where a removal joined a lone high surrogate to a lone low one (no space can lie at a cut,
    // so each piece's ends are stripped as the whole text's would be)
    if (pieces.length > 1) return pieces.flatMap((piece) => normalizedParts(piece, config, version, true));
    text = pieces[0];
  }
  text = pyNfkc(text);
  if (version >= 5 && text.includes('\u0640')) {
    // the tatweel dropped, then composed again (its pieces, where dropping it joined two surrogates)
    const pieces = removedApart(text, TATWEEL);
    if (pieces.length > 1) return pieces.flatMap((piece) => normalizedParts(piece, config, version, true));
    text = pyNfkc(pieces[0]);
  }
  if (version >= 5 && text.includes('"')) text = text.replace(GERSHAYIM, '\u05f4');
  if (version >= 5) text = text.replace(CJK_MARK, (mark) => FULL_WIDTH[mark]);
  text = text.replace(CONTROL, ' ').replace(QUOTES, ' ').replace(APOSTROPHES, "'");
  if (config.dropFigureRefs && LONE_HIGH.test(text)) {
    const parts = removedApart(text, FIGURE_REF).map((part) => finished(part, config));
    // Only the ends of the whole text are stripped: a cut lies between two surrogates, never at a space.
    parts[0] = stripped(parts[0], true, false);
    parts[parts.length - 1] = stripped(parts[parts.length - 1], false, true);
    return parts;
  }
  if (config.dropFigureRefs) text = text.replace(FIGURE_REF, '');
  return [stripped(finished(text, config), true, true)];
}

/** Case (a surrogate stops final sigma's context in Python too) and runs of whitespace. */
function finished(text, config) {
  return (config.lowercase ? pyLower(text) : text).replace(WHITESPACE, ' ');
}

/** `text` without the spaces at its `start` and its `end`. */
function stripped(text, start, end) {
  let from = 0;
  let to = text.length;
  while (start && from < to && text[from] === ' ') from++;
  while (end && to > from && text[to - 1] === ' ') to--;
  return text.slice(from, to);
}

/**
 * `text` with each match of `pattern` replaced by `replace(match)`, in parts cut where a removal would
 * put a lone high surrogate just before a lone low one: Python keeps those two characters (each a token
 * of its own); side by side in a JavaScript string they would read as one. Figure references (dropped)
 * and, from version 4, the characters that only format text (a zero-width space becomes a space).
 */
function removedApart(text, pattern, replace = () => '') {
  const parts = [];
  let part = '';
  let from = 0;
  for (const match of text.matchAll(pattern)) {
    part += text.slice(from, match.index) + replace(match[0]);
    from = match.index + match[0].length;
    const before = part.charCodeAt(part.length - 1);
    const after = text.charCodeAt(from);
    if (before >= 0xd800 && before < 0xdc00 && after >= 0xdc00 && after < 0xe000) {
      parts.push(part);
      part = '';
    }
  }
  parts.push(part + text.slice(from));
  return parts;
}

/** Python's str.isspace() for the last character of `text` (false for an empty string). */
export function endsWithSpace(text) {
  const last = Array.from(text.slice(-2)).pop();
  return last !== undefined && isSpace(last.codePointAt(0));
}

function* withoutPadding(tokens) {
  for (const token of tokens) if (token !== PAD) yield token;
}
