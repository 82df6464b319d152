// Decoding's spacing and sentence capitals, as runtime/spacing.py's: which tokens are written without a
// space between them, and which token begins a sentence.

import { pyHead } from './pyrepr.js';
import { CLASS, pyNfc, pyUpper } from './unicode.js';

// The Han ideographs (runtime/splitting.py's HAN): tokenizer format 5 makes each a token of its own.
export const HAN = '\\u3005-\\u3007\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff\\u{20000}-\\u{3ffff}';

// Glued to the token before: closing punctuation (Arabic, Urdu, Devanagari, Armenian, Ethiopic and CJK
// marks too) and what continues an emoji or a word (skin tones, variation selectors, joiners, the keycap
// mark); glued to the token after: an opening parenthesis, ¿, ¡, the CJK opening marks and the joiners.
const NO_SPACE_BEFORE = new Set([
  ...'.,;:)?!\u060c\u061b\u061f\u06d4\u0964\u0965\u0589\u055c\u055d\u055e\u200c\u200d\u20e3',
  ...'\u3001\u3002\u3009\u300b\u300d\u300f\u3011\u3015\u3017\u3019\u301b\u301e\u301f',
  ...'\uff01\uff0c\uff1a\uff1b\uff1f',
  ...codePoints(0x1361, 0x1369),
  ...codePoints(0xfe00, 0xfe10),
  ...codePoints(0x1f3fb, 0x1f400),
]);
const NO_SPACE_AFTER = new Set([
  ...'(\u00bf\u00a1\u200c\u200d\u3008\u300a\u300c\u300e\u3010\u3014\u3016\u3018\u301a\u301d',
]);
// A token that begins with a combining mark or a tag character continues the character before it (a
// keycap's "\ufe0f\u20e3" after "#", the tags of a subdivision flag after the black flag).
const CONTINUES = new RegExp(`^[${CLASS.mark}\\u{e0020}-\\u{e007f}]`, 'u');
// Scripts written without spaces between words: Han, Hiragana, Katakana and its phonetic extensions,
// CJK symbols and punctuation, Thai, Lao, Khmer and Myanmar, and the full-width marks tokenizer format 5
// keeps after ideographs; two tokens meeting on them touch.
const UNSPACED = `${HAN}\\u3001-\\u303f\\u3041-\\u309f\\u30a0-\\u30ff\\u31f0-\\u31ff\\u0e01-\\u0e5b\\u0e80-\\u0eff\\u1780-\\u17ff\\u1000-\\u109f\\uff01\\uff0c\\uff1a\\uff1b\\uff1f`;
const STARTS_UNSPACED = new RegExp(`^[${UNSPACED}]`, 'u');
const ENDS_UNSPACED = new RegExp(`[${UNSPACED}]$`, 'u');
// The ideographic and Armenian full stops end sentences too.
const SENTENCE_END = new Set(['.', '?', '!', '\u3002', '\u0589', '\uff01', '\uff1f']);
// Initials: single letters (word characters but digits and "_") joined by dots, "e.g", "u.s.a"; the dot
// after them ends no sentence. A percent sign (or the Arabic one) is glued to a number before it ("90%").
const LETTER = `(?:(?![${CLASS.digit}_])[${CLASS.word}])`;
const INITIALS = new RegExp(`^${LETTER}(?:\\.${LETTER})+$`, 'u');
const ENDS_IN_DIGIT = new RegExp(`[${CLASS.digit}]$`, 'u');
const PERCENT = new Set(['%', '\u066a']);
// A token whose last character is a Greek letter: a ";" after it is the Greek question mark (U+037E,
// which NFKC makes ";").
const ENDS_GREEK = new RegExp(`(?=[\\u0370-\\u03ff\\u1f00-\\u1fff])${LETTER}$`, 'u');
const NOT_ASCII = /[^\x00-\x7f]/; // eslint-disable-line no-control-regex
// Marks that pass a sentence start on to the token after them ("(It works.)", "¿Por qué?", "(Done.) Then").
const CARRY_START = new Set(['(', ')', '\u00bf', '\u00a1']);

/** Whether `token` is written right after `previous` (null: the text's start), no space. */
export function glued(token, previous) {
  return (
    previous === null ||
    NO_SPACE_AFTER.has(previous) ||
    NO_SPACE_BEFORE.has(token) ||
    (isRegionalIndicator(token) && isRegionalIndicator(previous)) ||
    (PERCENT.has(token) && ENDS_IN_DIGIT.test(previous)) ||
    CONTINUES.test(token) ||
    // every such script lies past U+0E00: a comparison spares most words the patterns
    (token > '\u0e00' &&
      previous.slice(-1) > '\u0e00' &&
      STARTS_UNSPACED.test(token) &&
      ENDS_UNSPACED.test(previous))
  );
}

/** Whether `token` ends a sentence after some token (endsSentence says after which). */
export function mayEndSentence(token) {
  return SENTENCE_END.has(token) || token === ';';
}

/** Whether `token` ends a sentence: `.`, `?`, `!`, `。` or Armenian `։`, but not the dot that closes
 * initials, `previous` being single letters joined by dots (e.g., i.e., U.S.: the tokenizer keeps their
 * last dot apart); and `;` after a token ending in a Greek letter, the Greek question mark. */
export function endsSentence(token, previous = null) {
  if (token === ';') return previous !== null && ENDS_GREEK.test(previous);
  return SENTENCE_END.has(token) && !(token === '.' && previous !== null && INITIALS.test(previous));
}

/** Whether the token after `token` begins a sentence, `starts` saying whether `token` did and
 * `previous` being the token before it: after a sentence end (endsSentence), or after a parenthesis,
 * ¿ or ¡ where a sentence began. */
export function startsAfter(token, starts, previous = null) {
  return endsSentence(token, previous) || (starts && CARRY_START.has(token));
}

/** Whether `token` passes a sentence start on to the token after it: (, ), ¿, ¡. */
export function carriesStart(token) {
  return CARRY_START.has(token);
}

/** `token` with a capital: its first character uppercased as Python's str.upper does, then composed
 * (NFC): Turkish "i\u0307" (İ lowercased) is İ again, not I and a dot. */
export function capitalized(token) {
  const first = pyHead(token, 1);
  const capital = pyUpper(first) + token.slice(first.length);
  return NOT_ASCII.test(capital) ? pyNfc(capital) : capital;
}

/** Whether `token` is one regional indicator letter (half of a flag: two make one). */
function isRegionalIndicator(token) {
  const code = token.codePointAt(0);
  return code >= 0x1f1e6 && code < 0x1f200 && token.length === 2;
}

/** The characters from `first` up to (not including) `end`, as strings. */
function codePoints(first, end) {
  return Array.from({ length: end - first }, (_, i) => String.fromCodePoint(first + i));
}
