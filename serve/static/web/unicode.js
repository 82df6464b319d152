// Python's Unicode behaviour in JavaScript: regex classes, str.lower()/str.upper(), NFKC and
// str.isprintable(), from tables generated from Python (src/unicode-data.js), never from the engine's own
// Unicode data, which is usually a different version. See docs/web.md, "Tokenizer parity".

import * as data from './unicode-data.js';

/** The Unicode version of the Python whose behaviour the tables reproduce. */
export const UNICODE_VERSION = data.UNICODE_VERSION;

/** @param {string} encoded @returns {number[]} inclusive [start, end, start, end, ...] */
function decodeRanges(encoded) {
  const out = [];
  let previous = -1;
  for (const pair of encoded.split(',')) {
    const [gap, span] = pair.split('.');
    const start = previous + 1 + parseInt(gap, 36);
    const end = start + parseInt(span, 36);
    out.push(start, end);
    previous = end;
  }
  return out;
}

/** @param {string} encoded @returns {Map<number, string>} */
function decodeMap(encoded) {
  const out = new Map();
  let previous = -1;
  for (const entry of encoded.split(',')) {
    const [gap, target] = entry.split(':');
    const key = previous + 1 + parseInt(gap, 36);
    out.set(key, String.fromCodePoint(...target.split('.').map((d) => parseInt(d, 36))));
    previous = key;
  }
  return out;
}

/** A regex character-class body (for use inside [...] with the `u` flag) for inclusive ranges. */
function classBody(ranges) {
  const hex = (c) => `\\u{${c.toString(16)}}`;
  let body = '';
  for (let i = 0; i < ranges.length; i += 2) {
    body += ranges[i] === ranges[i + 1] ? hex(ranges[i]) : `${hex(ranges[i])}-${hex(ranges[i + 1])}`;
  }
  return body;
}

/** Membership test over sorted inclusive ranges, by binary search. */
function member(ranges) {
  return (cp) => {
    let lo = 0;
    let hi = ranges.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (cp < ranges[2 * mid]) hi = mid - 1;
      else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

const SPACE = decodeRanges(data.SPACE);
const CASED = member(decodeRanges(data.CASED));
const CASE_IGNORABLE = member(decodeRanges(data.CASE_IGNORABLE));
const UNASSIGNED = member(decodeRanges(data.UNASSIGNED));
const NONPRINTABLE = member(decodeRanges(data.NONPRINTABLE));
const LOWER = decodeMap(data.LOWER);
const UPPER = decodeMap(data.UPPER);

/** Class bodies equal to Python's `\w`, `\s`, `\d` and `[a-z]` under re.IGNORECASE, and the combining
 * marks (categories Mn, Mc, Me: runtime/unicode_marks.py's table). */
export const CLASS = {
  word: classBody(decodeRanges(data.WORD)),
  mark: classBody(decodeRanges(data.MARK)),
  space: classBody(SPACE),
  digit: classBody(decodeRanges(data.DIGIT)),
  figLetter: classBody(decodeRanges(data.FIG_LETTER)),
};

/** Python's str.isspace() for one code point (the same set as `\s`). */
export const isSpace = member(SPACE);

/** Python's str.isprintable() for one code point. */
export const isPrintable = (cp) => !NONPRINTABLE(cp);

/** Python's `str.lower()`, final sigma included. */
export function pyLower(text) {
  const cps = Array.from(text, (ch) => ch.codePointAt(0));
  let out = '';
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i];
    if (cp === 0x3a3) out += finalSigma(cps, i) ? '\u03c2' : '\u03c3';
    else out += LOWER.get(cp) ?? String.fromCodePoint(cp);
  }
  return out;
}

/** Python's `str.upper()`. */
export function pyUpper(text) {
  let out = '';
  for (const ch of text) out += UPPER.get(ch.codePointAt(0)) ?? ch;
  return out;
}

// CPython's handle_capital_sigma: cased, case-ignorable*, SIGMA, not (case-ignorable*, cased).
function finalSigma(cps, i) {
  let j = i - 1;
  while (j >= 0 && CASE_IGNORABLE(cps[j])) j--;
  if (j < 0 || !CASED(cps[j])) return false;
  j = i + 1;
  while (j < cps.length && CASE_IGNORABLE(cps[j])) j++;
  return j === cps.length || !CASED(cps[j]);
}

/**
 * Python's `unicodedata.normalize("NFKC", text)`. Characters unassigned in Python's Unicode version are
 * starters without decompositions there, so they split the text into runs that normalize independently;
 * each run holds assigned characters only, whose normalization no later Unicode version changes, so the
 * engine's own `normalize` gives Python's result for it.
 */
export function pyNfkc(text) {
  return pyNormalize(text, 'NFKC');
}

/** Python's `unicodedata.normalize("NFC", text)`, read as pyNfkc reads NFKC. */
export function pyNfc(text) {
  return pyNormalize(text, 'NFC');
}

function pyNormalize(text, form) {
  let out = '';
  let run = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if ((cp >= 0xd800 && cp <= 0xdfff) || UNASSIGNED(cp)) {
      out += run.normalize(form) + ch;
      run = '';
    } else {
      run += ch;
    }
  }
  return out + run.normalize(form);
}

/** Whether this engine's normalization knows every character the tables' Unicode version assigns. */
export function engineNormalizesThisVersion() {
  return data.PROBE[0].normalize('NFKC') === data.PROBE[1];
}
